"""Unmodified Presto Python clients against a real `fireball local` cluster.

The Rust tests check the protocol JSON field by field; this module checks that the clients people
actually use (presto-python-client as `prestodb`, and `trino`) accept it: they are strict about
details (nulls vs. omitted fields, type signatures, header dialects, error shapes) that are easy to
get subtly wrong. Run through `ci/clients`, which pins the client versions and sets FIREBALL_BIN.
"""

import os
import pathlib
import re
import sys
import threading
import time

import prestodb
import pytest
import trino

# tests/support (shared with the other client tests) is not on pytest's default sys.path.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from harness import HOST, ClusterStartError, start_local_cluster, time_limit  # noqa: E402
from harness import http_json as _http_json  # noqa: E402
from harness import stop as _stop  # noqa: E402

STARTUP_TIMEOUT_S = 60
# A hung query or a client that keeps following nextUri must fail the test, not hang CI.
TEST_TIMEOUT_S = 90
WORKER_ID = re.compile(r"^worker-\d+$")

SYNTHETIC_ARGS = "run_time => '500ms', memory => '10MB', tasks => 3, rows => 10"


# ---------------------------------------------------------------------------------------------
# Cluster fixture
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/clients")
    try:
        ready = start_local_cluster(binary, tmp_path_factory.mktemp("fireball-local"), STARTUP_TIMEOUT_S)
    except ClusterStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield ready
    finally:
        _stop(ready.process)


@pytest.fixture(autouse=True)
def _guard_each_test(cluster, request, capsys):
    """Bounds each test's run time and shows the cluster's output for a failing test.

    The clients long-poll and retry on their own, so a server bug tends to show up as a hang;
    SIGALRM turns that into a failure. The cluster's log for the test's time span is written
    straight to the terminal (capture disabled) because teardown output is otherwise hidden.
    """

    log_sizes = cluster.log_sizes()
    failed_before = request.session.testsfailed
    with time_limit(TEST_TIMEOUT_S):
        yield
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== fireball output during {request.node.nodeid} =====")
            print(cluster.logs(since=log_sizes))


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _prestodb_connect(port, user="alice"):
    return prestodb.dbapi.connect(
        host=HOST, port=port, user=user, catalog="system", schema="runtime", request_timeout=15
    )


def _trino_connect(port, user="bob"):
    return trino.dbapi.connect(host=HOST, port=port, user=user, http_scheme="http", request_timeout=15)


def _query_info(port, query_id):
    _, info = _http_json("GET", f"http://{HOST}:{port}/v1/query/{query_id}")
    return info


def _run(connect, port, sql):
    connection = connect(port)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall(), [column[0] for column in cursor.description]
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_prestodb_runs_synthetic_query(cluster):
    port = cluster.coordinator_ports[0]
    connection = _prestodb_connect(port)
    try:
        cursor = connection.cursor()
        cursor.execute(f"SELECT * FROM synthetic({SYNTHETIC_ARGS})")
        rows = cursor.fetchall()
        description = cursor.description
        query_id = cursor.stats["queryId"]
    finally:
        connection.close()

    assert [(column[0], column[1]) for column in description] == [
        ("task", "bigint"),
        ("row", "bigint"),
        ("worker", "varchar"),
    ]
    rows.sort(key=lambda row: row[1])
    assert [row[1] for row in rows] == list(range(10)), "every row exactly once"
    # 10 rows over 3 tasks: every task contributes, so losing a task's results shows up here.
    assert {row[0] for row in rows} == {0, 1, 2}
    assert all(WORKER_ID.match(row[2]) for row in rows), rows
    # The X-Presto-User header reached the coordinator, not just some default user.
    assert _query_info(port, query_id)["session"]["user"] == "alice"


def test_trino_runs_projection_on_second_coordinator(cluster):
    port = cluster.coordinator_ports[1]
    connection = _trino_connect(port)
    try:
        cursor = connection.cursor()
        cursor.execute(f"SELECT row, worker FROM synthetic({SYNTHETIC_ARGS})")
        rows = cursor.fetchall()
        description = cursor.description
        query_id = cursor.query_id
    finally:
        connection.close()

    assert [column[0] for column in description] == ["row", "worker"]
    rows.sort(key=lambda row: row[0])
    assert [row[0] for row in rows] == list(range(10)), "every row exactly once"
    assert all(WORKER_ID.match(row[1]) for row in rows), rows
    # The query lives on the coordinator the client talked to, with the X-Trino-User identity.
    assert _query_info(port, query_id)["session"]["user"] == "bob"


CLIENTS = [
    pytest.param(_prestodb_connect, id="prestodb"),
    pytest.param(_trino_connect, id="trino"),
]


@pytest.mark.parametrize("connect", CLIENTS)
def test_constant_selects(cluster, connect):
    port = cluster.coordinator_ports[0]
    assert _run(connect, port, "SELECT 1") == ([[1]], ["_col0"])
    assert _run(connect, port, "SELECT 'abc' AS s") == ([["abc"]], ["s"])


@pytest.mark.parametrize(
    "connect, user_error",
    [
        pytest.param(_prestodb_connect, prestodb.exceptions.PrestoUserError, id="prestodb"),
        pytest.param(_trino_connect, trino.exceptions.TrinoUserError, id="trino"),
    ],
)
def test_errors_surface_as_client_exceptions(cluster, connect, user_error):
    port = cluster.coordinator_ports[0]

    with pytest.raises(user_error) as syntax:
        _run(connect, port, "SELECT * FORM x")
    assert syntax.value.error_name == "SYNTAX_ERROR"
    assert syntax.value.error_type == "USER_ERROR"
    # Tools point at the offending token with this; the statement is a single line.
    line, column = syntax.value.error_location
    assert line == 1 and column >= 1

    with pytest.raises(user_error) as unsupported:
        _run(connect, port, "CREATE TABLE t (a int)")
    assert unsupported.value.error_name == "NOT_SUPPORTED"


def test_trino_cancel_fails_query_as_user_canceled(cluster):
    # trino's Cursor.execute() blocks until the first rows arrive, and a synthetic query yields
    # rows only when its tasks end, so execute() runs in a thread and the main thread cancels
    # through the same cursor (cursor.cancel() DELETEs the current nextUri, i.e. the statement
    # path, unlike prestodb which DELETEs /v1/query/{id}). prestodb would need the same thread:
    # its execute() blocks until the whole query has finished.
    port = cluster.coordinator_ports[0]
    connection = _trino_connect(port)
    cursor = connection.cursor()
    outcome = {}

    def execute():
        try:
            cursor.execute("SELECT * FROM synthetic(run_time => '30s', tasks => 1)")
            outcome["rows"] = cursor.fetchall()
        except Exception as error:  # noqa: BLE001 - inspected by the main thread
            outcome["error"] = error

    runner = threading.Thread(target=execute, name="trino-execute", daemon=True)
    started = time.monotonic()
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while cursor.query_id is None:
            assert runner.is_alive(), f"execute() ended before a query id was known: {outcome}"
            assert time.monotonic() < deadline, "no query id 10 s after execute()"
            time.sleep(0.02)
        query_id = cursor.query_id

        # Cancel a running query (tasks on a worker), not a queued one: that is the harder path.
        while _query_info(port, query_id)["state"] != "RUNNING":
            assert time.monotonic() < deadline, f"query not RUNNING: {_query_info(port, query_id)}"
            time.sleep(0.05)
        cursor.cancel()

        runner.join(timeout=10)
        assert not runner.is_alive(), "execute() still blocked 10 s after cancel()"
    finally:
        connection.close()
    assert time.monotonic() - started < 30, "the query ran to completion instead of being canceled"
    assert "rows" not in outcome or outcome["rows"] == [], outcome
    if "error" in outcome:
        # A long-poll in flight may see the failure before the client marks itself cancelled.
        error = outcome["error"]
        assert isinstance(error, trino.exceptions.TrinoUserError), repr(error)
        assert error.error_name == "USER_CANCELED"

    deadline = time.monotonic() + 5
    while True:
        info = _query_info(port, query_id)
        if info["state"] == "FAILED" and info.get("errorCode", {}).get("name") == "USER_CANCELED":
            break
        assert time.monotonic() < deadline, f"query not FAILED/USER_CANCELED 5 s after cancel: {info}"
        time.sleep(0.05)
