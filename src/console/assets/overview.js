// fireball console: the cluster overview at /ui/. Each panel renders from its own endpoint; a
// missing or failing endpoint shows a message in that panel only.
"use strict";

(() => {
  const { el, request, setPanel, renderPanel, refreshLoop, showServedBy, formatBytes, queryElapsed, ownerName,
    groupName, user, pill, statePill, bar, queryLink, num, table, asArray, asObject, TERMINAL } = FB;

  const ROLE_ORDER = { resource_manager: 0, coordinator: 1, worker: 2 };
  const QUERY_ROWS_MAX = 500;
  const GROUP_ROOTS_MAX = 8;
  const lastGood = {};
  let lastQueries = null;
  let nodeIdByUri = {};

  // ---- cluster stats (/v1/cluster) --------------------------------------------------------

  function renderCluster(stats) {
    asObject(stats, "/v1/cluster");
    const tile = (label, value, key) => el("div", { class: "tile", "data-stat": key },
      el("div", { class: "value" }, value), el("div", { class: "label" }, label));
    return el("div", { class: "tiles" },
      tile("running queries", num(stats.runningQueries), "runningQueries"),
      tile("queued queries", num(stats.queuedQueries), "queuedQueries"),
      tile("blocked queries", num(stats.blockedQueries), "blockedQueries"),
      tile("active workers", num(stats.activeWorkers), "activeWorkers"),
      tile("running tasks", num(stats.runningTasks), "runningTasks"),
      tile("reserved memory", formatBytes(stats.reservedMemory), "reservedMemory"));
  }

  // ---- nodes (/v1/node, /v1/node/failed) ----------------------------------------------------

  function renderNodes(nodes, failed) {
    asArray(nodes, "/v1/node");
    const all = nodes.map((node) => ({ node, failed: false }))
      .concat((Array.isArray(failed) ? failed : []).map((node) => ({ node, failed: true })));
    all.sort((a, b) => (ROLE_ORDER[a.node.role] ?? 9) - (ROLE_ORDER[b.node.role] ?? 9)
      || String(a.node.nodeId || a.node.uri).localeCompare(String(b.node.nodeId || b.node.uri)));
    // Summary: count per role and state, e.g. "coordinator 2 (2 ACTIVE)".
    const counts = {};
    for (const { node, failed: isFailed } of all) {
      const role = node.role || "unknown";
      const state = isFailed ? "FAILED_NODE" : node.state || "UNKNOWN";
      counts[role] = counts[role] || {};
      counts[role][state] = (counts[role][state] || 0) + 1;
    }
    const summary = el("div", { class: "summary" }, Object.keys(counts)
      .sort((a, b) => (ROLE_ORDER[a] ?? 9) - (ROLE_ORDER[b] ?? 9))
      .map((role) => el("span", { "data-role-count": role },
        pill(role, "role"), ` ${Object.values(counts[role]).reduce((x, y) => x + y, 0)} `,
        Object.entries(counts[role]).map(([state, n]) => el("span", {}, " ", statePill(state), ` ${n}`)))));
    const rows = all.map(({ node, failed: isFailed }) => {
      const state = isFailed ? "FAILED_NODE" : node.state;
      const ratio = typeof node.recentFailureRatio === "number" ? `${(node.recentFailureRatio * 100).toFixed(0)}%` : "—";
      return el("tr", { "data-node-id": node.nodeId || "", "data-role": node.role || "", "data-state": state || "",
          "data-failed": isFailed ? "true" : "false" },
        el("td", { class: "mono" }, node.nodeId || "—"),
        el("td", {}, pill(node.role, "role")),
        el("td", {}, statePill(state)),
        el("td", { class: "mono" }, node.uri || "—"),
        el("td", { class: "num" }, node.age || "—"),
        el("td", { class: "num" }, typeof node.recentRequests === "number" ? node.recentRequests.toFixed(1) : "—"),
        el("td", { class: "num" }, ratio),
        el("td", { class: "num" }, node.lastResponseTime || "—"));
    });
    nodeIdByUri = {};
    for (const { node } of all) if (node.uri && node.nodeId) nodeIdByUri[node.uri] = node.nodeId;
    const content = [summary, table(["Node", "Role", "State", "URI", ["Age", "num"], ["Recent requests", "num"],
      ["Recent failures", "num"], ["Last response", "num"]], rows, { id: "nodes-table" })];
    if (!Array.isArray(failed)) content.push(el("p", { class: "note bad" }, "Failed-node list unavailable (/v1/node/failed)."));
    return content;
  }

  // ---- resource managers (/v1/cluster/resourceManagers) -------------------------------------

  function renderResourceManagers(rms) {
    asArray(rms, "/v1/cluster/resourceManagers");
    const rows = rms.map((rm) => el("tr", { "data-rm-id": rm.nodeId || "", "data-reachable": rm.reachable ? "true" : "false" },
      el("td", { class: "mono" }, rm.nodeId || "—"),
      el("td", { class: "mono" }, rm.uri || "—"),
      el("td", {}, rm.reachable ? el("span", { class: "pill yes-ok" }, "reachable")
        : el("span", {}, el("span", { class: "pill yes-bad" }, "unreachable"), " ", rm.error || "")),
      el("td", { class: "num" }, num(rm.coordinators)),
      el("td", { class: "num" }, num(rm.workers)),
      el("td", { class: "num" }, num(rm.runningQueries)),
      el("td", { class: "num" }, num(rm.queuedQueries)),
      el("td", {}, rm.reachable ? bar(rm.reservedMemoryBytes, rm.totalMemoryBytes, rm.blockedNodes > 0) : "—"),
      el("td", { class: "num" }, num(rm.blockedNodes))));
    if (rows.length === 0) return el("p", { class: "note" }, "No resource managers known.");
    return table(["RM", "URI", "Reachable", ["Coordinators", "num"], ["Workers", "num"], ["Running", "num"],
      ["Queued", "num"], "Memory reserved / total", ["Blocked nodes", "num"]], rows, { id: "rm-table" });
  }

  // ---- resource groups (/v1/cluster/resourceGroups) ------------------------------------------

  function renderResourceGroups(groups) {
    asObject(groups, "/v1/cluster/resourceGroups");
    const content = [];
    const total = Array.isArray(groups.total) ? groups.total : [];
    content.push(el("h3", {}, "Cluster-wide"));
    content.push(total.length === 0 ? el("p", { class: "note" }, "No resource group has running or queued queries.") :
      table(["Group", ["Running", "num"], ["Queued", "num"]], total.map((group) =>
        el("tr", { "data-group": group.id || "" },
          el("td", { class: "mono" }, group.id || "—"),
          el("td", { class: "num" }, num(group.running)),
          el("td", { class: "num" }, num(group.queued)))), { id: "groups-total" }));
    for (const coordinator of Array.isArray(groups.coordinators) ? groups.coordinators : []) {
      content.push(el("h3", {}, "Coordinator ", el("span", { class: "mono" }, coordinator.coordinatorId || "?"),
        el("span", { class: "hint mono" }, coordinator.uri || "")));
      const list = Array.isArray(coordinator.groups) ? coordinator.groups : [];
      content.push(list.length === 0 ? el("p", { class: "note" }, "Nothing running or queued.") :
        table(["Group", ["Running", "num"], ["Queued", "num"], ["Memory", "num"]], list.map((group) =>
          el("tr", { "data-group": group.id || "", "data-coordinator": coordinator.coordinatorId || "" },
            el("td", { class: "mono" }, group.id || "—"),
            el("td", { class: "num" }, num(group.running)),
            el("td", { class: "num" }, num(group.queued)),
            el("td", { class: "num" }, formatBytes(group.memoryBytes))))));
    }
    return content;
  }

  // ---- resource group limits (/v1/resourceGroupState/{root}) ---------------------------------

  /** Root groups worth asking about: from the cluster-wide counts and the query list. */
  function groupRoots(groups, queries) {
    const roots = new Set();
    if (groups && Array.isArray(groups.total)) for (const g of groups.total) if (g.id) roots.add(String(g.id).split(".")[0]);
    if (Array.isArray(queries)) for (const q of queries) {
      if (Array.isArray(q.resourceGroupId) && q.resourceGroupId.length) roots.add(String(q.resourceGroupId[0]));
    }
    if (roots.size === 0) roots.add("global"); // the default file's root
    return [...roots].sort().slice(0, GROUP_ROOTS_MAX);
  }

  function groupRows(info, depth, rows) {
    const id = Array.isArray(info.id) ? info.id.join(".") : String(info.id || "?");
    const running = info.numAggregatedRunningQueries ?? info.numRunningQueries;
    const queued = info.numAggregatedQueuedQueries ?? info.numQueuedQueries;
    rows.push(el("tr", { "data-group-state": id },
      el("td", { class: "mono", style: `padding-left:${8 + depth * 16}px` }, id),
      el("td", {}, statePill(info.state)),
      el("td", { class: "num" }, `${num(running)} / ${num(info.hardConcurrencyLimit)}`),
      el("td", { class: "num" }, `${num(queued)} / ${num(info.maxQueuedQueries)}`),
      el("td", { class: "num" }, `${info.memoryUsage ?? "—"} / ${info.softMemoryLimit ?? "—"}`),
      el("td", {}, info.schedulingPolicy || "—")));
    if (Array.isArray(info.subGroups) && depth < 6) for (const sub of info.subGroups) groupRows(sub, depth + 1, rows);
  }

  async function refreshGroupState(groups, queries) {
    const roots = groupRoots(groups, queries);
    const results = await Promise.all(roots.map((root) =>
      request(`/v1/resourceGroupState/${root.split(".").map(encodeURIComponent).join("/")}`)));
    const rows = [], missing = [], failures = [];
    results.forEach((result, index) => {
      if (result.ok && result.data && typeof result.data === "object") groupRows(result.data, 0, rows);
      else if (result.status === 404) missing.push(roots[index]);
      else failures.push(result.error);
    });
    if (failures.length && rows.length === 0) {
      renderPanel("panel-group-state", { ok: false, status: 0, error: failures.join("; ") }, () => [], lastGood);
      return failures;
    }
    const content = [];
    if (rows.length) content.push(table(["Group", "State", ["Running / limit", "num"], ["Queued / max", "num"],
      ["Memory / soft limit", "num"], "Policy"], rows));
    else content.push(el("p", { class: "note" }, "No resource group has been used yet."));
    if (missing.length) content.push(el("p", { class: "note" }, `Not (yet) known to any coordinator: ${missing.join(", ")}.`));
    if (failures.length) content.push(el("p", { class: "note bad" }, failures.join("; ")));
    setPanel("panel-group-state", "ok", "", content);
    lastGood["panel-group-state"] = FB.clock();
    return failures;
  }

  // ---- memory (/v1/cluster/memory, /v1/cluster/workerMemory) ---------------------------------

  function renderMemory(memory) {
    asObject(memory, "/v1/cluster/memory");
    const content = [];
    for (const [poolName, pool] of Object.entries(memory)) {
      if (!pool || typeof pool !== "object") continue;
      const info = pool.memoryPoolInfo || {};
      const total = pool.totalDistributedBytes ?? info.maxBytes;
      const reserved = pool.reservedDistributedBytes ?? info.reservedBytes;
      const blocked = typeof pool.blockedNodes === "number" ? pool.blockedNodes : 0;
      content.push(el("h3", {}, `Pool "${poolName}"`));
      content.push(el("div", { "data-pool": poolName }, bar(reserved, total, blocked > 0)));
      content.push(el("dl", { class: "facts" },
        el("dt", {}, "Blocked nodes"), el("dd", {}, blocked > 0 ? el("span", { class: "pill yes-bad" }, String(blocked)) : "0"),
        el("dt", {}, "Assigned queries"), el("dd", {}, num(pool.assignedQueries)),
        el("dt", {}, "Running queries"), el("dd", {}, num(Array.isArray(pool.runningQueries) ? pool.runningQueries.length : undefined)),
        el("dt", {}, "Largest query"), el("dd", {}, pool.largestMemoryQuery ? queryLink(String(pool.largestMemoryQuery)) : "—")));
      const reservations = Object.entries(info.queryMemoryReservations || {})
        .filter(([, n]) => typeof n === "number").sort((a, b) => b[1] - a[1]).slice(0, 10);
      if (reservations.length) {
        content.push(table(["Query", ["Reserved", "num"]], reservations.map(([id, n]) =>
          el("tr", {}, el("td", {}, queryLink(id)), el("td", { class: "num" }, formatBytes(n))))));
      }
    }
    if (content.length === 0) content.push(el("p", { class: "note" }, "No memory pool reported."));
    return content;
  }

  function renderWorkerMemory(workers) {
    asObject(workers, "/v1/cluster/workerMemory");
    const rows = Object.entries(workers).sort((a, b) => a[0].localeCompare(b[0])).map(([key, worker]) => {
      const pools = (worker && worker.pools) || {};
      const pool = pools.general || Object.values(pools)[0] || {};
      const queries = Object.keys(pool.queryMemoryReservations || {}).length;
      const blocked = worker && worker.blocked === true;
      const nodeId = key.split(" [")[0];
      return el("tr", { "data-worker": nodeId, "data-blocked": blocked ? "true" : "false" },
        el("td", { class: "mono" }, key),
        el("td", {}, bar(pool.reservedBytes, pool.maxBytes, blocked)),
        el("td", {}, blocked ? el("span", { class: "pill yes-bad" }, "BLOCKED") : el("span", { class: "pill yes-ok" }, "no")),
        el("td", { class: "num" }, worker && worker.totalNodeMemory ? String(worker.totalNodeMemory) : "—"),
        el("td", { class: "num" }, queries));
    });
    if (rows.length === 0) return el("p", { class: "note" }, "No worker reports memory.");
    return table(["Worker", "Reserved / pool size", "Blocked", ["Node memory", "num"], ["Queries", "num"]], rows,
      { id: "worker-memory-table" });
  }

  // ---- queries (/v1/query) --------------------------------------------------------------------

  const STATE_RANK = { RUNNING: 0, QUEUED: 1, FAILED: 2, FINISHED: 3 };

  function renderQueries(queries) {
    asArray(queries, "/v1/query");
    lastQueries = queries;
    const filter = document.getElementById("query-state-filter").value;
    const search = document.getElementById("query-search").value.trim().toLowerCase();
    const visible = queries.filter((q) => {
      if (filter === "active" && TERMINAL.has(q.state)) return false;
      if (filter && filter !== "active" && q.state !== filter) return false;
      if (!search) return true;
      return [q.queryId, user(q), groupName(q), ownerName(q, nodeIdByUri), q.query, q.state]
        .some((text) => String(text || "").toLowerCase().includes(search));
    });
    visible.sort((a, b) => (STATE_RANK[a.state] ?? 1) - (STATE_RANK[b.state] ?? 1)
      || String((b.queryStats || {}).createTime || "").localeCompare(String((a.queryStats || {}).createTime || ""))
      || String(b.queryId).localeCompare(String(a.queryId)));
    const counts = {};
    for (const q of queries) counts[q.state] = (counts[q.state] || 0) + 1;
    const summary = el("div", { class: "summary" }, `${queries.length} queries known: `,
      Object.entries(counts).sort().map(([state, n]) => el("span", {}, statePill(state), ` ${n}`)));
    const rows = visible.slice(0, QUERY_ROWS_MAX).map((q) => {
      const owner = ownerName(q, nodeIdByUri);
      const errorName = q.errorCode && q.errorCode.name ? q.errorCode.name : "";
      return el("tr", { "data-query-id": q.queryId || "", "data-state": q.state || "", "data-user": user(q),
          "data-coordinator": owner, "data-group": groupName(q) },
        el("td", {}, q.queryId ? queryLink(String(q.queryId)) : "—"),
        el("td", {}, statePill(q.state), errorName ? el("div", { class: "note bad" }, errorName) : null),
        el("td", {}, user(q)),
        el("td", { class: "mono" }, groupName(q)),
        el("td", { class: "mono" }, owner),
        el("td", { class: "num" }, queryElapsed(q)),
        el("td", { class: "num" }, formatBytes((q.queryStats || {}).userMemoryReservation)),
        el("td", { class: "mono sql-excerpt", title: q.query || "" }, q.query || ""));
    });
    const content = [summary];
    if (rows.length === 0) {
      const nobody = FB.consoleUser() ? "" : " The console speaks for no user, so it sees no one's queries: open it as /ui/#user=NAME.";
      content.push(el("p", { class: "note", id: "no-queries" }, queries.length ? "No query matches the filter." : `No queries.${nobody}`));
    } else {
      content.push(table(["Query ID", "State", "User", "Resource group", "Coordinator", ["Elapsed", "num"],
        ["Memory", "num"], "Query"], rows, { id: "queries-table" }));
      if (visible.length > QUERY_ROWS_MAX) content.push(el("p", { class: "note" }, `Showing ${QUERY_ROWS_MAX} of ${visible.length}.`));
    }
    return content;
  }

  // ---- the refresh cycle --------------------------------------------------------------------

  async function refresh() {
    const [servedBy, cluster, nodes, failedNodes, rms, groups, memory, workerMemory, queries] = await Promise.all([
      showServedBy(),
      request("/v1/cluster"),
      request("/v1/node"),
      request("/v1/node/failed"),
      request("/v1/cluster/resourceManagers"),
      request("/v1/cluster/resourceGroups"),
      request("/v1/cluster/memory"),
      request("/v1/cluster/workerMemory"),
      request("/v1/query"),
    ]);
    const failures = [];
    const note = (result) => { if (!result.ok) failures.push(result.error); };
    if (servedBy) failures.push(servedBy);
    [cluster, nodes, rms, groups, memory, workerMemory, queries].forEach(note);
    renderPanel("panel-cluster", cluster, renderCluster, lastGood);
    // Nodes first: the query list names coordinators by node id when only a URI is known.
    renderPanel("panel-nodes", nodes, (data) => renderNodes(data, failedNodes.ok ? failedNodes.data : null), lastGood);
    renderPanel("panel-resource-managers", rms, renderResourceManagers, lastGood);
    renderPanel("panel-resource-groups", groups, renderResourceGroups, lastGood);
    renderPanel("panel-memory", memory, renderMemory, lastGood);
    renderPanel("panel-worker-memory", workerMemory, renderWorkerMemory, lastGood);
    renderPanel("panel-queries", queries, renderQueries, lastGood);
    failures.push(...await refreshGroupState(groups.ok ? groups.data : null, queries.ok ? queries.data : null));
    return failures;
  }

  function rerenderQueries() {
    if (lastQueries) renderPanel("panel-queries", { ok: true, data: lastQueries }, renderQueries, lastGood);
  }
  document.getElementById("query-state-filter").addEventListener("change", rerenderQueries);
  document.getElementById("query-search").addEventListener("input", rerenderQueries);
  refreshLoop(refresh);
})();
