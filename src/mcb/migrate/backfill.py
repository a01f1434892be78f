"""Resumable backfills: one batch per transaction, the position saved in that same transaction, and
optionally several connections at once, each on its own part of the table with its own position.

Two ways through a table:

- **by key** (:func:`run_keyset`): batches of ``batch_size`` rows in key order, for a backfill that reads
  a table and writes another (0014, 0015): the batch is a key range, the key index finds it.
- **by page, reading** (:func:`run_scan`): batches of pages in physical order, for a backfill that reads
  a table and writes another (0005). A key range of a random key (a uuid) is scattered over the whole
  table, so with the table larger than the buffer cache nearly every row read is a miss; a page range is
  read once, in order. A row the application updates moves to another page, perhaps one the walk has yet
  to visit, so the walk takes only row versions created before it began (their ``xmin`` precedes the
  horizon it recorded then): each row is read at most once, and the rows it left (new, or rewritten
  meanwhile) are the sweep's.
- **by page** (:func:`run_pages`): an ``UPDATE`` of every row of a full table, walked in physical order
  a few rows of each page at a time (0006). The first rows updated on a page move to another page, as
  there is no room for them; once that transaction has committed, the next statement that reads the page
  prunes it, and the room they left takes the next rows' new versions on the same page: a HOT update,
  which writes no index entry. Taking the rows in key order instead touches pages at random, several rows
  of the same page in one transaction, and most updates then insert an entry in every index of the table.

The position of each part is a row of ``mcb_backfill_state``: the backfill's own row (``name``) when it
runs as one part, else one row per part named ``<name>/<lo>..<hi>`` (its bounds), so that a pass that was
interrupted resumes with the same parts whatever the number of connections asked for the second time.
The backfill's own row records when it started and, once every part and the final sweep are done, that it
finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import pairwise
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import psycopg

from mcb.migrate.ledger import LEDGER_DDL
from mcb.migrate.progress import Reporter

Conn = psycopg.Connection[Any]
T = TypeVar("T")
Report = Callable[[int, int], None]

PART_SEPARATOR = "/"
# Windows walked in turn by a part of a page walk: a window's next round comes after a round on each of the
# others, by when the statements that began before its last commit (another part's, the application's)
# have ended. With two parts, 2 in turn let one part's statements hold back the pruning of the other's
# pages (two thirds of the updates HOT instead of four fifths); 8 did not (docs/benchmarks.md, session 5).
WINDOWS_PER_STEP = 8
# Session settings another connection of the migration copies from its main one: the owner's admin policy
# (0009), no statement timeout (a hosted server's cap would stop an index build), the server's check that
# the client is still there (a killed upgrade's statements stop within a second), the name it shows.
COPIED_SETTINGS = ("mcb.admin", "statement_timeout", "client_connection_check_interval", "application_name")


@dataclass
class Part:
    """One part of a backfill: the keys in (lo, hi], or the pages in [lo, hi). None: open-ended."""

    state: str
    lo: str | None
    hi: str | None
    cursor: str | None = None
    done: int = 0
    finished: bool = False


@dataclass
class Backfill:
    """What every part of one backfill shares."""

    name: str
    table: str
    setup_sql: str | None
    sweep_sql: str | None
    batch_size: int
    reporter: Reporter
    stop: threading.Event = field(default_factory=threading.Event)
    sweep_params: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _bar: Any = None

    def report(self, scanned: int, written: int) -> None:
        with self._lock:
            self._bar.advance(scanned, written)

    def setup(self, conn: Conn) -> None:
        if self.setup_sql:
            conn.execute(self.setup_sql.encode())

    def sweep(self, conn: Conn) -> int:
        """Run the sweep (in the caller's transaction); the rows it wrote."""
        if not self.sweep_sql:
            return 0
        if self.sweep_params is None:
            return max(conn.execute(self.sweep_sql.encode()).rowcount, 0)
        return max(conn.execute(self.sweep_sql, self.sweep_params, prepare=False).rowcount, 0)

    def save(self, conn: Conn, part: Part, cursor: str | None, finished: bool) -> None:
        save_state(conn, part.state, cursor, part.done, finished)
        part.cursor, part.finished = cursor, finished


def save_state(conn: Conn, name: str, cursor: str | None, done: int, finished: bool) -> None:
    """Record where the backfill row ``name`` stands (in the caller's transaction, with its batch)."""
    conn.execute(
        "UPDATE mcb_backfill_state SET cursor = %s, rows_done = %s, updated_at = now(), "
        "finished_at = CASE WHEN %s THEN now() END WHERE name = %s",
        (cursor, done, finished, name),
    )


# --------------------------------------------------------------------------------------------- state


def claim(conn: Conn, name: str) -> tuple[str | None, int, bool]:
    """The backfill's own row (created if new): (cursor, rows done, finished).

    A new row drops part rows left by an earlier pass of the same name (one a downgrade forgot), in the
    same transaction: parts are only ever read back for the pass that created them.
    """
    conn.execute(LEDGER_DDL.encode())
    with conn.transaction():
        fresh = conn.execute(
            "INSERT INTO mcb_backfill_state (name) VALUES (%s) ON CONFLICT (name) DO NOTHING RETURNING name", (name,)
        ).fetchone()
        if fresh:
            conn.execute(
                "DELETE FROM mcb_backfill_state WHERE left(name, %s) = %s", (len(name) + 1, name + PART_SEPARATOR)
            )
        row = conn.execute(
            "SELECT cursor, rows_done, finished_at IS NOT NULL FROM mcb_backfill_state WHERE name = %s", (name,)
        ).fetchone()
    assert row is not None
    return row[0], int(row[1]), bool(row[2])


def parts_of(conn: Conn, name: str, cursor: str | None, done: int, bounds: list[tuple[str | None, str | None]]) -> list[Part]:
    """The parts of the pass: those it already has, else ``bounds`` (recorded now when more than one).

    A pass that ran as one part and was interrupted (its own row has a cursor, or rows done: a page walk
    saves its position only at the end of a step) finishes as one part.
    """
    if cursor is not None or done > 0:
        return [Part(name, None, None, cursor, done)]
    prefix = name + PART_SEPARATOR
    select = (
        "SELECT name, cursor, rows_done, finished_at IS NOT NULL FROM mcb_backfill_state "
        "WHERE left(name, %s) = %s ORDER BY name"
    )
    rows = conn.execute(select, (len(prefix), prefix)).fetchall()
    if not rows:
        if len(bounds) <= 1:
            return [Part(name, None, None, None, done)]
        with conn.transaction():
            for lo, hi in bounds:
                conn.execute(
                    "INSERT INTO mcb_backfill_state (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                    (f"{prefix}{lo or ''}..{hi or ''}",),
                )
        rows = conn.execute(select, (len(prefix), prefix)).fetchall()
    parts = []
    for state, part_cursor, part_done, finished in rows:
        lo, _, hi = state[len(prefix):].partition("..")
        parts.append(Part(state, lo or None, hi or None, part_cursor, int(part_done), bool(finished)))
    return parts


def parts_for(rows: int, jobs: int, batch_size: int) -> int:
    """How many parts a pass over ``rows`` rows gets: ``jobs``, but each with a quarter of a batch at least
    (a part costs a connection and its setup, about 10 ms, which a few hundred rows do not earn back;
    10,000 rows, half a default batch, took a quarter of a second on one part)."""
    return max(1, min(jobs, rows // max(1, batch_size // 4)))


def uuid_bounds(parts: int) -> list[tuple[str | None, str | None]]:
    """``parts`` ranges of equal width over the uuid key space: (None, b1], (b1, b2], ..., (b_n-1, None]."""
    cuts = [f"{(i << 128) // parts:032x}" for i in range(1, parts)]
    edges: list[str | None] = [None, *(f"{c[:8]}-{c[8:12]}-{c[12:16]}-{c[16:20]}-{c[20:]}" for c in cuts), None]
    return list(pairwise(edges))


def page_bounds(pages: int, parts: int) -> list[tuple[str | None, str | None]]:
    """``parts`` page ranges [lo, hi) over ``pages`` pages; the last one is open (pages added meanwhile)."""
    if parts <= 1 or pages < parts:
        return [(None, None)]
    cuts = [str(pages * i // parts) for i in range(1, parts)]
    edges: list[str | None] = [None, *cuts, None]
    return list(pairwise(edges))


# --------------------------------------------------------------------------------------------- running parts


def connector(conn: Conn) -> Callable[[], Conn]:
    """Opens more connections like ``conn``: same server, database, user and the copied settings."""
    params = conn.info.get_parameters()
    password = conn.info.password
    copied = {name: conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone() for name in COPIED_SETTINGS}

    def connect() -> Conn:
        extra = {"password": password} if password else {}
        other: Conn = psycopg.connect(**params, **extra, autocommit=True)  # type: ignore[arg-type]
        for name, value in copied.items():
            if value is not None and value[0]:
                other.execute("SELECT set_config(%s, %s, false)", (name, value[0]))
        return other

    return connect


class Stopped(Exception):
    """Raised by work that ended early because ``stop`` was set: another connection's work failed."""


def on_connections(
    conn: Conn, items: Sequence[T], jobs: int, work: Callable[[Conn, T], None], stop: threading.Event,
    reporter: Reporter | None = None,
) -> None:
    """Run ``work`` on every item: on ``conn`` one after the other, or on up to ``jobs`` more connections
    at once, each taking the next item when it is done with one.

    - The first failure sets ``stop`` (work looks at it between its transactions), and is raised once every
      connection has stopped.
    - Ctrl-C sets it too and cancels the statements in flight: the process ends at once, and what they had
      not committed is redone by the next run.
    - A connection the server refuses (too many clients) leaves its share to the others, and what no other
      connection could take is done on ``conn`` afterwards.
    """
    jobs = min(jobs, len(items))
    if jobs <= 1:
        for item in items:
            work(conn, item)
        return
    queue: SimpleQueue[T] = SimpleQueue()
    for item in items:
        queue.put(item)
    connect = connector(conn)
    opened: list[Conn] = []

    def worker() -> None:
        try:
            own = connect()
        except psycopg.OperationalError as exc:
            if reporter is not None:
                reporter.message(f"    a migration connection was refused ({str(exc).strip().splitlines()[0]}); "
                                 "the others take its share")
            return
        opened.append(own)
        with own:
            while not stop.is_set():
                try:
                    item = queue.get_nowait()
                except Empty:
                    return
                work(own, item)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="migration") as pool:
        futures = [pool.submit(worker) for _ in range(jobs)]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() for f in done):
                stop.set()
            wait(futures)
        except BaseException:  # Ctrl-C
            stop.set()
            for own in opened:
                with suppress(psycopg.Error):
                    own.cancel_safe()
            wait(futures)
            raise
    errors = [error for f in futures if (error := f.exception()) is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
    while True:  # what no connection took: every one was refused
        try:
            item = queue.get_nowait()
        except Empty:
            return
        work(conn, item)


def close_part(conn: Conn, spec: Backfill, part: Part) -> None:
    """In a part's last transaction: the sweep, when the part is the whole pass (the backfill's own row)."""
    if part.state == spec.name:
        part.done += spec.sweep(conn)


def finish(conn: Conn, spec: Backfill, parts: list[Part]) -> int:
    """Once every part of a pass of several is done: the sweep, the total and ``finished_at`` on the
    backfill's own row, in one transaction (a pass of one part did this in its last batch)."""
    if len(parts) == 1 and parts[0].state == spec.name:
        return parts[0].done
    done = sum(p.done for p in parts)
    with conn.transaction():
        spec.setup(conn)
        done += spec.sweep(conn)
        conn.execute(
            "UPDATE mcb_backfill_state SET rows_done = %s, updated_at = now(), finished_at = now() WHERE name = %s",
            (done, spec.name),
        )
    return done


def _run(conn: Conn, spec: Backfill, parts: list[Part], jobs: int, work: Callable[[Conn, Part], None],
         total: int, already: int, unit: str) -> None:
    spec._bar = spec.reporter.backfill_started(spec.name, total, already, unit)
    started = time.monotonic()
    on_connections(conn, [p for p in parts if not p.finished], jobs, work, spec.stop, spec.reporter)
    done = finish(conn, spec, parts)
    spec._bar.finish()
    spec.reporter.step_done(f"backfill {spec.name}: {done} rows written", time.monotonic() - started)


# --------------------------------------------------------------------------------------------- by key


@dataclass
class Keys:
    """A walk in key order: ``batch_sql`` gets ``%(lo)s`` (exclusive, NULL at the start) and ``%(hi)s``
    (inclusive, NULL for the end of the table) and must be idempotent."""

    table: str
    key: str
    key_type: str
    batch_sql: str
    where: str = "TRUE"

    def count(self, conn: Conn, lo: str | None, hi: str | None) -> int:
        t = self.key_type
        row = conn.execute(
            f"SELECT count(*) FROM {self.table} WHERE ({self.where}) AND (%(lo)s::{t} IS NULL OR {self.key} > %(lo)s::{t}) "
            f"AND (%(hi)s::{t} IS NULL OR {self.key} <= %(hi)s::{t})",
            {"lo": lo, "hi": hi}, prepare=False,
        ).fetchone()
        return int(row[0]) if row else 0

    @property
    def probe_sql(self) -> str:
        """The key ``%(skip)s`` rows past ``%(lo)s`` (not past ``%(end)s``): where the next batch ends.

        It must read only those rows, from the key's index. The output column gets a name of its own and
        the ORDER BY names the table's column: with ``SELECT id::text ... ORDER BY id`` PostgreSQL orders
        by the output column, the text, which sorted every row past ``%(lo)s`` on every batch (O(n²) over
        the pass: 18 s of a 1M-contact pass went to it).
        """
        t = self.key_type
        return (
            f"SELECT {self.table}.{self.key}::text AS batch_end FROM {self.table} WHERE ({self.where}) "
            f"AND (%(lo)s::{t} IS NULL OR {self.table}.{self.key} > %(lo)s::{t}) "
            f"AND (%(end)s::{t} IS NULL OR {self.table}.{self.key} <= %(end)s::{t}) "
            f"ORDER BY {self.table}.{self.key} OFFSET %(skip)s LIMIT 1"
        )


def run_keyset(conn: Conn, spec: Backfill, keys: Keys, *, jobs: int, unit: str) -> None:
    cursor, done, finished = claim(conn, spec.name)
    if finished:
        return
    total = keys.count(conn, None, None)
    bounds: list[tuple[str | None, str | None]] = [(None, None)]
    if keys.key_type == "uuid" and parts_for(total, jobs, spec.batch_size) > 1:
        bounds = uuid_bounds(parts_for(total, jobs, spec.batch_size))
    parts = parts_of(conn, spec.name, cursor, done, bounds)
    already = sum(
        keys.count(conn, p.lo, p.hi) if p.finished else keys.count(conn, p.lo, p.cursor) if p.cursor else 0
        for p in parts
    )

    # Never prepared (prepare=False): a prepared statement's generic plan cannot turn "lo IS NULL OR key > lo"
    # into an index range, so from the sixth batch on each probe and batch could read the table from its start.
    def work(c: Conn, part: Part) -> None:
        lo = part.cursor if part.cursor is not None else part.lo
        while not spec.stop.is_set():
            row = c.execute(keys.probe_sql, {"lo": lo, "end": part.hi, "skip": spec.batch_size - 1},
                            prepare=False).fetchone()
            last = row is None
            hi = part.hi if row is None else str(row[0])
            scanned = keys.count(c, lo, hi) if last else spec.batch_size
            with c.transaction():
                spec.setup(c)
                written = max(c.execute(keys.batch_sql, {"lo": lo, "hi": hi}, prepare=False).rowcount, 0)
                part.done += written
                if last:
                    close_part(c, spec, part)
                spec.save(c, part, hi, last)
            spec.report(scanned, written)
            if last:
                return
            lo = hi

    _run(conn, spec, parts, jobs, work, total, already, unit)


# --------------------------------------------------------------------------------------------- by page, reading

# The oldest transaction still running: every row version whose xmin precedes it was committed (or rolled
# back) before this statement. A full (64-bit) id, kept with the walk's position.
HORIZON_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


@dataclass
class Scan:
    """A read of ``table`` in physical order: ``batch_sql`` has ``{rows}``, a condition on ``alias``, in its
    WHERE, and writes elsewhere. It must be idempotent only if the walk may overlap work already done (a
    table that already has the target's unique key); the walk itself reads each row version once.

    ``sweep_sql`` has ``{rows}`` too, where the walk puts "this row version is not older than the horizon":
    every older one was read by the walk, so the sweep need only look at the rows written since it began
    (at 1M contacts, an anti-join of the whole table with what the walk wrote took 1.9 s)."""

    table: str
    alias: str
    batch_sql: str
    sweep_sql: str

    def statement(self, rows: str) -> str:
        return self.batch_sql.replace("{rows}", rows)

    def older(self) -> str:
        """This row version was committed before the walk began (its xmin precedes ``%(horizon)s``).

        age() counts back from the current transaction modulo 2^32, so this holds across a wraparound of
        the 32-bit ids; a frozen version whose raw xmin is more than 2^31 old reads as newer, and is left
        to the sweep: never read twice."""
        return f"age({self.alias}.xmin) > age(%(horizon)s::text::xid)"

    @property
    def whole_table(self) -> str:
        """The same statement over the whole table (what ``--dry-run`` prints)."""
        return self.statement("TRUE").replace("%%", "%")


def scan_position(cursor: str | None) -> tuple[int | None, int | None]:
    """A page walk's saved position, ``<next page>:<horizon>``, as (page, horizon)."""
    if cursor is None:
        return None, None
    page, _, horizon = cursor.partition(":")
    if not (page.isdigit() and horizon.isdigit()):
        raise ValueError(f"not the position of a page walk: {cursor!r}")
    return int(page), int(horizon)


def begun_by_key(conn: Conn, name: str) -> bool:
    """Whether the backfill ``name`` has a pass in progress that walks by key (an earlier MCB's): a uuid
    in its position or in its parts' bounds. Such a pass is finished the way it began."""
    prefix = name + PART_SEPARATOR
    conn.execute(LEDGER_DDL.encode())
    row = conn.execute(
        "SELECT count(*) FROM mcb_backfill_state WHERE finished_at IS NULL "
        "AND ((name = %s AND cursor LIKE '%%-%%') OR (left(name, %s) = %s AND substr(name, %s) LIKE '%%-%%'))",
        (name, len(prefix), prefix, len(prefix) + 1),
    ).fetchone()
    return bool(row and row[0])


def run_scan(conn: Conn, spec: Backfill, scan: Scan, *, jobs: int, unit: str) -> None:
    cursor, done, finished = claim(conn, spec.name)
    if finished:
        return
    # A new horizon is taken before anything measures the table: a row version older than it was committed
    # before, so it lies within the pages counted after. The last part has no end of its own for the same
    # reason: it walks to the table's end as it is when the part starts (on a resume too, whose parts
    # were cut by an earlier run, perhaps before the horizon it will use).
    fresh = conn.execute(HORIZON_SQL).fetchone()
    pages = relation_pages(conn, scan.table)
    row = conn.execute(f"SELECT count(*) FROM {scan.table}").fetchone()
    total = int(row[0]) if row else 0
    bounds = page_bounds(pages, parts_for(total, jobs, spec.batch_size))
    parts = parts_of(conn, spec.name, cursor, done, bounds)
    # The horizon is fixed by the first batch that commits (it is saved with every position): recomputed
    # on a resume, it would admit the new versions of rows that were read before the interruption.
    horizons = {h for p in parts if (h := scan_position(p.cursor)[1]) is not None}
    if len(horizons) > 1:
        raise ValueError(f"the parts of backfill {spec.name} disagree on their horizon: {sorted(horizons)}")
    horizon = horizons.pop() if horizons else int(fresh[0]) if fresh else 0
    already = sum(p.done for p in parts)
    per_page = total / max(pages, 1)
    step = max(1, int(spec.batch_size / max(per_page, 1e-9)))
    a = scan.alias
    batch_sql = scan.statement(f"{a}.ctid >= %(lo)s::tid AND {a}.ctid < %(hi)s::tid AND {scan.older()}")
    spec.sweep_sql = scan.sweep_sql.replace("{rows}", f"NOT ({scan.older()})")
    horizon_param = {"horizon": str(horizon % 2**32)}
    spec.sweep_params = horizon_param

    def work(c: Conn, part: Part) -> None:
        page = scan_position(part.cursor)[0]
        page = int(part.lo or 0) if page is None else page
        end = int(part.hi) if part.hi is not None else relation_pages(c, scan.table)
        # An empty part (or table) still gets its one, empty, last batch: that is what finishes it.
        while not part.finished and not spec.stop.is_set():
            upto = min(page + step, end)
            last = upto >= end
            params = {"lo": f"({page},0)", "hi": f"({upto},0)", **horizon_param}
            with c.transaction():
                spec.setup(c)
                written = max(c.execute(batch_sql, params, prepare=False).rowcount, 0)
                part.done += written
                if last:
                    close_part(c, spec, part)
                spec.save(c, part, f"{max(upto, page)}:{horizon}", last)
            spec.report(max(round((upto - page) * per_page), 0), written)
            page = upto

    _run(conn, spec, parts, jobs, work, total, already, unit)


# --------------------------------------------------------------------------------------------- by page


@dataclass
class Pages:
    """A walk in physical order. ``update_sql`` is an ``UPDATE {table} {alias} ... WHERE {rows} AND <todo>``
    that skips rows already done; ``todo`` is that condition alone. Each round updates the rows at
    ``rows_per_round`` line pointers of every page of a window, in its own transaction."""

    table: str
    alias: str
    update_sql: str
    todo: str
    rows_per_round: int = 4

    def statement(self, rows: str) -> str:
        return self.update_sql.replace("{rows}", rows)

    @property
    def whole_table(self) -> str:
        """The same update over the whole table: the sweep, and what ``--dry-run`` prints."""
        return self.statement("TRUE").replace("%%", "%")


def relation_pages(conn: Conn, table: str) -> int:
    row = conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint", (table,)
    ).fetchone()
    return int(row[0]) if row else 0


def run_pages(conn: Conn, spec: Backfill, walk: Pages, *, jobs: int, unit: str) -> None:
    cursor, done, finished = claim(conn, spec.name)
    if finished:
        return
    pages = relation_pages(conn, walk.table)
    a = walk.alias
    row = conn.execute(f"SELECT count(*) FROM {walk.table} {a} WHERE {walk.todo}").fetchone()
    remaining = int(row[0]) if row else 0
    bounds = page_bounds(pages, parts_for(remaining, jobs, spec.batch_size))
    if len(bounds) > 1:  # the walk ends at the table's end as it is now: later rows need no walk (see sweep)
        bounds[-1] = (bounds[-1][0], str(pages))
    parts = parts_of(conn, spec.name, cursor, done, bounds)
    already = sum(p.done for p in parts)
    block = conn.execute("SELECT current_setting('block_size')::int").fetchone()
    max_line_pointer = ((int(block[0]) if block else 8192) - 24) // 28  # MaxHeapTuplesPerPage
    per_page = max(1, (remaining + already) // max(pages, 1))
    window = max(1, spec.batch_size // per_page // WINDOWS_PER_STEP)
    in_window = f"{a}.ctid >= %(lo)s::tid AND {a}.ctid < %(hi)s::tid"
    count_sql = f"SELECT count(*) FROM {walk.table} {a} WHERE {in_window} AND ({walk.todo})"
    round_sql = walk.statement(
        f"{a}.ctid = ANY(ARRAY(SELECT format('(%%s,%%s)', g, l)::tid "
        f"FROM generate_series(%(first_page)s::bigint, %(end_page)s::bigint - 1) g, "
        f"generate_series(%(first)s::int, %(last)s::int) l))"
    )
    range_sql = walk.statement(in_window)

    def left_in(c: Conn, lo: str, hi: str) -> int:
        # Reading the window's pages is also what prunes them: the room freed by the last round's
        # committed updates becomes free space on each page for the next round's new row versions.
        got = c.execute(count_sql, {"lo": lo, "hi": hi}).fetchone()
        return int(got[0]) if got else 0

    def round_on(c: Conn, part: Part, window: tuple[int, int], first: int, last: int) -> None:
        with c.transaction():
            spec.setup(c)
            params = {"first_page": window[0], "end_page": window[1], "first": first, "last": last}
            written = max(c.execute(round_sql, params).rowcount, 0)
            part.done += written
            spec.save(c, part, part.cursor, False)
        spec.report(written, written)

    def work(c: Conn, part: Part) -> None:
        page = int(part.cursor or part.lo or 0)
        end = int(part.hi) if part.hi is not None else relation_pages(c, walk.table)
        while page < end:
            if spec.stop.is_set():
                return
            # WINDOWS_PER_STEP windows, their rounds taken in turn: a window is read (and pruned) again only
            # after a round on each of the others, by when the statements that began before its last
            # commit (another part's, the application's) have ended and no longer hold its old row versions.
            upto = min(page + WINDOWS_PER_STEP * window, end)
            windows = [(w, min(w + window, upto)) for w in range(page, upto, window)]
            first = dict.fromkeys(windows, 1)
            pending = list(windows)
            while pending:
                for w in list(pending):
                    lo, hi = f"({w[0]},0)", f"({w[1]},0)"
                    left = left_in(c, lo, hi)
                    if left and first[w] <= max_line_pointer:
                        last = min(first[w] + walk.rows_per_round - 1, max_line_pointer)
                        round_on(c, part, w, first[w], last)
                        first[w] = last + 1
                        continue
                    pending.remove(w)
                    if left:  # rows the rounds did not reach (a row version put at a higher line pointer)
                        with c.transaction():
                            spec.setup(c)
                            written = max(c.execute(range_sql, {"lo": lo, "hi": hi}).rowcount, 0)
                            part.done += written
                            spec.save(c, part, part.cursor, False)
                        spec.report(written, written)
            with c.transaction():
                spec.save(c, part, str(upto), False)
            page = upto
        with c.transaction():
            spec.setup(c)
            close_part(c, spec, part)
            spec.save(c, part, part.cursor, True)

    _run(conn, spec, parts, jobs, work, remaining + already, already, unit)
