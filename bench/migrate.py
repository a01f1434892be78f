#!/usr/bin/env python
"""Benchmark of ``mcb db upgrade`` on a large legacy database, under live writes (issue 2, "Benchmark").

What it does, in order:

1. Starts a throwaway embedded PostgreSQL (or uses ``--database-url`` / ``MCB_TEST_DATABASE_URL``),
   builds the original single-tenant schema and fills ONE template database with messy legacy rows
   (1M contacts, 1M payments, 3M webhook_logs, 10k meta ads, 300k insights at ``--scale 1``).
   Every measured run works on a fresh clone (``CREATE DATABASE ... TEMPLATE``), so the fill is paid once.
2. Run A, MCB: ``mcb.migrate.backup.backup`` on a clone (timed on its own), then ``runner.upgrade``
   with ``make_backup=False``, timing every revision and the two backfills.
3. During every migration run, a writer in a separate process behaves like the original application:
   every 10 ms a webhook_logs row (for the previous contact) and a new contact, legacy columns only,
   each in its own autocommit transaction; it records every write's latency and every failure.
4. Run B, the original's migration SQL (spec section 2.2), statement by statement in autocommit as if
   pasted into an editor, on another clone with the same writer; optionally also as one transaction.
5. The backfill revisions 0005 and 0006 alone at 1%, 10% and 100% of the contacts, to see whether their
   throughput stays flat as the tables grow (each size several times, the fastest kept).
6. A summary with PASS/MISS for each goal of the issue.

Run ``python bench/migrate.py --help``. Results are printed with Rich; ``--json`` prints them as JSON on
stdout (the progress then goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "src"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

FULL = {"contacts": 1_000_000, "payments": 1_000_000, "webhook_logs": 3_000_000, "ads": 10_000}
INSIGHTS_PER_AD = 30
WRITE_INTERVAL_S = 0.010
WRITER_APP = "bench-writer"
GOAL_STALL_MS = 100.0
GOAL_RATIO = 8.0
GOAL_ROWS_PER_S = 50_000.0
# "Flat from 10k to 1M rows (pgroll's backfill falls from ~55k to ~10k rows/s as tables grow)": no size
# may run below 80% of the best rate at a smaller size. A small size may be slower than a larger one: a pass
# of 10,000 rows takes a tenth of a second, of which opening and warming two connections is a fifth.
GOAL_FLAT = 0.80
SAME_CHANGES = ("0002", "0003", "0004")  # MCB's revisions that make the changes of the original's script


# ============================================================================================ the writer


@dataclass
class WriterStats:
    writes: int = 0
    failed: int = 0
    max_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_gap_ms: float = 0.0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    worst: list[dict[str, Any]] = field(default_factory=list)
    waits: dict[str, Any] = field(default_factory=dict)


CONTACT_SQL = (
    "INSERT INTO contacts (mc_id, first_name, email_primary, phone, stage, source, subscribe_date, subscribed) "
    "VALUES (%s, %s, %s, %s, 'new_lead', 'instagram', now(), now()) RETURNING id"
)
LOG_SQL = (
    "INSERT INTO webhook_logs (source, event_type, contact_id, mc_id, payload, status) "
    "VALUES ('manychat', 'contact_updated', %s, %s, %s::jsonb, 'processed')"
)


def writer_main(url: str, tag: str, stop: Any, ready: Any, out: Any) -> None:
    """Write like the original application until ``stop`` is set; send a WriterStats dict to ``out``.

    Each tick (every 10 ms): a webhook_logs row for the previous contact (as a webhook about a known
    subscriber does), then a new contact. Legacy columns only, never tenant_id; autocommit.
    """
    latencies: list[float] = []
    worst: list[tuple[float, float, str, str]] = []  # (latency s, start monotonic, kind, error)
    errors: Counter[str] = Counter()
    failed = 0
    conn: psycopg.Connection[Any] | None = None
    previous: tuple[Any, str] | None = None
    started = time.monotonic()
    last_done = started
    max_gap = 0.0
    next_tick = started
    n = 0

    def write(kind: str, sql: str, params: tuple[Any, ...]) -> Any:
        nonlocal conn, failed, last_done, max_gap
        error = ""
        result = None
        t0 = time.monotonic()
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(url, autocommit=True, application_name=WRITER_APP)
            cur = conn.execute(sql, params)
            result = cur.fetchone() if cur.description else True
        except Exception as exc:  # any failure of a write counts
            failed += 1
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            errors[error[:200]] += 1
            if conn is not None and conn.broken:
                conn = None
        t1 = time.monotonic()
        latency = t1 - t0
        latencies.append(latency)
        max_gap = max(max_gap, t1 - last_done)
        last_done = t1
        worst.append((latency, t0, kind, error))
        if len(worst) > 64:
            worst.sort(reverse=True)
            del worst[16:]
        return result

    while not stop.is_set():
        now = time.monotonic()
        if now < next_tick:
            time.sleep(next_tick - now)
        next_tick = max(next_tick + WRITE_INTERVAL_S, time.monotonic())
        n += 1
        if previous is not None:
            payload = json.dumps({"subscriber_id": previous[1], "n": n})
            write("webhook_logs", LOG_SQL, (previous[0], previous[1], payload))
        mc_id = f"bench_{tag}_{n}"
        row = write("contact", CONTACT_SQL, (mc_id, f"Writer{n}", f"writer{n}@example.com", f"+1555{n:07d}"))
        if isinstance(row, tuple):
            previous = (row[0], mc_id)
        if n == 25:
            ready.set()
    ready.set()
    if conn is not None:
        with suppress(Exception):
            conn.close()
    worst.sort(reverse=True)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    stats = WriterStats(
        writes=len(latencies),
        failed=failed,
        max_ms=max(ordered, default=0.0) * 1000,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        p999_ms=pct(0.999),
        max_gap_ms=max_gap * 1000,
        seconds=time.monotonic() - started,
        errors=dict(errors.most_common(5)),
        worst=[{"ms": lat * 1000, "start": start, "kind": kind, "error": err} for lat, start, kind, err in worst[:5]],
    )
    out.put(asdict(stats))


@dataclass
class Interval:
    label: str
    start: float
    end: float


def attribute(stats: WriterStats, timeline: list[Interval]) -> None:
    """Name the migration step that overlapped each of the writer's worst writes the most."""
    for w in stats.worst:
        lo, hi = w["start"], w["start"] + w["ms"] / 1000
        best, overlap = "between steps", 0.0
        for step in timeline:
            o = min(hi, step.end) - max(lo, step.start)
            if o > overlap:
                best, overlap = step.label, o
        w["during"] = best


MONITOR_SQL = """
SELECT w.query_start, w.wait_event_type, w.wait_event, left(w.query, 40),
       (SELECT string_agg(left(regexp_replace(b.query, '\\s+', ' ', 'g'), 120), ' | ')
          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(w.pid)))
FROM pg_stat_activity w
WHERE w.application_name = %s AND w.state = 'active' AND w.query_start < now() - interval '20 milliseconds'
"""


class WaitMonitor:
    """Polls pg_stat_activity every 10 ms for the writer's slow statements: what each one waited on.

    A write that waits on a lock names the statement blocking it; a slow write that never waits on a
    lock was slowed by the machine (CPU, WAL flushes, I/O), not by the migration's locks.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.episodes: dict[Any, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WaitMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name="bench-monitor")
        except psycopg.Error:
            return
        with conn:
            while not self._stop.wait(0.01):
                try:
                    rows = conn.execute(MONITOR_SQL, (WRITER_APP,)).fetchall()
                except psycopg.Error:
                    continue
                now = datetime.now(UTC)
                for started, wtype, wevent, query, blockers in rows:
                    ep = self.episodes.setdefault(started, {"query": query, "waits": Counter(), "blockers": set(),
                                                            "lock_ms": 0.0, "seen_ms": 0.0, "_last_lock": None})
                    ep["seen_ms"] = (now - started).total_seconds() * 1000
                    ep["waits"][f"{wtype}:{wevent}" if wtype else "CPU (no wait event)"] += 1
                    if wtype == "Lock":
                        ep["lock_ms"] = ep["seen_ms"]
                        if blockers:
                            ep["blockers"].add(blockers)

    def summary(self) -> dict[str, Any]:
        eps = sorted(self.episodes.values(), key=lambda e: -e["seen_ms"])
        lock = [e for e in eps if e["lock_ms"] > 0]
        return {
            "slow_writes_seen": len(eps),
            "lock_waits": len(lock),
            "max_lock_wait_ms": max((e["lock_ms"] for e in lock), default=0.0),
            "worst": [{"ms": round(e["seen_ms"], 1), "query": e["query"], "waits": dict(e["waits"].most_common(3)),
                       "blocked_by": sorted(e["blockers"])[:3]} for e in eps[:8]],
        }


@contextmanager
def live_writer(url: str, tag: str, console: Console) -> Iterator[WriterStats]:
    """Run the writer process around the body; the yielded stats are filled in when the body ends."""
    ctx = mp.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=writer_main, args=(url, tag, stop, ready, out), daemon=True)
    proc.start()
    if not ready.wait(60):
        proc.kill()
        raise RuntimeError("the writer process did not start writing within 60 s")
    stats = WriterStats()
    monitor = WaitMonitor(url)
    try:
        with monitor:
            yield stats
    finally:
        stop.set()
        try:
            got = out.get(timeout=600)
        except Exception:
            got = None
        proc.join(30)
        if proc.is_alive():
            proc.kill()
        if got is None:
            console.print("[red]the writer process did not report[/red]")
        else:
            for k, v in got.items():
                setattr(stats, k, v)
        stats.waits = monitor.summary()


@contextmanager
def load_sampler() -> Iterator[dict[str, float]]:
    """The machine's 1-minute load average, sampled every 2 s while the body runs (other work skews timings)."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    out: dict[str, float] = {}
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        samples = samples or [os.getloadavg()[0]]
        out.update({"mean": round(sum(samples) / len(samples), 2), "max": round(max(samples), 2)})


# ============================================================================================ database


class Server:
    """The PostgreSQL the benchmark runs on: a throwaway embedded one, or the one at a given URL."""

    def __init__(self, database_url: str | None) -> None:
        from tests.pg import PgServer, start_server

        self.handle: Any = None
        if database_url:
            self.pg = PgServer(database_url)
        else:
            os.environ.pop("MCB_TEST_DATABASE_URL", None)
            self.pg, self.handle = start_server()
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return self.pg.url_for(name)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.admin_url, autocommit=True)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if template is None:
                conn.execute(f'CREATE DATABASE "{name}"')
            else:
                try:  # FILE_COPY (15+) copies the files after a checkpoint instead of WAL-logging every block
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
                except psycopg.errors.SyntaxError:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def checkpoint(self) -> None:
        with suppress(psycopg.Error), self.admin() as conn:
            conn.execute("CHECKPOINT")

    def info(self) -> dict[str, str]:
        keys = ("server_version", "shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size",
                "max_parallel_maintenance_workers", "synchronous_commit", "fsync")
        with self.admin() as conn:
            return {k: str(conn.execute(f"SHOW {k}").fetchone()[0]) for k in keys}  # type: ignore[index]

    def close(self) -> None:
        for name in list(self.created):
            with suppress(Exception):
                self.drop(name)
        if self.handle is not None:
            with suppress(Exception):
                self.handle.cleanup()


def split_statements(sql: str) -> list[str]:
    """The statements of tests.legacy_data.generated_rows (each INSERT ... ; on its own)."""
    parts = re.split(r";\s*\n(?=\s*INSERT\b)", sql.strip())
    return [p.strip().rstrip(";") for p in parts if p.strip()]


def fill(server: Server, name: str, sizes: dict[str, int], console: Console, *, show: bool = True) -> dict[str, Any]:
    """Create database ``name`` with the original schema and fill it; returns timings."""
    from tests.legacy_data import generated_rows
    from tests.pg import build_legacy_schema

    url = server.create(name)
    build_legacy_schema(url)
    sql = generated_rows(sizes["contacts"], sizes["payments"], sizes["webhook_logs"], sizes["ads"], INSIGHTS_PER_AD)
    statements = split_statements(sql)
    per_table: dict[str, float] = {}
    started = time.monotonic()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=console, disable=not show, transient=False)
    with progress, psycopg.connect(url, autocommit=True) as conn:
        for stmt in statements:
            table = re.search(r"INSERT INTO (\w+)", stmt)
            label = table.group(1) if table else stmt[:30]
            task = progress.add_task(f"fill {name}: {label}", total=None)
            t0 = time.monotonic()
            conn.execute(stmt.encode())
            per_table[label] = per_table.get(label, 0.0) + time.monotonic() - t0
            progress.update(task, total=1, completed=1)
        fill_s = time.monotonic() - started
        task = progress.add_task(f"fill {name}: VACUUM ANALYZE", total=None)
        t0 = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        vacuum_s = time.monotonic() - t0
        progress.update(task, total=1, completed=1)
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]  # type: ignore[index]
    return {"seconds": fill_s, "vacuum_analyze_seconds": vacuum_s, "per_table_seconds": per_table, "size": size}


def count_rows(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]


# ============================================================================================ run A: MCB


@dataclass
class BackfillRecord:
    name: str
    unit: str
    total: int
    scanned: int = 0
    written: int = 0
    seconds: float = 0.0

    @property
    def scanned_per_s(self) -> float:
        return self.scanned / self.seconds if self.seconds else 0.0

    @property
    def written_per_s(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def make_reporter(console: Console, *, verbose: bool) -> Any:
    from mcb.migrate.progress import BackfillProgress, Reporter, RichReporter

    base: type[Reporter] = RichReporter if verbose else Reporter

    class _Recording(BackfillProgress):
        def __init__(self, inner: BackfillProgress, record: BackfillRecord) -> None:
            self.inner, self.record, self.t0 = inner, record, time.monotonic()

        def advance(self, scanned: int, written: int) -> None:
            self.record.scanned += scanned
            self.record.written += written
            self.inner.advance(scanned, written)

        def finish(self) -> None:
            self.record.seconds = time.monotonic() - self.t0
            self.inner.finish()

    class BenchReporter(base):  # type: ignore[valid-type,misc]
        """Shows progress (when verbose) and records revisions, steps and backfills with their times."""

        def __init__(self) -> None:
            if base is RichReporter:
                super().__init__(console)
            else:
                super().__init__()
            self.revisions: list[dict[str, Any]] = []
            self.timeline: list[Interval] = []
            self.backfills: dict[str, BackfillRecord] = {}
            self.all_steps: list[dict[str, Any]] = []
            self._rev: str | None = None
            self._retries_at_start = 0

        def revision_started(self, revision: str, title: str) -> None:
            super().revision_started(revision, title)
            self._rev = revision
            self._retries_at_start = self.lock_retries

        def revision_done(self, revision: str, title: str, seconds: float) -> None:
            super().revision_done(revision, title, seconds)
            end = time.monotonic()
            slowest = max(self.steps, key=lambda s: s.seconds, default=None)
            self.revisions.append({
                "revision": revision, "title": title, "seconds": seconds, "steps": len(self.steps),
                "lock_retries": self.lock_retries - self._retries_at_start,
                "slowest_step": slowest.label if slowest else "", "slowest_step_seconds": slowest.seconds if slowest else 0.0,
            })
            self.timeline.append(Interval(f"revision {revision}", end - seconds, end))

        def step_done(self, label: str, seconds: float) -> None:
            super().step_done(label, seconds)
            end = time.monotonic()
            self.timeline.append(Interval(f"{self._rev}: {label}", end - seconds, end))
            self.all_steps.append({"revision": self._rev, "step": label, "seconds": seconds})

        def backfill_started(self, name: str, total: int, already: int, unit: str) -> BackfillProgress:
            inner = super().backfill_started(name, total, already, unit)
            record = BackfillRecord(name, unit, total)
            self.backfills[name] = record
            return _Recording(inner, record)

    return BenchReporter()


def settings_for_bench() -> Any:
    from mcb.config import Settings

    return Settings(MCB_HOME=Path(tempfile.gettempdir()) / "mcb-bench-home")  # type: ignore[call-arg]


def run_mcb(server: Server, template: str, console: Console, *, verbose: bool, backup: bool) -> dict[str, Any]:
    from mcb.db.engine import make_engine
    from mcb.migrate import backup as backups
    from mcb.migrate import runner

    name = f"bench_a_{os.getpid()}"
    url = server.create(name, template)
    result: dict[str, Any] = {}
    try:
        if backup:
            folder = Path(tempfile.mkdtemp(prefix="mcb-bench-backup-"))
            try:
                with console.status("Run A: backup (pg_dump -Fc) of the clone"):
                    t0 = time.monotonic()
                    path = backups.backup(url, folder / "before.dump")
                    result["backup_seconds"] = time.monotonic() - t0
                    result["backup_bytes"] = path.stat().st_size
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            console.print(f"Run A: backup took {result['backup_seconds']:.1f}s "
                          f"({result['backup_bytes'] / 2**20:.0f} MiB)")
        server.checkpoint()
        engine = make_engine(url)
        reporter = make_reporter(console, verbose=verbose)
        console.rule("Run A — mcb db upgrade (make_backup=False) under live writes")
        with load_sampler() as load, live_writer(url, "a", console) as writer:
            t0 = time.monotonic()
            upgrade = runner.upgrade(engine, url, make_backup=False, settings=settings_for_bench(), reporter=reporter)
            total = time.monotonic() - t0
            last_revision_end = max((iv.end for iv in reporter.timeline), default=t0)
            reporter.timeline.append(Interval("verify", last_revision_end, time.monotonic()))
        attribute(writer, reporter.timeline)
        verified = bool(upgrade.verification is not None and upgrade.verification.passed)
        with engine.connect() as conn:
            log = [dict(r._mapping) for r in conn.exec_driver_sql(
                "SELECT action, revision, status, duration_ms FROM mcb_migration_log ORDER BY id")]
        engine.dispose()
        events = count_rows(url, ("funnel_events",))["funnel_events"]
        result.update({
            "total_seconds": total,
            "revisions": reporter.revisions,
            "steps": reporter.all_steps,
            "lock_retries": reporter.lock_retries,
            "backfills": {k: {**asdict(v), "scanned_per_s": v.scanned_per_s, "written_per_s": v.written_per_s}
                          for k, v in reporter.backfills.items()},
            "verify_seconds": next((r["duration_ms"] / 1000 for r in log if r["action"] == "verify"), None),
            "verified": verified,
            "funnel_events": events,
            "writer": asdict(writer),
            "load": load,
            "timeline": [{"label": iv.label, "start": round(iv.start - t0, 3), "end": round(iv.end - t0, 3)}
                         for iv in reporter.timeline],
            "log": log,
        })
    finally:
        server.drop(name)
    return result


def upgrade_to(engine: Any, target: str, reporter: Any) -> None:
    """Adopt a legacy database if needed and apply the revisions up to ``target`` with Alembic.

    Only public pieces are used (the runner's own apply loop is private and changes): backfill progress
    still reaches ``reporter`` through ``mcb.migrate.progress.reporting``.
    """
    from alembic import command

    from mcb.migrate import ledger, online, runner
    from mcb.migrate.adopt import inspect_shape
    from mcb.migrate.progress import reporting

    settings = settings_for_bench()
    online.settings.lock_timeout_ms = settings.lock_timeout_ms
    online.settings.lock_retries = settings.lock_retries
    online.settings.batch_size = settings.backfill_batch_size
    online.settings.backfill_jobs = settings.backfill_jobs
    with engine.connect() as conn:
        ledger.ensure_ledger(conn)
        if inspect_shape(conn).kind == "legacy":
            command.stamp(runner.alembic_config(conn), runner.BASE_REVISION)
        conn.commit()
        with reporting(reporter):
            command.upgrade(runner.alembic_config(conn), target)
        conn.commit()


SCALING_REPEATS = {0.01: 5, 0.1: 5, 1.0: 3}  # passes at each size; the fastest is reported, all beside it


def run_scaling(server: Server, template: str, sizes: dict[str, int], console: Console) -> list[dict[str, Any]]:
    """The backfill revisions 0005 and 0006 alone (no writer) at 1%, 10% and 100% of the contacts.

    Each size is filled (or, at 100%, cloned from the template) once and upgraded to 0004 once, untimed;
    then 0005 and 0006 run on ``SCALING_REPEATS`` fresh clones of it. A pass of 10,000 contacts takes a
    tenth of a second and varies by half from run to run on a shared 2-CPU VM, whose neighbours only ever
    slow it: for each backfill the fastest run is reported, every run's rate beside it.
    """
    from mcb.db.engine import make_engine

    out = []
    for fraction, repeats in SCALING_REPEATS.items():
        contacts = max(int(sizes["contacts"] * fraction), 100)
        base = f"bench_scale_{contacts}_{os.getpid()}"
        fill_info = None
        if fraction < 1.0:
            small = {"contacts": contacts, "payments": max(int(sizes["payments"] * fraction), 100),
                     "webhook_logs": max(int(sizes["webhook_logs"] * fraction), 100),
                     "ads": max(int(sizes["ads"] * fraction), 10)}
            fill_info = fill(server, base, small, console, show=False)
        else:
            server.create(base, template)
        runs = []
        try:
            engine = make_engine(server.url(base))
            with console.status(f"scaling {contacts:,} contacts: upgrading to 0004 first (untimed)"):
                upgrade_to(engine, "0004", make_reporter(console, verbose=False))
            engine.dispose()
            for attempt in range(repeats):
                name = f"{base}_{attempt}"
                engine = make_engine(server.create(name, base))
                try:
                    server.checkpoint()
                    run: dict[str, Any] = {}
                    for rev in ("0005", "0006"):
                        reporter = make_reporter(console, verbose=False)
                        with load_sampler() as load, console.status(
                                f"scaling {contacts:,} contacts: revision {rev} alone ({attempt + 1}/{repeats})"):
                            t0 = time.monotonic()
                            upgrade_to(engine, rev, reporter)
                            run[f"{rev}_seconds"] = time.monotonic() - t0
                        run[f"{rev}_load"] = load
                        for name_, rec in reporter.backfills.items():
                            run[name_] = {**asdict(rec), "scanned_per_s": rec.scanned_per_s,
                                          "written_per_s": rec.written_per_s}
                    runs.append(run)
                finally:
                    engine.dispose()
                    server.drop(name)
        finally:
            server.drop(base)
        row: dict[str, Any] = {"contacts": contacts, "fill": fill_info, "repeats": len(runs)}
        for key, rev in (("funnel_events_from_contacts", "0005"), ("payment_categories", "0006")):
            ranked = sorted((r for r in runs if key in r), key=lambda r: r[key]["written_per_s"])
            if ranked:
                best = ranked[-1]
                row[key] = {**best[key], "all_written_per_s": [round(r[key]["written_per_s"]) for r in runs if key in r]}
                row[f"{rev}_seconds"], row[f"{rev}_load"] = best[f"{rev}_seconds"], best[f"{rev}_load"]
        fe = row.get("funnel_events_from_contacts", {})
        pc = row.get("payment_categories", {})
        console.print(
            f"scaling {contacts:>9,} contacts: funnel_events {fe.get('written_per_s', 0):>9,.0f} rows/s "
            f"({fe.get('scanned_per_s', 0):,.0f} contacts/s; runs {fe.get('all_written_per_s')}); "
            f"payments {pc.get('written_per_s', 0):,.0f} rows/s (runs {pc.get('all_written_per_s')})"
        )
        out.append(row)
    return out


# ============================================================================================ run B: original


def original_statements(cascade: bool = True) -> list[tuple[str, str]]:
    """The original's multi-tenant migration (spec 2.2, the guide's multi_tenant_migration.sql), one per entry.

    Plain ADD COLUMN ... REFERENCES (nullable, no default), single-column indexes built before the
    backfill, plain UPDATEs with a slug subquery, SET NOT NULL on contacts and payments, the unique
    constraint swap with plain ADD CONSTRAINT, non-concurrent composite indexes. The original's
    ``DROP CONSTRAINT meta_ads_ad_id_key`` fails because two foreign keys depend on it; here it gets
    CASCADE (which also drops those two foreign keys) so that the script can run to the end.
    """
    six = ("contacts", "payments", "webhook_logs", "meta_ads", "meta_ad_creatives", "meta_ad_insights")
    s: list[tuple[str, str]] = [
        ("1: create tenants", """
            CREATE TABLE IF NOT EXISTS tenants (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                slug TEXT UNIQUE NOT NULL,
                name TEXT NOT NULL,
                owner_name TEXT,
                report_email TEXT,
                is_active BOOLEAN DEFAULT true,
                config JSONB DEFAULT '{}'::jsonb,
                created_at TIMESTAMPTZ DEFAULT NOW(),
                updated_at TIMESTAMPTZ DEFAULT NOW()
            )"""),
        ("1: idx_tenants_slug", "CREATE INDEX IF NOT EXISTS idx_tenants_slug ON tenants(slug)"),
        ("1: idx_tenants_active", "CREATE INDEX IF NOT EXISTS idx_tenants_active ON tenants(is_active)"),
        ("1: seed tenants", """
            INSERT INTO tenants (slug, name, owner_name, report_email, config) VALUES
                ('ppcu', 'Postpartum Care USA', 'Eric', 'operator@example.com', '{"historical_filter": true}'),
                ('centner', 'Centner Wellness', NULL, NULL, '{}'),
                ('columnline', 'Columnline AI', 'Connor', 'operator@example.com', '{}')
            ON CONFLICT (slug) DO NOTHING"""),
        ("1: comment", "COMMENT ON TABLE tenants IS 'Businesses using the system'"),
        ("2: create tenant_integrations", """
            CREATE TABLE IF NOT EXISTS tenant_integrations (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                provider TEXT NOT NULL,
                credentials JSONB NOT NULL DEFAULT '{}'::jsonb,
                webhook_secret TEXT,
                is_active BOOLEAN DEFAULT true,
                created_at TIMESTAMPTZ DEFAULT NOW(),
                updated_at TIMESTAMPTZ DEFAULT NOW(),
                UNIQUE(tenant_id, provider)
            )"""),
        ("2: idx_tenant_integrations_tenant",
         "CREATE INDEX IF NOT EXISTS idx_tenant_integrations_tenant ON tenant_integrations(tenant_id)"),
        ("2: idx_tenant_integrations_provider",
         "CREATE INDEX IF NOT EXISTS idx_tenant_integrations_provider ON tenant_integrations(provider)"),
        ("2: idx_tenant_integrations_active",
         "CREATE INDEX IF NOT EXISTS idx_tenant_integrations_active ON tenant_integrations(tenant_id, is_active)"),
        ("2: comment", "COMMENT ON COLUMN tenant_integrations.credentials IS 'Per-provider credential keys'"),
    ]
    for t in six:
        s.append((f"3: {t} add tenant_id",
                  f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS tenant_id UUID REFERENCES tenants(id)"))
    for t in six:
        s.append((f"3: idx_{t}_tenant", f"CREATE INDEX IF NOT EXISTS idx_{t}_tenant ON {t}(tenant_id)"))
    for t in six:
        s.append((f"4: backfill {t}",
                  f"UPDATE {t} SET tenant_id = (SELECT id FROM tenants WHERE slug = 'ppcu') WHERE tenant_id IS NULL"))
    drop_meta = "ALTER TABLE meta_ads DROP CONSTRAINT IF EXISTS meta_ads_ad_id_key" + (" CASCADE" if cascade else "")
    s += [
        ("5: contacts SET NOT NULL", "ALTER TABLE contacts ALTER COLUMN tenant_id SET NOT NULL"),
        ("5: payments SET NOT NULL", "ALTER TABLE payments ALTER COLUMN tenant_id SET NOT NULL"),
        ("5: drop contacts_mc_id_key", "ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_mc_id_key"),
        ("5: drop contacts_ghl_id_key", "ALTER TABLE contacts DROP CONSTRAINT IF EXISTS contacts_ghl_id_key"),
        ("5: drop meta_ads_ad_id_key" + (" CASCADE" if cascade else ""), drop_meta),
        ("5: add contacts_tenant_mc_id_unique",
         "ALTER TABLE contacts ADD CONSTRAINT contacts_tenant_mc_id_unique UNIQUE (tenant_id, mc_id)"),
        ("5: add contacts_tenant_ghl_id_unique",
         "ALTER TABLE contacts ADD CONSTRAINT contacts_tenant_ghl_id_unique UNIQUE (tenant_id, ghl_id)"),
        ("5: drop payments_payment_event_id_key",
         "ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_payment_event_id_key"),
        ("5: add payments_tenant_event_id_unique",
         "ALTER TABLE payments ADD CONSTRAINT payments_tenant_event_id_unique UNIQUE (tenant_id, payment_event_id)"),
        ("5: add meta_ads_tenant_ad_id_unique",
         "ALTER TABLE meta_ads ADD CONSTRAINT meta_ads_tenant_ad_id_unique UNIQUE (tenant_id, ad_id)"),
        ("5: idx_contacts_tenant_stage",
         "CREATE INDEX IF NOT EXISTS idx_contacts_tenant_stage ON contacts(tenant_id, stage)"),
        ("5: idx_contacts_tenant_created",
         "CREATE INDEX IF NOT EXISTS idx_contacts_tenant_created ON contacts(tenant_id, created_at)"),
        ("5: idx_contacts_tenant_source",
         "CREATE INDEX IF NOT EXISTS idx_contacts_tenant_source ON contacts(tenant_id, source)"),
        ("5: idx_payments_tenant_date",
         "CREATE INDEX IF NOT EXISTS idx_payments_tenant_date ON payments(tenant_id, payment_date)"),
        ("5: idx_webhook_logs_tenant_source",
         "CREATE INDEX IF NOT EXISTS idx_webhook_logs_tenant_source ON webhook_logs(tenant_id, source)"),
    ]
    return s


def run_original(server: Server, template: str, console: Console, *, one_transaction: bool) -> dict[str, Any]:
    """The original's SQL on a clone under live writes: statement by statement (autocommit) or as one transaction."""
    mode = "one transaction" if one_transaction else "statement by statement (autocommit)"
    name = f"bench_b{'tx' if one_transaction else ''}_{os.getpid()}"
    url = server.create(name, template)
    server.checkpoint()
    statements = original_statements()
    records: list[dict[str, Any]] = []
    timeline: list[Interval] = []
    outcome = "completed"
    console.rule(f"Run B — the original's migration SQL, {mode}, under live writes")
    try:
        with load_sampler() as load, live_writer(url, "btx" if one_transaction else "b", console) as writer:
            t_start = time.monotonic()
            with psycopg.connect(url, autocommit=not one_transaction) as conn:
                for label, sql in statements:
                    t0 = time.monotonic()
                    error = ""
                    try:
                        conn.execute(sql.encode())
                    except psycopg.Error as exc:
                        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                    t1 = time.monotonic()
                    timeline.append(Interval(label, t0, t1))
                    records.append({"statement": label, "seconds": t1 - t0, "error": error})
                    mark = "[red]✗[/red]" if error else "[green]✓[/green]"
                    console.print(f"  {mark} {label} [dim]({t1 - t0:.2f}s)[/dim]" + (f" [red]{error}[/red]" if error else ""),
                                  highlight=False)
                    if error and one_transaction:
                        conn.rollback()
                        outcome = f"rolled back at '{label}': {error}"
                        break
                if one_transaction and outcome == "completed":
                    t0 = time.monotonic()
                    try:
                        conn.commit()
                    except psycopg.Error as exc:
                        outcome = f"commit failed: {type(exc).__name__}: {exc}"
                    timeline.append(Interval("commit", t0, time.monotonic()))
            total = time.monotonic() - t_start
        attribute(writer, timeline)
        failed_statements = [r for r in records if r["error"]]
        if not one_transaction and failed_statements:
            outcome = f"ran to the end; {len(failed_statements)} statement(s) failed"
        nulls = {}
        with suppress(psycopg.Error), psycopg.connect(url) as conn:
            for t in ("contacts", "payments", "webhook_logs"):
                nulls[t] = int(conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id IS NULL").fetchone()[0])  # type: ignore[index]
        return {"mode": mode, "total_seconds": total, "outcome": outcome, "statements": records,
                "writer": asdict(writer), "rows_without_tenant_after": nulls, "load": load}
    finally:
        server.drop(name)


# ============================================================================================ report


def ms(v: float) -> str:
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def writer_cells(w: dict[str, Any]) -> list[str]:
    worst = w["worst"][0] if w["worst"] else {}
    during = worst.get("during", "")
    return [f"{w['writes']:,}", ms(w["max_ms"]), ms(w["p99_ms"]), str(w["failed"]), during[:60]]


def print_report(results: dict[str, Any], console: Console) -> None:
    a, b, btx, scaling = results.get("run_a"), results.get("run_b"), results.get("run_b_tx"), results.get("scaling")
    console.rule("Results")
    console.print(f"Fill (template, {results['sizes']}): {results['fill']['seconds']:.1f}s "
                  f"+ VACUUM ANALYZE {results['fill']['vacuum_analyze_seconds']:.1f}s; database {results['fill']['size']}")
    if a:
        t = Table(title="Run A — MCB revisions (with writer)")
        for col in ("revision", "title", "seconds", "steps", "lock retries", "slowest step"):
            t.add_column(col, no_wrap=col != "title")
        for r in a["revisions"]:
            t.add_row(r["revision"], r["title"][:40], f"{r['seconds']:.2f}", str(r["steps"]), str(r["lock_retries"]),
                      f"{r['slowest_step'][:60]} ({r['slowest_step_seconds']:.2f}s)")
        console.print(t)
        console.print(f"backup {a.get('backup_seconds', 0):.1f}s (separate); upgrade total {a['total_seconds']:.1f}s "
                      f"(verify {a['verify_seconds'] or 0:.1f}s); verified: {a['verified']}")
        t = Table(title="Backfills in run A")
        for col in ("backfill", "source rows", "rows written", "seconds", "scanned/s", "written/s"):
            t.add_column(col)
        for name, bf in a["backfills"].items():
            t.add_row(name, f"{bf['scanned']:,} {bf['unit']}", f"{bf['written']:,}", f"{bf['seconds']:.1f}",
                      f"{bf['scanned_per_s']:,.0f}", f"{bf['written_per_s']:,.0f}")
        console.print(t)
    if scaling:
        t = Table(title="Backfill revisions alone, by size (no writer)")
        for col in ("contacts", "funnel_events written/s", "contacts scanned/s", "payments categorised/s"):
            t.add_column(col)
        for row in scaling:
            fe, pc = row.get("funnel_events_from_contacts", {}), row.get("payment_categories", {})
            t.add_row(f"{row['contacts']:,}", f"{fe.get('written_per_s', 0):,.0f}", f"{fe.get('scanned_per_s', 0):,.0f}",
                      f"{pc.get('written_per_s', 0):,.0f}")
        console.print(t)
    t = Table(title="Writer (original app: contact + webhook_logs every 10 ms)")
    for col in ("run", "seconds", "writes", "max latency", "p99", "failed", "worst stall during", "load avg"):
        t.add_column(col)
    for label, run in (("A: MCB upgrade", a), ("B: original, autocommit", b), ("B: original, one transaction", btx)):
        if run:
            w = run["writer"]
            cells = writer_cells(w)
            load = run.get("load", {})
            t.add_row(label, f"{run['total_seconds']:.1f}", *cells, f"{load.get('mean', 0):.1f} / {load.get('max', 0):.1f}")
    console.print(t)
    for label, run in (("A", a), ("B autocommit", b), ("B one transaction", btx)):
        waits = run["writer"].get("waits") if run else None
        if waits:
            worst = waits["worst"][0] if waits["worst"] else None
            line = (f"{label}: writes seen running > 20 ms: {waits['slow_writes_seen']}, of which waited on a lock: "
                    f"{waits['lock_waits']} (longest lock wait ≈ {waits['max_lock_wait_ms']:.0f} ms)")
            if worst:
                line += f"; slowest seen ≈ {worst['ms']:.0f} ms waiting on {', '.join(worst['waits'])}"
                if worst["blocked_by"]:
                    line += f", blocked by: {worst['blocked_by'][0][:100]}"
            console.print(line, highlight=False)
    for label, run in (("B autocommit", b), ("B one transaction", btx)):
        if run:
            console.print(f"{label}: {run['outcome']}; rows without tenant afterwards: {run['rows_without_tenant_after']}")
            for w in run["writer"]["errors"]:
                console.print(f"  writer error ×{run['writer']['errors'][w]}: {w}", highlight=False)
            phases: dict[str, float] = {}
            for r in run["statements"]:
                phase = "step " + r["statement"].split(":", 1)[0]
                phases[phase] = phases.get(phase, 0.0) + r["seconds"]
            console.print("  time by step of section 2.2: " + "; ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
            slow = sorted(run["statements"], key=lambda r: -r["seconds"])[:6]
            console.print("  slowest statements: " + "; ".join(f"{r['statement']} {r['seconds']:.1f}s" for r in slow))
    if a and a["writer"]["errors"]:
        for w, n in a["writer"]["errors"].items():
            console.print(f"A writer error ×{n}: {w}", highlight=False)
    t = Table(title="Goals (issue 2)")
    for col in ("goal", "measured", "result"):
        t.add_column(col)
    for g in results["goals"]:
        t.add_row(g["goal"], g["measured"], "[green]PASS[/green]" if g["passed"] else "[red]MISS[/red]")
    console.print(t)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    a, b, scaling = results.get("run_a"), results.get("run_b"), results.get("scaling")
    if a:
        w = a["writer"]
        goals.append({"goal": f"writer never stalls > {GOAL_STALL_MS:.0f} ms (run A)",
                      "measured": f"max {w['max_ms']:.0f} ms, p99 {w['p99_ms']:.1f} ms over {w['writes']:,} writes",
                      "passed": w["max_ms"] <= GOAL_STALL_MS})
        goals.append({"goal": "writer never fails (run A)", "measured": f"{w['failed']} failed",
                      "passed": w["failed"] == 0})
    if a and b:
        same = sum(r["seconds"] for r in a["revisions"] if r["revision"] in SAME_CHANGES)
        goals.append({"goal": f"{'+'.join(SAME_CHANGES)} take ≤ 1/{GOAL_RATIO:.0f} of the original's time",
                      "measured": f"{same:.1f}s vs {b['total_seconds']:.1f}s (1/{b['total_seconds'] / same:.1f})"
                      if same else "n/a",
                      "passed": bool(same) and same * GOAL_RATIO <= b["total_seconds"]})
    if a:
        for name, label in (("funnel_events_from_contacts", "funnel_events backfill"),
                            ("payment_categories", "payment category backfill")):
            bf = a["backfills"].get(name)
            if bf:
                goals.append({"goal": f"{label} ≥ {GOAL_ROWS_PER_S:,.0f} rows/s (run A, rows written)",
                              "measured": f"{bf['written_per_s']:,.0f} rows/s ({bf['scanned_per_s']:,.0f} {bf['unit']}/s)",
                              "passed": bf["written_per_s"] >= GOAL_ROWS_PER_S})
    if scaling:
        for name, label in (("funnel_events_from_contacts", "funnel_events"), ("payment_categories", "payment categories")):
            rates = [row[name]["written_per_s"] for row in scaling if name in row]
            if rates:
                sizes = ", ".join(f"{row['contacts']:,}: {row[name]['written_per_s']:,.0f}" for row in scaling if name in row)
                kept = min(rates[i] / max(rates[:i]) for i in range(1, len(rates))) if len(rates) > 1 else 1.0
                goals.append({"goal": f"{label} ≥ 50k/s at every size, and no fall as the table grows (each size "
                                      f"≥ {GOAL_FLAT:.0%} of the best smaller one)",
                              "measured": f"{sizes} rows/s; worst size-to-best-smaller {kept:.0%}, slowest to "
                                          f"fastest {min(rates) / max(rates):.0%}",
                              "passed": kept >= GOAL_FLAT and min(rates) >= GOAL_ROWS_PER_S})
    return goals


def machine() -> dict[str, Any]:
    mem = ""
    with suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    cpu = ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = {}
    with suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True,
                               text=True, check=True).stdout.strip()
        git = {"commit": head, "src_modified": bool(dirty)}
    return {"git": git, "nproc": os.cpu_count(), "memory": mem, "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


# ============================================================================================ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark mcb db upgrade against the original's migration SQL on a large legacy database, "
                    "with a live writer in a separate process.",
    )
    p.add_argument("--scale", type=float, default=1.0,
                   help="shrink the data set (1.0 = 1M contacts, 1M payments, 3M webhook_logs, 10k ads, 300k insights)")
    p.add_argument("--database-url", default=os.environ.get("MCB_TEST_DATABASE_URL"),
                   help="a PostgreSQL server to use (superuser; databases are created and dropped on it). "
                        "Default: $MCB_TEST_DATABASE_URL, else a throwaway embedded server")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout (progress goes to stderr)")
    p.add_argument("--output", type=Path, help="also write the JSON results to this file")
    p.add_argument("--no-backup", action="store_true", help="skip timing the backup in run A")
    p.add_argument("--runs", default="a,b,btx,scaling",
                   help="which runs, comma-separated: a (MCB upgrade), b (original SQL, autocommit), "
                        "btx (original SQL, one transaction), scaling (backfills alone by size); default all")
    p.add_argument("--quiet", action="store_true", help="do not print every migration step of run A")
    return p.parse_args(argv)


def snapshot_sources() -> Path:
    """Copy src/ and tests/ aside and import from the copy: the run measures one state of the code even if
    the working tree changes while it runs (the revisions are loaded from disk at every upgrade)."""
    folder = Path(tempfile.mkdtemp(prefix="mcb-bench-src-"))
    shutil.copytree(ROOT / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path[:0] = [str(folder), str(folder / "src")]
    return folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = {r.strip() for r in args.runs.split(",") if r.strip()}
    unknown = runs - {"a", "b", "btx", "scaling"}
    if unknown:
        print(f"unknown run(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    stream = sys.stderr if args.json else sys.stdout
    console = Console(stderr=args.json, width=None if stream.isatty() else 150)
    sizes = {k: max(int(v * args.scale), 10 if k == "ads" else 100) for k, v in FULL.items()}
    results: dict[str, Any] = {"machine": machine(), "sizes": {**sizes, "insights": sizes["ads"] * INSIGHTS_PER_AD},
                               "scale": args.scale, "command": " ".join(["python", "bench/migrate.py", *(argv or sys.argv[1:])]),
                               "errors": {}}
    snapshot = snapshot_sources()
    bench_settings = settings_for_bench()
    results["backfill"] = {"jobs": bench_settings.backfill_jobs, "batch": bench_settings.backfill_batch_size}

    def save() -> None:
        if args.output:
            args.output.write_text(json.dumps(results, indent=2, default=str))

    def phase(key: str, fn: Callable[[], Any]) -> None:
        try:
            results[key] = fn()
        except Exception as exc:  # one failed phase must not lose the others' figures
            results["errors"][key] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{key} failed:[/red] {type(exc).__name__}: {exc}")
        save()

    server = Server(args.database_url)
    try:
        results["postgres"] = server.info()
        console.print(f"PostgreSQL {results['postgres']['server_version']}; machine {results['machine']}")
        template = f"bench_template_{os.getpid()}"
        results["fill"] = fill(server, template, sizes, console)
        save()
        console.print(f"Template filled in {results['fill']['seconds']:.1f}s "
                      f"(+ VACUUM ANALYZE {results['fill']['vacuum_analyze_seconds']:.1f}s), {results['fill']['size']}")
        if "a" in runs:
            phase("run_a", lambda: run_mcb(server, template, console, verbose=not args.quiet, backup=not args.no_backup))
        if "b" in runs:
            phase("run_b", lambda: run_original(server, template, console, one_transaction=False))
        if "btx" in runs:
            phase("run_b_tx", lambda: run_original(server, template, console, one_transaction=True))
        if "scaling" in runs:
            console.rule("Backfill revisions alone, by size")
            phase("scaling", lambda: run_scaling(server, template, sizes, console))
        results["goals"] = evaluate(results)
        save()
        print_report(results, console)
    finally:
        server.close()
        shutil.rmtree(snapshot, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0 if results.get("goals") and all(g["passed"] for g in results["goals"]) and not results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
