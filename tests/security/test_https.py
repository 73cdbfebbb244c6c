"""Client authentication over HTTPS, as Presto does it (issue 12, point 2), against real processes.

A cluster of `fireball server --etc DIR` processes (one RM, one coordinator, one worker; a shared
secret) whose coordinator serves HTTPS with PASSWORD authentication. The certificates are made
here with the `openssl` CLI (a throwaway CA and a server certificate for 127.0.0.1), the password
file with the real `htpasswd -B -C 10` (apache2-utils): nothing in this file shares code with
fireball's TLS or bcrypt. Unmodified clients (prestodb, trino) connect over HTTPS verifying the
server against the CA; raw requests (http.client) check the refusals and the URIs handed out;
nginx, as TLS pass-through (`stream { proxy_pass }`), carries one client's connection.

Run through `ci/tpch` (it installs openssl, apache2-utils and nginx when missing, and sets
FIREBALL_BIN).
"""

import base64
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import prestodb
import pytest
import trino

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
from harness import ACCESS_RULES, HOST, SHARED_SECRET, free_port, stop, tail, time_limit, write_server_etc  # noqa: E402

STARTUP_TIMEOUT_S = 60
TEST_TIMEOUT_S = 60
USER, PASSWORD = "alice", "correct horse battery staple"
OTHER_USER, OTHER_PASSWORD = "bob", "hunter2-but-longer"
# The access rules' impersonation section lets bob (a reporting tool, say) run queries as the
# report-* users, and nobody else as anyone else.
IMPERSONATION = [{"original_user": OTHER_USER, "new_user": "report-.*", "allow": True}]
# alice is an administrator: she may stop the coordinator (PUT /v1/info/state) with her password.
ADMINS = [{"user": USER, "allow": ["read", "write"]}, {"allow": ["read"]}]
# Known sizes of TPC-H's fixed tables (the spec's 25 nations and 5 regions, at any scale).
NATION_ROWS, REGION_ROWS = 25, 5


def _run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed:\n{result.stderr}", pytrace=False)
    return result.stdout


# ---------------------------------------------------------------------------------------------
# Certificates and the password file, made by independent tools
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and the PEM keystore
    (chain then unencrypted key) fireball reads. Returns (ca_path, keystore_path)."""
    for tool in ("openssl", "htpasswd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; run ci/tpch (it installs it)", pytrace=False)
    root = tmp_path_factory.mktemp("pki")
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fireball test CA",
          "-keyout", "ca.key", "-out", "ca.pem"], root)
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
          "-keyout", "server.key", "-out", "server.csr"], root)
    (root / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
          "-days", "2", "-extfile", "san.ext", "-out", "server.pem"], root)
    keystore = root / "keystore.pem"
    keystore.write_text((root / "server.pem").read_text() + (root / "ca.pem").read_text() + (root / "server.key").read_text())
    return root / "ca.pem", keystore


def _write_password_file(path):
    # -B bcrypt, -C 10 its cost, -b the password from the command line (batch), -c create.
    _run(["htpasswd", "-B", "-C", "10", "-b", "-c", str(path), USER, PASSWORD], path.parent)
    _run(["htpasswd", "-B", "-C", "10", "-b", str(path), OTHER_USER, OTHER_PASSWORD], path.parent)
    text = path.read_text()
    assert re.search(rf"^{USER}:\$2y\$10\$", text, re.M), text


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------


class Cluster:
    def __init__(self, root, ports):
        self.root = root
        self.ports = ports
        self.processes = {}

    @property
    def https_port(self):
        return self.ports["coordinator-https"]

    @property
    def http_port(self):
        return self.ports["coordinator-1"]

    def logs(self):
        return "\n".join(f"----- {name} -----\n{tail(self.root / 'logs' / f'{name}.log')}" for name in self.processes)

    def stop(self):
        for process in self.processes.values():
            stop(process)


def _tls_context(ca_path):
    context = ssl.create_default_context(cafile=str(ca_path))
    return context


def request(cluster, ca_path, method, path, body=None, headers=None, over_tls=True, port=None):
    """(status, headers, body text) of one raw request to the coordinator."""
    if over_tls:
        connection = http.client.HTTPSConnection(HOST, port or cluster.https_port, timeout=10, context=_tls_context(ca_path))
    else:
        connection = http.client.HTTPConnection(HOST, port or cluster.http_port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def basic(user=USER, password=PASSWORD):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _follow(cluster, ca_path, page, headers, deadline):
    """Follows nextUri (which must stay on this coordinator's HTTPS port) to the last page."""
    pages = [page]
    while "nextUri" in page:
        if time.monotonic() > deadline:
            raise TimeoutError(f"query still {page['stats']['state']}")
        next_uri = page["nextUri"]
        prefix = f"https://{HOST}:{cluster.https_port}/"
        assert next_uri.startswith(prefix), f"nextUri {next_uri} is not on {prefix}"
        status, _, text = request(cluster, ca_path, "GET", next_uri[len(prefix) - 1:], headers=headers)
        assert status == 200, (status, text)
        page = json.loads(text)
        pages.append(page)
    return pages


def run_raw(cluster, ca_path, sql, headers=None, timeout_s=30):
    status, _, text = request(cluster, ca_path, "POST", "/v1/statement", body=sql.encode(), headers={**basic(), **(headers or {})})
    assert status == 200, (status, text)
    return _follow(cluster, ca_path, json.loads(text), {**basic(), **(headers or {})}, time.monotonic() + timeout_s)


@pytest.fixture(scope="module")
def cluster(pki, tmp_path_factory):
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/tpch")
    ca_path, keystore = pki
    root = tmp_path_factory.mktemp("fireball-https")
    (root / "logs").mkdir()
    names = ("rm-1", "coordinator-1", "worker-1")
    ports = {name: free_port() for name in (*names, "coordinator-https")}
    rm_uris = [f"http://{HOST}:{ports['rm-1']}"]
    common = f"internal-communication.shared-secret={SHARED_SECRET}\n"
    cluster = Cluster(root, ports)
    try:
        for name in names:
            role = {"rm-1": "resource-manager", "coordinator-1": "coordinator", "worker-1": "worker"}[name]
            extra = common
            if name == "coordinator-1":
                extra += (
                    "http-server.https.enabled=true\n"
                    f"http-server.https.port={ports['coordinator-https']}\n"
                    f"http-server.https.keystore.path={keystore}\n"
                    "http-server.authentication.type=PASSWORD\n"
                )
            etc = write_server_etc(root / name, name, role, ports[name], rm_uris, extra)
            if name == "coordinator-1":
                (etc / "rules.json").write_text(json.dumps({**ACCESS_RULES, "impersonation": IMPERSONATION,
                                                           "system_information": ADMINS}))
                # Relative: taken from the directory that holds etc/ (as Presto's install root).
                _write_password_file(root / name / "password.db")
                (etc / "password-authenticator.properties").write_text(
                    "password-authenticator.name=file\nfile.password-file=password.db\n"
                )
            with open(root / "logs" / f"{name}.log", "wb") as log:
                cluster.processes[name] = subprocess.Popen(
                    [binary, "server", "--etc", str(etc)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                    env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
                )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_problem = "not polled yet"
        while True:
            for name, process in cluster.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} during startup")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the coordinator did not run a query over HTTPS: {last_problem}")
            try:
                pages = run_raw(cluster, ca_path, "SELECT * FROM synthetic(tasks => 2, rows => 2)")
                if pages[-1]["stats"]["state"] == "FINISHED" and "error" not in pages[-1]:
                    break
                last_problem = repr(pages[-1].get("error") or pages[-1]["stats"])
            except (OSError, AssertionError, ValueError, KeyError, TimeoutError) as error:
                last_problem = repr(error)
            time.sleep(0.3)
    except Exception as error:  # noqa: BLE001 - every startup failure is reported with logs
        cluster.stop()
        pytest.fail(f"cluster did not start: {error!r}\n{cluster.logs()}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", autouse=True)
def _clients_verify_against_our_ca():
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override a
    session's `verify` (psf/requests#3829), which is where both clients put the CA: without
    this, a machine that sets them makes every client here trust the system bundle instead."""
    saved = {name: os.environ.pop(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _guard(request, capsys):
    failed_before = request.session.testsfailed
    with time_limit(TEST_TIMEOUT_S):
        yield
    if request.session.testsfailed > failed_before and "cluster" in request.fixturenames:
        with capsys.disabled():
            print(f"\n===== fireball logs after {request.node.nodeid} =====")
            print(request.getfixturevalue("cluster").logs())


def prestodb_connect(cluster, ca_path, user=USER, password=PASSWORD, port=None):
    connection = prestodb.dbapi.connect(
        host=HOST, port=port or cluster.https_port, user=user, catalog="tpch", schema="tiny",
        http_scheme="https", auth=prestodb.auth.BasicAuthentication(user, password), max_attempts=1,
    )
    # prestodb has no `verify` argument: its requests session is where the CA goes.
    connection._http_session.verify = str(ca_path)
    return connection


def trino_connect(cluster, ca_path, user=USER, password=PASSWORD, port=None):
    return trino.dbapi.connect(
        host=HOST, port=port or cluster.https_port, user=user, catalog="tpch", schema="tiny",
        http_scheme="https", auth=trino.auth.BasicAuthentication(user, password), verify=str(ca_path), max_attempts=1,
    )


def fetch(connection, sql):
    cursor = connection.cursor()
    cursor.execute(sql)
    return cursor.fetchall()


def metric_value(cluster, name, labels):
    """A counter from the coordinator's /metrics (open over plain HTTP, as before)."""
    status, _, text = request(cluster, None, "GET", "/metrics", over_tls=False)
    assert status == 200, text
    pattern = re.compile(rf'^{re.escape(name)}\{{([^}}]*)\}} (\S+)$', re.M)
    for found_labels, value in pattern.findall(text):
        if all(f'{key}="{value_}"' in found_labels for key, value_ in labels.items()):
            return float(value)
    return 0.0


# ---------------------------------------------------------------------------------------------
# Clients that authenticate
# ---------------------------------------------------------------------------------------------


def test_prestodb_runs_queries_over_https_with_a_password(cluster, pki):
    ca_path, _ = pki
    connection = prestodb_connect(cluster, ca_path)
    assert fetch(connection, "SELECT 1") == [[1]]
    assert fetch(connection, "SELECT count(*) FROM tpch.tiny.nation") == [[NATION_ROWS]]


def test_trino_runs_queries_over_https_with_a_password(cluster, pki):
    ca_path, _ = pki
    connection = trino_connect(cluster, ca_path)
    assert fetch(connection, "SELECT 1") == [[1]]
    assert fetch(connection, "SELECT count(*) FROM region") == [[REGION_ROWS]]


def test_the_client_verifies_the_servers_certificate(cluster, pki):
    # Without the CA, the client refuses the server: the certificate is really checked, so the
    # tests above prove the CA-signed chain from the keystore is what the node serves.
    connection = trino.dbapi.connect(
        host=HOST, port=cluster.https_port, user=USER, http_scheme="https",
        auth=trino.auth.BasicAuthentication(USER, PASSWORD), max_attempts=1,
    )
    with pytest.raises(Exception, match="(?i)certificate"):
        fetch(connection, "SELECT 1")


def test_the_authenticated_user_is_the_querys_user(cluster, pki):
    ca_path, _ = pki
    # No X-Presto-User at all: the principal becomes the user.
    pages = run_raw(cluster, ca_path, "SELECT * FROM synthetic(tasks => 1, rows => 1)")
    query_id = pages[0]["id"]
    status, _, text = request(cluster, ca_path, "GET", "/v1/queryState?includeLocalQueryOnly=true&includeAllQueries=true",
                              headers=basic())
    assert status == 200, text
    users = {query["queryId"]: query["user"] for query in json.loads(text)}
    assert users.get(query_id) == USER, users


def test_next_and_info_uris_are_https_on_the_https_port(cluster, pki):
    ca_path, _ = pki
    pages = run_raw(cluster, ca_path, "SELECT * FROM synthetic(tasks => 2, rows => 4)")
    prefix = f"https://{HOST}:{cluster.https_port}/"
    assert len(pages) >= 2, pages
    for page in pages:
        assert page["infoUri"].startswith(prefix), page["infoUri"]
    assert all(page["nextUri"].startswith(prefix) for page in pages if "nextUri" in page)
    assert pages[-1]["stats"]["state"] == "FINISHED"


def test_a_querys_polls_cost_one_bcrypt_check(cluster, pki):
    ca_path, _ = pki
    # bob is used nowhere else, so his first request is not in the cache yet.
    bob = basic(OTHER_USER, OTHER_PASSWORD)
    checks = lambda source: metric_value(cluster, "fireball_client_password_checks_total", {"source": source})  # noqa: E731
    bcrypt_before, cache_before = checks("bcrypt"), checks("cache")
    status, _, text = request(cluster, ca_path, "POST", "/v1/statement", headers=bob,
                              body=b"SELECT * FROM synthetic(run_time => '2s', tasks => 2, rows => 4)")
    assert status == 200, text
    pages = _follow(cluster, ca_path, json.loads(text), bob, time.monotonic() + 30)
    # At least one poll after the POST (how many depends on timing: each long-polls up to 1 s).
    assert len(pages) >= 2 and pages[-1]["stats"]["state"] == "FINISHED", [page["stats"]["state"] for page in pages]
    bcrypt_runs, cache_hits = checks("bcrypt") - bcrypt_before, checks("cache") - cache_before
    assert bcrypt_runs == 1, f"only the first request ran bcrypt: {bcrypt_runs} runs for {len(pages)} pages"
    assert cache_hits >= len(pages) - 1, f"{cache_hits} cache answers for {len(pages) - 1} polls"


# ---------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused(cluster, pki):
    ca_path, _ = pki
    before = metric_value(cluster, "fireball_client_auth_failures_total", {"reason": "invalid_password"})
    with pytest.raises(Exception, match="401"):
        fetch(trino_connect(cluster, ca_path, password="not " + PASSWORD), "SELECT 1")
    with pytest.raises(Exception, match="401"):
        fetch(prestodb_connect(cluster, ca_path, password="not " + PASSWORD), "SELECT 1")
    status, headers, text = request(cluster, ca_path, "POST", "/v1/statement", body=b"SELECT 1", headers=basic(password="nope"))
    assert status == 401 and "Invalid credentials" in text, (status, text)
    assert headers["WWW-Authenticate"] == 'Basic realm="Presto"'
    # Another user's password does not open this user's account either.
    status, _, _ = request(cluster, ca_path, "POST", "/v1/statement", body=b"SELECT 1", headers=basic(password=OTHER_PASSWORD))
    assert status == 401
    status, _, _ = request(cluster, ca_path, "POST", "/v1/statement", body=b"SELECT 1", headers=basic(user="mallory"))
    assert status == 401
    after = metric_value(cluster, "fireball_client_auth_failures_total", {"reason": "invalid_password"})
    assert after >= before + 4, (before, after)


def test_no_password_gets_401_with_the_basic_challenge(cluster, pki):
    ca_path, _ = pki
    for method, path in (("POST", "/v1/statement"), ("GET", "/v1/query"), ("GET", "/v1/cluster"), ("GET", "/ui/")):
        status, headers, text = request(cluster, ca_path, method, path, body=b"SELECT 1" if method == "POST" else None,
                                        headers={"X-Presto-User": USER})
        assert status == 401, (method, path, status, text)
        assert headers["WWW-Authenticate"] == 'Basic realm="Presto"', (path, dict(headers))
    assert metric_value(cluster, "fireball_client_auth_failures_total", {"reason": "missing"}) >= 4


def test_a_password_over_plain_http_is_refused(cluster, pki):
    status, _, text = request(cluster, None, "POST", "/v1/statement", body=b"SELECT 1",
                              headers={"X-Presto-User": USER, **basic()}, over_tls=False)
    assert status == 403 and "Password not allowed for insecure authentication" in text, (status, text)
    # Without a password, plain HTTP is not a way around authentication either.
    status, _, text = request(cluster, None, "POST", "/v1/statement", body=b"SELECT 1",
                              headers={"X-Presto-User": USER}, over_tls=False)
    assert status == 403 and "HTTPS" in text, (status, text)
    assert metric_value(cluster, "fireball_client_auth_failures_total", {"reason": "insecure_password"}) >= 1


def test_a_user_header_naming_someone_else_is_403(cluster, pki):
    ca_path, _ = pki
    for header in ("X-Presto-User", "X-Trino-User"):
        status, _, text = request(cluster, ca_path, "POST", "/v1/statement", body=b"SELECT 1",
                                  headers={**basic(), header: OTHER_USER})
        assert status == 403, (header, status, text)
        assert f"Access Denied: User {USER} cannot impersonate user {OTHER_USER}" in text, text
    # A client whose user is not its principal fails the same way.
    with pytest.raises(Exception, match="403|impersonate"):
        connection = trino.dbapi.connect(
            host=HOST, port=cluster.https_port, user=OTHER_USER, http_scheme="https",
            auth=trino.auth.BasicAuthentication(USER, PASSWORD), verify=str(ca_path), max_attempts=1,
        )
        fetch(connection, "SELECT 1")
    assert metric_value(cluster, "fireball_client_auth_failures_total", {"reason": "impersonation"}) >= 2


def test_an_impersonation_rule_lets_a_principal_run_as_another_user(cluster, pki):
    """bob may run as report-daily (an impersonation rule): the query's user is report-daily;
    bob may not run as alice, and alice may not run as report-daily."""
    ca_path, _ = pki
    page = run_raw(cluster, ca_path, "SELECT 1", headers={**basic(OTHER_USER, OTHER_PASSWORD), "X-Presto-User": "report-daily"})[-1]
    assert page["stats"]["state"] == "FINISHED", page
    status, _, text = request(cluster, ca_path, "GET", f"/v1/query/{page['id']}",
                              headers={**basic(OTHER_USER, OTHER_PASSWORD), "X-Presto-User": "report-daily"})
    assert status == 200 and json.loads(text)["session"]["user"] == "report-daily", text
    for (user, password), claimed in (((OTHER_USER, OTHER_PASSWORD), USER), ((USER, PASSWORD), "report-daily")):
        status, _, text = request(cluster, ca_path, "POST", "/v1/statement", body=b"SELECT 1",
                                  headers={**basic(user, password), "X-Presto-User": claimed})
        assert (status, f"cannot impersonate user {claimed}" in text) == (403, True), (user, claimed, text)


def test_health_checks_and_metrics_stay_open(cluster, pki):
    ca_path, _ = pki
    for over_tls in (False, True):
        status, _, text = request(cluster, ca_path, "GET", "/v1/info", over_tls=over_tls)
        assert status == 200 and json.loads(text)["coordinator"] is True, (over_tls, status, text)
    status, _, text = request(cluster, None, "GET", "/metrics", over_tls=False)
    assert status == 200 and "fireball_client_auth_failures_total" in text


def test_a_failed_handshake_does_not_stop_the_https_listener(cluster, pki):
    ca_path, _ = pki
    # Plain HTTP on the HTTPS port, garbage, and a connection that says nothing at all.
    silent = socket.create_connection((HOST, cluster.https_port), timeout=5)
    try:
        for payload in (b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello"):
            with socket.create_connection((HOST, cluster.https_port), timeout=5) as sock:
                sock.sendall(payload)
                try:
                    sock.recv(1024)
                except OSError:
                    pass
        started = time.monotonic()
        assert fetch(trino_connect(cluster, ca_path), "SELECT 1") == [[1]]
        assert time.monotonic() - started < 5, "the listener was held up by a bad handshake"
    finally:
        silent.close()


# ---------------------------------------------------------------------------------------------
# Through nginx as TLS pass-through
# ---------------------------------------------------------------------------------------------

NGINX_CONF = """\
# Generated by tests/security/test_https.py: TLS pass-through (nginx never sees the plaintext).
{load_module}{user_line}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{
    worker_connections 64;
}}
stream {{
    log_format passthrough '$remote_addr $upstream_addr $status $bytes_received';
    access_log {prefix}/logs/stream.log passthrough;
    server {{
        listen {host}:{port};
        proxy_pass {host}:{upstream_port};
    }}
}}
"""


def _nginx_stream_module():
    """`load_module …;` when the stream module is a dynamic one (Debian's libnginx-mod-stream)."""
    for path in ("/usr/lib/nginx/modules/ngx_stream_module.so", "/usr/share/nginx/modules/ngx_stream_module.so"):
        if os.path.exists(path):
            return f"load_module {path};\n"
    return ""


@pytest.fixture(scope="module")
def nginx(cluster, tmp_path_factory):
    binary = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )
    if binary is None:
        pytest.fail("nginx is not installed; run ci/tpch (it installs nginx and libnginx-mod-stream)")
    prefix = tmp_path_factory.mktemp("nginx-tls")
    (prefix / "logs").mkdir()
    port = free_port()
    conf = NGINX_CONF.format(
        load_module=_nginx_stream_module(), user_line="user root;\n" if os.geteuid() == 0 else "",
        prefix=prefix, host=HOST, port=port, upstream_port=cluster.https_port,
    )
    conf_path = prefix / "nginx.conf"
    conf_path.write_text(conf)
    command = [binary, "-p", str(prefix), "-c", str(conf_path), "-e", str(prefix / "logs" / "error.log")]
    check = subprocess.run(command + ["-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        pytest.fail(f"nginx -t refused the generated config:\n{check.stderr}\n{conf}", pytrace=False)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx exited with {process.returncode}:\n{tail(prefix / 'logs' / 'error.log')}", pytrace=False)
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx not listening on {port}", pytrace=False)
                time.sleep(0.1)
        yield port, prefix
    finally:
        stop(process)


def test_a_client_through_nginx_tls_pass_through(cluster, pki, nginx):
    ca_path, _ = pki
    port, prefix = nginx
    log = prefix / "logs" / "stream.log"
    lines_before = len(log.read_text().splitlines()) if log.exists() else 0
    connection = trino_connect(cluster, ca_path, port=port)
    assert fetch(connection, "SELECT count(*) FROM nation") == [[NATION_ROWS]]
    connection.close()
    # The connection went through nginx to the HTTPS port: nginx logs a stream session when it
    # ends (the session above was closed with the client).
    status, _, _ = request(cluster, ca_path, "GET", "/v1/info", port=port)
    assert status == 200
    deadline = time.monotonic() + 5
    upstream = f"{HOST}:{cluster.https_port}"
    while True:
        lines = log.read_text().splitlines()[lines_before:] if log.exists() else []
        if any(upstream in line for line in lines):
            break
        assert time.monotonic() < deadline, f"nginx logged no session to {upstream}: {lines}"
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# Refused at startup, with what and where
# ---------------------------------------------------------------------------------------------


def _start_refused(binary, root, name, extra, password_lines=None):
    """Starts a coordinator whose configuration is bad; returns its stderr once it has exited."""
    port, https_port = free_port(), free_port()
    etc = write_server_etc(root / name, name, "coordinator", port, [f"http://{HOST}:{free_port()}"],
                           f"internal-communication.shared-secret={SHARED_SECRET}\n"
                           f"http-server.https.port={https_port}\n" + extra)
    if password_lines is not None:
        (root / name / "password.db").write_text(password_lines)
        (etc / "password-authenticator.properties").write_text(
            "password-authenticator.name=file\nfile.password-file=password.db\n")
    result = subprocess.run([binary, "server", "--etc", str(etc)], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0, f"{name} started with a bad configuration:\n{result.stderr}"
    return result.stderr


def test_bad_settings_stop_the_node_at_startup_with_what_and_where(pki, tmp_path):
    binary = os.environ.get("FIREBALL_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"FIREBALL_BIN must name the fireball binary (got {binary!r}); run ci/tpch")
    ca_path, keystore = pki
    https = f"http-server.https.enabled=true\nhttp-server.https.keystore.path={keystore}\n"
    alice = _run(["htpasswd", "-nbB", "-C", "4", USER, PASSWORD], tmp_path).strip()

    error = _start_refused(binary, tmp_path, "damaged-line", https + "http-server.authentication.type=PASSWORD\n",
                           f"{alice}\nbob:$2y$10$tooshort\n")
    assert "password.db:2" in error and "bob" in error, error
    assert "$2y$10$" not in error.replace("$2y$10$tooshort", ""), "no hash from the file is shown"

    error = _start_refused(binary, tmp_path, "no-https", "http-server.authentication.type=PASSWORD\n", f"{alice}\n")
    assert "https.enabled" in error, error

    error = _start_refused(binary, tmp_path, "no-keystore", "http-server.https.enabled=true\n"
                           f"http-server.https.keystore.path={tmp_path / 'missing.pem'}\n")
    assert "missing.pem" in error, error

    # A keystore whose key belongs to another certificate.
    other_key = tmp_path / "other.key"
    _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(other_key)], tmp_path)
    mismatched = tmp_path / "mismatched.pem"
    mismatched.write_text((keystore.parent / "server.pem").read_text() + other_key.read_text())
    error = _start_refused(binary, tmp_path, "mismatched-key", "http-server.https.enabled=true\n"
                           f"http-server.https.keystore.path={mismatched}\n")
    assert "mismatched.pem" in error, error

    error = _start_refused(binary, tmp_path, "kerberos", "http-server.authentication.type=KERBEROS\n")
    assert "config.properties:" in error and "KERBEROS" in error, error


def test_only_an_administrator_may_change_a_nodes_state_with_a_password(cluster, pki):
    """PUT /v1/info/state needs a node's token or an administrator (a system_information write
    rule) authenticated over HTTPS. "ACTIVE" changes nothing, so the cluster keeps running."""
    ca_path, _ = pki
    body = b'"ACTIVE"'
    status, _, text = request(cluster, ca_path, "PUT", "/v1/info/state", body=body, headers=basic(OTHER_USER, OTHER_PASSWORD))
    assert (status, text.strip()) == (403, "Access Denied: Cannot write system information"), (status, text)
    status, _, text = request(cluster, ca_path, "PUT", "/v1/info/state", body=body, headers=basic(USER, "wrong"))
    assert status == 401, text
    status, _, text = request(cluster, ca_path, "PUT", "/v1/info/state", body=body, over_tls=False)
    assert status in (401, 403), (status, text)
    status, _, text = request(cluster, ca_path, "PUT", "/v1/info/state", body=body, headers=basic())
    assert status == 200, (status, text)
    status, _, text = request(cluster, ca_path, "GET", "/v1/info/state")
    assert (status, json.loads(text)) == (200, "ACTIVE")
