"""Online DDL for the Alembic revisions: what makes a migration safe on a live database.

Every operation here is idempotent (it looks at the catalog before it acts), so a revision that was
interrupted at any point can simply run again. Statements that need a lock that blocks writers run one
at a time in their own short transaction under a small ``lock_timeout``; when they cannot get the lock in
time they back off (with jitter) and retry, so a live writer queues behind them for at most about
``lock_timeout``. Index builds use ``CONCURRENTLY``; constraints are added ``NOT VALID`` and validated
afterwards under a lock that does not block writes.

In offline mode (``mcb db upgrade --dry-run``) the same calls print the SQL they would run instead.

Revisions use these functions inside ``with online.steps():``.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from alembic import op
from psycopg import errors as pg_errors

from mcb.migrate import backfill
from mcb.migrate.progress import Reporter, current_reporter

SQL_DIR = Path(__file__).resolve().parent.parent / "migrations" / "sql"


class Settings:
    """Knobs the runner sets before it calls Alembic (module state: one migration runs per process)."""

    lock_timeout_ms: int = 50
    lock_retries: int = 200
    batch_size: int = 20_000
    backfill_jobs: int = 2


settings = Settings()


def offline() -> bool:
    return bool(op.get_context().as_sql)


def reporter() -> Reporter:
    return current_reporter()


class _Lane(threading.local):
    """The connection of the lane a thread runs (see :func:`side_by_side`), and the lanes' stop signal."""

    conn: psycopg.Connection[Any] | None = None
    stop: threading.Event | None = None


_lane = _Lane()


class LaneStopped(backfill.Stopped):
    """Another lane failed: this one stops before its next statement."""


def raw() -> psycopg.Connection[Any]:
    """The psycopg connection under Alembic's, in autocommit mode inside ``steps()``; in a lane of
    :func:`side_by_side`, that lane's own connection."""
    if _lane.conn is not None:
        return _lane.conn
    conn = op.get_bind().connection.driver_connection
    assert isinstance(conn, psycopg.Connection)
    return conn


@contextmanager
def steps() -> Iterator[None]:
    """Run the body outside Alembic's transaction, one short transaction per statement."""
    if offline():
        yield
        return
    with op.get_context().autocommit_block():
        yield


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text()


# --------------------------------------------------------------------------------------------- execution


def execute(statement: str, *, step: str | None = None, blocks_writes: bool = True) -> None:
    """Run one statement (or a ``;``-separated group, which Postgres runs as one implicit transaction).

    ``blocks_writes``: the statement takes a lock that makes writers wait (ALTER TABLE, most DDL), so it
    runs under the short lock timeout and is retried; otherwise it may wait as long as it needs.
    """
    if offline():
        op.execute(statement)
        return
    label = step or _first_line(statement)
    if stopping():
        raise LaneStopped(label)
    started = time.monotonic()
    run_with_retries(raw(), statement, label, reporter(), blocks_writes=blocks_writes)
    reporter().step_done(label, time.monotonic() - started)


def run_with_retries(conn: psycopg.Connection[Any], statement: str, label: str, report: Reporter, *,
                     blocks_writes: bool = True) -> None:
    """``execute`` on an autocommit connection: the statement under the short lock timeout, retried with
    backoff while another session holds a lock it needs.

    An autovacuum of a table the statement names holds such a lock for as long as it runs, minutes on a
    big table, and never lets go on its own. PostgreSQL cancels an autovacuum that blocks a lock request
    only after the request has waited ``deadlock_timeout`` (1 s by default), which a 50 ms attempt never
    does. So when one is in the way: it is cancelled (it runs again later), or, where this role may not
    cancel it, the next attempt waits past ``deadlock_timeout`` once so that PostgreSQL does; writers of
    that table queue behind that attempt for about a second. An anti-wraparound autovacuum is left alone.
    """
    attempt = 0
    long_wait = False
    while True:
        if not blocks_writes:
            timeout = "0"
        elif long_wait:
            timeout = _past_deadlock_timeout(conn)
        else:
            timeout = f"{settings.lock_timeout_ms}ms"
        conn.execute(f"SET lock_timeout = '{timeout}'")
        try:
            conn.execute(statement.encode())
            break
        except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected):
            attempt += 1
            if attempt > settings.lock_retries:
                raise
            report.lock_retry(label, attempt)
            vacuums = autovacuums_in_the_way(conn, statement)
            if vacuums and cancel_autovacuums(conn, vacuums, report):
                long_wait = False
                time.sleep(0.05)  # time to notice the cancel and let go; no backoff
                continue
            long_wait = bool(vacuums) and not long_wait
            if long_wait:
                report.message(f"    an autovacuum of {', '.join(sorted(set(vacuums.values())))} holds the lock "
                               f"({label}); waiting past deadlock_timeout once so that PostgreSQL cancels it")
                continue
            # Exponential backoff with full jitter, capped: gives the writers room, avoids lockstep.
            time.sleep(random.uniform(0, min(1.0, 0.01 * 2 ** min(attempt, 7))))
        finally:
            if not conn.info.transaction_status:  # idle: safe to reset
                conn.execute("SET lock_timeout = 0")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def autovacuums_in_the_way(conn: psycopg.Connection[Any], statement: str) -> dict[int, str]:
    """{pid: table} of the autovacuum workers (not anti-wraparound ones) that hold a lock on a table of
    this database that ``statement`` names. Only a role that may read other sessions' activity (a
    superuser, or a member of pg_read_all_stats) sees them; for any other, this is always empty."""
    names = sorted({word.lower() for word in _IDENTIFIER.findall(statement)})
    rows = conn.execute(
        """
        SELECT DISTINCT a.pid, c.relname::text FROM pg_stat_activity a
        JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'relation' AND l.granted
        JOIN pg_class c ON c.oid = l.relation
        WHERE a.backend_type = 'autovacuum worker' AND a.datname = current_database()
          AND a.query NOT LIKE '%%to prevent wraparound%%' AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
        """,
        (names,),
    ).fetchall()
    return {int(pid): str(table) for pid, table in rows}


def cancel_autovacuums(conn: psycopg.Connection[Any], vacuums: dict[int, str], report: Reporter) -> bool:
    """Cancel these autovacuum workers; False when this role may not (it is neither a superuser nor, on
    PostgreSQL 18, a member of pg_signal_autovacuum_worker)."""
    try:
        for pid, table in vacuums.items():
            conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
            report.message(f"    cancelled an autovacuum of {table} that held a lock the migration needs "
                           "(autovacuum runs again later)")
    except pg_errors.InsufficientPrivilege:
        return False
    return True


def _past_deadlock_timeout(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000").fetchone()
    waited = float(row[0]) if row and row[0] is not None else 1000.0
    return f"{int(waited) + 500}ms"


def query(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """A catalog or data query (online mode only)."""
    return list(raw().execute(sql, params).fetchall())


def scalar(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    rows = query(sql, params)
    return rows[0][0] if rows else None


def _first_line(statement: str) -> str:
    for line in statement.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line[:100]
    return statement[:100]


def stopping() -> bool:
    """In a lane of :func:`side_by_side`: another lane failed, and this one should end now."""
    return _lane.stop is not None and _lane.stop.is_set()


def side_by_side(*lanes: Callable[[], None]) -> None:
    """Run each lane, a sequence of operations of this module, on a connection of its own, up to
    ``settings.backfill_jobs`` lanes at once; in order on the migration's connection with one job or in
    offline mode.

    For index builds and validations on different tables: a build's table scan and sort run in parallel
    workers, but its last phases and a foreign key's validation run in one process, and the waits between
    phases use no CPU at all, so builds on two tables side by side keep both CPUs busy. Lanes must not
    depend on each other's work; they may touch the same tables, at the cost of lock retries. Every
    operation is idempotent, so an interrupted run resumes lane by lane. The first failure stops the other
    lanes before their next statement and is raised once they have; Ctrl-C cancels their statements
    (:func:`backfill.on_connections`).
    """
    if offline() or _lane.conn is not None:
        for lane in lanes:
            lane()
        return
    stop = threading.Event()

    def run(conn: psycopg.Connection[Any], lane: Callable[[], None]) -> None:
        _lane.conn, _lane.stop = conn, stop
        try:
            lane()
        finally:
            _lane.conn, _lane.stop = None, None

    backfill.on_connections(raw(), lanes, settings.backfill_jobs, run, stop, reporter())


# --------------------------------------------------------------------------------------------- catalog


def table_exists(table: str) -> bool:
    if offline():
        return True
    return bool(scalar("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)))


def column_exists(table: str, column: str) -> bool:
    if offline():
        return False
    return bool(
        scalar(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s AND column_name = %s",
            (table, column),
        )
    )


def column_is_text(table: str, column: str) -> bool:
    if offline():
        return False
    kind = scalar(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = %s AND column_name = %s",
        (table, column),
    )
    return bool(kind == "text")


def constraint_exists(table: str, name: str) -> bool:
    if offline():
        return False
    return bool(
        scalar(
            "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
            (f"public.{table}", name),
        )
    )


def index_state(name: str) -> str | None:
    """'valid', 'invalid' (a concurrent build that was interrupted) or None (no such index)."""
    if offline():
        return None
    row = query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = %s",
        (name,),
    )
    if not row:
        return None
    return "valid" if row[0][0] else "invalid"


def unique_constraints_on(table: str, columns: Sequence[str]) -> list[tuple[str, str]]:
    """Constraints (name, kind 'u'/'p') and bare unique indexes (name, 'i') on exactly these columns.

    Found by structure, not by name: the live database was built by hand and its names vary.
    """
    if offline():
        return []
    rows = query(
        """
        SELECT c.relname,
               COALESCE(con.contype::text, 'i') AS kind,
               ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     ORDER BY k.ord)::text[] AS cols,
               con.conname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('u', 'p')
        WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indpred IS NULL
        """,
        (f"public.{table}",),
    )
    found = []
    for index_name, kind, cols, conname in rows:
        if list(cols) == list(columns):
            found.append((conname or index_name, kind))
    return found


def foreign_keys_on(table: str, columns: Sequence[str], referenced: str, *, expected: str | None = None) -> list[str]:
    """Names of the foreign keys of ``table`` on exactly ``columns`` that point at ``referenced``; in
    offline mode, ``expected`` (the name the original schema gives it), so the printed plan shows it."""
    if offline():
        return [expected] if expected else []
    rows = query(
        """
        SELECT con.conname,
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                     ORDER BY k.ord)::text[]
        FROM pg_constraint con
        WHERE con.contype = 'f' AND con.conrelid = to_regclass(%s) AND con.confrelid = to_regclass(%s)
        """,
        (f"public.{table}", f"public.{referenced}"),
    )
    return [name for name, cols in rows if list(cols) == list(columns)]


# --------------------------------------------------------------------------------------------- operations


def add_column(table: str, column: str, definition: str) -> None:
    """ADD COLUMN; with a constant default this only touches the catalog, never the rows."""
    if column_exists(table, column):
        return
    execute(
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {definition}",
        step=f"{table}: add column {column}",
    )


def drop_column(table: str, column: str) -> None:
    if offline() or column_exists(table, column):
        execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}", step=f"{table}: drop column {column}")


def create_index(
    name: str,
    table: str,
    columns: str,
    *,
    unique: bool = False,
    where: str | None = None,
    using: str = "",
    private: bool = False,
) -> None:
    """CREATE [UNIQUE] INDEX CONCURRENTLY, removing the leftover of an interrupted build first.

    ``private``: the table was created by the running revision and nothing reads or writes it yet (no
    application knows it before the revision is done), so a plain build is safe. It scans the table once
    instead of twice and does not wait for every other transaction in the database to finish, which on a
    multi-million-row table is most of the cost.
    """
    state = index_state(name)
    if state == "valid":
        return
    if state == "invalid":
        execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", step=f"drop invalid index {name}", blocks_writes=False)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    method = f" USING {using}" if using else ""
    predicate = f" WHERE {where}" if where else ""
    how = "" if private else " CONCURRENTLY"
    execute(
        f"CREATE {kind}{how} IF NOT EXISTS {name} ON {table}{method} ({columns}){predicate}",
        step=f"{table}: build index {name}",
        blocks_writes=False,
    )


def drop_index(name: str) -> None:
    if offline() or index_state(name) is not None:
        execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}", step=f"drop index {name}", blocks_writes=False)


def add_unique(
    table: str, name: str, columns: Sequence[str], *, primary_key: bool = False, private: bool = False
) -> None:
    """A UNIQUE (or PRIMARY KEY) constraint built online: concurrent index, then ``USING INDEX``.

    Replacing a primary key drops the old one in the same short transaction. ``private`` as for
    :func:`create_index`.
    """
    if constraint_exists(table, name) and not (primary_key and _pk_columns(table) != list(columns)):
        return
    index_name = f"{name}_new" if primary_key else name
    create_index(index_name, table, ", ".join(columns), unique=True, private=private)
    if primary_key:
        old = _pk_name(table)
        drop_old = f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {old};\n" if old else ""
        execute(
            f"{drop_old}ALTER TABLE {table} ADD CONSTRAINT {name} PRIMARY KEY USING INDEX {index_name}",
            step=f"{table}: primary key ({', '.join(columns)})",
        )
    else:
        execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {index_name}",
            step=f"{table}: unique ({', '.join(columns)})",
        )


def _pk_name(table: str) -> str | None:
    if offline():
        return f"{table}_pkey"
    name = scalar(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
        (f"public.{table}",),
    )
    return str(name) if name else None


def _pk_columns(table: str) -> list[str]:
    if offline():
        return []
    rows = query(
        """
        SELECT a.attname FROM pg_constraint con
        CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
        WHERE con.conrelid = to_regclass(%s) AND con.contype = 'p' ORDER BY k.ord
        """,
        (f"public.{table}",),
    )
    return [r[0] for r in rows]


def drop_unique_on(
    table: str, columns: Sequence[str], *, expected_name: str, expected_indexes: Sequence[str] = ()
) -> None:
    """Drop every unique constraint or unique index on exactly ``columns`` (whatever it is called). In
    offline mode the plan names the ones the original schema has: ``expected_name``, ``expected_indexes``."""
    if offline():
        execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {expected_name}")
        for index in expected_indexes:
            drop_index(index)
        return
    for name, kind in unique_constraints_on(table, columns):
        if kind == "i":
            drop_index(name)
        else:
            execute(
                f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}",
                step=f"{table}: drop global unique {name}",
            )


def add_constraint(table: str, name: str, definition: str, *, validate_now: bool = True) -> None:
    """A CHECK or FOREIGN KEY: added NOT VALID (brief lock), then validated without blocking writes.

    ``validate_now=False`` leaves the validation to a later :func:`validate` (the constraint already holds
    for every row written from now on)."""
    if not constraint_exists(table, name):
        execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID",
            step=f"{table}: add constraint {name}",
        )
    if validate_now:
        validate(table, name)


def validate(table: str, name: str) -> None:
    if not offline():
        valid = scalar(
            "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
            (f"public.{table}", name),
        )
        if valid:
            return
    execute(
        f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}",
        step=f"{table}: validate {name}",
        blocks_writes=False,
    )


def replace_check(table: str, name: str, expression: str) -> None:
    """Swap a CHECK for a new one under the same stable name (R-10), online."""
    if not offline():
        current = scalar(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
            (f"public.{table}", name),
        )
        if current is not None and _normalise(current) == _normalise(f"CHECK ({expression})"):
            validate(table, name)
            return
    execute(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} CHECK ({expression}) NOT VALID",
        step=f"{table}: replace check {name}",
    )
    validate(table, name)


def _normalise(definition: str) -> str:
    return "".join(ch for ch in definition.lower() if ch.isalnum() or ch in "'_,")


def drop_constraint(table: str, name: str) -> None:
    if offline() or constraint_exists(table, name):
        execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}", step=f"{table}: drop {name}")


# --------------------------------------------------------------------------------------------- backfills


def keyset_backfill(
    name: str,
    *,
    table: str,
    key: str,
    key_type: str,
    batch_sql: str,
    where: str = "TRUE",
    unit: str = "rows",
    setup_sql: str | None = None,
    sweep_sql: str | None = None,
) -> None:
    """Run ``batch_sql`` over ``table`` in key order, one batch per transaction, resumably.

    ``batch_sql`` receives ``%(lo)s`` (exclusive, NULL at the start) and ``%(hi)s`` (inclusive, NULL for
    the end of the table) and must be idempotent (ON CONFLICT DO NOTHING, or a WHERE that skips done rows);
    ``setup_sql`` runs first in every batch's transaction. The cursor is saved in ``mcb_backfill_state`` in
    the same transaction as the batch, so an interrupted backfill resumes after the last committed batch.

    With ``settings.backfill_jobs`` above 1 and a uuid key, the key space is cut into that many equal
    ranges, each walked on its own connection with its own cursor (see :mod:`mcb.migrate.backfill`); the
    batches of different ranges then run at the same time, so ``batch_sql`` must not depend on rows of
    another range.

    Rows that a live writer inserts behind the cursor while the pass runs are caught by ``sweep_sql``, one
    statement over the whole table run at the end (it must select only rows the pass did not cover).
    ``mcb_backfill_state.started_at`` records when the pass began: every row committed before then is
    covered once the backfill is finished.
    """
    if offline():
        op.execute(batch_sql.replace("%(lo)s", "NULL").replace("%(hi)s", "NULL").replace("%%", "%"))
        return
    spec = backfill.Backfill(name, table, setup_sql, sweep_sql, settings.batch_size, reporter())
    keys = backfill.Keys(table, key, key_type, batch_sql, where)
    backfill.run_keyset(raw(), spec, keys, jobs=settings.backfill_jobs, unit=unit)


def scan_backfill(
    name: str,
    *,
    table: str,
    alias: str,
    batch_sql: str,
    sweep_sql: str,
    unit: str = "rows",
    setup_sql: str | None = None,
) -> None:
    """Run ``batch_sql`` over ``table`` in physical order, a range of pages per transaction, resumably.

    ``batch_sql`` reads ``table`` as ``alias`` with ``{rows}`` in its WHERE: the walk puts there the page
    range of the batch and "this row version was committed before the walk began" (its xmin precedes the
    horizon recorded with the position). So every row is read once even while the original application
    updates rows and moves them between pages; the rows the walk leaves (inserted or rewritten since it
    began) are ``sweep_sql``'s, one statement at the end that must select exactly the rows not yet done.
    It has ``{rows}`` in its WHERE too, where the walk puts "this row version is newer than the horizon":
    the only rows it can have left.
    With ``settings.backfill_jobs`` above 1 the pages are cut into that many ranges, each on its own
    connection. See :mod:`mcb.migrate.backfill`.
    """
    scan = backfill.Scan(table, alias, batch_sql, sweep_sql)
    if offline():
        op.execute(scan.whole_table)
        return
    spec = backfill.Backfill(name, table, setup_sql, None, settings.batch_size, reporter())
    backfill.run_scan(raw(), spec, scan, jobs=settings.backfill_jobs, unit=unit)


def backfill_begun_by_key(name: str) -> bool:
    """Whether an earlier MCB began backfill ``name`` walking by key and did not finish it."""
    return not offline() and backfill.begun_by_key(raw(), name)


def page_backfill(
    name: str,
    *,
    table: str,
    alias: str,
    update_sql: str,
    todo: str,
    unit: str = "rows",
    setup_sql: str | None = None,
    jobs: int | None = None,
) -> None:
    """Update every row of ``table`` that ``todo`` selects, walking the table in physical order.

    ``update_sql`` is ``UPDATE <table> <alias> SET ... WHERE {rows} AND <todo>``: the walk puts the rows of
    each step in place of ``{rows}``. Each transaction updates a few rows of every page of a window of
    ``settings.batch_size`` rows, so that most new row versions fit on their own page once the previous
    transaction's have been pruned (HOT updates: no index entry to write). The position (a page) is saved
    with the last transaction of each window; ``jobs`` (default ``settings.backfill_jobs``) connections
    walk disjoint page ranges. Rows the original application moves to a page the walk has passed (an update that does not
    fit on its page) are caught by the same statement over the whole table at the end.
    See :mod:`mcb.migrate.backfill`.
    """
    walk = backfill.Pages(table, alias, update_sql, todo)
    if offline():
        op.execute(walk.whole_table)
        return
    spec = backfill.Backfill(name, table, setup_sql, walk.whole_table, settings.batch_size, reporter())
    backfill.run_pages(raw(), spec, walk, jobs=settings.backfill_jobs if jobs is None else jobs, unit=unit)


def forget_backfill_sql(name: str) -> str:
    """The statement that deletes a backfill's position, and its parts' (for a downgrade)."""
    prefix = name + backfill.PART_SEPARATOR
    return f"DELETE FROM mcb_backfill_state WHERE name = '{name}' OR left(name, {len(prefix)}) = '{prefix}'"


def unit_backfill(
    name: str,
    *,
    units_sql: str,
    batch_sql: str,
    params: Callable[[tuple[Any, ...]], dict[str, Any]],
    setup_sql: str | None = None,
    unit: str = "units",
) -> None:
    """Run ``batch_sql`` once per unit (a row of ``units_sql``, in its order), one transaction each,
    resumably: for work that is naturally cut by something other than a key range (a tenant and an event
    type, say). ``params(unit)`` gives the statement's parameters; ``setup_sql`` runs first in each
    transaction (a lock the batch needs). The last finished unit is saved in ``mcb_backfill_state`` in the
    same transaction as its batch, so an interrupted pass resumes after it. Each batch must be idempotent."""
    if offline():
        op.execute(f"-- {name}: once per row of: {units_sql}\n{batch_sql}")
        return
    conn = raw()
    cursor, done, finished = backfill.claim(conn, name)
    if finished:
        return
    units = query(units_sql)
    keys = ["\x1f".join(str(v) for v in u) for u in units]
    start = keys.index(cursor) + 1 if cursor in keys else 0
    bar = reporter().backfill_started(name, len(units), start, unit)
    started = time.monotonic()
    for position in range(start, len(units)):
        last = position == len(units) - 1
        with conn.transaction():
            if setup_sql:
                conn.execute(setup_sql)
            written = max(conn.execute(batch_sql, params(units[position])).rowcount, 0)
            done += written
            backfill.save_state(conn, name, keys[position], done, last)
        bar.advance(1, written)
    if not units:
        backfill.save_state(conn, name, None, done, True)
    bar.finish()
    reporter().step_done(f"backfill {name}: {len(units) - start} {unit}", time.monotonic() - started)


TENANT_EXPR = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
ADMIN_EXPR = "current_setting('mcb.admin', true) = 'on'"
HOSTED_API_ROLES = ("anon", "authenticated")


def tenant_table_security(table: str, *, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> str:
    """The SQL that puts a table a revision creates under tenant isolation, as 0009 did for the first
    ones: ``privileges`` for the runtime role ``mcb_app``, Row Level Security enabled and forced with the
    tenant policy and the owner's ``mcb.admin`` policy, and nothing for a hosted database's public API
    roles (as 0011). Meant to follow the CREATE TABLE in the same ``execute``, so both land together."""
    roles = ", ".join(f"'{r}'" for r in HOSTED_API_ROLES)
    return f"""
        GRANT {privileges} ON {table} TO mcb_app;
        ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
        ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
        DROP POLICY IF EXISTS tenant_isolation ON {table};
        CREATE POLICY tenant_isolation ON {table} USING (tenant_id = {TENANT_EXPR})
            WITH CHECK (tenant_id = {TENANT_EXPR});
        DROP POLICY IF EXISTS owner_admin ON {table};
        CREATE POLICY owner_admin ON {table} TO CURRENT_USER USING ({ADMIN_EXPR}) WITH CHECK ({ADMIN_EXPR});
        DO $$
        DECLARE r text;
        BEGIN
            FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ({roles}) LOOP
                EXECUTE format('REVOKE ALL ON {table} FROM %I', r);
            END LOOP;
        END
        $$
    """


def run_sql_file(name: str, *, step: str | None = None) -> None:
    """Run a whole SQL file as one implicit transaction (all or nothing)."""
    execute(read_sql(name), step=step or name)


def guard(check: Callable[[], None]) -> None:
    """Run a safety check before a destructive step (online mode only)."""
    if not offline():
        check()
