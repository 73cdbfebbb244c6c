"""SQL through the tools people use, against one `fireball local` for the whole module.

  * SQLAlchemy (the trino dialect, `trino[sqlalchemy]`): Inspector metadata and pandas.read_sql.
  * Bad SQL: errorName, errorCode, errorType, message and errorLocation, through the trino client
    and through the bare protocol, and that the cluster still answers afterwards.
  * Metadata statements (SHOW CATALOGS, SHOW SCHEMAS, DESCRIBE, information_schema) through both
    Presto clients.

Run through `ci/tpch`, which pins the versions and sets FIREBALL_BIN. The memory limit needs a
cluster of its own (test_memory_limit.py).
"""

import json
import pathlib
import re
import sys
import warnings

import pandas
import pytest
import sqlalchemy
import trino
from sqlalchemy import create_engine, inspect

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tpch"))
from compare import compare  # noqa: E402
from sql_support import HOST, REQUEST_TIMEOUT_S, http_query, start_cluster  # noqa: E402
import dbapi  # noqa: E402  (tests/support, on the path through sql_support)

TPCH_DIR = HERE.parent / "tpch"
TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]
NATION_COLUMNS = ["nationkey", "name", "regionkey", "comment"]
# Presto's tpch connector: keys bigint, strings varchar or varchar(n).
NATION_TYPES = [r"bigint", r"varchar(\(\d+\))?", r"bigint", r"varchar(\(\d+\))?"]
HEALTH_SQL = "SELECT count(*) FROM tpch.tiny.nation"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from start_cluster(tmp_path_factory)


@pytest.fixture(scope="module")
def port(cluster):
    return cluster.coordinator_ports[0]


@pytest.fixture
def engine(port):
    engine = create_engine(
        f"trino://sql-tests-sqlalchemy@{HOST}:{port}/tpch/tiny",
        connect_args={"http_scheme": "http", "request_timeout": REQUEST_TIMEOUT_S},
    )
    try:
        yield engine
    finally:
        engine.dispose()


CLIENTS = {
    name: (lambda port, name=name: dbapi.connect(name, HOST, port, f"sql-tests-{name}", timeout_s=REQUEST_TIMEOUT_S))
    for name in ("prestodb", "trino")
}
_trino_connect = CLIENTS["trino"]


def _run(connect, port, sql):
    """(column names, rows) of `sql` through a DB-API client."""
    names, _, rows = dbapi.run(connect(port), sql)
    return names, rows


def _assert_healthy(port):
    """After an error the cluster must still run a query that touches the workers."""
    _, rows = _run(_trino_connect, port, HEALTH_SQL)
    assert rows == [[25]], f"{HEALTH_SQL} after the error: {rows}"


# ---------------------------------------------------------------------------------------------
# 1. SQLAlchemy and pandas
# ---------------------------------------------------------------------------------------------


def test_trino_bind_parameters(port):
    """What every parameterised SQLAlchemy call needs: the trino client sends
    EXECUTE IMMEDIATE '...' USING 3, and where that fails PREPARE st FROM ... followed by
    EXECUTE st USING 3 with the X-Trino-Prepared-Statement header."""
    connection = _trino_connect(port)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT name FROM nation WHERE nationkey = ?", [3])
        assert cursor.fetchall() == [["CANADA"]]
    finally:
        connection.close()


def test_sqlalchemy_schema_names_include_tiny_and_sf1(engine):
    names = inspect(engine).get_schema_names()
    assert {"tiny", "sf1"} <= set(names), names


def test_sqlalchemy_schema_names_are_the_session_catalogs(engine, port):
    """The dialect reads information_schema.schemata of the session catalog (tpch): in Presto
    that lists tpch's schemas only, the same as SHOW SCHEMAS FROM tpch (the engine's own
    information_schema schema aside), not the system catalog's `runtime`."""
    names = set(inspect(engine).get_schema_names()) - {"information_schema"}
    _, rows = _run(_trino_connect, port, "SHOW SCHEMAS FROM tpch")
    shown = {row[0] for row in rows} - {"information_schema"}
    assert names == shown, f"Inspector: {sorted(names)}; SHOW SCHEMAS FROM tpch: {sorted(shown)}"


def test_sqlalchemy_table_names_are_the_tpch_tables(engine):
    # The dialect binds the schema as a parameter: the trino client sends EXECUTE IMMEDIATE, or
    # (if that fails) PREPARE ... FROM with the X-Trino-Prepared-Statement header and EXECUTE.
    names = inspect(engine).get_table_names("tiny")
    assert sorted(names) == TPCH_TABLES


def test_sqlalchemy_columns_of_nation(engine):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        columns = inspect(engine).get_columns("nation", "tiny")
    assert [column["name"] for column in columns] == NATION_COLUMNS, columns
    # Types are reported, not asserted here (test_information_schema_columns_match_describe
    # checks the data_type strings the dialect parses): print what the dialect made of them.
    types = [(column["name"], repr(column["type"])) for column in columns]
    print(f"get_columns('nation', 'tiny') types: {types}; warnings: {[str(w.message) for w in caught]}")


def test_pandas_read_sql_q06_matches_expected(engine):
    expected = json.loads((TPCH_DIR / "expected" / "sf0.01" / "q06.json").read_text())
    sql = (TPCH_DIR / "queries" / "q06.sql").read_text().strip()

    frame = pandas.read_sql(sqlalchemy.text(sql), engine)

    rows = [list(row) for row in frame.itertuples(index=False, name=None)]
    differences = compare(expected, list(frame.columns), rows, expected["ordered"])
    assert not differences, "q06 through pandas.read_sql:\n  " + "\n  ".join(differences)
    assert str(frame.dtypes["revenue"]) == "float64", frame.dtypes


# ---------------------------------------------------------------------------------------------
# 2. Bad SQL
# ---------------------------------------------------------------------------------------------


class Case:
    def __init__(self, sql, name, code, error_type, message, location=None):
        self.sql = sql
        self.name = name  # errorName
        self.code = code  # errorCode (Presto's StandardErrorCode)
        self.error_type = error_type
        # A string: the exact message; a compiled pattern: fullmatch.
        self.message = message
        # (lineNumber, columnNumber) where Presto reports one, else None.
        self.location = location


ERRORS = {
    "parse-eof": Case(
        "SELECT * FROM nation WHERE", "SYNTAX_ERROR", 1, "USER_ERROR", re.compile(r"line 1:27: (?!line ).+"), (1, 27)
    ),
    "parse-multiline": Case(
        "SELECT 1\nFROM nation\nWHERE name = = 'x'",
        "SYNTAX_ERROR", 1, "USER_ERROR", re.compile(r"line 3:14: (?!line ).+"), (3, 14),
    ),
    "table-qualified": Case(
        "SELECT * FROM tpch.tiny.x", "SYNTAX_ERROR", 1, "USER_ERROR", "Table 'tpch.tiny.x' does not exist", (1, 15)
    ),
    "table-session-schema": Case(
        "SELECT * FROM x", "SYNTAX_ERROR", 1, "USER_ERROR", "Table 'tpch.tiny.x' does not exist", (1, 15)
    ),
    "column": Case(
        "SELECT x FROM nation", "SYNTAX_ERROR", 1, "USER_ERROR", "Column 'x' cannot be resolved", (1, 8)
    ),
    "column-multiline": Case(
        "SELECT nationkey,\n       nosuchcolumn\nFROM nation",
        "SYNTAX_ERROR", 1, "USER_ERROR", "Column 'nosuchcolumn' cannot be resolved", (2, 8),
    ),
    "function": Case(
        "SELECT nosuchfn(nationkey) FROM nation",
        "SYNTAX_ERROR", 1, "USER_ERROR", "Function 'nosuchfn' not registered", (1, 8),
    ),
    "division-constant": Case("SELECT 1 / 0", "DIVISION_BY_ZERO", 8, "USER_ERROR", "Division by zero"),
    "division-scan": Case(
        "SELECT nationkey / (regionkey - regionkey) FROM nation",
        "DIVISION_BY_ZERO", 8, "USER_ERROR", "Division by zero",
    ),
}


def _message_matches(case, message):
    """Presto puts "line L:C: " before the text of an error that has a location; the text itself
    must be exact (or match the pattern). A prefix, where present, must name the case's location
    (whether errorLocation itself is there is test_error_location's business)."""
    message = message or ""
    prefix = re.match(r"line (\d+):(\d+): ", message)
    if isinstance(case.message, str):
        if prefix:
            return case.location == (int(prefix[1]), int(prefix[2])) and message[prefix.end():] == case.message
        return message == case.message
    return case.message.fullmatch(message) is not None


def _trino_error(port, sql):
    connection = _trino_connect(port)
    try:
        cursor = connection.cursor()
        with pytest.raises(trino.exceptions.TrinoQueryError) as raised:
            cursor.execute(sql)
            cursor.fetchall()
        return raised.value
    finally:
        connection.close()


def _http_error(port, sql):
    _, rows, page = http_query(port, sql)
    assert page["stats"]["state"] == "FAILED" and "error" in page, f"{sql!r} did not fail: {page}, rows {rows}"
    return page["error"]


@pytest.mark.parametrize("case_id", list(ERRORS))
def test_error_through_trino(port, case_id):
    case = ERRORS[case_id]
    error = _trino_error(port, case.sql)
    got = (error.error_name, error.error_code, error.error_type)
    assert got == (case.name, case.code, case.error_type), f"{case.sql!r}: {error!r}"
    assert _message_matches(case, error.message), f"{case.sql!r}: message {error.message!r}"
    _assert_healthy(port)


@pytest.mark.parametrize("case_id", list(ERRORS))
def test_error_through_http(port, case_id):
    case = ERRORS[case_id]
    error = _http_error(port, case.sql)
    got = (error.get("errorName"), error.get("errorCode"), error.get("errorType"))
    assert got == (case.name, case.code, case.error_type), f"{case.sql!r}: {error}"
    assert _message_matches(case, error.get("message")), f"{case.sql!r}: {error}"
    _assert_healthy(port)


@pytest.mark.parametrize("case_id", [case_id for case_id, case in ERRORS.items() if case.location])
def test_error_location(port, case_id):
    """Presto reports where a parse or analysis error is (the node's line and column); the trino
    client turns errorLocation into error.error_location."""
    case = ERRORS[case_id]
    error = _http_error(port, case.sql)
    location = error.get("errorLocation")
    assert location == {"lineNumber": case.location[0], "columnNumber": case.location[1]}, (
        f"{case.sql!r}: errorLocation {location}; error {error}"
    )
    client_error = _trino_error(port, case.sql)
    assert client_error.error_location == case.location, f"{case.sql!r}: {client_error!r}"


# ---------------------------------------------------------------------------------------------
# 4. Metadata statements through the clients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", list(CLIENTS))
def test_show_catalogs(port, client):
    columns, rows = _run(CLIENTS[client], port, "SHOW CATALOGS")
    assert columns == ["Catalog"]
    assert {"tpch", "system"} <= {row[0] for row in rows}, rows


@pytest.mark.parametrize("client", list(CLIENTS))
def test_show_schemas_from_tpch(port, client):
    columns, rows = _run(CLIENTS[client], port, "SHOW SCHEMAS FROM tpch")
    assert columns == ["Schema"]
    assert {"tiny", "sf1"} <= {row[0] for row in rows}, rows


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("statement", ["DESCRIBE tpch.tiny.nation", "SHOW COLUMNS FROM tpch.tiny.nation"])
def test_describe_nation(port, client, statement):
    columns, rows = _run(CLIENTS[client], port, statement)
    assert columns == ["Column", "Type", "Extra", "Comment"]
    assert [row[0] for row in rows] == NATION_COLUMNS, rows
    for row, pattern in zip(rows, NATION_TYPES):
        assert re.fullmatch(pattern, row[1]), f"{row[0]} has type {row[1]!r}, not a Presto {pattern!r}"


def test_information_schema_columns_match_describe(port):
    """information_schema.columns is what SQLAlchemy, JDBC's DatabaseMetaData and BI tools read;
    in Presto its data_type is the type DESCRIBE shows (the trino dialect parses it into a
    SQLAlchemy type, and maps names it does not know to NullType)."""
    _, described = _run(_trino_connect, port, "DESCRIBE tpch.tiny.nation")
    _, rows = _run(
        _trino_connect,
        port,
        "SELECT column_name, data_type FROM tpch.information_schema.columns"
        " WHERE table_schema = 'tiny' AND table_name = 'nation' ORDER BY ordinal_position",
    )
    assert rows == [[row[0], row[1]] for row in described], f"information_schema: {rows}; DESCRIBE: {described}"


def test_information_schema_columns_has_comment(port):
    """Presto's information_schema.columns has a `comment` column; the trino dialect's
    get_columns selects it."""
    _, rows = _run(
        _trino_connect,
        port,
        "SELECT column_name, comment FROM tpch.information_schema.columns"
        " WHERE table_schema = 'tiny' AND table_name = 'nation' ORDER BY ordinal_position",
    )
    assert [row[0] for row in rows] == NATION_COLUMNS, rows


def test_prestos_functions_that_datafusion_lacks(port):
    """if, count_if and arbitrary as Presto defines them; the expected values follow from the
    literal rows by hand."""
    _, rows, page = http_query(
        port,
        "SELECT count_if(x > 1), if(sum(x) > 5, 'big', 'small'), if(false, 1), arbitrary(y) "
        "FROM (VALUES (1, 'q'), (2, 'q'), (3, 'q')) AS t(x, y)",
    )
    assert "error" not in page, page.get("error")
    assert rows == [[2, "big", None, "q"]]


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{path}'",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{path}'",
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{path}'",
    ],
)
def test_datafusions_own_file_statements_are_refused(port, tmp_path, statement):
    """DataFusion's SQL can read and write files (COPY, CREATE EXTERNAL TABLE); fireball's
    statements only read its catalogs, so these fail and touch nothing."""
    target = tmp_path / "written.csv"
    _, _, page = http_query(port, statement.format(path=target))
    assert "error" in page, page
    assert not target.exists()
    _assert_healthy(port)


def test_a_forged_leaf_task_cannot_write_files(cluster, tmp_path):
    """A worker takes tasks only with a valid internal token; and a leaf task's SQL is read-only
    on the worker too, so even a task signed with the cluster's secret cannot write a file."""
    from harness import http_json, internal_headers, internal_token
    import urllib.error

    target = tmp_path / "from-worker.csv"
    worker_port = cluster.base_port + 200
    task = {
        "query_id": "forged", "coordinator_id": "nobody", "task_index": 0, "run_time_ms": 0, "memory_bytes": 0,
        "first_row": 0, "row_count": 0,
        "fragment": {"catalog": "tpch", "schema": "tiny", "table": "nation", "column_naming": "SIMPLIFIED",
                     "split": 0, "splits": 1, "sql": f"COPY (SELECT 1) TO '{target}'"},
    }
    url = f"http://{HOST}:{worker_port}/v1/task/forged.1.0"
    body = json.dumps(task).encode()
    content_type = {"Content-Type": "application/json"}
    foreign = internal_token("nobody", secret="another cluster's shared secret")
    for headers in (content_type, {**content_type, "X-Presto-Internal-Bearer": foreign}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_json("POST", url, body=body, headers=headers)
        assert refused.value.code == 401
    http_json("POST", url, body=body, headers={**content_type, **internal_headers("nobody")})
    import time

    deadline = time.monotonic() + 20
    while True:
        _, status = http_json("GET", url, headers=internal_headers("nobody"))
        if status["state"] not in ("RUNNING", "BLOCKED") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["state"] == "FAILED", status
    assert not target.exists()
