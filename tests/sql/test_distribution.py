"""Where a SQL query's work runs: its scans are leaf tasks on the workers, spread over all of
them, and the coordinator runs only the stage above (nothing of stage 1 on it).

Read from `GET /v1/query/{id}`: `outputStage` is stage 0 (on the coordinator that owns the query)
and its `subStages[0].tasks` are the leaf tasks, each with the node it ran on.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sql_support import HOST, http_query, start_cluster  # noqa: E402
from harness import http_json  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from start_cluster(tmp_path_factory)


def _query_info(port, sql):
    columns, rows, page = http_query(port, sql)
    assert "error" not in page, page.get("error")
    _, info = http_json("GET", f"http://{HOST}:{port}/v1/query/{page['id']}")
    return rows, page, info


def test_leaf_tasks_run_on_every_worker_and_none_on_the_coordinator(cluster):
    port = cluster.coordinator_ports[0]
    rows, page, info = _query_info(port, "SELECT count(*) FROM lineitem WHERE quantity > 10")
    assert rows[0][0] > 0
    _, nodes, _ = http_query(port, "SELECT node_id, coordinator FROM system.runtime.nodes")
    workers = {node for node, coordinator in nodes if not coordinator}
    coordinators = {node for node, coordinator in nodes if coordinator}
    assert len(workers) == 2, nodes

    stage = info["outputStage"]
    assert stage["nodeId"] in coordinators
    tasks = stage["subStages"][0]["tasks"]
    placed = {task["nodeId"] for task in tasks}
    assert placed == workers, f"leaf tasks ran on {placed}, the workers are {workers}"
    assert not placed & coordinators
    assert all(task["state"] == "FINISHED" for task in tasks), tasks
    # Every split was a task, and the protocol's split counts say so.
    assert info["queryStats"]["totalTasks"] == len(tasks) >= len(workers)
    assert page["stats"]["completedSplits"] == len(tasks)


def test_a_small_table_is_one_split(cluster):
    port = cluster.coordinator_ports[0]
    _, _, info = _query_info(port, "SELECT count(*) FROM region")
    assert len(info["outputStage"]["subStages"][0]["tasks"]) == 1


def test_a_constant_select_runs_no_task(cluster):
    port = cluster.coordinator_ports[0]
    _, _, info = _query_info(port, "SELECT 1 + 1")
    assert info["outputStage"]["subStages"][0]["tasks"] == []


def _explain(port, sql):
    _, rows, page = http_query(port, f"EXPLAIN {sql}")
    assert "error" not in page, page.get("error")
    return "\n".join(str(row[1]) for row in rows)


def test_an_aggregation_over_one_table_is_computed_partially_on_the_workers(cluster):
    """The coordinator's plan merges the leaf tasks' partial aggregates (`TableScan: partial`)
    instead of scanning lineitem itself; its result is checked against DuckDB by ci/tpch (Q1)."""
    port = cluster.coordinator_ports[0]
    plan = _explain(port, "SELECT returnflag, sum(quantity), avg(discount), count(*) FROM lineitem GROUP BY returnflag")
    assert "TableScan: partial" in plan, plan
    assert "TableScan: lineitem" not in plan, plan
    # An aggregation over a join is not (the join runs on the coordinator): the scans come up.
    plan = _explain(port, "SELECT count(*) FROM orders JOIN customer ON orders.custkey = customer.custkey")
    assert "TableScan: partial" not in plan and "TableScan: orders" in plan, plan


def _reserved_bytes(port):
    _, cluster_info = http_json("GET", f"http://{HOST}:{port}/v1/cluster")
    return cluster_info["reservedMemory"]


def test_cancelling_a_scan_frees_every_workers_memory(cluster):
    """A big scan holds memory on the workers (its output pages are reserved); a client's cancel
    stops its leaf tasks and frees all of it, as the RMs' view of the workers shows."""
    import time

    port = cluster.coordinator_ports[0]
    headers = {"X-Presto-User": "cancel-test", "X-Presto-Catalog": "tpch", "X-Presto-Schema": "sf1"}
    _, page = http_json("POST", f"http://{HOST}:{port}/v1/statement", body=b"SELECT * FROM lineitem", headers=headers)
    deadline = time.monotonic() + 60
    while _reserved_bytes(port) == 0:
        assert time.monotonic() < deadline, "the scan never reserved memory on a worker"
        if "nextUri" in page:
            _, page = http_json("GET", page["nextUri"], timeout_s=10)
        time.sleep(0.2)
    assert "nextUri" in page, page
    http_json("DELETE", page["nextUri"])
    deadline = time.monotonic() + 20
    while _reserved_bytes(port) != 0:
        assert time.monotonic() < deadline, f"{_reserved_bytes(port)} bytes still reserved 20 s after the cancel"
        time.sleep(0.2)
    _, info = http_json("GET", f"http://{HOST}:{port}/v1/query/{page['id']}")
    assert info["state"] == "FAILED" and info["errorCode"]["name"] == "USER_CANCELED", info
