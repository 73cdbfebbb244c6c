"""`fireball cli` against a real cluster: aligned and CSV output, a failing statement's message
and exit status, statements from standard input, and Ctrl-C cancelling the running query on the
server (its state there is checked, not just the client's exit)."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sql_support import HOST, start_cluster  # noqa: E402
from harness import http_json  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from start_cluster(tmp_path_factory)


def _cli(cluster, *args, stdin=None):
    command = [os.environ["FIREBALL_BIN"], "cli", "--server", f"http://{HOST}:{cluster.coordinator_ports[0]}",
               "--catalog", "tpch", "--schema", "tiny", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)


def test_aligned_output_is_a_table_with_a_row_count(cluster):
    result = _cli(cluster, "--execute", "SELECT nationkey, name FROM nation ORDER BY nationkey LIMIT 2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        " nationkey |   name",
        "-----------+-----------",
        "         0 | ALGERIA",
        "         1 | ARGENTINA",
        "(2 rows)",
    ]


def test_csv_output_and_several_statements(cluster):
    result = _cli(cluster, "--output-format", "CSV", "--execute", "SELECT regionkey, name FROM region ORDER BY 1 LIMIT 2; SELECT 'x'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['"0","AFRICA"', '"1","AMERICA"', '"x"']


def test_a_failing_statement_prints_prestos_message_and_exits_non_zero(cluster):
    result = _cli(cluster, "--execute", "SELECT nosuch FROM nation")
    assert result.returncode == 1
    assert "failed: line 1:8: Column 'nosuch' cannot be resolved" in result.stderr, result.stderr


def test_statements_from_standard_input_go_on_after_a_failure(cluster):
    result = _cli(cluster, stdin="SELECT count(*) FROM nosuch;\nSELECT count(*)\nFROM nation;\n")
    assert "Table 'tpch.tiny.nosuch' does not exist" in result.stderr, result.stderr
    assert result.stdout.splitlines()[-2:] == ["    25", "(1 row)"], result.stdout


def test_ctrl_c_cancels_the_running_query_on_the_server(cluster):
    port = cluster.coordinator_ports[0]
    command = [os.environ["FIREBALL_BIN"], "cli", "--server", f"http://{HOST}:{port}", "--execute",
               "SELECT * FROM synthetic(run_time => '60s', memory => '1MB', tasks => 2, rows => 1)"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        running = []
        while time.monotonic() < deadline and not running:
            _, queries = http_json("GET", f"http://{HOST}:{port}/v1/query")
            running = [q for q in queries if "synthetic" in q["query"] and q["state"] == "RUNNING"]
            time.sleep(0.2)
        assert running, "the query never ran"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "was cancelled" in stderr
    _, info = http_json("GET", f"http://{HOST}:{port}/v1/query/{running[0]['queryId']}")
    assert info["state"] == "FAILED" and info["errorCode"]["name"] == "USER_CANCELED", info
