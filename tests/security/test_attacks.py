"""The attack suite: what issue 12 found an unauthenticated caller could do to a cluster, tried
against a real `fireball local` (2 RMs, 2 coordinators, 2 workers) that has a shared secret.

Each test makes one attack with curl-like requests (urllib), asserts that it is refused with the
status the issue names, that it changed nothing it should not have, and that the cluster still
answers a normal query within a second afterwards. Tokens are made with the standard library
(tests/support/harness.py), not with fireball's code: a second implementation of the format.
"""

import http.client
import http.server
import json
import os
import pathlib
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from harness import (  # noqa: E402
    HOST,
    SHARED_SECRET,
    ClusterStartError,
    free_port,
    http_json,
    internal_headers,
    internal_token,
    start_local_cluster,
    stop,
    time_limit,
    write_server_etc,
)

STARTUP_TIMEOUT_S = 60
TEST_TIMEOUT_S = 60
# "The cluster still answers a normal query within a second afterwards."
HEALTHY_WITHIN_S = 1.0
HEALTH_SQL = "SELECT * FROM synthetic(tasks => 2, rows => 4)"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/tpch")
    try:
        cluster = start_local_cluster(binary, tmp_path_factory.mktemp("fireball-local"), STARTUP_TIMEOUT_S)
    except ClusterStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        stop(cluster.process)


@pytest.fixture(autouse=True)
def _guard(cluster, request, capsys):
    log_sizes = cluster.log_sizes()
    failed_before = request.session.testsfailed
    with time_limit(TEST_TIMEOUT_S):
        yield
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== fireball output during {request.node.nodeid} =====")
            print(cluster.logs(since=log_sizes))


def url(cluster, node, path):
    offsets = {"coordinator-1": 0, "coordinator-2": 1, "rm-1": 100, "rm-2": 101, "worker-1": 200, "worker-2": 201}
    return f"http://{HOST}:{cluster.base_port + offsets[node]}{path}"


def send(method, target, body=None, headers=None):
    """(status, body text) of one request; HTTP errors are answers, not exceptions.

    A node refuses an unauthenticated request before reading its body, and closes the connection
    once it has answered: a large body may then meet a closed socket (EPIPE) while the answer is
    already waiting to be read, so the answer is read whatever happened to the send.
    """
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    parsed = urllib.parse.urlsplit(target)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
    try:
        try:
            connection.request(method, parsed.path + (f"?{parsed.query}" if parsed.query else ""), body=data,
                               headers={**JSON, **(headers or {})})
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def run_query(cluster, sql=HEALTH_SQL, coordinator="coordinator-1", user="security-tests"):
    """The final page of `sql` run with the bare protocol."""
    _, page = http_json("POST", url(cluster, coordinator, "/v1/statement"), body=sql.encode(),
                        headers={"X-Presto-User": user})
    while "nextUri" in page:
        _, page = http_json("GET", page["nextUri"])
    return page


def assert_healthy(cluster):
    started = time.monotonic()
    page = run_query(cluster)
    took_s = time.monotonic() - started
    assert page["stats"]["state"] == "FINISHED" and "error" not in page, page.get("error")
    assert took_s < HEALTHY_WITHIN_S, f"a normal query took {took_s:.2f} s after the attack"


def active_worker_ids(cluster, rm="rm-1"):
    _, nodes = http_json("GET", url(cluster, rm, "/v1/node"))
    return sorted(node["nodeId"] for node in nodes if node["nodeId"].startswith("worker"))


def summary(query_id, state="RUNNING", user="mallory"):
    return {"query_id": query_id, "group": "global.mallory", "state": state, "user": user, "source": None,
            "query": "SELECT 'forged'", "memory_bytes": 0, "created_wall_ms": 0, "error_name": None}


def forged_query_heartbeat(cluster):
    """The issue's heartbeat: coordinator-1 at sequence 2^64-1 with 1,000 RUNNING and 5,000 QUEUED."""
    queries = [summary(f"forged_{index}") for index in range(1000)]
    queries += [summary(f"forged_q{index}", state="QUEUED") for index in range(5000)]
    return {"coordinator_id": "coordinator-1", "coordinator_uri": url(cluster, "coordinator-1", ""),
            "sequence": 2**64 - 1, "queries": queries}


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------


def test_the_cluster_is_healthy_before_any_attack(cluster):
    assert_healthy(cluster)
    assert active_worker_ids(cluster) == ["worker-1", "worker-2"]


@pytest.mark.parametrize("case", ["missing", "foreign secret", "expired", "alg none", "garbage"])
def test_a_forged_query_heartbeat_is_refused_whatever_its_token(cluster, case):
    headers = {
        "missing": {},
        "foreign secret": internal_headers("coordinator-1", secret="another cluster's shared secret"),
        "expired": internal_headers("coordinator-1", now_s=int(time.time()) - 3600),
        "alg none": {"X-Presto-Internal-Bearer": "eyJhbGciOiJub25lIn0."
                     + internal_token("coordinator-1").split(".")[1] + "."},
        "garbage": {"X-Presto-Internal-Bearer": "not a token"},
    }[case]
    status, text = send("POST", url(cluster, "rm-1", "/v1/resourcemanager/queryHeartbeat"),
                        forged_query_heartbeat(cluster), headers)
    assert status == 401, text
    # Nothing of it was applied: no forged query is listed, real queries are admitted.
    _, listed = http_json("GET", url(cluster, "rm-1", "/v1/query"))
    assert not [query for query in listed if query["queryId"].startswith("forged")]
    assert_healthy(cluster)


def test_an_insider_cannot_speak_for_another_node(cluster):
    """A token names its node: one signed as `worker-1` does not carry coordinator-1's heartbeat."""
    status, text = send("POST", url(cluster, "rm-1", "/v1/resourcemanager/queryHeartbeat"),
                        forged_query_heartbeat(cluster), internal_headers("worker-1"))
    assert status == 403, text
    assert_healthy(cluster)


def test_refusals_are_counted_and_logged_once_per_source(cluster):
    for _ in range(20):
        assert send("GET", url(cluster, "rm-2", "/v1/resourcemanager/clusterView"))[0] == 401
    with urllib.request.urlopen(url(cluster, "rm-2", "/metrics"), timeout=5) as response:
        metrics = response.read().decode()
    counted = [line for line in metrics.splitlines()
               if line.startswith('fireball_internal_auth_failures_total{reason="missing"}')]
    assert counted and float(counted[0].split()[-1]) >= 20, counted
    stderr = pathlib.Path(cluster.stderr_path).read_text(errors="replace")
    refusals = [line for line in stderr.splitlines() if "refused an unauthenticated internal request" in line]
    # One line per node that refused anything (all requests come from 127.0.0.1), not one per request.
    assert 1 <= len(refusals) <= 6, "\n".join(refusals[:10])


# ---------------------------------------------------------------------------------------------
# Fake nodes
# ---------------------------------------------------------------------------------------------


def test_a_fake_worker_gets_no_tasks(cluster):
    fake = {"node_id": "worker-evil", "role": "worker", "uri": "http://127.0.0.1:9",
            "memory": {"pool_bytes": 1 << 40, "reserved_bytes": 0, "blocked": False, "query_reservations": {}},
            "cpu": {"processors": 64, "running_tasks": 0, "blocked_tasks": 0}}
    for rm in ("rm-1", "rm-2"):
        status, _ = send("POST", url(cluster, rm, "/v1/resourcemanager/nodeHeartbeat"), fake)
        assert status == 401
        status, _ = send("POST", url(cluster, rm, "/v1/announcement/worker-evil"),
                         {"node_id": "worker-evil", "role": "worker", "uri": "http://127.0.0.1:9",
                          "environment": "fireball"})
        assert status == 401
    assert active_worker_ids(cluster) == ["worker-1", "worker-2"]
    assert_healthy(cluster)


def test_a_blocked_node_report_cannot_get_a_query_killed(cluster):
    """The issue's heartbeat claiming a blocked node holding 1 GB for a query."""
    fake = {"node_id": "worker-1", "role": "worker", "uri": url(cluster, "worker-1", ""),
            "memory": {"pool_bytes": 1 << 30, "reserved_bytes": 1 << 30, "blocked": True,
                       "query_reservations": {"victim": 1 << 30}},
            "cpu": {"processors": 2, "running_tasks": 1, "blocked_tasks": 1}}
    status, _ = send("POST", url(cluster, "rm-1", "/v1/resourcemanager/nodeHeartbeat"), fake)
    assert status == 401
    assert_healthy(cluster)


def test_a_fake_resource_manager_is_not_admitted(cluster):
    announcement = {"node_id": "rm-evil", "role": "resource_manager", "uri": "http://127.0.0.1:9",
                    "environment": "fireball"}
    status, _ = send("POST", url(cluster, "rm-1", "/v1/announcement/rm-evil"), announcement)
    assert status == 401
    # Even with the secret, RM membership is discovery-server.peers, not an announcement.
    status, text = send("POST", url(cluster, "rm-1", "/v1/announcement/rm-evil"), announcement,
                        internal_headers("rm-evil"))
    assert status == 403 and "discovery-server.peers" in text, text
    replicated = {"from_node_id": "rm-2", "entries": [{"announcement": announcement, "remaining_ms": 30000}]}
    status, _ = send("POST", url(cluster, "rm-1", "/v1/discovery/replicate"), replicated, internal_headers("rm-2"))
    assert status == 200
    _, managers = http_json("GET", url(cluster, "rm-1", "/v1/service/resource_manager"), headers=internal_headers("t"))
    assert sorted(service["node_id"] for service in managers["services"]) == ["rm-1", "rm-2"]
    assert_healthy(cluster)


def test_workers_cannot_be_announced_away(cluster):
    for worker in ("worker-1", "worker-2"):
        body = {"node_id": worker, "role": "worker", "uri": url(cluster, worker, ""), "environment": "fireball",
                "state": "SHUTTING_DOWN"}
        for _ in range(5):
            status, _ = send("POST", url(cluster, "rm-1", f"/v1/announcement/{worker}"), body)
            assert status == 401
    assert_healthy(cluster)


def test_a_node_without_the_secret_cannot_join(cluster, tmp_path):
    """A worker started without internal-communication.shared-secret announces and heartbeats in
    vain: the RMs never list it."""
    binary = os.environ["FIREBALL_BIN"]
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "node.properties").write_text("node.environment=fireball\nnode.id=worker-stray\n")
    rms = ",".join(url(cluster, rm, "") for rm in ("rm-1", "rm-2"))
    (etc / "config.properties").write_text(
        "coordinator=false\nresource-manager-enabled=true\nhttp-server.http.port=0\n"
        f"http-server.bind-address=127.0.0.1\ndiscovery.uri={rms}\ndiscovery.announce-interval=200ms\n"
        "resource-manager.node-heartbeat-interval=200ms\nmemory.pool-size=1GB\n")
    with open(tmp_path / "stray.log", "wb") as log:
        stray = subprocess.Popen([binary, "server", "--etc", str(etc)], stdout=log, stderr=log)
    try:
        time.sleep(2)
        assert stray.poll() is None, "the stray worker runs (it is refused, not crashed)"
        assert active_worker_ids(cluster, "rm-1") == ["worker-1", "worker-2"]
        assert active_worker_ids(cluster, "rm-2") == ["worker-1", "worker-2"]
    finally:
        stop(stray)
    assert_healthy(cluster)


# ---------------------------------------------------------------------------------------------
# Tasks and node state
# ---------------------------------------------------------------------------------------------


def test_tasks_cannot_be_created_or_deleted_without_the_secret(cluster):
    task = {"query_id": "hog", "coordinator_id": "coordinator-1", "task_index": 0, "run_time_ms": 10**11,
            "memory_bytes": 8 << 30, "first_row": 0, "row_count": 1}
    for worker in ("worker-1", "worker-2"):
        status, _ = send("POST", url(cluster, worker, "/v1/task/hog.0"), task)
        assert status == 401
        status, _ = send("DELETE", url(cluster, worker, "/v1/task/hog.0"))
        assert status == 401
        status, _ = send("GET", url(cluster, worker, "/v1/task/hog.0/results"))
        assert status == 401
    assert_healthy(cluster)


def test_a_task_is_taken_only_from_the_coordinator_it_names(cluster):
    task = {"query_id": "hog", "coordinator_id": "coordinator-1", "task_index": 0, "run_time_ms": 10,
            "memory_bytes": 1, "first_row": 0, "row_count": 1}
    status, text = send("POST", url(cluster, "worker-1", "/v1/task/hog.1"), task, internal_headers("coordinator-2"))
    assert status == 403, text


@pytest.mark.parametrize("node", ["rm-1", "coordinator-2", "worker-2"])
def test_nodes_cannot_be_stopped_without_the_secret(cluster, node):
    status, _ = send("PUT", url(cluster, node, "/v1/info/state"), b'"SHUTTING_DOWN"')
    assert status == 401
    _, state = http_json("GET", url(cluster, node, "/v1/info/state"))
    assert state == "ACTIVE"
    assert_healthy(cluster)


# ---------------------------------------------------------------------------------------------
# The RM fetches only URIs it knows
# ---------------------------------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):  # noqa: N802 - the http.server API
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"secret": "internal page"}')

    def log_message(self, *args):
        pass


def test_the_rm_never_fetches_a_uri_from_a_heartbeat(cluster):
    """Even a heartbeat signed with the secret (an insider) cannot point the RM at another URL:
    the RM proxies /v1/query/{id} only to coordinators that announced themselves."""
    server = http.server.ThreadingHTTPServer((HOST, 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        elsewhere = f"http://{HOST}:{server.server_address[1]}"
        heartbeat = {"coordinator_id": "coordinator-9", "coordinator_uri": elsewhere, "sequence": 1,
                     "queries": [summary("ssrf_probe")]}
        status, text = send("POST", url(cluster, "rm-1", "/v1/resourcemanager/queryHeartbeat"), heartbeat,
                            internal_headers("coordinator-9"))
        assert status == 200, text
        status, text = send("GET", url(cluster, "rm-1", "/v1/query/ssrf_probe"))
        assert status == 404, text
        assert "internal page" not in text
        assert _Recorder.hits == []
    finally:
        server.shutdown()
    assert_healthy(cluster)


def test_the_secret_is_not_printed_by_the_nodes(cluster):
    stderr = pathlib.Path(cluster.stderr_path).read_text(errors="replace")
    stdout = pathlib.Path(cluster.stdout_path).read_text(errors="replace")
    assert SHARED_SECRET not in stderr and SHARED_SECRET not in stdout


# ---------------------------------------------------------------------------------------------
# Slow and large bodies
# ---------------------------------------------------------------------------------------------

# The attack: 1,030 connections (more than a node serves at once) that send a request head
# announcing a body and then nothing.
SILENT_CONNECTIONS = 1030
BODY_READ_TIMEOUT_S = 10


def test_clients_that_never_send_their_body_get_408_and_let_go(cluster):
    import socket

    port = cluster.coordinator_ports[1]
    head = (f"POST /v1/statement HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Presto-User: slow\r\n"
            "Content-Length: 10\r\n\r\n").encode()
    sockets = []
    try:
        for _ in range(SILENT_CONNECTIONS):
            connection = socket.create_connection((HOST, port), timeout=BODY_READ_TIMEOUT_S + 20)
            connection.sendall(head)
            sockets.append(connection)
        started = time.monotonic()
        # The first ones (served at once) are answered 408 when the body timeout passes.
        answer = sockets[0].recv(200).decode(errors="replace")
        waited_s = time.monotonic() - started
        assert answer.startswith("HTTP/1.1 408"), answer
        assert waited_s < BODY_READ_TIMEOUT_S + 5, waited_s
        # And the coordinator answers real clients again promptly, the silent sockets still open.
        deadline = time.monotonic() + BODY_READ_TIMEOUT_S + 10
        while True:
            try:
                page = run_query(cluster, coordinator="coordinator-2")
                assert page["stats"]["state"] == "FINISHED", page
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, "coordinator-2 never answered again"
    finally:
        for connection in sockets:
            connection.close()
    started = time.monotonic()
    page = run_query(cluster, coordinator="coordinator-2")
    assert page["stats"]["state"] == "FINISHED" and time.monotonic() - started < HEALTHY_WITHIN_S


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(cluster):
    status, text = send("POST", url(cluster, "coordinator-1", "/v1/statement"), b"x" * (3 * 1024 * 1024),
                        {"X-Presto-User": "big"})
    assert status == 413, text
    assert_healthy(cluster)


# ---------------------------------------------------------------------------------------------
# Query ownership (etc/access-control.properties; the harness's rules let OPERATOR see all)
# ---------------------------------------------------------------------------------------------


def test_a_user_can_neither_see_nor_kill_another_users_query(cluster):
    """Before: any user could list every user's SQL and kill any query with his own message.
    Now mallory gets 403 on alice's query, on its owner and through the other coordinator and
    an RM, and her lists leave it out; alice and the operator (an access rule) still see it."""
    sql = "SELECT * FROM synthetic(run_time => '20s', tasks => 1, rows => 1)"
    _, page = http_json("POST", url(cluster, "coordinator-1", "/v1/statement"), body=sql.encode(),
                        headers={"X-Presto-User": "alice"})
    query_id = page["id"]
    mallory = {"X-Presto-User": "mallory"}
    try:
        for node in ("coordinator-1", "coordinator-2"):
            status, text = send("GET", url(cluster, node, f"/v1/query/{query_id}"), headers=mallory)
            assert status == 403, (node, status, text)
            status, text = send("PUT", url(cluster, node, f"/v1/query/{query_id}/killed"), b"pwned", mallory)
            assert (status, "Access Denied: Cannot kill query owned by alice" in text) == (403, True), (node, text)
            status, _ = send("DELETE", url(cluster, node, f"/v1/query/{query_id}"), headers=mallory)
            assert status == 403, node
        for node in ("coordinator-2", "rm-1"):
            _, listed = http_json("GET", url(cluster, node, "/v1/query"), headers=mallory)
            assert query_id not in [query["queryId"] for query in listed], node
        status, anonymous = send("GET", url(cluster, "rm-1", "/v1/query"))
        assert (status, json.loads(anonymous)) == (200, []), "no user named: nobody's queries"
        _, info = http_json("GET", url(cluster, "coordinator-2", f"/v1/query/{query_id}"), headers={"X-Presto-User": "alice"})
        assert info["state"] in ("QUEUED", "RUNNING"), "mallory's kill did not take"
        _, listed = http_json("GET", url(cluster, "rm-1", "/v1/query"))  # as the operator
        assert query_id in [query["queryId"] for query in listed]
    finally:
        status, _ = send("DELETE", url(cluster, "coordinator-2", f"/v1/query/{query_id}"), headers={"X-Presto-User": "alice"})
        assert status == 204, "the owner cancels his own query, through another coordinator"
    assert_healthy(cluster)


# ---------------------------------------------------------------------------------------------
# Connection floods
# ---------------------------------------------------------------------------------------------

IDLE_CONNECTIONS = 2_000
# The per-address test runs its own RM with this fd limit: a budget of 3/4 of it (768), at most a
# quarter of that (192) from one address.
SMALL_FD_LIMIT = 1_024
SMALL_PER_ADDRESS_MAX = SMALL_FD_LIMIT * 3 // 4 // 4


def open_idle(port, count):
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=5)
        sockets.append(sock)
    return sockets


def test_thousands_of_idle_connections_neither_lock_out_nor_stay(cluster):
    """Before: 1,024 connections were served at once and the rest waited in the backlog — with
    1,100 idle connections open to an RM a new request timed out. Now 2,000 idle connections
    leave the RM answering at once, and a connection that sends nothing is closed by the
    header timeout (10 s)."""
    port = cluster.base_port + 100
    sockets = open_idle(port, IDLE_CONNECTIONS)
    try:
        time.sleep(1)  # let the accept loop take them all from the listen backlog
        started = time.monotonic()
        status, _ = http_json("GET", url(cluster, "rm-1", "/v1/info"))
        assert status == 200 and time.monotonic() - started < HEALTHY_WITHIN_S
        assert_healthy(cluster)
        time.sleep(12)
        closed = 0
        for sock in sockets[:: IDLE_CONNECTIONS // 20]:
            sock.settimeout(2)
            try:
                closed += sock.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 0
        assert closed == 20, f"only {closed} of 20 idle connections were closed by the server"
    finally:
        for sock in sockets:
            sock.close()


def test_one_address_cannot_take_every_connection(tmp_path):
    """Connections past one address's share are answered 503 (not left hanging in the backlog),
    and the node still answers once they are gone. A lone RM with a small fd limit keeps the
    numbers small."""
    binary = os.environ["FIREBALL_BIN"]
    port = free_port()
    etc = write_server_etc(tmp_path / "rm", "rm-1", "resource-manager", port, [f"http://{HOST}:{port}"],
                           f"internal-communication.shared-secret={SHARED_SECRET}\n")
    limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (SMALL_FD_LIMIT, SMALL_FD_LIMIT))  # noqa: E731
    with open(tmp_path / "rm.log", "wb") as log:
        process = subprocess.Popen([binary, "server", "--etc", str(etc)], stdout=log, stderr=log, preexec_fn=limit)
    sockets = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if http_json("GET", f"http://{HOST}:{port}/v1/info")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        sockets = open_idle(port, SMALL_PER_ADDRESS_MAX + 8)
        # The server accepts in the order connections arrived; the ones past the share are
        # answered 503 and closed, at once and whatever else is open.
        refused = 0
        for sock in sockets[SMALL_PER_ADDRESS_MAX:]:
            sock.settimeout(5)
            refused += sock.recv(200).startswith(b"HTTP/1.1 503")
        assert refused == 8, f"{refused} of the 8 connections over the share were answered 503"
        for sock in sockets:
            sock.close()
        sockets = []
        time.sleep(0.5)
        status, _ = http_json("GET", f"http://{HOST}:{port}/v1/info")
        assert status == 200
        log_text = (tmp_path / "rm.log").read_text()
        assert f"connections_max={SMALL_FD_LIMIT * 3 // 4} per_address_max={SMALL_PER_ADDRESS_MAX}" in log_text, log_text
    finally:
        for sock in sockets:
            sock.close()
        stop(process)
