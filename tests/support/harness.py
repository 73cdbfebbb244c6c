"""Helpers shared by the Python client tests (tests/clients, tests/lb, tests/tpch): stopping the
processes they start, bounding each test's run time, and starting a `fireball local` cluster.
Standard library only; each test puts this directory on sys.path before importing it (pytest's
default import mode only adds the test's own directory).
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request

STOP_TIMEOUT_S = 10

HOST = "127.0.0.1"
# Offsets of the nodes of a 2-RM, 2-coordinator, 2-worker `fireball local` from its base port.
NODE_PORT_OFFSETS = (0, 1, 100, 101, 200, 201)


def free_port():
    """A TCP port on HOST that nothing listens on now (for a process the test starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tail(path, lines=60):
    """The last LINES lines of a log file, or why it cannot be read (for failure messages)."""
    try:
        with open(path, "rb") as file:
            text = file.read().decode("utf-8", "replace")
    except OSError as error:
        return f"({error})"
    return "\n".join(text.splitlines()[-lines:])


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


# ---------------------------------------------------------------------------------------------
# `fireball local`
# ---------------------------------------------------------------------------------------------


class ClusterStartError(RuntimeError):
    """`fireball local` did not become ready; the message carries each attempt's logs."""


class Cluster:
    def __init__(self, process, base_port, stdout_path, stderr_path):
        self.process = process
        self.base_port = base_port
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def coordinator_ports(self):
        return (self.base_port, self.base_port + 1)

    def log_sizes(self):
        return tuple(os.path.getsize(path) for path in (self.stdout_path, self.stderr_path))

    def logs(self, since=(0, 0)):
        parts = []
        for name, path, offset in (
            ("stdout", self.stdout_path, since[0]),
            ("stderr", self.stderr_path, since[1]),
        ):
            with open(path, "rb") as file:
                file.seek(offset)
                text = file.read().decode("utf-8", "replace")
            parts.append(f"----- fireball {name} ({path}) -----\n{text}")
        return "\n".join(parts)


def _ports_free(base_port):
    """Binds each port the cluster needs; a port someone else holds makes `fireball local` exit."""
    sockets = []
    try:
        for offset in NODE_PORT_OFFSETS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, base_port + offset))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def _pick_base_port():
    # Random rather than fixed so that parallel CI jobs and developers' own clusters on the
    # usual 8080 rarely collide; the bind check catches the rest (bar a race, see the retry).
    for _ in range(200):
        base_port = random.randint(20000, 40000)
        if _ports_free(base_port):
            return base_port
    raise ClusterStartError("no free port range for fireball local found in 20000-40300")


# Every `fireball local` these tests start authenticates internal traffic with this secret, so a
# test can play a node (or an operator) with internal_headers() and an attacker without.
SHARED_SECRET = "python-test-cluster-shared-secret"


def internal_token(subject, secret=SHARED_SECRET, lifetime_s=300, now_s=None):
    """An `X-Presto-Internal-Bearer` token as Presto's nodes make them (HS256, key = SHA-256 of the
    secret, `sub` the node id, `exp` in seconds), written here with the standard library only, so
    it checks fireball's tokens against an independent implementation."""
    def encode(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now_s = int(time.time()) if now_s is None else now_s
    header = encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = encode(json.dumps({"sub": subject, "exp": now_s + lifetime_s}, separators=(",", ":")).encode())
    key = hashlib.sha256(secret.encode()).digest()
    signature = encode(hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def internal_headers(subject, **token_args):
    return {"X-Presto-Internal-Bearer": internal_token(subject, **token_args)}


# The user the tests' own REST calls (query lists, query info, kills) speak for. By default a user
# sees and kills only his own queries; the clusters the tests start get ACCESS_RULES, which let
# this one see and kill everyone's, as an operator's would.
OPERATOR = "fireball-operator"
ACCESS_RULES = {"queries": [{"user": OPERATOR, "allow": ["execute", "view", "kill"]}, {"allow": ["execute"]}]}


def write_access_control(directory):
    """Writes DIRECTORY/rules.json (ACCESS_RULES) and the access-control.properties naming it;
    returns the latter's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.json").write_text(json.dumps(ACCESS_RULES))
    properties = directory / "access-control.properties"
    properties.write_text(f"access-control.name=file\nsecurity.config-file={directory / 'rules.json'}\n")
    return properties


def as_operator(headers):
    """HEADERS (or none) with X-Presto-User set to OPERATOR unless they name a user already."""
    headers = dict(headers or {})
    if not any(name.lower() in ("x-presto-user", "x-trino-user") for name in headers):
        headers["X-Presto-User"] = OPERATOR
    return headers


def http_json(method, url, body=None, headers=None, timeout_s=5.0):
    request = urllib.request.Request(url, data=body, method=method, headers=as_operator(headers))
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.status, json.loads(response.read() or b"null")


def _run_raw_query(port, sql, deadline):
    """Runs a statement with the bare protocol (no client library), following nextUri.

    Kept independent of the clients under test so that readiness does not depend on them.
    Returns the last page.
    """
    _, page = http_json(
        "POST",
        f"http://{HOST}:{port}/v1/statement",
        body=sql.encode(),
        headers={"X-Presto-User": "fireball-ci-readiness"},
    )
    while "nextUri" in page:
        if time.monotonic() > deadline:
            raise TimeoutError(f"query still {page['stats']['state']} at the deadline")
        _, page = http_json("GET", page["nextUri"])
    return page


def _wait_until_ready(cluster, deadline):
    """Both coordinators answer /v1/info and can run a query on a worker.

    Workers become known to coordinators only after heartbeats reach the RMs; a query submitted
    earlier would wait rather than fail, but tests should time their own queries, not startup.
    """
    last_problem = "not polled yet"
    for port in cluster.coordinator_ports:
        while True:
            if cluster.process.poll() is not None:
                raise RuntimeError(f"fireball exited with {cluster.process.returncode} during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"coordinator on port {port} not ready: {last_problem}")
            try:
                status, _ = http_json("GET", f"http://{HOST}:{port}/v1/info", timeout_s=2)
                if status != 200:
                    last_problem = f"/v1/info answered {status}"
                    time.sleep(0.1)
                    continue
                page = _run_raw_query(port, "SELECT * FROM synthetic(tasks => 2, rows => 2)", deadline)
                if page["stats"]["state"] == "FINISHED" and "error" not in page:
                    break
                last_problem = f"readiness query ended with {page.get('error') or page['stats']}"
            except (OSError, ValueError, KeyError, TimeoutError) as error:
                last_problem = repr(error)
            time.sleep(0.2)


def start_local_cluster(binary, log_dir, startup_timeout_s, extra_args=()):
    """Starts `BINARY local [EXTRA_ARGS]` on a free port range and waits until it can run queries.

    extra_args are passed after --base-port, e.g. ("--property", "query.max-memory-per-node=1MB").

    Returns a Cluster (stop it with stop(cluster.process)); raises ClusterStartError. Another
    process may grab a port between our bind check and fireball's bind, so a cluster that dies
    during startup gets a fresh port range, a few times.
    """
    failures = []
    for attempt in range(1, 4):
        base_port = _pick_base_port()
        stdout_path = log_dir / f"attempt{attempt}.stdout"
        stderr_path = log_dir / f"attempt{attempt}.stderr"
        with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
            access_control = write_access_control(log_dir / "access-control")
            process = subprocess.Popen(
                [binary, "local", "--base-port", str(base_port),
                 "--property", f"internal-communication.shared-secret={SHARED_SECRET}",
                 "--property", f"access-control.config-files={access_control}", *extra_args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        candidate = Cluster(process, base_port, stdout_path, stderr_path)
        try:
            _wait_until_ready(candidate, time.monotonic() + startup_timeout_s)
            return candidate
        except Exception as error:  # noqa: BLE001 - every startup failure is reported with logs
            exited_early = process.poll() is not None
            stop(process)
            failures.append(f"attempt {attempt} (base port {base_port}): {error!r}\n{candidate.logs()}")
            if not exited_early:
                break  # alive but never ready: another attempt would only double the wait
    raise ClusterStartError("fireball local did not become ready:\n" + "\n\n".join(failures))


# ---------------------------------------------------------------------------------------------
# `fireball server --etc DIR`: one node per process
# ---------------------------------------------------------------------------------------------


def write_server_etc(node_dir, name, role, port, rm_uris, extra=""):
    """Writes NODE_DIR/etc for one `fireball server --etc NODE_DIR/etc` process and returns it.

    role: "resource-manager", "coordinator" or "worker"; rm_uris: every RM's http://HOST:PORT
    (the RMs' discovery peers, everyone else's discovery.uri); extra: more config.properties
    lines (each ending in a newline). The files are written the way tests/cluster_processes.rs
    writes them; used by tests/lb and benches/tpch_bench.py.
    """
    rm_list = ",".join(rm_uris)
    etc = node_dir / "etc"
    etc.mkdir(parents=True)
    (etc / "node.properties").write_text(
        f"node.environment=test\nnode.id={name}\nnode.internal-address={HOST}\nnode.data-dir={node_dir / 'data'}\n"
    )
    common = (
        f"http-server.http.port={port}\nhttp-server.bind-address={HOST}\nresource-manager-enabled=true\n"
    )
    if role == "resource-manager":
        role_lines = f"resource-manager=true\ncoordinator=false\ndiscovery-server.enabled=true\ndiscovery-server.peers={rm_list}\n"
    elif role == "coordinator":
        role_lines = f"coordinator=true\ndiscovery.uri={rm_list}\n"
    elif role == "worker":
        role_lines = f"coordinator=false\ndiscovery.uri={rm_list}\n"
    else:
        raise ValueError(f"unknown role {role!r}")
    (etc / "config.properties").write_text(common + extra + role_lines)
    write_access_control(etc)
    return etc
