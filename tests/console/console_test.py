#!/usr/bin/env python3
"""Headless-Chromium test of the fireball web console (/ui/) against a real multi-process cluster.

Starts 2 resource managers, 2 coordinators and 2 workers as separate `fireball server --etc DIR`
processes (as tests/cluster_processes.rs does), submits a long synthetic query to coordinator-2
and keeps following its nextUri in the background, then loads the console from every
coordinator (and one RM) in headless Chromium (`--dump-dom`) and checks the rendered DOM:

  * every node of the cluster is listed with its role;
  * the running query owned by coordinator-2 is listed with its id, user, state RUNNING and
    owning coordinator;
  * /ui/query.html?{id} loaded from coordinator-1 (which does not own the query) shows the
    query's id, state, user, coordinator and SQL, and offers the Kill button;
  * every panel rendered its endpoint (none is in the "missing"/"error" state).

Also saves a screenshot (--screenshot) and the dumped DOMs under the artifacts directory.
Standard library only (no venv needed). Every process it starts is killed at the end.
"""

import argparse
import html.parser
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import contract_fixture

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import OPERATOR, SHARED_SECRET, as_operator, free_port, internal_headers, write_access_control  # noqa: E402  (after the path it lives on)

USER = "console-tester"
SQL = "SELECT * FROM synthetic(run_time => '180s', memory => '64MB', tasks => 2, rows => 10)"
NODES = {
    "rm-1": "resource_manager",
    "rm-2": "resource_manager",
    "coordinator-1": "coordinator",
    "coordinator-2": "coordinator",
    "worker-1": "worker",
    "worker-2": "worker",
}
PANELS = ["panel-cluster", "panel-nodes", "panel-resource-managers", "panel-resource-groups",
          "panel-group-state", "panel-memory", "panel-worker-memory", "panel-queries"]
HTTP_TIMEOUT_S = 5
CHROMIUM_TIMEOUT_S = 120
# Virtual time the page gets before the DOM is dumped: enough for several 1.5 s refreshes.
VIRTUAL_TIME_BUDGET_MS = 6000


def log(message):
    print(message, flush=True)


def http(method, url, body=None, headers=None):
    """Returns (status, text); status 0 if the node cannot be reached."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=as_operator(headers))
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def get_json(url, headers=None):
    status, text = http("GET", url, headers=headers)
    if status != 200:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class Cluster:
    """Separate `fireball server` processes; `stop()` kills every one of them."""

    def __init__(self, binary, root):
        self.binary, self.root = binary, root
        self.children, self.uris = {}, {}
        self.logs = os.path.join(root, "logs")

    def start(self):
        os.makedirs(self.logs, exist_ok=True)
        ports = {name: free_port() for name in NODES}
        for name in NODES:
            self.uris[name] = f"http://127.0.0.1:{ports[name]}"
        rm_uris = ",".join(self.uris[name] for name in NODES if NODES[name] == "resource_manager")
        for name, role in NODES.items():
            etc = os.path.join(self.root, name, "etc")
            os.makedirs(etc, exist_ok=True)
            with open(os.path.join(etc, "node.properties"), "w") as f:
                f.write(f"node.environment=console\nnode.id={name}\nnode.internal-address=127.0.0.1\n"
                        f"node.data-dir={os.path.join(self.root, name, 'data')}\n")
            config = (f"http-server.http.port={ports[name]}\nhttp-server.bind-address=127.0.0.1\n"
                      "resource-manager-enabled=true\ninternal-communication.request-timeout=2s\n"
                      f"internal-communication.shared-secret={SHARED_SECRET}\n")
            if role == "resource_manager":
                config += ("resource-manager=true\ncoordinator=false\ndiscovery-server.enabled=true\n"
                           f"discovery-server.peers={rm_uris}\n")
            elif role == "coordinator":
                config += f"coordinator=true\ndiscovery.uri={rm_uris}\n"
            else:
                config += f"coordinator=false\ndiscovery.uri={rm_uris}\nmemory.pool-size=1GB\n"
            with open(os.path.join(etc, "config.properties"), "w") as f:
                f.write(config)
            write_access_control(pathlib.Path(etc))  # OPERATOR sees and kills every user's queries
            log_file = open(os.path.join(self.logs, f"{name}.log"), "w")
            env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
            self.children[name] = subprocess.Popen([self.binary, "server", "--etc", etc], stdout=subprocess.DEVNULL,
                                                   stderr=log_file, env=env, start_new_session=True)
            log_file.close()
        log("started " + ", ".join(f"{name} at {uri}" for name, uri in self.uris.items()))

    def wait_ready(self, timeout_s=60):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            dead = [name for name, child in self.children.items() if child.poll() is not None]
            if dead:
                raise RuntimeError(f"node(s) exited during start-up: {dead}")
            views = [get_json(f"{self.uris[rm]}/v1/resourcemanager/clusterView", internal_headers("console-test"))
                     for rm in ("rm-1", "rm-2")]
            infos = [get_json(f"{self.uris[c]}/v1/info") for c in ("coordinator-1", "coordinator-2")]
            workers_ok = all(view and len(view.get("workers", [])) == 2 for view in views)
            coordinators_ok = all(view and len(view.get("coordinators", [])) == 2 for view in views)
            # RMs learn of each other by replication (every discovery-server.replication-interval),
            # so /v1/node on one RM may still miss the other RM for a moment after start-up.
            listed = [get_json(f"{self.uris[rm]}/v1/node") for rm in ("rm-1", "rm-2")]
            nodes_ok = all(isinstance(nodes, list) and {n.get("nodeId") for n in nodes if isinstance(n, dict)} >= set(NODES)
                           for nodes in listed)
            if workers_ok and coordinators_ok and nodes_ok and all(infos):
                return
            time.sleep(0.3)
        raise RuntimeError(f"cluster not ready within {timeout_s} s (see logs in {self.logs})")

    def stop(self):
        for name, child in self.children.items():
            if child.poll() is None:
                child.kill()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def dump_logs(self, lines=25):
        for name in self.children:
            path = os.path.join(self.logs, f"{name}.log")
            try:
                with open(path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                tail = []
            log(f"---- {name} (last {len(tail)} lines of {path}) ----")
            for line in tail:
                log(line)


class QueryFollower(threading.Thread):
    """Submits the query and keeps following nextUri, as a client does, until stopped."""

    def __init__(self, coordinator_uri):
        super().__init__(daemon=True)
        self.coordinator_uri = coordinator_uri
        self.query_id = None
        self.last_state = None
        self.error = None
        self.next_uri = None
        self.submitted = threading.Event()
        self.stopping = threading.Event()

    def run(self):
        status, text = http("POST", f"{self.coordinator_uri}/v1/statement", SQL,
                            {"X-Presto-User": USER, "X-Presto-Source": "console-test"})
        try:
            page = json.loads(text) if status == 200 else None
        except ValueError:
            page = None
        if not page or "id" not in page:
            self.error = f"POST /v1/statement answered {status}: {text[:300]}"
            self.submitted.set()
            return
        self.query_id = page["id"]
        self.submitted.set()
        while not self.stopping.is_set():
            self.last_state = (page.get("stats") or {}).get("state", self.last_state)
            self.next_uri = page.get("nextUri")
            if not self.next_uri:
                return
            status, text = http("GET", self.next_uri)
            if status == 200:
                try:
                    page = json.loads(text)
                except ValueError:
                    pass
            elif status not in (0, 429, 503):
                self.error = f"GET nextUri answered {status}: {text[:200]}"
                return
            else:
                time.sleep(0.2)

    def cancel(self):
        self.stopping.set()
        if self.next_uri:
            http("DELETE", self.next_uri)


class Dom(html.parser.HTMLParser):
    """Element attributes by id and by data-* attribute, plus text per element id."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []  # (tag, attrs dict)
        self.text_by_id = {}
        self._open_ids = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if "id" in attributes:
            self.text_by_id.setdefault(attributes["id"], "")
            if tag not in ("input", "img", "br", "meta", "link"):
                self._open_ids.append((tag, attributes["id"]))

    def handle_endtag(self, tag):
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data):
        for _, element_id in self._open_ids:
            self.text_by_id[element_id] += data

    def by_id(self, element_id):
        return next((attrs for _, attrs in self.elements if attrs.get("id") == element_id), None)

    def with_attr(self, name, value=None):
        return [attrs for _, attrs in self.elements if name in attrs and (value is None or attrs[name] == value)]


class Checks:
    def __init__(self):
        self.passed, self.failed = [], []

    def check(self, condition, description, detail=""):
        if condition:
            self.passed.append(description)
            log(f"PASS: {description}")
        else:
            self.failed.append(f"{description}{' — ' + detail if detail else ''}")
            log(f"FAIL: {description}{' — ' + detail if detail else ''}")
        return condition


class Chromium:
    def __init__(self, binary, artifacts):
        self.binary, self.artifacts = binary, artifacts
        self.profile = tempfile.mkdtemp(prefix="fireball-console-chromium-")

    def args(self, extra):
        return [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--disable-extensions",
                "--disable-component-update", f"--user-data-dir={self.profile}",
                f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"] + extra

    def dump_dom(self, url, name):
        result = subprocess.run(self.args(["--dump-dom", url]), capture_output=True, text=True,
                                timeout=CHROMIUM_TIMEOUT_S)
        with open(os.path.join(self.artifacts, f"{name}.html"), "w") as f:
            f.write(result.stdout)
        if result.returncode != 0 or "<html" not in result.stdout:
            log(f"chromium exited {result.returncode} for {url}; stderr tail:\n{result.stderr[-1500:]}")
        return result.stdout

    def screenshot(self, url, path):
        result = subprocess.run(self.args([f"--screenshot={path}", "--window-size=1400,1000", "--hide-scrollbars", url]),
                                capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
        return result.returncode == 0 and os.path.exists(path) and os.path.getsize(path) > 0

    def cleanup(self):
        shutil.rmtree(self.profile, ignore_errors=True)


def check_overview(checks, dom, where, query_id):
    banner = dom.by_id("status-banner") or {}
    checks.check(banner.get("data-status") in ("ok", "error"),
                 f"{where}: the console's scripts ran (status banner shows an update)",
                 f"banner data-status={banner.get('data-status')!r}")
    statuses = {panel: (dom.by_id(panel) or {}).get("data-status") for panel in PANELS}
    bad = {panel: status for panel, status in statuses.items() if status != "ok"}
    checks.check(not bad, f"{where}: every panel rendered its endpoint",
                 "; ".join(f"{panel}={status} ({dom.text_by_id.get(panel, '').strip()[:160]!r})" for panel, status in bad.items()))
    rows = {attrs.get("data-node-id"): attrs for attrs in dom.with_attr("data-node-id")}
    for name, role in NODES.items():
        row = rows.get(name)
        checks.check(row is not None and row.get("data-role") == role,
                     f"{where}: node {name} listed with role {role}",
                     "not listed" if row is None else f"role {row.get('data-role')!r}")
    query_rows = [attrs for attrs in dom.with_attr("data-query-id") if attrs.get("data-query-id") == query_id]
    checks.check(len(query_rows) == 1, f"{where}: query {query_id} is listed",
                 f"{len(dom.with_attr('data-query-id'))} query rows, none for this id")
    if query_rows:
        row = query_rows[0]
        for attribute, expected in (("data-state", "RUNNING"), ("data-user", USER), ("data-coordinator", "coordinator-2")):
            checks.check(row.get(attribute) == expected, f"{where}: query row {attribute} = {expected}",
                         f"got {row.get(attribute)!r}")


def check_detail(checks, dom, where, query_id):
    panel = (dom.by_id("panel-query") or {}).get("data-status")
    checks.check(panel == "ok", f"{where}: query detail panel rendered", f"data-status={panel!r}: "
                 f"{dom.text_by_id.get('panel-query', '').strip()[:200]!r}")
    facts = dom.by_id("query-facts") or {}
    for attribute, expected in (("data-query-id", query_id), ("data-state", "RUNNING"), ("data-user", USER),
                                ("data-coordinator", "coordinator-2")):
        checks.check(facts.get(attribute) == expected, f"{where}: detail {attribute} = {expected}", f"got {facts.get(attribute)!r}")
    sql = dom.text_by_id.get("query-sql", "")
    checks.check("synthetic(" in sql, f"{where}: detail shows the query's SQL", f"SQL text {sql[:80]!r}")
    kill = dom.by_id("kill-button")
    checks.check(kill is not None and "disabled" not in kill, f"{where}: Kill button offered for the running query",
                 "missing" if kill is None else "disabled")


def check_fixture(checks, browser, fixture, artifacts):
    """The console against contract-shaped answers: every panel, states, escaping."""
    fx = contract_fixture
    where = "fixture /ui/"
    dom = Dom(browser.dump_dom(f"{fixture.origin}/ui/", "fixture-overview"))
    statuses = {panel: (dom.by_id(panel) or {}).get("data-status") for panel in PANELS}
    checks.check(all(status == "ok" for status in statuses.values()), f"{where}: every panel renders contract-shaped data",
                 str(statuses))
    nodes = {attrs.get("data-node-id"): attrs for attrs in dom.with_attr("data-node-id")}
    for node in fx.NODES:
        row = nodes.get(node["nodeId"]) or {}
        checks.check(row.get("data-role") == node["role"] and row.get("data-state") == node["state"],
                     f"{where}: node {node['nodeId']} shown as {node['role']} {node['state']}", str(row))
    checks.check((nodes.get("worker-3") or {}).get("data-failed") == "true", f"{where}: failed node worker-3 shown as failed")
    rms = {attrs.get("data-rm-id"): attrs.get("data-reachable") for attrs in dom.with_attr("data-rm-id")}
    checks.check(rms == {"rm-1": "true", "rm-2": "false"}, f"{where}: each RM's reachability shown", str(rms))
    per_coordinator = {(a.get("data-coordinator"), a.get("data-group")) for a in dom.with_attr("data-group") if a.get("data-coordinator")}
    checks.check(("coordinator-2", "global.alice") in per_coordinator and ("coordinator-1", "global.mallory") in per_coordinator,
                 f"{where}: resource groups per coordinator", str(per_coordinator))
    checks.check(dom.by_id("groups-total") is not None, f"{where}: cluster-wide resource group totals")
    limits = {a.get("data-group-state") for a in dom.with_attr("data-group-state")}
    checks.check(limits == {"global", "global.alice"}, f"{where}: resource group limits tree", str(limits))
    checks.check(bool(dom.with_attr("data-pool", "general")), f"{where}: cluster memory pool shown")
    workers = {a.get("data-worker"): a.get("data-blocked") for a in dom.with_attr("data-worker")}
    checks.check(workers == {"worker-1": "false", "worker-2": "true"}, f"{where}: per-worker memory with blocked flag", str(workers))
    queries = {a.get("data-query-id"): a for a in dom.with_attr("data-query-id")}
    running = queries.get(fx.RUNNING_ID) or {}
    checks.check((running.get("data-state"), running.get("data-user"), running.get("data-coordinator"), running.get("data-group"))
                 == ("RUNNING", "alice", "coordinator-2", "global.alice"), f"{where}: running query row", str(running))
    checks.check(fx.FAILED_ID not in queries, f"{where}: default filter hides finished queries", str(sorted(queries)))
    hostile = queries.get(fx.QUEUED_ID) or {}
    checks.check(hostile.get("data-user") == fx.HOSTILE, f"{where}: a hostile user name is shown as text", str(hostile))
    checks.check(not [tag for tag, _ in dom.elements if tag == "img"], f"{where}: no markup injected from server strings")

    dom = Dom(browser.dump_dom(f"{fixture.origin}/ui/query.html?{fx.FAILED_ID}", "fixture-query-failed"))
    facts = dom.by_id("query-facts") or {}
    checks.check((facts.get("data-state"), facts.get("data-user"), facts.get("data-coordinator")) == ("FAILED", "bob", "coordinator-1"),
                 "fixture detail: failed query's facts", str(facts))
    error = dom.text_by_id.get("query-error", "")
    checks.check("SYNTAX_ERROR" in error and fx.HOSTILE in error, "fixture detail: error name and message shown (as text)", repr(error))
    checks.check(not [tag for tag, _ in dom.elements if tag == "img"], "fixture detail: no markup injected from the error message")
    checks.check("disabled" in (dom.by_id("kill-button") or {"disabled": ""}), "fixture detail: no Kill for a finished query")
    shot = os.path.join(artifacts, "console-fixture.png")
    checks.check(browser.screenshot(f"{fixture.origin}/ui/", shot), f"fixture screenshot saved to {os.path.abspath(shot)}")


def self_test():
    """The DOM checks can fail: a page without the query row or nodes must not pass them."""
    empty = Dom('<html><body><div id="status-banner" data-status="ok"></div>'
                '<section id="panel-queries" data-status="ok"><p id="no-queries">No queries.</p></section></body></html>')
    probe = Checks()
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        check_overview(probe, empty, "self-test", "20990101_000000_00000_xxxxx")
        check_detail(probe, empty, "self-test", "20990101_000000_00000_xxxxx")
    must_fail = ["self-test: query 20990101_000000_00000_xxxxx is listed", "self-test: node worker-1 listed with role worker",
                 "self-test: detail data-state = RUNNING"]
    missing = [name for name in must_fail if not any(failure.startswith(name) for failure in probe.failed)]
    if missing:
        raise AssertionError(f"the DOM checks do not fail on an empty page: {missing}")
    log(f"self-test: the checks fail on an empty page as they must ({len(probe.failed)} failures)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fireball", required=True)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    parser.add_argument("--artifacts", default="target/artifacts")
    options = parser.parse_args()

    self_test()
    dom_dir = os.path.join(options.artifacts, "console")
    os.makedirs(dom_dir, exist_ok=True)
    screenshot = os.path.abspath(os.path.join(options.artifacts, "console.png"))
    if os.path.exists(screenshot):
        os.remove(screenshot)

    root = tempfile.mkdtemp(prefix="fireball-console-")
    cluster = Cluster(os.path.abspath(options.fireball), root)
    browser = Chromium(options.chromium, dom_dir)
    follower = None
    checks = Checks()
    # SIGTERM/SIGINT unwind through `finally`, so the cluster never outlives the test.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cluster.start()
        cluster.wait_ready()
        log("cluster ready: both RMs see 2 coordinators and 2 workers and list all six nodes")
        c1, c2, rm1 = cluster.uris["coordinator-1"], cluster.uris["coordinator-2"], cluster.uris["rm-1"]

        follower = QueryFollower(c2)
        follower.start()
        follower.submitted.wait(30)
        if not checks.check(follower.query_id is not None, "query submitted to coordinator-2", follower.error or "no answer"):
            raise RuntimeError("cannot go on without the query")
        query_id = follower.query_id
        log(f"query {query_id} submitted to coordinator-2 by {USER}")
        # The owner's own view first, then the RM's (query heartbeats), bounded.
        deadline = time.time() + 30
        while time.time() < deadline:
            info = get_json(f"{c2}/v1/query/{query_id}") or {}
            listed = get_json(f"{rm1}/v1/query") or []
            on_rm = any(q.get("queryId") == query_id and q.get("state") == "RUNNING" for q in listed if isinstance(q, dict))
            if info.get("state") == "RUNNING" and on_rm:
                break
            time.sleep(0.3)
        checks.check(info.get("state") == "RUNNING", "the query is RUNNING on coordinator-2", f"state {info.get('state')!r}")
        checks.check(on_rm, "rm-1 lists the query as RUNNING (query heartbeats)")

        for name, base in (("coordinator-1", c1), ("coordinator-2", c2), ("rm-1", rm1)):
            status, _ = http("GET", f"{base}/ui/")
            checks.check(status == 200, f"{name}: GET /ui/ answers 200", f"status {status}")
            dom = Dom(browser.dump_dom(f"{base}/ui/#user={OPERATOR}", f"overview-{name}"))
            check_overview(checks, dom, f"/ui/ from {name}", query_id)

        for name, base in (("coordinator-1", c1), ("coordinator-2", c2)):
            dom = Dom(browser.dump_dom(f"{base}/ui/query.html?{query_id}#user={OPERATOR}", f"query-{name}"))
            check_detail(checks, dom, f"/ui/query.html?{{id}} from {name}", query_id)

        # An unknown id says so in the panel instead of showing an empty page.
        dom = Dom(browser.dump_dom(f"{c1}/ui/query.html?20000101_000000_00000_nopee#user={OPERATOR}", "query-unknown"))
        panel = dom.by_id("panel-query") or {}
        checks.check(panel.get("data-status") in ("missing", "error") and dom.text_by_id.get("panel-query", "").strip() != "",
                     "/ui/query.html?{unknown id} from coordinator-1 shows a clear message",
                     f"data-status={panel.get('data-status')!r}")

        checks.check(follower.is_alive() and follower.error is None, "the client kept following the query meanwhile",
                     follower.error or "follower stopped")
        shot = browser.screenshot(f"{c1}/ui/#user={OPERATOR}", screenshot)
        checks.check(shot, f"screenshot of /ui/ from coordinator-1 saved to {screenshot}")

        # The request the Kill button sends (a click needs the DevTools protocol; the button's
        # handler sends exactly this), through coordinator-1, which does not own the query; then
        # the detail page must show the query killed, with its error, and no Kill button.
        status, text = http("PUT", f"{c1}/v1/query/{query_id}/killed", "Killed via the fireball console",
                            {"Content-Type": "text/plain; charset=utf-8"})
        checks.check(status == 200, "PUT /v1/query/{id}/killed on coordinator-1 kills coordinator-2's query",
                     f"status {status}: {text[:200]}")
        deadline = time.time() + 15
        while time.time() < deadline and (get_json(f"{c2}/v1/query/{query_id}") or {}).get("state") != "FAILED":
            time.sleep(0.3)
        dom = Dom(browser.dump_dom(f"{c1}/ui/query.html?{query_id}#user={OPERATOR}", "query-killed-coordinator-1"))
        facts = dom.by_id("query-facts") or {}
        error = dom.text_by_id.get("query-error", "")
        checks.check(facts.get("data-state") == "FAILED" and "ADMINISTRATIVELY_KILLED" in error,
                     "/ui/query.html?{id} from coordinator-1 shows the killed query FAILED with ADMINISTRATIVELY_KILLED",
                     f"state {facts.get('data-state')!r}, error {error.strip()[:160]!r}")
        checks.check("disabled" in (dom.by_id("kill-button") or {"disabled": ""}), "no Kill button for the killed query")
        fixture = contract_fixture.Fixture(c1).start()
        try:
            check_fixture(checks, browser, fixture, options.artifacts)
        finally:
            fixture.stop()
    except Exception as error:  # noqa: BLE001 - reported as a failed check, then the cluster is stopped
        checks.check(False, "test ran to the end", repr(error))
    finally:
        if follower is not None:
            follower.cancel()
        if checks.failed:
            cluster.dump_logs()
            shutil.copytree(cluster.logs, os.path.join(dom_dir, "logs"), dirs_exist_ok=True)
        cluster.stop()
        browser.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    log("")
    log(f"console test: {len(checks.passed)} passed, {len(checks.failed)} failed; DOM dumps in {dom_dir}")
    for failure in checks.failed:
        log(f"  FAILED: {failure}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
