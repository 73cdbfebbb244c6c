// fireball console: one query's detail page, /ui/query.html?{queryId} (Presto's infoUri form).
// GET /v1/query/{id} works on any coordinator: the owner answers directly, others proxy it.
"use strict";

(() => {
  const { el, request, setPanel, refreshLoop, showServedBy, formatBytes, queryElapsed, ownerName, ownerUri,
    groupName, user, statePill, asObject, TERMINAL } = FB;

  // The whole query string is the id; tolerate "?id=..." too.
  let raw = location.search.replace(/^\?/, "");
  if (raw.startsWith("id=")) raw = raw.slice(3);
  let queryId = "";
  try { queryId = decodeURIComponent(raw.split("&")[0]); } catch (e) { queryId = ""; }
  const path = `/v1/query/${encodeURIComponent(queryId)}`;
  const killButton = document.getElementById("kill-button");
  const killResult = document.getElementById("kill-result");
  let lastGoodAt = null;
  let killed = false;
  let nodeIdByUri = {};

  document.getElementById("query-title").textContent = queryId || "(none)";
  document.title = `fireball query ${queryId}`;

  function fact(label, ...value) {
    return [el("dt", {}, label), el("dd", {}, ...value)];
  }

  function render(query) {
    asObject(query, path);
    const stats = query.queryStats || {};
    const owner = ownerName(query, nodeIdByUri);
    const ownerAt = ownerUri(query);
    const content = [];
    content.push(el("dl", { class: "facts", id: "query-facts", "data-query-id": query.queryId || "", "data-state": query.state || "",
        "data-user": user(query), "data-coordinator": owner, "data-group": groupName(query) },
      fact("Query ID", el("span", { class: "mono", id: "fact-query-id" }, query.queryId || queryId)),
      fact("State", el("span", { id: "fact-state" }, statePill(query.state))),
      fact("User", el("span", { id: "fact-user" }, user(query))),
      fact("Source", (query.session && query.session.source) || "—"),
      fact("Resource group", el("span", { class: "mono", id: "fact-group" }, groupName(query))),
      fact("Coordinator", el("span", { class: "mono", id: "fact-coordinator" }, owner),
        ownerAt && ownerAt !== owner ? el("span", { class: "hint mono" }, ownerAt) : null),
      fact("Created", stats.createTime || "—"),
      fact("Elapsed", queryElapsed(query)),
      fact("Memory reserved", el("span", { id: "fact-memory" }, formatBytes(stats.userMemoryReservation))),
      stats.peakUserMemoryReservation ? fact("Peak memory", formatBytes(stats.peakUserMemoryReservation)) : [],
      query.memoryPool ? fact("Memory pool", query.memoryPool) : []));
    content.push(el("h3", {}, "SQL"));
    content.push(el("pre", { class: "sql", id: "query-sql" }, query.query || ""));
    const failure = query.failureInfo || null;
    if (query.errorCode || query.errorType || failure) {
      const code = query.errorCode || {};
      content.push(el("div", { class: "error-box", id: "query-error" },
        el("strong", {}, code.name || query.errorType || "Error"),
        code.code !== undefined ? ` (code ${code.code}${code.type ? ", " + code.type : ""})` : "",
        failure && failure.message ? el("div", {}, failure.message) : null));
    }
    if (Array.isArray(query.tasks) && query.tasks.length) {
      content.push(el("h3", {}, `Tasks (${query.tasks.length})`));
      content.push(FB.table(["Task", "State", "Worker"], query.tasks.slice(0, 200).map((task) => {
        const t = task && typeof task === "object" ? task : { taskId: String(task) };
        return el("tr", {}, el("td", { class: "mono" }, t.taskId || t.id || "—"), el("td", {}, statePill(t.state)),
          el("td", { class: "mono" }, t.workerId || t.nodeId || t.self || "—"));
      })));
    }
    killButton.disabled = killed || TERMINAL.has(query.state);
    return content;
  }

  async function refresh() {
    if (!queryId) {
      setPanel("panel-query", "error", "No query id: open this page as query.html?{queryId}.", []);
      return ["no query id in the address"];
    }
    // /v1/node only names the owner when the answer has no coordinatorId; its failure is not shown.
    const [servedBy, result, nodes] = await Promise.all([showServedBy(), request(path), request("/v1/node")]);
    const failures = servedBy ? [servedBy] : [];
    if (nodes.ok && Array.isArray(nodes.data)) {
      nodeIdByUri = {};
      for (const node of nodes.data) if (node && node.uri && node.nodeId) nodeIdByUri[node.uri] = String(node.nodeId);
    }
    if (result.ok) {
      try {
        setPanel("panel-query", "ok", "", render(result.data));
        lastGoodAt = FB.clock();
      } catch (e) {
        setPanel("panel-query", "error", `cannot display this answer: ${e.message || e}`, []);
        failures.push(String(e.message || e));
      }
    } else if (result.status === 404 || result.status === 410) {
      // Not an outage: the query is unknown or expired. Say so plainly; stop offering Kill.
      const why = result.status === 410 ? "This query has expired from the coordinator's history (410 Gone)."
        : "No coordinator knows this query (404).";
      const detail = result.error.split(" — ").slice(1).join(" — ");
      setPanel("panel-query", "missing", `${why}${detail ? " Server: " + detail + "." : ""}${lastGoodAt ? " Last seen " + lastGoodAt + "." : ""}`, lastGoodAt ? undefined : []);
      killButton.disabled = true;
    } else {
      setPanel("panel-query", "error", result.error + (lastGoodAt ? ` (showing data from ${lastGoodAt})` : ""),
        lastGoodAt ? undefined : []);
      failures.push(result.error);
    }
    return failures;
  }

  killButton.addEventListener("click", async () => {
    if (!window.confirm(`Kill query ${queryId}?`)) return;
    killButton.disabled = true;
    killResult.setAttribute("data-status", "");
    killResult.textContent = "killing…";
    const result = await request(`${path}/killed`, { method: "PUT", body: "Killed via the fireball console",
      headers: { "Content-Type": "text/plain; charset=utf-8" } });
    if (result.ok) {
      killed = true;
      killResult.setAttribute("data-status", "ok");
      killResult.textContent = `kill requested at ${FB.clock()}`;
    } else {
      killButton.disabled = false;
      killResult.setAttribute("data-status", "error");
      killResult.textContent = `kill failed: ${result.error}`;
    }
  });

  refreshLoop(refresh);
})();
