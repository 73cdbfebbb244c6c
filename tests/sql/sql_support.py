"""Shared by tests/sql: starting a `fireball local` for a module (tests/support/harness.py), and
the bare protocol (POST /v1/statement, follow nextUri) for looking at error JSON as the server sent
it. Each module defines its own module-scoped `cluster` fixture with start_cluster(), so that each
starts one cluster with its own properties; conftest.py's per-test guard picks that fixture up.
"""

import os
import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from harness import HOST, ClusterStartError, http_json, start_local_cluster, stop, time_limit  # noqa: E402

STARTUP_TIMEOUT_S = 60
# Per test; generous for a debug build, but a hang must fail rather than stall CI.
TEST_TIMEOUT_S = 120
# The clients' own HTTP timeout per request (each long-poll), below the per-test limit.
REQUEST_TIMEOUT_S = 60


def start_cluster(tmp_path_factory, extra_args=()):
    """A ready `fireball local` (harness.Cluster) from FIREBALL_BIN; fails the module otherwise.

    Use as `yield from start_cluster(...)` in a module-scoped fixture: the cluster is stopped when
    the module is done.
    """
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/tpch")
    try:
        cluster = start_local_cluster(
            binary, tmp_path_factory.mktemp("fireball-local"), STARTUP_TIMEOUT_S, extra_args=extra_args
        )
    except ClusterStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        stop(cluster.process)


def http_query(port, sql, catalog="tpch", schema="tiny", timeout_s=REQUEST_TIMEOUT_S):
    """Runs `sql` with the bare Presto protocol; returns (columns, rows, last page).

    The last page carries `error` (errorName, errorLocation, ...) for a failed query.
    """
    deadline = time.monotonic() + timeout_s
    headers = {"X-Presto-User": "sql-tests-http", "X-Presto-Catalog": catalog, "X-Presto-Schema": schema}
    _, page = http_json(
        "POST", f"http://{HOST}:{port}/v1/statement", body=sql.encode(), headers=headers, timeout_s=timeout_s
    )
    columns, rows = page.get("columns"), list(page.get("data") or [])
    while "nextUri" in page:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sql!r} still {page['stats']['state']} after {timeout_s} s")
        _, page = http_json("GET", page["nextUri"], timeout_s=timeout_s)
        columns = columns or page.get("columns")
        rows.extend(page.get("data") or [])
    return columns, rows, page
