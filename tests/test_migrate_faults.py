"""Faults during the migration: kill -9 anywhere, a live legacy writer, and the next run finishing the job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.migrate import runner
from mcb.migrate.verify import run_checks
from tests.legacy_data import fill_legacy, fingerprint, legacy_columns
from tests.revisions import HEAD, upgrade_to

PPCU = "2cb58664-a84a-4d74-844a-4ccd49fcef5a"
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


def _revision_and_log(url: str) -> tuple[str | None, int]:
    with psycopg.connect(url) as conn:
        has_version = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0]  # type: ignore[index]
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] if has_version else None  # type: ignore[index]
        has_log = conn.execute("SELECT to_regclass('public.mcb_migration_log')").fetchone()[0]  # type: ignore[index]
        log = conn.execute("SELECT count(*) FROM mcb_migration_log").fetchone()[0] if has_log else 0  # type: ignore[index]
        return revision, int(log)


def _start_upgrade(url: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Without the backup, so that the kills land in the migration itself (the backup is tested below).
    return subprocess.Popen([*MCB, "db", "upgrade", "--no-backup"], env={**env, "DATABASE_URL": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _assert_verify_passes(url: str, settings: Settings) -> None:
    engine = make_engine(url)
    try:
        report = run_checks(engine, settings)
    finally:
        engine.dispose()
    assert report.passed, [c for c in report.checks if not c.passed]


@pytest.mark.slow
def test_kill_9_at_any_point_then_rerun_finishes_with_data_unchanged(
    legacy_url: str, cli_env: dict[str, str], settings: Settings
) -> None:
    fill_legacy(legacy_url, contacts=30_000, payments=8_000, webhook_logs=2_000, ads=40, insights_per_ad=10)
    columns = legacy_columns(legacy_url)
    before = fingerprint(legacy_url, columns)
    env = {**cli_env, "MCB_BACKFILL_BATCH": "500"}
    rng = random.Random(20261126)
    states: list[tuple[str | None, int]] = []

    # Kills between steps: as soon as the log gains a row (a revision, the backup or the adoption recorded).
    for _ in range(4):
        _, log_rows = _revision_and_log(legacy_url)
        proc = _start_upgrade(legacy_url, env)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if _revision_and_log(legacy_url)[1] > log_rows:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append(_revision_and_log(legacy_url))

    # Kills at random moments.
    for _ in range(6):
        proc = _start_upgrade(legacy_url, env)
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append(_revision_and_log(legacy_url))

    interrupted = {s[0] for s in states if s[0] != HEAD}
    assert len(interrupted) >= 2, f"kills never landed mid-migration: {states}"

    final = subprocess.run([*MCB, "db", "upgrade"], env={**env, "DATABASE_URL": legacy_url},
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr

    _assert_verify_passes(legacy_url, settings)
    assert fingerprint(legacy_url, columns) == before
    with psycopg.connect(legacy_url) as conn:
        events = conn.execute("SELECT count(*) FROM funnel_events").fetchone()[0]  # type: ignore[index]
        leads = conn.execute(
            "SELECT count(DISTINCT contact_id) FROM funnel_events WHERE event_type IN "
            "('contact_subscribed', 'contact_created')"
        ).fetchone()[0]  # type: ignore[index]
        uncategorised = conn.execute("SELECT count(*) FROM payments WHERE payment_category IS NULL").fetchone()[0]  # type: ignore[index]
    assert leads == 30_003
    assert events > 30_003
    assert uncategorised == 0


def test_original_application_keeps_writing_during_the_upgrade(legacy_url: str, settings: Settings) -> None:
    """The original app inserts without tenant_id, all the time, and rewrites existing contacts (which moves
    them between pages under 0005's walk); none of its writes may fail or be lost."""
    fill_legacy(legacy_url, contacts=20_000, payments=5_000, webhook_logs=5_000, ads=20, insights_per_ad=5)
    with psycopg.connect(legacy_url) as conn:
        existing = [r[0] for r in conn.execute("SELECT id FROM contacts ORDER BY random() LIMIT 5000")]
    stop = threading.Event()
    failures: list[str] = []
    written: list[str] = []
    latencies: list[float] = []

    def writer() -> None:
        with psycopg.connect(legacy_url, autocommit=True) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                mc_id = f"live_{n}"
                started = time.monotonic()
                try:
                    conn.execute(
                        "INSERT INTO contacts (mc_id, email_primary, stage, source, subscribe_date) "
                        "VALUES (%s, %s, 'new_lead', 'instagram', now())",
                        (mc_id, f"{mc_id}@example.com"),
                    )
                    conn.execute(
                        "INSERT INTO webhook_logs (source, event_type, mc_id, payload, status) "
                        "VALUES ('manychat', 'contact_created', %s, '{}', 'received')",
                        (mc_id,),
                    )
                    # A longer value than the page has room for: the new version goes to another page.
                    conn.execute("UPDATE contacts SET lead_summary = repeat('rewritten ', 60) WHERE id = %s",
                                 (existing[n % len(existing)],))
                    written.append(mc_id)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(0.2)
    engine = make_engine(legacy_url)
    try:
        result = runner.upgrade(engine, legacy_url, make_backup=False, settings=settings)
    finally:
        time.sleep(0.2)
        stop.set()
        thread.join(timeout=10)
        engine.dispose()
    assert result.verification.passed, [(c.name, c.detail) for c in result.verification.checks if not c.passed]
    assert failures == []
    assert len(written) > 20
    with psycopg.connect(legacy_url) as conn:
        rows = conn.execute(
            "SELECT tenant_id::text, count(*) FROM contacts WHERE mc_id LIKE 'live\\_%%' GROUP BY 1"
        ).fetchall()
        logs = conn.execute(
            "SELECT count(*) FROM webhook_logs WHERE mc_id LIKE 'live\\_%%' AND tenant_id = %s", (PPCU,)
        ).fetchone()[0]  # type: ignore[index]
    assert rows == [(PPCU, len(written))]
    assert logs == len(written)
    with psycopg.connect(legacy_url) as conn:
        leads = conn.execute(
            "SELECT count(*), count(DISTINCT contact_id) FROM funnel_events "
            "WHERE event_type IN ('contact_subscribed', 'contact_created') AND created_by = 'migration'"
        ).fetchone()
        rewritten = conn.execute("SELECT count(*) FROM contacts WHERE lead_summary LIKE 'rewritten %%'").fetchone()
    assert leads is not None and leads[0] == leads[1] >= 20_003
    assert rewritten is not None and rewritten[0] > 20


# 0004's build on meta_ads, which runs in a lane of its own (the Meta tables'), as pg_stat_activity shows it.
META_LANE_BUILD = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                   "AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%%meta_ads%%' AND pid <> pg_backend_pid()")


@contextmanager
def _upgrade_held_in_a_lane(url: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], psycopg.Connection[Any]]]:
    """``mcb db upgrade`` from 0003, held in 0004's Meta lane: the test's open transaction, which may write
    meta_ads, makes the lane's concurrent build on meta_ads wait for it. Yields the process once that build
    waits, and a connection to watch with; at the exit the process is killed if it still runs, and the
    transaction ends."""
    fill_legacy(url, contacts=500, payments=200, webhook_logs=200, ads=5, insights_per_ad=3)
    upgrade_to(url, "0003")
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as watcher:
        blocker.execute("LOCK TABLE meta_ads IN ROW EXCLUSIVE MODE")
        # As from a terminal: a test runner's worker may have SIGINT ignored, which a child inherits.
        proc = subprocess.Popen([*MCB, "db", "upgrade", "--no-backup"], env={**env, "DATABASE_URL": url},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 120
            while not watcher.execute(META_LANE_BUILD + " AND wait_event_type = 'Lock'").fetchall():
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the build on meta_ads never started"
                time.sleep(0.05)
            yield proc, watcher
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            blocker.rollback()


def _rerun_finishes(url: str, env: dict[str, str], settings: Settings) -> None:
    final = subprocess.run([*MCB, "db", "upgrade", "--no-backup"], env={**env, "DATABASE_URL": url},
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    _assert_verify_passes(url, settings)


def test_a_killed_upgrade_leaves_no_statement_running_on_its_other_connections(
    legacy_url: str, cli_env: dict[str, str], settings: Settings
) -> None:
    """kill -9 while a lane of 0004 runs on a connection of its own: the server stops that lane's statement
    (it was waiting on a lock) within seconds instead of leaving it to wait on, and the next run finishes."""
    with _upgrade_held_in_a_lane(legacy_url, cli_env) as (proc, watcher):
        main = watcher.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                               "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
        lane = {r[0] for r in watcher.execute(META_LANE_BUILD).fetchall()}
        assert main and not lane & {r[0] for r in main}  # the build runs on another connection
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while watcher.execute(META_LANE_BUILD).fetchall():
            assert time.monotonic() < deadline, "the killed upgrade's build went on waiting"
            time.sleep(0.1)
        assert _revision_and_log(legacy_url)[0] == "0003"

    _rerun_finishes(legacy_url, cli_env, settings)
    with psycopg.connect(legacy_url) as conn:
        valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'meta_ads_tenant_id_ad_id_key'::regclass")
        assert valid.fetchone() == (True,)


def test_ctrl_c_ends_the_upgrade_at_once_and_says_so(
    legacy_url: str, cli_env: dict[str, str], settings: Settings
) -> None:
    """Ctrl-C while a lane of 0004 waits on a lock: the statement is cancelled, the command says it was
    interrupted and exits with 130 (no traceback), and the next run finishes."""
    with _upgrade_held_in_a_lane(legacy_url, cli_env) as (proc, watcher):
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "Interrupted; every step that finished is recorded, run the command again to continue." in err
        assert "Traceback" not in err
        # The lane's statement was cancelled by the command itself, not left to wait for the lock.
        assert watcher.execute(META_LANE_BUILD + " AND state = 'active'").fetchall() == []

    _rerun_finishes(legacy_url, cli_env, settings)


def test_a_second_upgrade_waits_for_the_first(legacy_url: str, cli_env: dict[str, str]) -> None:
    """Two operators starting the upgrade at once: the second waits, then finds nothing left to do."""
    fill_legacy(legacy_url, contacts=5_000, payments=1_000, webhook_logs=100, ads=5, insights_per_ad=2)
    env = {**cli_env, "DATABASE_URL": legacy_url}
    first = subprocess.Popen([*MCB, "db", "upgrade", "--no-backup"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)
    second = subprocess.run([*MCB, "db", "upgrade", "--no-backup"], env=env, capture_output=True, text=True,
                            timeout=300)
    _out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    with psycopg.connect(legacy_url) as conn:
        upgrades = conn.execute(
            "SELECT revision, count(*) FROM mcb_migration_log WHERE action = 'upgrade' AND status = 'done' "
            "GROUP BY revision HAVING count(*) > 1"
        ).fetchall()
    assert upgrades == []  # no revision was applied twice


def test_backup_failure_changes_nothing(legacy_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    fill_legacy(legacy_url, contacts=10, payments=2, webhook_logs=2, ads=1, insights_per_ad=1)
    columns = legacy_columns(legacy_url)
    before = fingerprint(legacy_url, columns)
    env = {**cli_env, "DATABASE_URL": legacy_url, "MCB_PG_BIN": str(tmp_path / "no-such-folder")}
    proc = subprocess.run([*MCB, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "pg_dump was not found in MCB_PG_BIN" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _revision_and_log(legacy_url) == (None, 0)
    assert fingerprint(legacy_url, columns) == before
    assert os.path.exists(tmp_path / "no-such-folder") is False
