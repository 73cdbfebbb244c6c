"""Helpers shared by the Python client tests (tests/clients, tests/lb): stopping the processes
they start and bounding each test's run time. Standard library only; each test puts this
directory on sys.path before importing it (pytest's default import mode only adds the test's
own directory).
"""

import contextlib
import signal
import subprocess

STOP_TIMEOUT_S = 10


def stop(process):
    """SIGTERM, then SIGKILL if the process has not exited within STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def time_limit(seconds):
    """Raises TimeoutError in the body once `seconds` have passed (SIGALRM: main thread only).

    The clients long-poll and retry on their own, so a server bug tends to show up as a hang;
    this turns it into a failure.
    """

    def on_timeout(signum, frame):
        raise TimeoutError(f"test did not finish within {seconds} s")

    previous_handler = signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous_handler)
