"""query.max-memory-per-node: a worker's leaf tasks reserve their output pages in the worker's
memory pool, so a scan whose pages exceed the per-node limit fails with
EXCEEDED_LOCAL_MEMORY_LIMIT, while a small query on the same cluster still runs.

Its own cluster (a property for every node), hence its own module. 1MB: all of tpch.tiny.lineitem
(60,175 rows, all 16 columns) is over it on each of the 2 workers; nation (25 rows) and
count(*) over lineitem (no columns to carry) are far below it.
"""

import pathlib
import sys

import pytest
import trino

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sql_support import HOST, REQUEST_TIMEOUT_S, http_query, start_cluster  # noqa: E402

LIMIT = "1MB"
BIG_SCAN = "SELECT * FROM tpch.tiny.lineitem"
EXCEEDED_LOCAL_MEMORY_LIMIT = ("EXCEEDED_LOCAL_MEMORY_LIMIT", 131079, "INSUFFICIENT_RESOURCES")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from start_cluster(tmp_path_factory, ("--property", f"query.max-memory-per-node={LIMIT}"))


@pytest.fixture(scope="module")
def port(cluster):
    return cluster.coordinator_ports[0]


def _trino_run(port, sql):
    connection = trino.dbapi.connect(
        host=HOST, port=port, user="sql-tests-memory", http_scheme="http", request_timeout=REQUEST_TIMEOUT_S
    )
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        connection.close()


def _assert_small_queries_run(port):
    assert _trino_run(port, "SELECT count(*) FROM tpch.tiny.nation") == [[25]]
    assert _trino_run(port, "SELECT count(*) FROM tpch.tiny.lineitem") == [[60175]]


def test_small_queries_run_under_the_limit(port):
    _assert_small_queries_run(port)


def test_big_scan_exceeds_local_memory_limit_through_trino(port):
    with pytest.raises(trino.exceptions.TrinoQueryError) as raised:
        _trino_run(port, BIG_SCAN)
    error = raised.value
    assert (error.error_name, error.error_code, error.error_type) == EXCEEDED_LOCAL_MEMORY_LIMIT, repr(error)
    assert f"per-node user memory limit of {LIMIT}" in error.message, error.message
    _assert_small_queries_run(port)


def test_big_scan_exceeds_local_memory_limit_through_http(port):
    _, rows, page = http_query(port, BIG_SCAN)
    error = page.get("error") or {}
    got = (error.get("errorName"), error.get("errorCode"), error.get("errorType"))
    assert page["stats"]["state"] == "FAILED" and got == EXCEEDED_LOCAL_MEMORY_LIMIT, (
        f"{BIG_SCAN}: state {page['stats']['state']}, {len(rows)} rows, error {error}"
    )
    _assert_small_queries_run(port)


def test_failed_scans_release_their_memory(port):
    """Reservations of a failed query go back to the pool: repeated failures do not make the
    small queries fail afterwards."""
    for _ in range(3):
        with pytest.raises(trino.exceptions.TrinoQueryError) as raised:
            _trino_run(port, BIG_SCAN)
        assert raised.value.error_name == "EXCEEDED_LOCAL_MEMORY_LIMIT", repr(raised.value)
    _assert_small_queries_run(port)


def test_the_coordinators_operators_are_held_to_the_limit_too(port):
    """A sort runs on the coordinator, over leaf pages each under the limit: its own buffer passes
    1MB and fails the query the same way (spilling is off, as Presto's default)."""
    with pytest.raises(trino.exceptions.TrinoQueryError) as raised:
        _trino_run(port, "SELECT orderkey, comment FROM tpch.tiny.orders ORDER BY comment")
    assert raised.value.error_name == "EXCEEDED_LOCAL_MEMORY_LIMIT", repr(raised.value)
    assert "ExternalSorter" in raised.value.message, raised.value.message
    _assert_small_queries_run(port)
