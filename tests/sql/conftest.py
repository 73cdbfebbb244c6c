"""The per-test guard for tests/sql; each module provides the module-scoped `cluster` fixture."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sql_support import TEST_TIMEOUT_S, time_limit  # noqa: E402


@pytest.fixture(autouse=True)
def _guard_each_test(cluster, request, capsys):
    """Bounds each test's run time; shows the cluster's output for a failing test."""
    log_sizes = cluster.log_sizes()
    failed_before = request.session.testsfailed
    with time_limit(TEST_TIMEOUT_S):
        yield
    if request.session.testsfailed > failed_before:
        with capsys.disabled():
            print(f"\n===== fireball output during {request.node.nodeid} =====")
            print(cluster.logs(since=log_sizes))
