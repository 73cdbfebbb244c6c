"""TPC-H side by side: a multi-process fireball cluster, DataFusion alone in one process, DuckDB.

A benchmark, not a test: it measures and reports, and exits 0 even when a query is slow, wrong
or fails (the correctness column says so). Run it through ci/bench, which pins the Python
packages and builds the release binary; see ci/bench's header for what is measured and how.

    python benches/tpch_bench.py --binary target/bench/release/fireball [--scale 1]
        [--queries q01,q06] [--repeat 1] [--timeout 600] [--data-dir DIR] [--out FILE]

Per query:
  fireball    wall time of the query through the trino client (POST to the last row fetched)
              against a cluster of 1 RM, 1 coordinator and 2 workers, each its own
              `fireball server --etc DIR` process on loopback, schema tpch.sfN (tiny for 0.01);
  datafusion  `BINARY datafusion --schema sfN --file Q.sql`'s own elapsed_ms (DataFusion plans
              and runs the same SQL over the same generated data in one process: no cluster, no
              HTTP, no client);
  duckdb      wall time of the query in DuckDB (all threads) over tpchgen-cli Parquet, with
              tests/tpch/oracle.py's views (Presto's column names and types), rows fetched into
              Python;
  correct     fireball's result compared with DuckDB's by tests/tpch/compare.py (the rules of
              ci/tpch: values within 1e-9, order where the ORDER BY defines it).
Each time is the best of --repeat runs. Around the whole fireball run the CPU time (utime+stime,
/proc/PID/stat) of each of the four processes is read, and the coordinator's share of the
cluster's CPU is reported: how much of the work the operators above the scans (which run on the
coordinator today) take.
"""

import argparse
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import duckdb
import trino

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "tpch"))
sys.path.insert(0, str(ROOT / "tests" / "support"))
import oracle  # noqa: E402
from compare import compare, order_by_columns  # noqa: E402
from harness import HOST, stop, write_server_etc  # noqa: E402

STARTUP_TIMEOUT_S = 120
NODES = (("rm-1", "resource-manager"), ("coordinator-1", "coordinator"), ("worker-1", "worker"), ("worker-2", "worker"))
COORDINATOR = "coordinator-1"
WARM_UP = "SELECT count(*), max(comment) FROM tpch.tiny.lineitem"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def schema_for(scale):
    return "tiny" if scale == 0.01 else f"sf{scale:g}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and fields[12].
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tail(path, lines=30):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"({error})"


# ---------------------------------------------------------------------------------------------
# DuckDB
# ---------------------------------------------------------------------------------------------


def run_duckdb(data_dir, names, repeat, timeout_s):
    """{query: {"ms", "columns", "types", "rows", "error"}}; the result of the first run."""
    connection = oracle.connect(data_dir)
    results = {}
    for name in names:
        sql = oracle.duckdb_text(name)
        entry = {"ms": None, "error": None}
        for attempt in range(repeat):
            timer = threading.Timer(timeout_s, connection.interrupt)
            timer.start()
            started = time.perf_counter()
            try:
                columns, types, rows = oracle.run(connection, sql)
            except Exception as error:  # noqa: BLE001 - reported in the table
                entry["error"] = f"timeout after {timeout_s} s" if not timer.is_alive() else repr(error)
                break
            finally:
                timer.cancel()
            elapsed = (time.perf_counter() - started) * 1000
            entry["ms"] = elapsed if entry["ms"] is None else min(entry["ms"], elapsed)
            if attempt == 0:
                entry.update(columns=columns, types=types, rows=rows, order_by=order_by_columns(sql, columns))
        results[name] = entry
        print(f"  duckdb {name}: {fmt_ms(entry['ms'])} ms {entry['error'] or ''}", flush=True)
    connection.close()
    return results


# ---------------------------------------------------------------------------------------------
# The fireball cluster
# ---------------------------------------------------------------------------------------------


class Cluster:
    def __init__(self, binary, root):
        self.binary = binary
        self.root = root
        self.processes = {}
        self.ports = {name: free_port() for name, _ in NODES}
        rm_uris = [f"http://{HOST}:{self.ports[name]}" for name, role in NODES if role == "resource-manager"]
        (root / "logs").mkdir(parents=True)
        for name, role in NODES:
            etc = write_server_etc(root / name, name, role, self.ports[name], rm_uris)
            with open(self.log(name), "wb") as log:
                self.processes[name] = subprocess.Popen(
                    [binary, "server", "--etc", str(etc)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                )

    def log(self, name):
        return self.root / "logs" / f"{name}.log"

    @property
    def coordinator_port(self):
        return self.ports[COORDINATOR]

    def logs(self):
        return "\n".join(f"----- {name} -----\n{tail(self.log(name))}" for name in self.processes)

    def cpu(self):
        return {name: cpu_seconds(process.pid) for name, process in self.processes.items()}

    def raw_query(self, sql, deadline):
        """(last page, rows) of a statement run with the bare protocol (no client library)."""
        request = urllib.request.Request(
            f"http://{HOST}:{self.coordinator_port}/v1/statement",
            data=sql.encode(),
            headers={"X-Presto-User": "bench-readiness"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            page = json.load(response)
        rows = list(page.get("data", []))
        while "nextUri" in page and time.monotonic() < deadline:
            with urllib.request.urlopen(page["nextUri"], timeout=15) as response:
                page = json.load(response)
            rows += page.get("data", [])
        return page, rows

    def wait_ready(self, timeout_s):
        """Until the coordinator runs SELECT count(*) FROM tpch.tiny.nation (25) on a worker; then
        one unmeasured warm-up scan of tpch.tiny.lineitem, which has splits on both workers, so
        that no measured query pays a process's one-off start-up costs (page faults of the binary,
        the data generator's first use)."""
        deadline = time.monotonic() + timeout_s
        problem = "not polled yet"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.logs()}")
            try:
                page, rows = self.raw_query("SELECT count(*) FROM tpch.tiny.nation", deadline)
                if page["stats"]["state"] == "FINISHED" and rows == [[25]]:
                    page, rows = self.raw_query(WARM_UP, deadline)
                    if page["stats"]["state"] != "FINISHED":
                        raise RuntimeError(f"warm-up {WARM_UP!r} ended {page.get('error') or page['stats']}")
                    return
                problem = f"readiness query: {page.get('error') or page['stats']['state']} {rows}"
            except (OSError, ValueError, KeyError) as error:
                problem = repr(error)
            time.sleep(0.5)
        raise TimeoutError(f"coordinator not ready within {timeout_s} s: {problem}\n{self.logs()}")

    def stop(self):
        for process in self.processes.values():
            stop(process)


def run_trino(port, schema, sql, timeout_s):
    """(ms, columns, types, rows) through the trino client; raises on error or timeout."""
    connection = trino.dbapi.connect(
        host=HOST, port=port, user="bench", catalog="tpch", schema=schema, http_scheme="http",
        request_timeout=min(timeout_s, 120),
    )
    cursor = connection.cursor()
    outcome = {}

    def execute():
        try:
            started = time.perf_counter()
            cursor.execute(sql)
            rows = cursor.fetchall()
            outcome["ms"] = (time.perf_counter() - started) * 1000
            outcome["result"] = ([c[0] for c in cursor.description], [c[1] for c in cursor.description], rows)
        except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    thread.join(timeout_s)
    try:
        if thread.is_alive():
            try:
                cursor.cancel()
            except Exception:  # noqa: BLE001 - the query is reported as timed out either way
                pass
            thread.join(10)
            raise TimeoutError(f"timeout after {timeout_s} s")
        if "error" in outcome:
            raise outcome["error"]
        return (outcome["ms"], *outcome["result"])
    finally:
        connection.close()


def run_fireball(binary, names, schema, repeat, timeout_s, duck, work_dir):
    cluster = Cluster(binary, work_dir / "cluster")
    results = {}
    try:
        started = time.monotonic()
        cluster.wait_ready(STARTUP_TIMEOUT_S)
        print(f"  cluster ready in {time.monotonic() - started:.1f} s (coordinator on port "
              f"{cluster.coordinator_port}, logs in {cluster.root / 'logs'})", flush=True)
        cpu_before = cluster.cpu()
        for name in names:
            sql = oracle.query_text(name)
            entry = {"ms": None, "error": None, "correct": None, "differences": []}
            for attempt in range(repeat):
                try:
                    elapsed, columns, types, rows = run_trino(cluster.coordinator_port, schema, sql, timeout_s)
                except Exception as error:  # noqa: BLE001 - reported in the table
                    entry["error"] = str(getattr(error, "message", None) or error)
                    break
                entry["ms"] = elapsed if entry["ms"] is None else min(entry["ms"], elapsed)
                if attempt == 0:
                    expected = duck.get(name, {})
                    if expected.get("rows") is None:
                        entry["correct"] = "no duckdb result"
                    else:
                        expected = {**expected, "ordered": bool(expected["order_by"])}
                        entry["differences"] = compare(expected, columns, rows, expected["ordered"], actual_types=types)
                        entry["rows"] = len(rows)
                        entry["correct"] = "OK" if not entry["differences"] else f"{len(entry['differences'])} differences"
            if entry["error"]:
                entry["correct"] = "ERROR"
            results[name] = entry
            print(f"  fireball {name}: {fmt_ms(entry['ms'])} ms {entry['correct']} {entry['error'] or ''}", flush=True)
            for difference in entry["differences"][:5]:
                print(f"      {difference}", flush=True)
        cpu_after = cluster.cpu()
    finally:
        cluster.stop()
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    total = sum(cpu.values())
    share = cpu[COORDINATOR] / total if total > 0 else None
    return results, {"seconds": cpu, "total_seconds": total, "coordinator_share": share}


# ---------------------------------------------------------------------------------------------
# DataFusion alone: `fireball datafusion`
# ---------------------------------------------------------------------------------------------


def datafusion_available(binary):
    try:
        probe = subprocess.run([binary, "datafusion", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, repr(error)
    if probe.returncode != 0:
        text = (probe.stderr or probe.stdout).decode(errors="replace").strip().splitlines()
        return False, f"exit {probe.returncode}: {text[0] if text else 'no output'}"
    return True, None


def run_datafusion(binary, names, schema, repeat, timeout_s):
    available, why = datafusion_available(binary)
    if not available:
        print(f"  `{binary} datafusion` is not available ({why}): the DataFusion column is missing", flush=True)
        return None, f"`fireball datafusion` not available: {why}"
    results = {}
    for name in names:
        entry = {"ms": None, "error": None, "rows": None}
        for _ in range(repeat):
            command = [binary, "datafusion", "--schema", schema, "--file", str(oracle.QUERIES / f"{name}.sql")]
            try:
                done = subprocess.run(command, capture_output=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                entry["error"] = f"timeout after {timeout_s} s"
                break
            lines = done.stdout.decode(errors="replace").strip().splitlines()
            try:
                answer = json.loads(lines[-1])
                elapsed, rows = float(answer["elapsed_ms"]), answer["rows"]
            except (IndexError, ValueError, KeyError, TypeError):
                message = done.stderr.decode(errors="replace").strip().splitlines()
                entry["error"] = f"exit {done.returncode}: {(message or lines or ['no output'])[-1]}"
                break
            entry["ms"] = elapsed if entry["ms"] is None else min(entry["ms"], elapsed)
            entry["rows"] = rows
        results[name] = entry
        print(f"  datafusion {name}: {fmt_ms(entry['ms'])} ms {entry['error'] or ''}", flush=True)
    return results, None


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt_ms(ms):
    return "-" if ms is None else f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def report(names, duck, fire, cpu, fusion, fusion_missing):
    header = ("query", "fireball ms", "DataFusion ms", "DuckDB ms", "fireball/DF", "SF correctness")
    lines = []
    totals = {"fireball": 0.0, "datafusion": 0.0, "duckdb": 0.0}
    complete = {"fireball": True, "datafusion": fusion is not None, "duckdb": True}
    per_query = {}
    for name in names:
        f, d = fire.get(name, {}), duck.get(name, {})
        df = (fusion or {}).get(name, {})
        ratio = f["ms"] / df["ms"] if f.get("ms") and df.get("ms") else None
        correct = f.get("correct") or "-"
        if f.get("error"):
            correct = f"ERROR: {f['error'][:60]}"
        for key, value in (("fireball", f.get("ms")), ("datafusion", df.get("ms")), ("duckdb", d.get("ms"))):
            if value is None:
                complete[key] = False
            else:
                totals[key] += value
        datafusion_cell = "missing" if fusion is None else fmt_ms(df.get("ms")) if not df.get("error") else "ERROR"
        lines.append((name, fmt_ms(f.get("ms")), datafusion_cell, fmt_ms(d.get("ms")) if not d.get("error") else "ERROR",
                      "-" if ratio is None else f"{ratio:.2f}", correct))
        per_query[name] = {
            "fireball_ms": f.get("ms"), "fireball_error": f.get("error"), "rows": f.get("rows"),
            "correct": f.get("correct"), "differences": f.get("differences", []),
            "datafusion_ms": df.get("ms"), "datafusion_rows": df.get("rows"), "datafusion_error": df.get("error"),
            "duckdb_ms": d.get("ms"), "duckdb_rows": len(d["rows"]) if d.get("rows") is not None else None,
            "duckdb_error": d.get("error"),
            "fireball_over_datafusion": ratio,
        }
    # The total ratio only over the queries both finished, so that a failure on one side does
    # not flatter or penalise the other.
    both = [name for name in names
            if fire.get(name, {}).get("ms") is not None and (fusion or {}).get(name, {}).get("ms") is not None]
    both_df = sum(fusion[name]["ms"] for name in both)
    total_ratio = sum(fire[name]["ms"] for name in both) / both_df if both and both_df else None
    ok = sum(1 for name in names if fire.get(name, {}).get("correct") == "OK")
    finished = {key: any((source or {}).get(name, {}).get("ms") is not None for name in names)
                for key, source in (("fireball", fire), ("datafusion", fusion), ("duckdb", duck))}

    def total_cell(key):
        if not finished[key]:
            return "-"
        return fmt_ms(totals[key]) + ("" if complete[key] else "*")

    lines.append(("total", total_cell("fireball"),
                  "missing" if fusion is None else total_cell("datafusion"),
                  total_cell("duckdb"),
                  "-" if total_ratio is None else f"{total_ratio:.2f}", f"{ok}/{len(names)} OK"))
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(str(cell).ljust(width) if i in (0, 5) else str(cell).rjust(width)
                     for i, (cell, width) in enumerate(zip(row, widths)))
           for row in [header, *lines]]
    out.insert(1, "  ".join("-" * width for width in widths))
    out.insert(len(out) - 1, "  ".join("-" * width for width in widths))
    print("\n".join(out))
    if not all(complete.values()):
        print("* a total over the queries that finished (others failed or timed out); the total "
              f"fireball/DF ratio is over the {len(both)} queries both finished")
    if fusion is None:
        print(f"DataFusion column missing: {fusion_missing}")
    else:
        # Only counted, not compared: a row count other than DuckDB's says the baseline is off.
        off = [f"{name} ({fusion[name]['rows']} rows, DuckDB {len(duck[name]['rows'])})" for name in names
               if fusion.get(name, {}).get("rows") is not None and duck.get(name, {}).get("rows") is not None
               and fusion[name]["rows"] != len(duck[name]["rows"])]
        if off:
            print("DataFusion row counts differ from DuckDB's: " + ", ".join(off))
    seconds = cpu["seconds"]
    share = cpu["coordinator_share"]
    print("cluster CPU during the fireball run: " + ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())
          + f"; coordinator share {'-' if share is None else f'{share * 100:.1f} %'} of {cpu['total_seconds']:.2f} s")
    return per_query, {key: (value if complete[key] else None) for key, value in totals.items()}, total_ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=pathlib.Path, default=ROOT / "target" / "bench" / "release" / "fireball")
    parser.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (schema sfN; 0.01 is tiny)")
    parser.add_argument("--queries", help="comma-separated, e.g. q01,q06 (default: all 22)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per query and engine; the best is reported")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per query run and engine")
    parser.add_argument("--data-dir", type=pathlib.Path, help="Parquet cache (default target/bench/tpch-sfN)")
    parser.add_argument("--out", type=pathlib.Path, help="JSON results (default target/bench/tpch-sfN-results.json)")
    args = parser.parse_args()

    binary = args.binary.resolve()
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"no fireball binary at {binary} (build it, or pass --binary)")
    scale = f"{args.scale:g}"
    schema = schema_for(args.scale)
    names = args.queries.split(",") if args.queries else oracle.query_names()
    unknown = [name for name in names if name not in oracle.query_names()]
    if unknown:
        raise SystemExit(f"unknown queries {unknown}; known: {oracle.query_names()}")
    data_dir = args.data_dir or ROOT / "target" / "bench" / f"tpch-sf{scale}"
    out = args.out or ROOT / "target" / "bench" / f"tpch-sf{scale}-results.json"
    repeat = max(1, args.repeat)

    print(f"TPC-H sf {scale} (schema {schema}), {len(names)} queries, best of {repeat}, timeout {args.timeout:g} s; "
          f"binary {binary}; {os.cpu_count()} processors", flush=True)
    started = time.monotonic()
    oracle.generate_data(scale, data_dir)
    print(f"data: {data_dir} ({time.monotonic() - started:.1f} s)", flush=True)

    print("DuckDB:", flush=True)
    duck = run_duckdb(data_dir, names, repeat, args.timeout)
    print("fireball cluster (1 RM, 1 coordinator, 2 workers):", flush=True)
    with tempfile.TemporaryDirectory(prefix="fireball-bench-") as temp:
        fire, cpu = run_fireball(str(binary), names, schema, repeat, args.timeout, duck, pathlib.Path(temp))
    print("DataFusion in one process:", flush=True)
    fusion, fusion_missing = run_datafusion(str(binary), names, schema, repeat, args.timeout)
    print()
    per_query, totals, total_ratio = report(names, duck, fire, cpu, fusion, fusion_missing)

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "scale": args.scale, "schema": schema, "repeat": repeat, "timeout_s": args.timeout,
        "binary": str(binary), "processors": os.cpu_count(), "machine": platform.platform(),
        "duckdb_version": duckdb.__version__, "trino_client_version": trino.__version__,
        "datafusion_missing": fusion_missing,
        "queries": per_query,
        "totals_ms": totals, "fireball_over_datafusion_total": total_ratio,
        "correct": sum(1 for entry in per_query.values() if entry["correct"] == "OK"),
        "cluster_cpu": cpu,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
