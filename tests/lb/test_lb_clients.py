"""Unmodified Presto Python clients behind a real nginx, in front of a real multi-process cluster.

What a user of a disaggregated fireball cluster does: point prestodb, trino or PyHive at one
address (an nginx round-robin over the coordinators) and expect queries to return the right rows,
cluster-wide limits to hold whichever coordinator took the query, and cancel() to work. Real SQL
too: TPC-H q01, q03, q06, q10 and q18 on `tpch.tiny` through prestodb and trino agree with the
DuckDB oracle (tests/tpch/expected/sf0.01, compared by tests/tpch/compare.py) whichever
coordinator nginx gave them to.

Topology: 2 resource managers, 3 coordinators, 2 workers, each a separate `fireball server --etc
DIR` process (the etc/ files are written the way tests/cluster_processes.rs writes them), plus one
nginx started from a generated config in a temp dir. Run through `ci/lb`, which pins the client
versions, installs nginx if missing, and sets FIREBALL_BIN.

How requests flow: the client POSTs /v1/statement to nginx, nginx picks a coordinator; that
coordinator owns the query and every nextUri it returns is absolute and names itself, so the
client then polls (and trino/PyHive cancel) the owner directly (contract §1.7, option 1). Only
POSTs and prestodb's `DELETE /v1/query/{id}` (and our own `/v1/query/{id}` GETs) go through nginx.

`/v1/query/{id}` works through *any* coordinator (a coordinator that does not own the query
proxies it through an RM to the owner), so prestodb's cancel and our GETs through nginx must
succeed whichever coordinator nginx picks.
"""

import collections
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import prestodb
import pytest
import trino
from pyhive import presto as pyhive_presto

# tests/support (shared with the other client tests) is not on pytest's default sys.path.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
# tests/tpch: compare.py, the oracle's comparison of a result with its expected JSON.
TPCH_DIR = pathlib.Path(__file__).resolve().parents[1] / "tpch"
sys.path.insert(0, str(TPCH_DIR))
from compare import compare as compare_tpch  # noqa: E402
from harness import as_operator, free_port, stop as _stop, tail, time_limit, write_server_etc  # noqa: E402

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 60
TEST_TIMEOUT_S = 180

RESOURCE_MANAGERS = ("rm-1", "rm-2")
COORDINATORS = ("coordinator-1", "coordinator-2", "coordinator-3")
WORKERS = ("worker-1", "worker-2")

# Cluster-wide limit (every coordinator's legacy `global` group), small so that it is observable.
CONCURRENCY_LIMIT = 3
# Admission is Presto's: each coordinator compares its own running queries plus the RM's counts
# for the others with the limit, and at concurrency-threshold-to-enable-resource-group-refresh=0
# starts at most one query per RM refresh that completed after its previous start (the freshness
# gate). A refresh can still miss a start another coordinator made after its last heartbeat, so
# the true count may briefly exceed the limit by one per *other* coordinator. This is the bound
# tests/cluster_processes.rs uses (limit + 1 with its 2 coordinators); with 3 coordinators it is
# limit + 2. The numbers actually seen are printed; in practice they stay at or near the limit.
OVERSHOOT_TOLERANCE = len(COORDINATORS) - 1


# TPC-H through nginx (test_tpch_through_nginx): a few of the 22 that between them scan, join,
# aggregate, sort, use a subquery and LIMIT, compared with the DuckDB oracle at sf 0.01.
TPCH_QUERIES = ("q01", "q03", "q06", "q10", "q18")
TPCH_EXPECTED_DIR = TPCH_DIR / "expected" / "sf0.01"

BATCH_QUERIES_PER_CLIENT = 5
BATCH_RUN_TIME = "2s"
LONG_RUN_TIME = "60s"


# ---------------------------------------------------------------------------------------------
# Plain HTTP (independent of the clients under test)
# ---------------------------------------------------------------------------------------------


def _http(method, url, body=None, headers=None, timeout_s=5.0):
    """(status, parsed JSON or text); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=as_operator(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw, kind = response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as error:
        status, raw, kind = error.code, error.read(), error.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace")
    if "json" in kind and text:
        return status, json.loads(text)
    return status, text


def _http_json(method, url, **kwargs):
    status, body = _http(method, url, **kwargs)
    if status != 200 or isinstance(body, str):
        raise RuntimeError(f"{method} {url} answered {status}: {body!r}")
    return body


def _submit_raw(base_uri, sql, user):
    """POSTs a statement with the bare protocol; returns the first page."""
    return _http_json("POST", f"{base_uri}/v1/statement", body=sql.encode(), headers={"X-Presto-User": user})


def _follow_raw(page, deadline):
    """Follows nextUri to the end; returns (last page, all rows)."""
    rows = list(page.get("data", []))
    while "nextUri" in page:
        if time.monotonic() > deadline:
            raise TimeoutError(f"query {page['id']} still {page['stats']['state']} at the deadline")
        page = _http_json("GET", page["nextUri"], timeout_s=15)
        rows.extend(page.get("data", []))
    return page, rows


def _synthetic(run_time, rows, tasks=2, memory="16MB"):
    return f"SELECT task, row FROM synthetic(run_time => '{run_time}', memory => '{memory}', tasks => {tasks}, rows => {rows})"


def _expected_rows(rows, tasks=2):
    """(task, row) pairs, split across tasks as src/sql/synthetic.rs `task_rows` does."""
    expected = []
    base, extra = divmod(rows, tasks)
    for task in range(tasks):
        count = base + (1 if task < extra else 0)
        first = task * base + min(task, extra)
        expected.extend((task, row) for row in range(first, first + count))
    return expected


# ---------------------------------------------------------------------------------------------
# The cluster: separate `fireball server --etc DIR` processes
# ---------------------------------------------------------------------------------------------


class Cluster:
    def __init__(self, root):
        self.root = root
        self.processes = {}
        self.uris = {}
        self.suffix_owner = {}  # query-id suffix -> coordinator name

    @property
    def rm_uris(self):
        return [self.uris[name] for name in RESOURCE_MANAGERS]

    def coordinator_of(self, query_id):
        return self.suffix_owner.get(query_id.rsplit("_", 1)[-1])

    def owner_uri(self, query_id):
        name = self.coordinator_of(query_id)
        if name is None:
            raise AssertionError(f"query id {query_id} has no known coordinator suffix {self.suffix_owner}")
        return self.uris[name]

    def query_info(self, query_id):
        """The owner's exact view of the query (the owner answers for its own queries)."""
        status, body = _http("GET", f"{self.owner_uri(query_id)}/v1/query/{query_id}")
        return body if status == 200 and isinstance(body, dict) else None

    def rm_queries(self):
        """The cluster-wide list of the first RM that answers (it lags by up to a heartbeat)."""
        for uri in self.rm_uris:
            try:
                return _http_json("GET", f"{uri}/v1/query", timeout_s=2)
            except (OSError, RuntimeError, ValueError):
                continue
        return None

    def logs(self):
        return "\n".join(
            f"----- {name} (last lines) -----\n{tail(self.root / 'logs' / f'{name}.log')}" for name in self.processes
        )

    def stop(self):
        for process in self.processes.values():
            _stop(process)


def _write_etc(cluster, name, ports):
    role = "resource-manager" if name in RESOURCE_MANAGERS else "coordinator" if name in COORDINATORS else "worker"
    extra = (
        f"query.max-concurrent-queries={CONCURRENCY_LIMIT}\n"
        "concurrency-threshold-to-enable-resource-group-refresh=0\n"
        "internal-communication.request-timeout=2s\n"
    )
    if role == "worker":
        extra += "memory.pool-size=1GB\n"
    rm_uris = [f"http://{HOST}:{ports[rm]}" for rm in RESOURCE_MANAGERS]
    return write_server_etc(cluster.root / name, name, role, ports[name], rm_uris, extra)


def _wait_for_coordinator(cluster, name, deadline):
    """Runs a query on the coordinator itself (so workers are known) and learns its id suffix."""
    last_problem = "not polled yet"
    while True:
        for node, process in cluster.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{node} exited with {process.returncode} during startup")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not ready: {last_problem}")
        try:
            page = _submit_raw(cluster.uris[name], _synthetic("0s", rows=4), "lb-readiness")
            last, rows = _follow_raw(page, deadline)
            if last["stats"]["state"] == "FINISHED" and "error" not in last:
                assert sorted(map(tuple, rows)) == _expected_rows(4), rows
                cluster.suffix_owner[page["id"].rsplit("_", 1)[-1]] = name
                return
            last_problem = f"readiness query ended with {last.get('error') or last['stats']}"
        except (OSError, RuntimeError, ValueError, KeyError, TimeoutError) as error:
            last_problem = repr(error)
        time.sleep(0.3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/lb")
    cluster = Cluster(tmp_path_factory.mktemp("fireball-lb-cluster"))
    (cluster.root / "logs").mkdir()
    names = RESOURCE_MANAGERS + COORDINATORS + WORKERS
    ports = {name: free_port() for name in names}
    try:
        for name in names:
            etc = _write_etc(cluster, name, ports)
            with open(cluster.root / "logs" / f"{name}.log", "wb") as log:
                cluster.processes[name] = subprocess.Popen(
                    [binary, "server", "--etc", str(etc)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
                )
            cluster.uris[name] = f"http://{HOST}:{ports[name]}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        for name in COORDINATORS:
            _wait_for_coordinator(cluster, name, deadline)
        assert len(cluster.suffix_owner) == len(COORDINATORS), f"coordinators share an id suffix: {cluster.suffix_owner}"
    except Exception as error:  # noqa: BLE001 - every startup failure is reported with logs
        cluster.stop()
        pytest.fail(f"cluster did not start: {error!r}\n{cluster.logs()}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------------------------
# nginx: own prefix, config, pid and logs in a temp dir; `daemon off;` so we own the process
# ---------------------------------------------------------------------------------------------

NGINX_CONF = """\
# Generated by tests/lb/test_lb_clients.py: nginx round-robin in front of fireball coordinators.
{user_line}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;

events {{
    worker_connections 512;
}}

http {{
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;

    # Which coordinator served each request, for the distribution check.
    log_format upstreams '$request_method $uri $status upstream=$upstream_addr '
                         'upstream_status=$upstream_status request_time=$request_time';
    access_log {prefix}/logs/access.log upstreams;

    upstream fireball_coordinators {{
        # Round-robin (nginx's default) over every coordinator; any of them accepts a query.
{servers}
        keepalive 16;
    }}

    server {{
        listen {host}:{port};
        client_max_body_size 1m;

        location / {{
            proxy_pass http://fireball_coordinators;
            # HTTP/1.1 with an empty Connection header lets upstream connections be kept alive.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The URIs a Presto server generates follow the Host it was asked for and
            # X-Forwarded-Proto (fireball names the owning coordinator instead; both are passed on
            # so that either design works behind this config).
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            # Longer than the longest long-poll a coordinator holds (maxWait is capped at 10 s).
            proxy_read_timeout 30s;
            proxy_send_timeout 30s;
            # Stream responses instead of spooling them to disk.
            proxy_buffering off;
            # nginx's default: retry another coordinator on connect errors and timeouts, but never
            # a non-idempotent request (POST /v1/statement) that may already have been accepted.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, process, port, prefix, conf):
        self.process = process
        self.port = port
        self.prefix = prefix
        self.conf = conf

    @property
    def uri(self):
        return f"http://{HOST}:{self.port}"

    def access_log(self):
        with open(self.prefix / "logs" / "access.log", encoding="utf-8", errors="replace") as file:
            return file.read().splitlines()

    def new_lines(self, start, count, timeout_s=2.0):
        """The `count` lines logged after line `start`; nginx logs a request just after answering
        it, so a line may land a moment after the client has its response."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.access_log()
            if len(lines) >= start + count or time.monotonic() > deadline:
                return lines[start : start + count]
            time.sleep(0.01)

    @staticmethod
    def upstream_of(line):
        return line.split()[3].removeprefix("upstream=")

    def steer(self, cluster, query_id, to_owner):
        """Makes nginx's next pick the owner of `query_id` (or a coordinator that is not).

        nginx's round-robin with equal weights is a cycle in config order (one worker process,
        no other traffic through nginx meanwhile), so harmless GETs advance it to the wanted
        place. Callers check the access log afterwards that the request went where intended.
        """
        owner = cluster.coordinator_of(query_id)
        before_owner = COORDINATORS[(COORDINATORS.index(owner) - 1) % len(COORDINATORS)]
        stop_after = cluster.uris[before_owner if to_owner else owner].removeprefix("http://")
        for _ in range(2 * len(COORDINATORS)):
            start = len(self.access_log())
            _http("GET", f"{self.uri}/v1/query/{query_id}")
            if self.upstream_of(self.new_lines(start, 1)[0]) == stop_after:
                return
        raise AssertionError(f"nginx never sent a request to {stop_after}: {self.access_log()[-10:]}")

    def upstreams_for(self, method, path_prefix, since_line=0):
        """Counter of upstream address for logged requests matching method and path prefix."""
        counts = collections.Counter()
        for line in self.access_log()[since_line:]:
            parts = line.split()
            if len(parts) >= 4 and parts[0] == method and parts[1].startswith(path_prefix):
                counts[parts[3].removeprefix("upstream=")] += 1
        return counts


@pytest.fixture(scope="module")
def nginx(cluster, tmp_path_factory):
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if binary is None:
        pytest.fail("nginx is not installed; run ci/lb (it installs the Debian package)")
    prefix = tmp_path_factory.mktemp("nginx")
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir()
    port = free_port()
    # As root, nginx would hand its workers to `nobody`, who cannot write our temp dir; as anyone
    # else the `user` directive is ignored, so it is only written for root.
    user_line = "user root;\n" if os.geteuid() == 0 else ""
    servers = "\n".join(
        f"        server {cluster.uris[name].removeprefix('http://')};" for name in COORDINATORS
    )
    conf = NGINX_CONF.format(user_line=user_line, prefix=prefix, servers=servers, host=HOST, port=port)
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf)
    # -e: the error log to use before the config is read (the default /var/log/nginx may not be
    # writable); -p: prefix for relative paths; -t first, so a bad config fails with its message.
    command = [binary, "-p", str(prefix), "-c", str(conf_path), "-e", str(prefix / "logs" / "error.log")]
    check = subprocess.run(command + ["-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        pytest.fail(f"nginx -t refused the generated config:\n{check.stderr}\n{conf}", pytrace=False)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Nginx(process, port, prefix, conf)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited with {process.returncode}:\n{tail(prefix / 'logs' / 'error.log')}")
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nginx not listening on {port}:\n{tail(prefix / 'logs' / 'error.log')}")
                time.sleep(0.1)
    except Exception as error:  # noqa: BLE001
        _stop(process)
        pytest.fail(f"nginx did not start: {error}", pytrace=False)
    try:
        yield server
    finally:
        # SIGTERM is nginx's fast shutdown; the master stops its worker before exiting.
        _stop(process)


@pytest.fixture(autouse=True)
def _guard_each_test(cluster, request, capsys):
    """Bounds each test's run time and shows the cluster's logs for a failing test."""

    failed_before = request.session.testsfailed
    with time_limit(TEST_TIMEOUT_S):
        yield
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== cluster logs after {request.node.nodeid} =====")
            print(cluster.logs())


def _report(capsys, text):
    """Numbers a reader of the CI log wants to see even when the test passes."""
    with capsys.disabled():
        print(f"\n[lb] {text}")


# ---------------------------------------------------------------------------------------------
# The three clients, each through nginx
# ---------------------------------------------------------------------------------------------


class PrestodbClient:
    name = "prestodb"

    def __init__(self, port, user):
        self.connection = prestodb.dbapi.connect(
            host=HOST, port=port, user=user, catalog="system", schema="runtime", request_timeout=15
        )
        self.cursor = self.connection.cursor()

    def execute(self, sql, on_query_id):
        # execute() blocks until the query has finished; the id is known right after the POST,
        # so a watcher thread publishes it meanwhile.
        watcher = _IdWatcher(lambda: (self.cursor.stats or {}).get("queryId"), on_query_id)
        try:
            self.cursor.execute(sql)
            rows = self.cursor.fetchall()
        finally:
            watcher.stop()
        on_query_id(self.cursor.stats["queryId"])
        return [tuple(row) for row in rows]

    def cancel(self):
        # prestodb DELETEs /v1/query/{id} on the address it was given: nginx.
        self.cursor.cancel()

    def close(self):
        self.connection.close()


class TrinoClient:
    name = "trino"

    def __init__(self, port, user):
        self.connection = trino.dbapi.connect(host=HOST, port=port, user=user, http_scheme="http", request_timeout=15)
        self.cursor = self.connection.cursor()

    def execute(self, sql, on_query_id):
        # execute() blocks until the first rows (synthetic rows come when the tasks end).
        watcher = _IdWatcher(lambda: self.cursor.query_id, on_query_id)
        try:
            self.cursor.execute(sql)
            rows = self.cursor.fetchall()
        finally:
            watcher.stop()
        on_query_id(self.cursor.query_id)
        return [tuple(row) for row in rows]

    def cancel(self):
        # trino DELETEs the current nextUri, which names the owning coordinator.
        self.cursor.cancel()

    def close(self):
        self.connection.close()


class PyhiveClient:
    name = "pyhive"

    def __init__(self, port, user):
        self.connection = pyhive_presto.connect(
            host=HOST, port=port, username=user, catalog="system", schema="runtime", protocol="http"
        )
        self.cursor = self.connection.cursor()
        self.cancelled = threading.Event()
        # A PyHive cursor is not thread-safe: poll() and cancel() both rewrite its nextUri, so
        # the polling thread and a cancelling thread take turns (a poll long-polls at most ~1 s).
        self.turn = threading.Lock()

    def execute(self, sql, on_query_id):
        # PyHive's execute() only POSTs (it is asynchronous) and records `last_query_id`; poll()
        # follows one nextUri at a time, buffering rows, until the query is done.
        with self.turn:
            self.cursor.execute(sql)
        on_query_id(self.cursor.last_query_id)
        while not self.cancelled.is_set():
            with self.turn:
                if self.cancelled.is_set() or self.cursor.poll() is None:
                    break
        if self.cancelled.is_set():
            return []
        return [tuple(row) for row in self.cursor.fetchall()]

    def cancel(self):
        # PyHive DELETEs the current nextUri, which names the owning coordinator.
        self.cancelled.set()
        with self.turn:
            self.cursor.cancel()

    def close(self):
        self.connection.close()


CLIENT_TYPES = (PrestodbClient, TrinoClient, PyhiveClient)


class _IdWatcher:
    """Publishes a query id as soon as a blocked client knows it (polls an attribute)."""

    def __init__(self, read, on_query_id):
        self.stopped = threading.Event()

        def run():
            while not self.stopped.is_set():
                try:
                    query_id = read()
                except Exception:  # noqa: BLE001 - the client is mid-update; try again
                    query_id = None
                if query_id:
                    on_query_id(query_id)
                    return
                time.sleep(0.01)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=2)


# ---------------------------------------------------------------------------------------------
# Concurrency sampler
# ---------------------------------------------------------------------------------------------


class Sampler:
    """Measures how many queries of a batch run at once, and whether any queued.

    Owner view (asserted): every known query's state from its owner, which answers for its own
    queries exactly. One pass over 15 queries is not an instant, though (each GET takes a few ms,
    far more on a loaded machine), so adding up a pass could count a query that finished early in
    the pass together with one that started late in it. Instead each query gets the interval in
    which it was *certainly* RUNNING: from the answer of its first RUNNING observation to the
    request of its last (states only move QUEUED -> RUNNING -> done). The most of those intervals
    that overlap is a lower bound of the true peak, so a value above the limit is a real overshoot,
    never a sampling artefact.

    RM views (reported, asserted with the same bound): the batch's queries RUNNING in an RM's
    cluster-wide `GET /v1/query` and the RM's merged `/v1/resourceGroupState/global`, i.e. what
    admission on every coordinator sees (built from heartbeats, up to one heartbeat old).
    """

    INTERVAL_S = 0.1

    def __init__(self, cluster, user_prefix):
        self.cluster = cluster
        self.user_prefix = user_prefix
        self.query_ids = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.running_seen = {}  # query id -> [answer time of first RUNNING, request time of last]
        self.max_running_pass = 0
        self.max_pass_s = 0.0
        self.max_running_rm = 0
        self.max_running_group = 0
        self.saw_queued = False
        self.samples = 0
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def add(self, query_id):
        with self.lock:
            self.query_ids.add(query_id)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join(timeout=10)

    @property
    def max_running_certain(self):
        """Peak overlap of the certainly-RUNNING intervals (starts before ends at equal times)."""
        events = []
        for first_answer, last_request in self.running_seen.values():
            if first_answer <= last_request:
                events.append((first_answer, 0))
                events.append((last_request, 1))
        running = peak = 0
        for _, kind in sorted(events):
            running += 1 if kind == 0 else -1
            peak = max(peak, running)
        return peak

    def _run(self):
        final = set()
        while not self.stop_event.is_set():
            with self.lock:
                open_ids = sorted(self.query_ids - final)
            pass_started = time.monotonic()
            running = 0
            for query_id in open_ids:
                requested = time.monotonic()
                info = self.cluster.query_info(query_id)
                answered = time.monotonic()
                state = info and info.get("state")
                if state == "RUNNING":
                    running += 1
                    seen = self.running_seen.setdefault(query_id, [answered, requested])
                    seen[1] = requested
                elif state == "QUEUED":
                    self.saw_queued = True
                elif state in ("FINISHED", "FAILED"):
                    final.add(query_id)
            self.max_running_pass = max(self.max_running_pass, running)
            self.max_pass_s = max(self.max_pass_s, time.monotonic() - pass_started)
            listed = self.cluster.rm_queries() or []
            mine = [query for query in listed if str(query.get("session", {}).get("user", "")).startswith(self.user_prefix)]
            self.max_running_rm = max(self.max_running_rm, sum(query.get("state") == "RUNNING" for query in mine))
            self.saw_queued |= any(query.get("state") == "QUEUED" for query in mine)
            status, group = _http("GET", f"{self.cluster.rm_uris[0]}/v1/resourceGroupState/global", timeout_s=2)
            if status == 200 and isinstance(group, dict):
                self.max_running_group = max(self.max_running_group, group.get("numRunningQueries", 0))
                self.saw_queued |= group.get("numQueuedQueries", 0) > 0
            elif len(self.errors) < 5:
                self.errors.append(f"resourceGroupState answered {status}: {group!r}")
            self.samples += 1
            self.stop_event.wait(self.INTERVAL_S)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_concurrent_queries_from_three_clients_through_nginx(cluster, nginx, capsys):
    """15 concurrent 2 s queries, 5 from each client, all through nginx.

    Every query returns exactly its rows (each has a distinct row count, so answers cannot be
    mixed up); nginx spread the POSTs over every coordinator; the cluster-wide limit of 3 held
    (within the design's tolerance) and queries queued for it.
    """
    log_start = len(nginx.access_log())
    jobs = []
    for index in range(BATCH_QUERIES_PER_CLIENT * len(CLIENT_TYPES)):
        client_type = CLIENT_TYPES[index % len(CLIENT_TYPES)]
        rows = 3 + index  # distinct per query
        jobs.append((index, client_type, rows))
    results = {}
    errors = {}
    query_ids = {}

    def run(index, client_type, rows, sampler):
        client = client_type(nginx.port, f"lb-batch-{client_type.name}-{index}")

        def on_query_id(query_id):
            query_ids[index] = query_id
            sampler.add(query_id)

        try:
            results[index] = client.execute(_synthetic(BATCH_RUN_TIME, rows), on_query_id)
        except Exception as error:  # noqa: BLE001 - reported with the query it belongs to
            errors[index] = error
        finally:
            client.close()

    started = time.monotonic()
    with Sampler(cluster, "lb-batch-") as sampler:
        threads = [
            threading.Thread(target=run, args=(index, client_type, rows, sampler), daemon=True)
            for index, client_type, rows in jobs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive(), "a client was still running 120 s after the batch started"
    elapsed_s = time.monotonic() - started

    assert not errors, {index: repr(error) for index, error in errors.items()}
    for index, client_type, rows in jobs:
        assert sorted(results[index]) == _expected_rows(rows), f"query {index} ({client_type.name}, {rows} rows)"

    # Spread: the id suffix names the owning coordinator, and nginx logged where each POST went.
    per_coordinator = collections.Counter(cluster.coordinator_of(query_ids[index]) for index, _, _ in jobs)
    assert None not in per_coordinator, f"unknown query id suffix: {query_ids}"
    assert set(per_coordinator) == set(COORDINATORS), f"round-robin must reach every coordinator: {per_coordinator}"
    post_lines = [line for line in nginx.new_lines(log_start, len(jobs)) if line.startswith("POST /v1/statement ")]
    assert len(post_lines) == len(jobs), nginx.access_log()[log_start:]
    # One attempt each, answered 200: nginx never had to try a second coordinator (its
    # $upstream_addr would list both) and never answered on its own (no upstream at all).
    assert all(line.split()[2] == "200" and "," not in line and "upstream=-" not in line for line in post_lines), post_lines
    posts = nginx.upstreams_for("POST", "/v1/statement", since_line=log_start)
    by_address = {cluster.uris[name].removeprefix("http://"): count for name, count in per_coordinator.items()}
    assert dict(posts) == by_address, f"nginx access log {dict(posts)} vs query ids {by_address}"

    # The limit: exact owner-side sample, with the tolerance explained at OVERSHOOT_TOLERANCE.
    bound = CONCURRENCY_LIMIT + OVERSHOOT_TOLERANCE
    assert sampler.samples >= 20, f"only {sampler.samples} samples: {sampler.errors}"
    certain = sampler.max_running_certain
    numbers = (
        f"max RUNNING owners={certain} (naive per-pass sum {sampler.max_running_pass}, longest pass "
        f"{sampler.max_pass_s * 1000:.0f} ms) rm-list={sampler.max_running_rm} rm-group={sampler.max_running_group} "
        f"(limit {CONCURRENCY_LIMIT}, bound {bound}); queued seen={sampler.saw_queued}; samples={sampler.samples}"
    )
    assert certain <= bound, f"{certain} certainly running at once > limit {CONCURRENCY_LIMIT} + {OVERSHOOT_TOLERANCE}: {numbers}"
    assert sampler.max_running_rm <= bound, f"RM list showed too many running: {numbers}"
    assert sampler.max_running_group <= bound, f"RM resource group showed too many running: {numbers}"
    assert certain >= 2, f"queries should have run concurrently: {numbers}"
    assert sampler.saw_queued, f"15 queries against a limit of 3 must have queued: {numbers}"
    # 15 × 2 s at 3 at a time is at least 10 s; far less means the limit was not applied.
    assert elapsed_s >= 2.0 * len(jobs) / bound, f"batch took only {elapsed_s:.1f} s"

    _report(
        capsys,
        f"batch: {len(jobs)} queries ({BATCH_QUERIES_PER_CLIENT} each from prestodb, trino, pyhive) in {elapsed_s:.1f} s; "
        f"per coordinator {dict(sorted(per_coordinator.items()))}; nginx POST upstreams {dict(posts)}; "
        f"{numbers}",
    )


def _wait_state(cluster, query_id, states, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        info = cluster.query_info(query_id)
        if info and info.get("state") in states:
            return info
        assert time.monotonic() < deadline, f"{what}: query {query_id} not {states} within {timeout_s} s: {info}"
        time.sleep(0.05)


def _wait_rm_lists(cluster, query_ids, state, timeout_s):
    """Until an RM lists every query in `state`, i.e. every coordinator's admission view has it."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = {query.get("queryId"): query.get("state") for query in cluster.rm_queries() or []}
        if all(listed.get(query_id) == state for query_id in query_ids):
            return
        assert time.monotonic() < deadline, f"RM does not list {query_ids} as {state}: {listed}"
        time.sleep(0.1)


def _cancel_on_owner(cluster, query_id):
    _http("DELETE", f"{cluster.owner_uri(query_id)}/v1/query/{query_id}")


@pytest.mark.parametrize(
    "client_type, steer",
    [
        # prestodb's cancel() is `DELETE /v1/query/{id}` on nginx, so where it lands depends on
        # the round-robin: both cases are pinned down by steering nginx (see Nginx.steer).
        pytest.param(PrestodbClient, "owner", id="prestodb-delete-reaches-owner"),
        pytest.param(PrestodbClient, "other", id="prestodb-delete-reaches-other-coordinator"),
        # trino and PyHive DELETE their current nextUri: the owner, directly.
        pytest.param(TrinoClient, None, id="trino"),
        pytest.param(PyhiveClient, None, id="pyhive"),
    ],
)
def test_cancel_through_nginx_frees_the_slot(cluster, nginx, capsys, client_type, steer):
    """With the cluster full (2 fillers + the client's 60 s query), a probe queues; the client's
    cancel() fails its query with USER_CANCELED, and the probe then runs in the freed slot.

    The `prestodb-delete-reaches-other-coordinator` case checks that prestodb's
    `DELETE /v1/query/{id}` works when nginx sends it to a coordinator that does not own the query."""
    tag = f"{client_type.name}-{int(time.time() * 1000) % 100000}"
    fillers = []
    probe = None
    query_id = None
    client = client_type(nginx.port, f"lb-cancel-{tag}")
    outcome = {}
    published = threading.Event()

    def on_query_id(new_id):
        outcome.setdefault("query_id", new_id)
        published.set()

    def execute():
        try:
            outcome["rows"] = client.execute(_synthetic(LONG_RUN_TIME, rows=4, tasks=1), on_query_id)
        except Exception as error:  # noqa: BLE001 - inspected by the main thread
            outcome["error"] = error

    runner = threading.Thread(target=execute, name=f"{client_type.name}-execute", daemon=True)
    try:
        for number in range(CONCURRENCY_LIMIT - 1):
            page = _submit_raw(nginx.uri, _synthetic(LONG_RUN_TIME, rows=1, tasks=1), f"lb-filler-{tag}-{number}")
            fillers.append(page["id"])
        for filler in fillers:
            _wait_state(cluster, filler, {"RUNNING"}, 20, "filler")

        runner.start()
        assert published.wait(20), f"{client_type.name} published no query id: {outcome}"
        query_id = outcome["query_id"]
        _wait_state(cluster, query_id, {"RUNNING"}, 20, client_type.name)
        # Every coordinator's admission view must include all three before the probe arrives;
        # coordinators refresh their view from the RM every 100 ms.
        _wait_rm_lists(cluster, fillers + [query_id], "RUNNING", 10)
        time.sleep(0.5)

        probe = _submit_raw(nginx.uri, _synthetic("0s", rows=2, tasks=1), f"lb-probe-{tag}")
        time.sleep(1.5)
        probe_info = cluster.query_info(probe["id"])
        assert probe_info and probe_info["state"] == "QUEUED", f"cluster is full, the probe must queue: {probe_info}"

        owner = cluster.coordinator_of(query_id)
        if steer is not None:
            nginx.steer(cluster, query_id, to_owner=steer == "owner")
        log_start = len(nginx.access_log())
        cancel_error = None
        try:
            client.cancel()
        except Exception as error:  # noqa: BLE001 - judged below
            cancel_error = error
        via = "the owner's nextUri, directly"
        if steer is not None:
            line = nginx.new_lines(log_start, 1)[0]
            assert line.startswith(f"DELETE /v1/query/{query_id} "), line
            upstream = nginx.upstream_of(line)
            owner_address = cluster.uris[owner].removeprefix("http://")
            assert (upstream == owner_address) == (steer == "owner"), f"steering failed: {line} (owner {owner_address})"
            via = f"nginx -> {upstream} ({'owner' if steer == 'owner' else 'not the owner'})"
        if cancel_error is not None:
            raise AssertionError(f"{client_type.name} cancel() via {via} raised {cancel_error!r} (owner {owner})")

        runner.join(timeout=10)
        assert not runner.is_alive(), f"{client_type.name} execute still blocked 10 s after cancel()"
        assert outcome.get("rows", []) == [], outcome
        if "error" in outcome:
            # A poll in flight may see the failure before the client marks itself cancelled.
            error = outcome["error"]
            assert getattr(error, "error_name", None) == "USER_CANCELED" or "USER_CANCELED" in str(error), repr(error)

        info = _wait_state(cluster, query_id, {"FAILED"}, 5, "after cancel")
        assert info.get("errorCode", {}).get("name") == "USER_CANCELED", info
        # The slot is free: the queued probe runs now, long before the fillers' 60 s are up.
        last, rows = _follow_raw(probe, time.monotonic() + 15)
        assert last["stats"]["state"] == "FINISHED" and "error" not in last, last
        assert sorted(map(tuple, rows)) == _expected_rows(2, tasks=1)
        # The RM's cluster-wide list agrees (it hears about it on the owner's next heartbeat).
        deadline = time.monotonic() + 5
        while True:
            listed = {query.get("queryId"): query for query in cluster.rm_queries() or []}
            entry = listed.get(query_id, {})
            if entry.get("state") == "FAILED":
                assert entry.get("errorCode", {}).get("name") == "USER_CANCELED", entry
                break
            assert time.monotonic() < deadline, f"RM list does not show {query_id} FAILED: {entry}"
            time.sleep(0.1)
        _report(
            capsys,
            f"cancel[{client_type.name}]: query {query_id} on {owner}, cancel via {via}: "
            f"FAILED/USER_CANCELED; probe {probe['id']} queued while full, then FINISHED",
        )
    finally:
        if query_id is not None and runner.is_alive():
            _cancel_on_owner(cluster, query_id)
        for filler in fillers:
            _cancel_on_owner(cluster, filler)
        if probe is not None:
            _cancel_on_owner(cluster, probe["id"])
        runner.join(timeout=10)
        client.close()
        # Leave the cluster idle for the next test.
        for filler in fillers:
            _wait_state(cluster, filler, {"FAILED", "FINISHED"}, 10, "filler cleanup")


def _query_through_nginx(nginx, user):
    page = _submit_raw(nginx.uri, _synthetic("0s", rows=2, tasks=1), user)
    last, _ = _follow_raw(page, time.monotonic() + 20)
    assert last["stats"]["state"] == "FINISHED", last
    return page["id"]


def _query_info_via_nginx_round(nginx, query_id):
    """GET /v1/query/{id} through nginx once per coordinator: round-robin visits each of them."""
    log_start = len(nginx.access_log())
    answers = [_http("GET", f"{nginx.uri}/v1/query/{query_id}") for _ in COORDINATORS]
    upstreams = [nginx.upstream_of(line) for line in nginx.new_lines(log_start, len(COORDINATORS))]
    return answers, upstreams


def test_query_info_through_nginx_from_the_owner(cluster, nginx, capsys):
    """`/v1/query/{id}` through nginx: the owner answers with the query; the others answer a
    clean 'not found' today (or the query itself, once they proxy)."""
    query_id = _query_through_nginx(nginx, "lb-info")
    owner = cluster.coordinator_of(query_id)
    answers, upstreams = _query_info_via_nginx_round(nginx, query_id)
    assert len(set(upstreams)) == len(COORDINATORS), f"round-robin did not visit every coordinator: {upstreams}"
    found = [body for status, body in answers if status == 200]
    assert found, f"no coordinator answered for {query_id} through nginx: {answers}"
    for body in found:
        assert body["queryId"] == query_id and body["state"] == "FINISHED", body
        assert body["self"] == f"{cluster.uris[owner]}/v1/query/{query_id}", body
        assert body["session"]["user"] == "lb-info", body
    for status, body in answers:
        assert status in (200, 404, 410), f"unexpected answer {status}: {body!r}"
    _report(capsys, f"query info via nginx for {query_id} (owner {owner}): statuses {[status for status, _ in answers]} from {upstreams}")


def test_query_info_through_nginx_from_every_coordinator(cluster, nginx):
    """Whichever coordinator nginx picks, GET and DELETE /v1/query/{id} reach
    the owner (as prestodb's cancel() needs)."""
    query_id = _query_through_nginx(nginx, "lb-info-all")
    answers, upstreams = _query_info_via_nginx_round(nginx, query_id)
    assert [status for status, _ in answers] == [200] * len(COORDINATORS), f"{answers} from {upstreams}"
    assert all(body["queryId"] == query_id for _, body in answers)

    # DELETE of a running query through a coordinator that does not own it.
    page = _submit_raw(nginx.uri, _synthetic(LONG_RUN_TIME, rows=1, tasks=1), "lb-delete-all")
    owner_uri = cluster.owner_uri(page["id"])
    try:
        _wait_state(cluster, page["id"], {"RUNNING"}, 20, "delete target")
        nginx.steer(cluster, page["id"], to_owner=False)
        log_start = len(nginx.access_log())
        status, body = _http("DELETE", f"{nginx.uri}/v1/query/{page['id']}")
        upstream = nginx.upstream_of(nginx.new_lines(log_start, 1)[0])
        assert upstream != owner_uri.removeprefix("http://"), "the DELETE went to the owner; the test needs a non-owner"
        assert status == 204, f"DELETE via non-owner {upstream}: {status} {body!r}"
        info = _wait_state(cluster, page["id"], {"FAILED"}, 5, "after proxied DELETE")
        assert info.get("errorCode", {}).get("name") == "USER_CANCELED", info
    finally:
        _cancel_on_owner(cluster, page["id"])


# ---------------------------------------------------------------------------------------------
# TPC-H through nginx on the multi-process cluster
# ---------------------------------------------------------------------------------------------


def _tpch_prestodb(port):
    connection = prestodb.dbapi.connect(
        host=HOST, port=port, user="lb-tpch-prestodb", catalog="tpch", schema="tiny", request_timeout=60
    )
    return connection, lambda cursor: cursor.stats["queryId"]


def _tpch_trino(port):
    connection = trino.dbapi.connect(
        host=HOST, port=port, user="lb-tpch-trino", catalog="tpch", schema="tiny", http_scheme="http", request_timeout=60
    )
    return connection, lambda cursor: cursor.query_id


@pytest.mark.parametrize("client", ["prestodb", "trino"])
def test_tpch_through_nginx(cluster, nginx, capsys, client):
    """TPC-H q01, q03, q06, q10, q18 (session tpch.tiny) through nginx: each result agrees with the
    DuckDB oracle (tests/tpch/expected/sf0.01, compared by tests/tpch/compare.py: columns, types,
    values within 1e-9, ORDER BY order), and the queries were owned by more than one coordinator
    (nginx's round-robin spreads the POSTs; the leaf tasks ran on the workers whichever
    coordinator planned them)."""
    connect = {"prestodb": _tpch_prestodb, "trino": _tpch_trino}[client]
    failures = {}
    owners = {}
    timings = {}
    log_start = len(nginx.access_log())
    for query in TPCH_QUERIES:
        expected = json.loads((TPCH_EXPECTED_DIR / f"{query}.json").read_text())
        sql = (TPCH_DIR / "queries" / f"{query}.sql").read_text().strip()
        connection, query_id_of = connect(nginx.port)
        started = time.monotonic()
        cursor = connection.cursor()
        try:
            cursor.execute(sql)
            rows = cursor.fetchall()
            description = cursor.description
        except (prestodb.exceptions.PrestoQueryError, prestodb.exceptions.DatabaseError, trino.exceptions.DatabaseError) as error:
            # A query that fails is reported with the others, not instead of them.
            failures[query] = [f"failed: {error}"]
            continue
        finally:
            timings[query] = time.monotonic() - started
            try:
                owners[query] = cluster.coordinator_of(query_id_of(cursor))
            except (AttributeError, KeyError, TypeError):
                owners[query] = None
            connection.close()
        differences = compare_tpch(
            expected,
            [column[0] for column in description],
            rows,
            expected["ordered"],
            actual_types=[column[1] for column in description],
        )
        if differences:
            failures[query] = differences
    assert not failures, f"{client} through nginx: " + "\n".join(
        f"{query} (on {owners[query]}): " + "\n  ".join(differences) for query, differences in failures.items()
    )
    assert None not in owners.values(), f"a query id with an unknown coordinator suffix: {owners}"
    spread = collections.Counter(owners.values())
    assert len(spread) > 1, f"every TPC-H query landed on one coordinator: {owners}"
    posts = nginx.upstreams_for("POST", "/v1/statement", since_line=log_start)
    assert sum(posts.values()) == len(TPCH_QUERIES), f"expected one POST per query through nginx: {dict(posts)}"
    _report(
        capsys,
        f"tpch[{client}] via nginx: {', '.join(f'{q} on {owners[q]} {timings[q]:.2f} s' for q in TPCH_QUERIES)}; "
        f"all agree with the oracle; per coordinator {dict(sorted(spread.items()))}",
    )
