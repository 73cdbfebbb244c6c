"""The TPC-H oracle: expected results for tests/tpch/queries/qNN.sql, computed with DuckDB.

Independent of fireball: the data come from `tpchgen-cli` (Parquet), the answers from DuckDB.
DuckDB sees the data the way Presto's tpch connector shows it: one view per table with the
TPC-H column prefixes dropped (`l_shipdate` -> `shipdate`) and the DECIMAL columns cast to
DOUBLE (Presto's tpch connector types quantity, extendedprice, discount, tax, totalprice,
acctbal, retailprice and supplycost as double; keys stay bigint, linenumber/size/availqty/
shippriority integer, dates DATE). So the very query text a Presto user runs against
`tpch.tiny` runs here unchanged; where DuckDB needs a different text, REWRITES below says so.

    python tests/tpch/oracle.py --scale 0.01 --out tests/tpch/expected/sf0.01
    python tests/tpch/oracle.py --scale 0.01 --out DIR --self-check

Each qNN.json holds: query, scale, columns, types (Presto type names), ordered, order_by (the
ORDER BY output columns, see compare.py), rows (dates as 'YYYY-MM-DD', numbers as JSON numbers),
one row per line so that a regeneration's diff is readable.

Determinism: DuckDB runs with one thread while generating, so that regenerating gives the same
double sums bit for bit. The self-check then runs every query again with all threads (another
summation order) and requires compare() to find no difference, then perturbs one value of one
result and requires compare() to report it.
"""

import argparse
import datetime
import decimal
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import duckdb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from compare import compare, limit_of, order_by_columns, tie_groups, without_limit  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
QUERIES = HERE / "queries"
TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")

# DuckDB-specific rewrites of the query texts: (query, old text, new text, why). Applied only
# here; the .sql files stay what a Presto user types. Each must match exactly once.
REWRITES = [
    # None needed with DuckDB 2.0.1: every file runs as written. Date minus interval gives a
    # TIMESTAMP in DuckDB (a DATE in Presto), but only ever in comparisons with DATE columns,
    # which DuckDB widens, so the rows are the same. Q15 compares a double sum with max() of the
    # same CTE, which needs the CTE's sums to be bit-identical in both uses; DuckDB evaluates a
    # CTE referenced twice once (30 multi-threaded runs: always 1 row). Should that change,
    # ("q15", "WITH revenue0 AS (", "WITH revenue0 AS MATERIALIZED (", "...") is the fix.
]

# DuckDB result types -> the type Presto gives the same expression.
PRESTO_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double",
    "VARCHAR": "varchar",
    "DATE": "date",
    # sum() of an integer expression (Q12's CASE ... THEN 1 ELSE 0): DuckDB widens to HUGEINT,
    # Presto to bigint.
    "HUGEINT": "bigint",
}


def query_names():
    return sorted(path.stem for path in QUERIES.glob("q*.sql"))


def query_text(name):
    return (QUERIES / f"{name}.sql").read_text().strip()


def duckdb_text(name):
    """The query as DuckDB runs it: the file's text with this query's REWRITES applied."""
    sql = query_text(name)
    for query, old, new, _why in REWRITES:
        if query == name:
            if sql.count(old) != 1:
                raise RuntimeError(f"rewrite for {name} expects {old!r} exactly once")
            sql = sql.replace(old, new)
    return sql


def tpchgen_cli():
    beside = pathlib.Path(sys.executable).parent / "tpchgen-cli"
    if beside.exists():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if not found:
        raise SystemExit("tpchgen-cli not found (pip install tpchgen-cli; see ci/tpch)")
    return found


def generate_data(scale, data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    if all((data_dir / f"{table}.parquet").exists() for table in TABLES):
        return
    # tpchgen-cli 4.x: the format is a subcommand (`parquet`), not --format.
    subprocess.run(
        [tpchgen_cli(), "parquet", "-s", str(scale), "--output-dir", str(data_dir), "--quiet",
         "--overwrite"],
        check=True,
    )


def connect(data_dir, threads=None):
    connection = duckdb.connect()
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    for table in TABLES:
        path = str(data_dir / f"{table}.parquet").replace("'", "''")
        schema = connection.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        items = []
        for column, column_type, *_ in schema:
            name = column.split("_", 1)[1]
            expression = f'"{column}"'
            if column_type.upper().startswith("DECIMAL"):
                expression = f"CAST({expression} AS DOUBLE)"
            items.append(f'{expression} AS "{name}"')
        connection.execute(
            f"CREATE VIEW {table} AS SELECT {', '.join(items)} FROM read_parquet('{path}')"
        )
    return connection


def to_json_value(value):
    if isinstance(value, datetime.datetime):
        raise TypeError(f"timestamp {value!r} in a result: no TPC-H query returns one")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        raise TypeError(f"decimal {value!r} in a result: the views should have cast it to double")
    return value


def run(connection, sql):
    cursor = connection.execute(sql)
    columns = [column[0] for column in cursor.description]
    types = []
    for column in cursor.description:
        duck_type = str(column[1]).upper()
        if duck_type not in PRESTO_TYPES:
            raise TypeError(f"result column {column[0]} has DuckDB type {duck_type}")
        types.append(PRESTO_TYPES[duck_type])
    rows = [[to_json_value(value) for value in row] for row in cursor.fetchall()]
    return columns, types, rows


def check_limit_boundary(connection, name, sql, columns, order_by):
    """A LIMIT that cuts through a tie group would make the expected rows a matter of chance."""
    limit = limit_of(sql)
    if limit is None:
        return
    _, _, full = run(connection, without_limit(sql))
    if len(full) <= limit:
        return
    keys = [columns.index(column) for column in order_by]
    for start, end in tie_groups(full, keys):
        if start < limit < end:
            raise RuntimeError(
                f"{name}: LIMIT {limit} splits rows {start + 1}-{end}, tied on ORDER BY {order_by}"
            )


def expected_result(connection, name):
    sql = duckdb_text(name)
    columns, types, rows = run(connection, sql)
    order_by = order_by_columns(sql, columns)
    check_limit_boundary(connection, name, sql, columns, order_by)
    return {
        "query": name,
        "columns": columns,
        "types": types,
        "ordered": bool(order_by),
        "order_by": order_by,
        "rows": rows,
    }


def write_json(path, result):
    """JSON with one row per line (readable diffs); floats as repr, so they round-trip exactly."""
    header = {key: value for key, value in result.items() if key != "rows"}
    lines = ["{"]
    for key, value in header.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    rows = [f"    {json.dumps(row, allow_nan=False)}" for row in result["rows"]]
    lines.append('  "rows": [' + ("\n" + ",\n".join(rows) + "\n  " if rows else "") + "]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    if json.loads(path.read_text()) != result:
        raise RuntimeError(f"{path} does not read back as written")


def self_check(data_dir, out_dir, names):
    """Every query again (all threads) through compare(): no differences; a perturbed one: some."""
    connection = connect(data_dir)
    failures = 0
    for name in names:
        expected = json.loads((out_dir / f"{name}.json").read_text())
        columns, types, rows = run(connection, duckdb_text(name))
        differences = compare(expected, columns, rows, expected["ordered"], actual_types=types)
        if differences:
            failures += 1
            print(f"self-check {name}: {len(differences)} differences", *differences, sep="\n  ")
    # A perturbation must be reported: the first double of the first result that has one.
    for name in names:
        expected = json.loads((out_dir / f"{name}.json").read_text())
        spot = next(
            ((r, c) for r, row in enumerate(expected["rows"]) for c, value in enumerate(row)
             if isinstance(value, float) and value != 0),
            None,
        )
        if spot is None:
            continue
        rows = [list(row) for row in expected["rows"]]
        r, c = spot
        rows[r][c] *= 1 + 1e-7
        differences = compare(expected, expected["columns"], rows, expected["ordered"])
        print(f"self-check perturbation of {name} row {r + 1} {expected['columns'][c]} by 1e-7 "
              f"relative: {differences}")
        if not differences:
            failures += 1
        break
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--out", type=pathlib.Path, help="default: tests/tpch/expected/sf<scale>")
    parser.add_argument("--data-dir", type=pathlib.Path,
                        help="where the Parquet files are (generated if missing); default: a temp dir")
    parser.add_argument("--queries", nargs="*", help="e.g. q01 q15 (default: all)")
    parser.add_argument("--self-check", action="store_true",
                        help="after writing, re-run every query and compare (see the docstring)")
    args = parser.parse_args()

    scale = f"{args.scale:g}"
    out_dir = args.out or HERE / "expected" / f"sf{scale}"
    names = args.queries or query_names()
    with tempfile.TemporaryDirectory(prefix="tpch-oracle-") as temp:
        data_dir = args.data_dir or pathlib.Path(temp) / f"sf{scale}"
        generate_data(scale, data_dir)
        connection = connect(data_dir, threads=1)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            result = expected_result(connection, name)
            result = {"query": name, "scale": args.scale, **{k: v for k, v in result.items() if k != "query"}}
            write_json(out_dir / f"{name}.json", result)
            print(f"{name}: {len(result['rows'])} rows, ordered by {result['order_by']}")
        print(f"duckdb {duckdb.__version__}; wrote {len(names)} files to {out_dir}")
        if args.self_check and self_check(data_dir, out_dir, names):
            raise SystemExit("self-check failed")


if __name__ == "__main__":
    main()
