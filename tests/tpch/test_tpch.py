"""The 22 TPC-H queries through unmodified Presto clients, checked against the DuckDB oracle.

Each query in tests/tpch/queries runs through prestodb (presto-python-client) and trino, with
catalog `tpch` and schema `tiny` (override with TPCH_SCHEMA, e.g. sf1, when
tests/tpch/expected/sf1 exists), and its result is compared by compare.py with
tests/tpch/expected/sf0.01/qNN.json: columns, types, values within 1e-9, and order where the
query's ORDER BY defines it. A failure's test id names the query and the client
(`test_tpch_query[q07-trino]`).

Where the cluster comes from:
  * FIREBALL_URL set (e.g. http://127.0.0.1:8080): that coordinator, already running.
  * otherwise FIREBALL_BIN: a `fireball local` started for this module, as tests/clients does
    (tests/support/harness.py). Run through `ci/tpch`, which pins the versions and sets it.
"""

import json
import os
import pathlib
import sys
import urllib.parse

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "support"))
from compare import compare  # noqa: E402
import dbapi  # noqa: E402
from harness import HOST, ClusterStartError, start_local_cluster, stop, time_limit  # noqa: E402

STARTUP_TIMEOUT_S = 60
# Per query and client; generous because a debug build of the engine may be slow, but a hang
# must still fail rather than stall CI.
QUERY_TIMEOUT_S = 120
# The clients' own HTTP timeout per request (each long-poll), below the per-query limit.
REQUEST_TIMEOUT_S = 60

SCHEMA = os.environ.get("TPCH_SCHEMA", "tiny")
EXPECTED_DIR = HERE / "expected" / ("sf0.01" if SCHEMA == "tiny" else SCHEMA)
QUERY_NAMES = sorted(path.stem for path in (HERE / "queries").glob("q*.sql"))


class Endpoint:
    def __init__(self, host, port, scheme="http", cluster=None):
        self.host = host
        self.port = port
        self.scheme = scheme
        self.cluster = cluster  # a harness.Cluster when this module started it, else None


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    url = os.environ.get("FIREBALL_URL")
    if url:
        parsed = urllib.parse.urlsplit(url)
        if not parsed.hostname or not parsed.port:
            pytest.fail(f"FIREBALL_URL must look like http://HOST:PORT (got {url!r})")
        yield Endpoint(parsed.hostname, parsed.port, parsed.scheme or "http")
        return
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(
            f"set FIREBALL_URL, or FIREBALL_BIN to the fireball binary (got {binary!r}); run ci/tpch"
        )
    try:
        cluster = start_local_cluster(binary, tmp_path_factory.mktemp("fireball-local"), STARTUP_TIMEOUT_S)
    except ClusterStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield Endpoint(HOST, cluster.coordinator_ports[0], cluster=cluster)
    finally:
        stop(cluster.process)


@pytest.fixture(autouse=True)
def _guard_each_test(endpoint, request, capsys):
    """Bounds each query's run time; shows the cluster's output (when we started it) on failure."""
    cluster = endpoint.cluster
    log_sizes = cluster.log_sizes() if cluster else None
    failed_before = request.session.testsfailed
    with time_limit(QUERY_TIMEOUT_S):
        yield
    if cluster and request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== fireball output during {request.node.nodeid} =====")
            print(cluster.logs(since=log_sizes))


CLIENTS = {
    name: (
        lambda endpoint, name=name: dbapi.connect(
            name, endpoint.host, endpoint.port, f"tpch-{name}", schema=SCHEMA, scheme=endpoint.scheme, timeout_s=REQUEST_TIMEOUT_S
        )
    )
    for name in ("prestodb", "trino")
}


def _run(connect, endpoint, sql):
    return dbapi.run(connect(endpoint), sql)


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("query", QUERY_NAMES)
def test_tpch_query(endpoint, query, client):
    expected_path = EXPECTED_DIR / f"{query}.json"
    if not expected_path.exists():
        pytest.skip(f"no {expected_path}: generate it with tests/tpch/oracle.py")
    expected = json.loads(expected_path.read_text())
    sql = (HERE / "queries" / f"{query}.sql").read_text().strip()

    columns, types, rows = _run(CLIENTS[client], endpoint, sql)

    differences = compare(expected, columns, rows, expected["ordered"], actual_types=types)
    assert not differences, (
        f"{query} through {client}: {len(differences)} differences from {expected_path.name}\n  "
        + "\n  ".join(differences)
    )
