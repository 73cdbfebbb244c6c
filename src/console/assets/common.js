// fireball console, shared helpers. Every string from the server reaches the page through
// textContent or setAttribute (never parsed as HTML), and every fetch is a same-origin relative
// path, so the console works from any coordinator or RM without internet access.
"use strict";

const FB = (() => {
  const FETCH_TIMEOUT_MS = 4000;
  const REFRESH_INTERVAL_MS = 1500;

  /** Builds an element. Attributes via setAttribute; children: nodes, or strings as text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /**
   * The user the console speaks for (X-Presto-User): the cluster shows a user his own queries,
   * and others' only as its access rules allow. Set by opening a page with `#user=NAME`, then
   * remembered in this browser; null when never set.
   */
  function consoleUser() {
    const match = location.hash.match(/(?:^#|&)user=([^&]*)/);
    if (match) {
      try {
        localStorage.setItem("fireball-user", decodeURIComponent(match[1]));
      } catch (e) { /* storage disabled: the hash still names the user on this page */ }
      return decodeURIComponent(match[1]) || null;
    }
    try {
      return localStorage.getItem("fireball-user") || null;
    } catch (e) {
      return null;
    }
  }

  /**
   * GET (or another method) with a timeout. Never throws: resolves to
   * {ok, status, data, error} where error is a one-line human message.
   */
  async function request(path, options) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
    const method = (options && options.method) || "GET";
    try {
      const headers = Object.assign({ "Accept": "application/json" }, (options && options.headers) || {});
      const who = consoleUser();
      if (who) headers["X-Presto-User"] = who;
      const response = await fetch(path, Object.assign({ cache: "no-store", signal: controller.signal }, options || {}, { headers }));
      const text = await response.text();
      if (!response.ok) {
        const detail = text.trim().slice(0, 200);
        const what = response.status === 404 ? "not available on this node (404)" : `HTTP ${response.status}`;
        return { ok: false, status: response.status, data: null, error: `${method} ${path}: ${what}${detail ? " — " + detail : ""}` };
      }
      if (text.trim() === "") return { ok: true, status: response.status, data: null, error: null };
      try {
        return { ok: true, status: response.status, data: JSON.parse(text), error: null };
      } catch (e) {
        return { ok: false, status: response.status, data: null, error: `${method} ${path}: answer is not JSON` };
      }
    } catch (e) {
      const reason = e && e.name === "AbortError" ? `no answer within ${FETCH_TIMEOUT_MS / 1000}s` : "cannot reach the server";
      return { ok: false, status: 0, data: null, error: `${method} ${path}: ${reason}` };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Shows a panel's result: status "ok" | "error" | "missing" | "loading", a message, content. */
  function setPanel(id, status, message, content) {
    const panel = document.getElementById(id);
    if (!panel) return;
    panel.setAttribute("data-status", status);
    panel.querySelector(".panel-message").textContent = message || "";
    // On a failed refresh the last good content stays, dimmed, under the error message.
    if (content !== undefined) panel.querySelector(".panel-body").replaceChildren(...[content].flat().filter(Boolean));
  }

  /** Renders a panel from one fetch result; `render(data)` builds the content and may throw. */
  function renderPanel(id, result, render, lastGood) {
    if (!result.ok) {
      const stale = lastGood[id] ? ` (showing data from ${lastGood[id]})` : "";
      setPanel(id, result.status === 404 ? "missing" : "error", result.error + stale, lastGood[id] ? undefined : []);
      return false;
    }
    try {
      setPanel(id, "ok", "", render(result.data));
      lastGood[id] = clock();
      return true;
    } catch (e) {
      setPanel(id, "error", `cannot display this answer: ${e && e.message ? e.message : e}`, []);
      return false;
    }
  }

  function clock() {
    return new Date().toLocaleTimeString([], { hour12: false });
  }

  /** Runs `refresh` now and then every REFRESH_INTERVAL_MS after each completes (no pile-up). */
  function refreshLoop(refresh) {
    const banner = document.getElementById("status-banner");
    let lastOk = null;
    async function tick() {
      let failures = [];
      try {
        failures = (await refresh()) || [];
      } catch (e) {
        failures = [`console error: ${e && e.message ? e.message : e}`];
      }
      const now = clock();
      if (failures.length === 0) {
        lastOk = now;
        banner.setAttribute("data-status", "ok");
        banner.textContent = `Updated at ${now}`;
        banner.removeAttribute("title");
      } else {
        banner.setAttribute("data-status", "error");
        const since = lastOk ? `; last complete update ${lastOk}` : "";
        banner.textContent = `Refresh at ${now}: ${failures.length} request(s) failed${since}`;
        banner.setAttribute("title", failures.join("\n"));
      }
      setTimeout(tick, REFRESH_INTERVAL_MS);
    }
    tick();
  }

  /** `/v1/info` into the header line. */
  async function showServedBy() {
    const info = await request("/v1/info");
    const target = document.getElementById("served-by");
    if (!info.ok || !info.data) {
      target.textContent = `served by ${location.host} (node info unavailable)`;
      return info.ok ? null : info.error;
    }
    const data = info.data;
    const role = data.coordinator ? "coordinator" : "resource manager or worker";
    const version = data.nodeVersion && data.nodeVersion.version ? ` v${data.nodeVersion.version}` : "";
    target.textContent = `served by ${location.host} · ${role} · environment ${data.environment || "?"} · up ${data.uptime || "?"}${version}`;
    return null;
  }

  // ---- formatting -------------------------------------------------------------------------

  const UNITS = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4, PB: 1024 ** 5 };

  /** Bytes from a number or an airlift DataSize string ("64MB", "1.5GB"); null if unknown. */
  function bytes(value) {
    if (typeof value === "number" && isFinite(value)) return value;
    if (typeof value !== "string") return null;
    const match = value.trim().match(/^([0-9.]+)\s*([kKMGTP]?B)$/);
    if (!match || !(match[2] in UNITS)) return null;
    return parseFloat(match[1]) * UNITS[match[2]];
  }

  function formatBytes(value) {
    const n = bytes(value);
    if (n === null) return value === undefined || value === null ? "—" : String(value);
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let size = n, unit = 0;
    while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
    return `${unit === 0 ? size : size.toFixed(size < 10 ? 2 : 1)}${units[unit]}`;
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) return "—";
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m ${Math.floor(seconds % 60)}s`;
    return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
  }

  const DURATION_UNITS = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };

  /** Milliseconds from an airlift Duration string ("1.50s", "3.20m"); null if unknown. */
  function durationMs(value) {
    if (typeof value === "number" && isFinite(value)) return value;
    if (typeof value !== "string") return null;
    const match = value.trim().match(/^([0-9.]+)\s*(ns|us|ms|s|m|h|d)$/);
    return match ? parseFloat(match[1]) * DURATION_UNITS[match[2]] : null;
  }

  const TERMINAL = new Set(["FINISHED", "FAILED", "CANCELED"]);

  /** Elapsed: the server's elapsedTime if given, else now - createTime while not finished. */
  function queryElapsed(query) {
    const stats = query.queryStats || {};
    const reported = durationMs(stats.elapsedTime);
    if (reported !== null) return formatDuration(reported);
    const created = Date.parse(stats.createTime);
    if (!isFinite(created)) return "—";
    const ended = Date.parse(stats.endTime);
    if (isFinite(ended)) return formatDuration(ended - created);
    return TERMINAL.has(query.state) ? "—" : formatDuration(Date.now() - created);
  }

  /** The owning coordinator's base URI, from `self` (`{uri}/v1/query/{id}`). */
  function ownerUri(query) {
    const self = typeof query.self === "string" ? query.self : "";
    const at = self.indexOf("/v1/query/");
    return at > 0 ? self.slice(0, at) : "";
  }

  /** The owning coordinator's node id: `coordinatorId`, else looked up by URI, else the URI. */
  function ownerName(query, nodeIdByUri) {
    if (typeof query.coordinatorId === "string" && query.coordinatorId) return query.coordinatorId;
    const uri = ownerUri(query);
    if (nodeIdByUri && nodeIdByUri[uri]) return nodeIdByUri[uri];
    return uri.replace(/^https?:\/\//, "") || "—";
  }

  function groupName(query) {
    const id = query.resourceGroupId;
    if (Array.isArray(id)) return id.join(".");
    return typeof id === "string" ? id : "—";
  }

  function user(query) {
    return (query.session && query.session.user) || "—";
  }

  function pill(text, kind) {
    const value = text === undefined || text === null || text === "" ? "—" : String(text);
    return el("span", { class: `pill ${kind || ""}-${value.replace(/[^A-Za-z0-9_]/g, "_")}` }, value);
  }

  function statePill(state) {
    return pill(state, "state");
  }

  /** A reserved/total bar; `blocked` paints it red. */
  function bar(reserved, total, blocked) {
    const r = bytes(reserved), t = bytes(total);
    const fraction = r !== null && t ? Math.min(1, r / t) : 0;
    const text = t ? `${formatBytes(r)} / ${formatBytes(t)} (${(fraction * 100).toFixed(0)}%)` : `${formatBytes(r)} / ?`;
    const level = blocked || fraction >= 0.95 ? "full" : fraction >= 0.75 ? "high" : "";
    return el("div", { class: "bar", title: text },
      el("div", { class: `fill ${level}`, style: `width:${(fraction * 100).toFixed(1)}%` }),
      el("span", { class: "text" }, text));
  }

  function queryLink(queryId) {
    return el("a", { href: `query.html?${encodeURIComponent(queryId)}`, class: "mono" }, queryId);
  }

  function num(value) {
    return typeof value === "number" && isFinite(value) ? value : value === undefined || value === null ? "—" : String(value);
  }

  function table(headers, rows, attrs) {
    return el("table", attrs || {},
      el("thead", {}, el("tr", {}, headers.map((h) => {
        const [label, cls] = Array.isArray(h) ? h : [h, ""];
        return el("th", { class: cls || null }, label);
      }))),
      el("tbody", {}, rows));
  }

  function asArray(value, what) {
    if (!Array.isArray(value)) throw new Error(`${what} is not a list`);
    return value;
  }

  function asObject(value, what) {
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error(`${what} is not an object`);
    return value;
  }

  return { el, consoleUser, request, setPanel, renderPanel, refreshLoop, showServedBy, bytes, formatBytes, formatDuration,
    durationMs, queryElapsed, ownerUri, ownerName, groupName, user, pill, statePill, bar, queryLink, num, table,
    asArray, asObject, TERMINAL, clock };
})();
