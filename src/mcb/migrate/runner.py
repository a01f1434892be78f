"""``mcb db upgrade / downgrade / status`` as plain functions (the CLI only parses and dispatches).

An upgrade: look at the database (empty, MCB's, the original's, unknown), refuse an unknown shape with
its differences, take a backup when the database holds rows, adopt the original's database by stamping
revision 0001, apply the pending revisions online with progress, record every step in
``mcb_migration_log``, and verify. Each revision checks the state before each step, so a rerun after a
crash at any point finishes the job; a run with nothing pending is a no-op that says so.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from mcb.config import Settings, get_settings
from mcb.errors import UnknownSchema, UserError
from mcb.migrate import backup as backups
from mcb.migrate import guards, ledger, online
from mcb.migrate.adopt import DatabaseShape, holds_rows, inspect_shape
from mcb.migrate.progress import Reporter, reporting

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BASE_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


@dataclass
class PlannedRevision:
    revision: str
    title: str


def pending_revisions(current: str | None) -> list[PlannedRevision]:
    """Revisions after ``current`` up to head, oldest first."""
    scripts = script_directory()
    upper = scripts.get_current_head()
    revs = list(scripts.iterate_revisions(upper, current))
    revs.reverse()
    return [PlannedRevision(r.revision, _title(r.doc)) for r in revs]


def _title(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def _configure_online(settings: Settings) -> None:
    online.settings.lock_timeout_ms = settings.lock_timeout_ms
    online.settings.lock_retries = settings.lock_retries
    online.settings.batch_size = settings.backfill_batch_size
    online.settings.backfill_jobs = settings.backfill_jobs


@dataclass
class UpgradeResult:
    shape: DatabaseShape
    applied: list[str] = field(default_factory=list)
    backup_path: Path | None = None
    adopted: bool = False
    noop: bool = False
    sql: str | None = None
    plan: list[PlannedRevision] = field(default_factory=list)
    verification: Any = None


def _refuse_unknown(shape: DatabaseShape) -> None:
    if shape.kind == "unknown":
        listed = "; ".join(shape.differences)
        raise UnknownSchema(
            f"This database is neither empty, nor MCB's, nor the original MCB schema, so it was not changed: {listed}."
        )


def _check_known_revision(revision: str | None) -> None:
    if revision is None:
        return
    try:
        script_directory().get_revision(revision)
    except Exception as exc:
        raise UnknownSchema(
            f"The database is at revision {revision}, which this version of MCB does not know; "
            "upgrade MCB before migrating."
        ) from exc


def offline_sql(current: str | None) -> str:
    """The SQL that an upgrade from ``current`` would run, as Alembic's offline mode writes it."""
    buffer = io.StringIO()
    cfg = alembic_config()
    cfg.output_buffer = buffer
    target = f"{current}:head" if current else "head"
    command.upgrade(cfg, target, sql=True)
    return buffer.getvalue()


def upgrade(
    engine: Engine,
    url: str,
    *,
    make_backup: bool = True,
    backup_path: Path | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
    verify_after: bool = True,
) -> UpgradeResult:
    settings = settings or get_settings()
    reporter = reporter or Reporter()
    _configure_online(settings)
    if dry_run:
        with engine.connect() as conn:
            shape = inspect_shape(conn)
            conn.rollback()
        _refuse_unknown(shape)
        _check_known_revision(shape.revision)
        current = _effective_revision(shape)
        plan = pending_revisions(current)
        return UpgradeResult(shape=shape, plan=plan, adopted=shape.kind == "legacy", sql=offline_sql(current),
                             noop=not plan and shape.kind != "legacy")

    with engine.connect() as session:
        # Everything below happens under the migration lock, looking at the state as it is once we hold it.
        _claim_migration_session(session, reporter)
        try:
            shape = inspect_shape(session)
            session.rollback()
            _refuse_unknown(shape)
            _check_known_revision(shape.revision)
            current = _effective_revision(shape)
            plan = pending_revisions(current)
            result = UpgradeResult(shape=shape, plan=plan, adopted=shape.kind == "legacy")

            if not plan and shape.kind == "versioned":
                result.noop = True
                already_verified = ledger.last_verification_passed(session)
                session.rollback()
                if verify_after and not already_verified:
                    result.verification = _verify_and_record(engine, settings)
                return result

            rows = holds_rows(session)
            session.rollback()
            if rows and make_backup:
                target = backup_path or backups.default_backup_path(
                    url, f"before-{plan[-1].revision if plan else 'adopt'}", settings
                )
                started = time.monotonic()
                result.backup_path = backups.backup(url, target)
                elapsed = time.monotonic() - started
                reporter.message(f"Backup written to {result.backup_path} ({elapsed:.1f}s)")
                ledger.ensure_ledger(session)
                ledger.record(session, "backup", "done", revision=current, seconds=elapsed,
                              detail={"path": str(result.backup_path)})
                session.commit()

            ledger.ensure_ledger(session)
            if shape.kind == "legacy":
                command.stamp(alembic_config(session), BASE_REVISION)
                ledger.record(session, "adopt", "done", revision=BASE_REVISION, detail={"notes": shape.notes})
                reporter.message("Recognised the original single-tenant schema; stamped revision 0001 (adopted).")
            session.commit()

            result.applied = _apply(engine, session, plan, reporter, upgrade=True)
            if result.applied:
                _analyze_changed(session, reporter)
        finally:
            _release_migration_session(session)
    if verify_after:
        result.verification = _verify_and_record(engine, settings)
    return result


def _effective_revision(shape: DatabaseShape) -> str | None:
    """The revision the database is at, counting the original's schema as 0001."""
    if shape.kind == "versioned":
        return shape.revision
    return BASE_REVISION if shape.kind == "legacy" else None


def _apply(engine: Engine, conn: Connection, plan: list[PlannedRevision], reporter: Reporter, *,
           upgrade: bool, target: str = "head") -> list[str]:
    """Run Alembic on ``conn`` (which holds the migration lock), recording each revision as it lands."""
    applied: list[str] = []
    titles = {p.revision: p.title for p in plan}
    order = [p.revision for p in plan]
    state = {"started": time.monotonic()}

    def announce(index: int) -> None:
        if index < len(order):
            rev = order[index]
            reporter.revision_started(rev, titles[rev])
            state["started"] = time.monotonic()

    def on_version_apply(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        rev = step.up_revision_id
        seconds = time.monotonic() - state["started"]
        ledger.record(
            ctx.connection,
            "upgrade" if upgrade else "downgrade",
            "done",
            revision=rev,
            seconds=seconds,
            detail={"title": titles.get(rev, ""), "steps": [s.label for s in reporter.steps],
                    "lock_retries": reporter.lock_retries},
        )
        reporter.revision_done(rev, titles.get(rev, ""), seconds)
        applied.append(rev)
        announce(len(applied))

    with reporting(reporter):
        cfg = alembic_config(conn)
        cfg.attributes["on_version_apply"] = on_version_apply
        announce(0)
        try:
            if upgrade:
                command.upgrade(cfg, target)
            else:
                command.downgrade(cfg, target)
            conn.commit()
        except Exception as exc:
            conn.rollback()
            failed = order[len(applied)] if len(applied) < len(order) else None
            with engine.begin() as log_conn:
                ledger.record(log_conn, "upgrade" if upgrade else "downgrade", "failed", revision=failed,
                              detail={"error": f"{type(exc).__name__}: {_one_line(exc)}"})
            raise
    return applied


# The tables an upgrade changed enough for autovacuum to analyze them soon (its default threshold, 50 rows
# and a tenth of the table), or filled without ever being analyzed (0005's funnel_events, 0013's contact_leads).
CHANGED_TABLES_SQL = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = 'public' AND (s.n_mod_since_analyze > 50 + 0.1 * s.n_live_tup
    OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND c.reltuples > 0))
ORDER BY s.relname
"""
ANALYZE_LOCK_TIMEOUT = "5s"


def _analyze_changed(conn: Connection, reporter: Reporter) -> list[str]:
    """ANALYZE the tables the upgrade filled or rewrote, one transaction each, so that the first queries of
    MCB (and of verify) are planned with their statistics instead of waiting up to a minute for autovacuum.

    ANALYZE reads a sample and blocks no reader or writer; a table it cannot lock within a few seconds (an
    anti-wraparound vacuum, say) is left to autovacuum, with a message. Recorded in the migration log."""
    conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")  # this session's own writes, into the view
    conn.commit()
    tables = [r[0] for r in conn.exec_driver_sql(CHANGED_TABLES_SQL).fetchall()]
    conn.commit()
    started = time.monotonic()
    done: list[str] = []
    for table in tables:
        t0 = time.monotonic()
        try:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'")
            conn.exec_driver_sql(f'ANALYZE public."{table}"')
            conn.commit()
        except DBAPIError as exc:
            conn.rollback()
            reporter.message(f"Statistics of {table} not refreshed now ({_one_line(exc)}); autovacuum will.")
            continue
        done.append(table)
        reporter.step_done(f"ANALYZE {table}", time.monotonic() - t0)
    if tables:
        ledger.record(conn, "analyze", "done", seconds=time.monotonic() - started,
                      detail={"tables": done, "skipped": [t for t in tables if t not in done]})
        conn.commit()
    return done


# One key for "a migration is running on this database" (pg_advisory_lock takes a bigint).
MIGRATION_LOCK_KEY = 0x6D63622D6D6967  # "mcb-mig"


def _claim_migration_session(conn: Connection, reporter: Reporter) -> None:
    """Serialise migrations, and make the server stop our statements soon after this process dies.

    A killed ``mcb db upgrade`` leaves its backend running the current statement; the advisory lock
    (held by that same backend) makes the next run wait for it instead of racing it, and
    ``client_connection_check_interval`` makes the server cancel it within a second of the client's death.
    """
    conn.exec_driver_sql("SET application_name = 'mcb db upgrade'")
    conn.exec_driver_sql("SET client_connection_check_interval = '1s'")
    # Hosted servers cap statements (Supabase: 2 minutes); index builds and validations may take longer.
    conn.exec_driver_sql("SET statement_timeout = 0")
    conn.commit()
    waited = 0
    while True:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY}).scalar()
        # Never wait inside a transaction: the other session's CREATE INDEX CONCURRENTLY waits for ours.
        conn.commit()
        if got:
            return
        if waited % 10 == 0:
            reporter.message("Waiting for another migration session on this database to finish…")
        waited += 1
        time.sleep(0.5)


def _release_migration_session(conn: Connection) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock_all()"))
        conn.commit()
    except Exception:  # the connection is being discarded anyway; the lock dies with the session
        conn.invalidate()


def _one_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


def _verify_and_record(engine: Engine, settings: Settings) -> Any:
    from mcb.migrate.verify import run_checks

    started = time.monotonic()
    report = run_checks(engine, settings)
    with engine.begin() as conn:
        ledger.record(conn, "verify", "passed" if report.passed else "failed", revision=report.revision,
                      seconds=time.monotonic() - started,
                      detail={"failed": [c.name for c in report.checks if not c.passed]})
    return report


@dataclass
class DowngradeResult:
    reverted: list[str]
    backup_path: Path | None


def downgrade_single_tenant(
    engine: Engine,
    url: str,
    *,
    make_backup: bool = True,
    reporter: Reporter | None = None,
    settings: Settings | None = None,
) -> DowngradeResult:
    """Back to revision 0001, refusing (and changing nothing) when that would lose or merge data."""
    settings = settings or get_settings()
    reporter = reporter or Reporter()
    _configure_online(settings)
    with engine.connect() as session:
        _claim_migration_session(session, reporter)
        try:
            shape = inspect_shape(session)
            if shape.kind != "versioned":
                raise UserError(
                    "This database is not managed by MCB (no revision recorded); there is nothing to downgrade."
                )
            _check_known_revision(shape.revision)
            if shape.revision == BASE_REVISION:
                session.rollback()
                return DowngradeResult([], None)

            def q(sql: str) -> list[tuple[Any, ...]]:
                return list(session.exec_driver_sql(sql).fetchall())

            problems = guards.downgrade_blockers(q)
            session.rollback()
            if problems:
                ledger.record(session, "downgrade", "refused", revision=shape.revision,
                              detail={"problems": problems})
                session.commit()
                guards.refuse_if(problems)

            backup_path = None
            rows = holds_rows(session)
            session.rollback()
            if rows and make_backup:
                backup_path = backups.backup(
                    url, backups.default_backup_path(url, f"before-downgrade-{shape.revision}", settings)
                )
                reporter.message(f"Backup written to {backup_path}")
                ledger.record(session, "backup", "done", revision=shape.revision, detail={"path": str(backup_path)})
                session.commit()

            scripts = script_directory()
            revs = [r.revision for r in scripts.iterate_revisions(shape.revision, BASE_REVISION)]
            plan = [PlannedRevision(r, _title(scripts.get_revision(r).doc)) for r in revs if r != BASE_REVISION]
            reverted = _apply(engine, session, plan, reporter, upgrade=False, target=BASE_REVISION)
        finally:
            _release_migration_session(session)
    return DowngradeResult(reverted, backup_path)


@dataclass
class Status:
    url: str
    kind: str
    revision: str | None
    head: str
    pending: list[PlannedRevision]
    drift: list[str]
    notes: list[str]
    differences: list[str]
    log: list[ledger.LogEntry]


def status(engine: Engine, url: str) -> Status:
    from mcb.migrate.drift import schema_drift

    with engine.connect() as conn:
        shape = inspect_shape(conn)
        conn.rollback()
        current = shape.revision if shape.kind == "versioned" else (BASE_REVISION if shape.kind == "legacy" else None)
        pending = pending_revisions(current) if shape.kind != "unknown" else []
        drift = schema_drift(conn) if shape.kind == "versioned" and not pending else []
        log = ledger.recent(conn, 10)
    return Status(
        url=url,
        kind=shape.kind,
        revision=shape.revision,
        head=head_revision(),
        pending=pending,
        drift=drift,
        notes=shape.notes,
        differences=shape.differences,
        log=log,
    )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return str(value) if value is not None else None
