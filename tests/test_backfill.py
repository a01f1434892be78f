"""The resumable backfills of mcb.migrate.backfill: by key and by page, in one part or several at once,
interrupted and resumed, every row done exactly once."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mcb.migrate import backfill
from mcb.migrate.progress import BackfillProgress, Reporter
from tests.pg import PgServer, private_server

ROWS = 3_000


class Recording(Reporter):
    """Remembers what the progress bar was told."""

    def __init__(self) -> None:
        super().__init__()
        self.total = self.already = self.scanned = self.written = 0
        self.finished = False

    def backfill_started(self, name: str, total: int, already: int, unit: str) -> BackfillProgress:
        self.total, self.already = total, already
        outer = self

        class Bar(BackfillProgress):
            def advance(self, scanned: int, written: int) -> None:
                outer.scanned += scanned
                outer.written += written

            def finish(self) -> None:
                outer.finished = True

        return Bar()


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET mcb.admin = 'on'")
    return conn


# A "tripwire": the statement that calls trip() fails once `remaining` calls have gone through. The
# calls that went through are counted in the transactions that committed them.
TRIPWIRE = """
CREATE TABLE trip (remaining int NOT NULL);
INSERT INTO trip VALUES (1000000);
CREATE FUNCTION trip() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE left_ int;
BEGIN
    UPDATE trip SET remaining = remaining - 1 RETURNING remaining INTO left_;
    IF left_ < 0 THEN RAISE EXCEPTION 'tripped'; END IF;
    RETURN true;
END $$;
"""


@pytest.fixture
def keyed(empty_url: str) -> str:
    """src: ROWS rows with random uuids, 7 of them 'late' (left to the sweep); dst: no key at all, so a
    row written twice would show."""
    with _connect(empty_url) as conn:
        conn.execute(TRIPWIRE.encode())
        conn.execute("CREATE TABLE src (id uuid PRIMARY KEY, late boolean NOT NULL)")
        conn.execute("CREATE TABLE dst (id uuid NOT NULL)")
        ids = sorted(uuid.uuid4() for _ in range(ROWS))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO src VALUES (%s, %s)", [(i, n % 400 == 0) for n, i in enumerate(ids)])
    return empty_url


KEY_BATCH = """
INSERT INTO dst SELECT s.id FROM src s, (SELECT trip()) t
WHERE NOT s.late AND (%(lo)s::uuid IS NULL OR s.id > %(lo)s::uuid) AND (%(hi)s::uuid IS NULL OR s.id <= %(hi)s::uuid)
"""
KEY_SWEEP = "INSERT INTO dst SELECT s.id FROM src s WHERE s.late AND NOT EXISTS (SELECT 1 FROM dst d WHERE d.id = s.id)"


def _run_keyed(url: str, jobs: int, reporter: Reporter | None = None) -> None:
    with _connect(url) as conn:
        spec = backfill.Backfill("copy", "src", None, KEY_SWEEP, 100, reporter or Reporter())
        backfill.run_keyset(conn, spec, backfill.Keys("src", "id", "uuid", KEY_BATCH), jobs=jobs, unit="rows")


def _state(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT name, cursor, rows_done, finished_at IS NOT NULL FROM mcb_backfill_state ORDER BY name"
        ).fetchall()


def _dst(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM src) FROM dst").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_uuid_and_page_bounds() -> None:
    assert backfill.uuid_bounds(1) == [(None, None)]
    assert backfill.uuid_bounds(2) == [
        (None, "80000000-0000-0000-0000-000000000000"),
        ("80000000-0000-0000-0000-000000000000", None),
    ]
    assert backfill.uuid_bounds(4)[1] == (
        "40000000-0000-0000-0000-000000000000", "80000000-0000-0000-0000-000000000000"
    )
    assert backfill.page_bounds(100, 3) == [(None, "33"), ("33", "66"), ("66", None)]
    assert backfill.page_bounds(2, 3) == [(None, None)]
    # Each part has a quarter of a batch at least: a small table is one part whatever the jobs.
    assert backfill.parts_for(4_999, 2, 20_000) == 1
    assert backfill.parts_for(10_000, 2, 20_000) == 2
    assert backfill.parts_for(100_000, 2, 20_000) == 2
    assert backfill.parts_for(20_000, 8, 20_000) == 4
    assert backfill.parts_for(100_000, 8, 20_000) == 8


def test_parallel_keyset_writes_every_row_once_with_one_cursor_per_part(keyed: str) -> None:
    reporter = Recording()
    _run_keyed(keyed, jobs=3, reporter=reporter)

    assert _dst(keyed) == (ROWS, ROWS, ROWS)
    state = _state(keyed)
    # The backfill's own row is finished with the total (the batches' rows and the sweep's 8).
    assert state[0] == ("copy", None, ROWS, True)
    bounds = ["..55555555-5555-5555-5555-555555555555",
              "55555555-5555-5555-5555-555555555555..aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
              "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa.."]
    assert sorted(r[0] for r in state[1:]) == sorted(f"copy/{b}" for b in bounds)
    assert all(finished for *_, finished in state)
    assert sum(r[2] for r in state[1:]) == ROWS - 8
    assert (reporter.total, reporter.already, reporter.scanned, reporter.finished) == (ROWS, 0, ROWS, True)

    _run_keyed(keyed, jobs=3)  # finished: a second run does nothing
    assert _dst(keyed) == (ROWS, ROWS, ROWS)


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", ()) for n in _plan_nodes(child))]


def test_the_probe_for_a_batch_end_reads_that_batch_not_the_rest_of_the_table(keyed: str) -> None:
    """Where a batch ends is found by reading the batch's own keys from the key's index, in key order,
    however far into the table the pass is. (It once ordered by the text of the key, which sorted every
    row past the cursor for every batch: 18 s of probes in a pass over 1M contacts.)"""
    probe = backfill.Keys("src", "id", "uuid", KEY_BATCH).probe_sql
    with _connect(keyed) as conn:
        conn.execute("ANALYZE src")
        ids = [str(r[0]) for r in conn.execute("SELECT id FROM src ORDER BY id")]
        params = {"lo": ids[100], "end": None, "skip": 99}
        assert conn.execute(probe, params).fetchall() == [(ids[200],)]
        assert conn.execute(probe, {**params, "end": ids[150]}).fetchall() == []  # nothing past the part's end
        explained = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {probe}", params).fetchone()
        assert explained is not None
        nodes = _plan_nodes(explained[0][0]["Plan"])
    assert not [n for n in nodes if n["Node Type"] == "Sort"]
    assert max(float(n["Actual Rows"]) for n in nodes) <= 100, [(n["Node Type"], n["Actual Rows"]) for n in nodes]


def test_one_job_keeps_the_single_cursor_of_earlier_versions(keyed: str) -> None:
    _run_keyed(keyed, jobs=1)
    assert _dst(keyed) == (ROWS, ROWS, ROWS)
    assert _state(keyed) == [("copy", None, ROWS, True)]


def test_interrupted_parallel_keyset_resumes_with_its_parts(keyed: str) -> None:
    with _connect(keyed) as conn:
        conn.execute("UPDATE trip SET remaining = 9")  # 9 batches of 100 commit, the 10th fails
    with pytest.raises(psycopg.errors.RaiseException, match="tripped"):
        _run_keyed(keyed, jobs=3)
    # Nine batches of 100 source rows committed; the late rows among them are left to the sweep.
    written, distinct, _ = _dst(keyed)
    assert written == distinct and 900 - 9 <= written < 900
    state = _state(keyed)
    assert state[0] == ("copy", None, 0, False)
    assert len(state) == 4 and not any(finished for *_, finished in state)
    assert sum(r[2] for r in state[1:]) == written

    with _connect(keyed) as conn:
        conn.execute("UPDATE trip SET remaining = 1000000")
    reporter = Recording()
    _run_keyed(keyed, jobs=2, reporter=reporter)  # fewer connections than parts: the same three parts

    assert _dst(keyed) == (ROWS, ROWS, ROWS)
    state = _state(keyed)
    assert len(state) == 4 and all(finished for *_, finished in state)
    assert state[0][2] == ROWS
    assert reporter.already == 900 and reporter.already + reporter.scanned == ROWS


def test_interrupted_single_cursor_pass_finishes_as_one_part(keyed: str) -> None:
    with _connect(keyed) as conn:
        conn.execute("UPDATE trip SET remaining = 5")
    with pytest.raises(psycopg.errors.RaiseException):
        _run_keyed(keyed, jobs=1)
    assert 500 - 5 <= _dst(keyed)[0] < 500
    with _connect(keyed) as conn:
        conn.execute("UPDATE trip SET remaining = 1000000")
    _run_keyed(keyed, jobs=3)
    assert _dst(keyed) == (ROWS, ROWS, ROWS)
    assert _state(keyed) == [("copy", None, ROWS, True)]


def test_ctrl_c_stops_every_part_at_once_and_the_next_run_finishes(keyed: str) -> None:
    """Ctrl-C cancels the batches in flight and starts no more (the parts used to run on to the end of the
    table first); each part keeps the position of its last committed batch."""
    slow = KEY_BATCH.replace("(SELECT trip()) t", "(SELECT trip()) t, (SELECT pg_sleep(0.2)) z")
    main_thread = threading.get_ident()

    def interrupt_after_a_few_batches() -> None:
        with psycopg.connect(keyed, autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while watcher.execute("SELECT count(*) FROM dst").fetchone() < (200,):
                assert time.monotonic() < deadline
                time.sleep(0.02)
        signal.pthread_kill(main_thread, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_after_a_few_batches)
    interrupter.start()
    with _connect(keyed) as conn, pytest.raises(KeyboardInterrupt):
        spec = backfill.Backfill("copy", "src", None, KEY_SWEEP, 100, Reporter())
        backfill.run_keyset(conn, spec, backfill.Keys("src", "id", "uuid", slow), jobs=2, unit="rows")
    interrupter.join()
    written, distinct, _ = _dst(keyed)
    assert written == distinct and 200 <= written < ROWS // 2  # 30 batches of 0.2 s were left, not run
    state = _state(keyed)
    assert len(state) == 3 and not any(finished for *_, finished in state)
    assert sum(r[2] for r in state[1:]) == written

    _run_keyed(keyed, jobs=2)
    assert _dst(keyed) == (ROWS, ROWS, ROWS)


def test_refused_connections_leave_their_parts_to_the_migration_connection(keyed: str) -> None:
    role = f"bf_{uuid.uuid4().hex[:12]}"
    with _connect(keyed) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")  # the migration's own connection only
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        messages: list[str] = []

        class Listening(Recording):
            def message(self, text: str) -> None:
                messages.append(text)

        with psycopg.connect(psycopg.conninfo.make_conninfo(keyed, user=role), autocommit=True) as conn:
            spec = backfill.Backfill("copy", "src", None, KEY_SWEEP, 100, Listening())
            backfill.run_keyset(conn, spec, backfill.Keys("src", "id", "uuid", KEY_BATCH), jobs=3, unit="rows")
        assert _dst(keyed) == (ROWS, ROWS, ROWS)
        state = _state(keyed)
        assert len(state) == 4 and all(finished for *_, finished in state)
        assert len(messages) == 3 and all("connection was refused" in m for m in messages)
    finally:
        with _connect(keyed) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_a_new_pass_forgets_parts_left_by_an_old_one(keyed: str) -> None:
    with _connect(keyed) as conn:
        backfill.claim(conn, "copy")
        backfill.parts_of(conn, "copy", None, 0, backfill.uuid_bounds(2))
        conn.execute("UPDATE mcb_backfill_state SET finished_at = now()")  # both parts look done
        conn.execute("DELETE FROM mcb_backfill_state WHERE name = 'copy'")  # as a downgrade that forgot them
    _run_keyed(keyed, jobs=2)
    assert _dst(keyed) == (ROWS, ROWS, ROWS)


# --------------------------------------------------------------------------------------------- by page

PAGE_ROWS = 20_000
UPDATE = "UPDATE wide w SET flag = (w.n %% 3)::text, times = w.times + 1 WHERE {rows} AND w.flag IS NULL AND (SELECT trip())"


def _make_wide(url: str) -> None:
    """A table of full pages (about 30 rows each) with three indexes; flag is in none of them."""
    with _connect(url) as conn:
        conn.execute(TRIPWIRE.encode())
        conn.execute(
            "CREATE TABLE wide (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL, "
            "pad text NOT NULL, flag text, times int NOT NULL DEFAULT 0)"
        )
        conn.execute("CREATE INDEX wide_n ON wide (n)")
        conn.execute("CREATE INDEX wide_pad ON wide (left(pad, 10))")
        conn.execute(f"INSERT INTO wide (n, pad) SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, {PAGE_ROWS}) g")
        conn.execute("VACUUM ANALYZE wide")


@pytest.fixture
def wide(empty_url: str) -> str:
    _make_wide(empty_url)
    return empty_url


@pytest.fixture(scope="module")
def quiet_server() -> Iterator[str]:
    # How many updates stay in place depends on pruning, which another database's transactions on a shared
    # server can hold back (tests.pg.private_server), and so can an autovacuum's ANALYZE in this one.
    with private_server("autovacuum = off") as url:
        yield url


@pytest.fixture
def quiet_wide(quiet_server: str) -> Iterator[str]:
    with PgServer(quiet_server).database() as url:
        _make_wide(url)
        yield url


def _run_pages(url: str, jobs: int, reporter: Reporter | None = None, setup_sql: str | None = None) -> None:
    walk = backfill.Pages("wide", "w", UPDATE, "w.flag IS NULL")
    with _connect(url) as conn:
        spec = backfill.Backfill("flags", "wide", setup_sql, walk.whole_table, 3_000, reporter or Reporter())
        backfill.run_pages(conn, spec, walk, jobs=jobs, unit="rows")


def _wide(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT flag, times, count(*), count(*) FILTER (WHERE flag IS DISTINCT FROM (n % 3)::text) "
            "FROM wide GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()


# n % 3 over 1..20000: 6666 zeros, 6667 ones, 6667 twos.
DONE = [("0", 1, 6666, 0), ("1", 1, 6667, 0), ("2", 1, 6667, 0)]


def test_page_walk_updates_every_row_once_mostly_in_place(quiet_wide: str) -> None:
    wide = quiet_wide
    with psycopg.connect(wide) as conn:
        pages_before = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
    reporter = Recording()
    _run_pages(wide, jobs=1, reporter=reporter)

    assert _wide(wide) == DONE
    assert _state(wide) == [("flags", str(pages_before), PAGE_ROWS, True)]
    assert (reporter.total, reporter.written, reporter.finished) == (PAGE_ROWS, PAGE_ROWS, True)
    # Most new versions stayed on their page (HOT): the table grew by far less than the rows it rewrote.
    # The statistics reach the view within a second or so of the backend's last commit.
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(wide) as conn:
            upd, hot = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'wide'"
            ).fetchone()  # type: ignore[misc]
            pages_after = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
        if upd >= PAGE_ROWS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert upd == PAGE_ROWS
    assert hot > PAGE_ROWS * 0.6, (upd, hot)
    assert pages_after < pages_before * 1.5


def test_parallel_page_walk_updates_every_row_once(wide: str) -> None:
    _run_pages(wide, jobs=3)
    assert _wide(wide) == DONE
    state = _state(wide)
    assert state[0] == ("flags", None, PAGE_ROWS, True)
    assert len(state) == 4 and all(finished for *_, finished in state)
    assert sum(r[2] for r in state[1:]) == PAGE_ROWS


@pytest.mark.parametrize("jobs", [1, 3])
def test_interrupted_page_walk_resumes_without_updating_a_row_twice(wide: str, jobs: int) -> None:
    with _connect(wide) as conn:
        conn.execute("UPDATE trip SET remaining = 12")
    with pytest.raises(psycopg.errors.RaiseException, match="tripped"):
        _run_pages(wide, jobs=jobs)
    partial = _wide(wide)
    assert (None, 0) in [(flag, times) for flag, times, *_ in partial]
    assert all(times == 1 for flag, times, *_ in partial if flag is not None)
    assert not any(finished for *_, finished in _state(wide))

    with _connect(wide) as conn:
        conn.execute("UPDATE trip SET remaining = 1000000")
    _run_pages(wide, jobs=2)
    assert _wide(wide) == DONE
    state = _state(wide)
    assert all(finished for *_, finished in state)
    assert state[0][2] == PAGE_ROWS


@pytest.mark.parametrize("jobs", [1, 2])
def test_rows_moved_behind_the_walk_are_caught_by_the_sweep(wide: str, jobs: int) -> None:
    """A row the original application rewrites onto a page the walk will not visit still gets done."""
    with _connect(wide) as conn:
        # At the walk's first transaction, "the application" rewrites the row n = 1 (page 0) with a pad
        # too long for any existing page, so its new version lands beyond the pages the walk covers.
        conn.execute("ALTER TABLE wide ALTER COLUMN pad SET STORAGE PLAIN")
        conn.execute(
            """
            CREATE FUNCTION move_once() RETURNS void LANGUAGE sql AS $$
                UPDATE wide SET pad = (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 180) g)
                WHERE n = 1 AND length(pad) < 1000
            $$
            """
        )
        pages = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
    _run_pages(wide, jobs=jobs, setup_sql="SELECT move_once()")
    with psycopg.connect(wide) as conn:
        page, length = conn.execute("SELECT (ctid::text::point)[0]::int, length(pad) FROM wide WHERE n = 1").fetchone()  # type: ignore[misc]
    assert page >= pages and length == 180 * 32
    assert _wide(wide) == DONE


# --------------------------------------------------------------------------------------------- by page, reading

SCAN = "INSERT INTO dst SELECT w.id FROM wide w, (SELECT trip()) t WHERE {rows}"
SCAN_SWEEP = "INSERT INTO dst SELECT w.id FROM wide w WHERE {rows} AND NOT EXISTS (SELECT 1 FROM dst d WHERE d.id = w.id)"
LONG_PAD = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 180) g)"


def _with_dst(url: str) -> str:
    with _connect(url) as conn:
        conn.execute("CREATE TABLE dst (id uuid NOT NULL)")  # no key: a row read twice would show
        conn.execute("ALTER TABLE wide ALTER COLUMN pad SET STORAGE PLAIN")  # a long pad moves its row
    return url


def _run_scan(url: str, jobs: int, reporter: Reporter | None = None) -> None:
    with _connect(url) as conn:
        spec = backfill.Backfill("copy", "wide", None, None, 3_000, reporter or Reporter())
        backfill.run_scan(conn, spec, backfill.Scan("wide", "w", SCAN, SCAN_SWEEP), jobs=jobs, unit="rows")


def _copied(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM wide) FROM dst").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.parametrize("jobs", [1, 3])
def test_page_scan_reads_every_row_once(wide: str, jobs: int) -> None:
    url = _with_dst(wide)
    with psycopg.connect(url) as conn:
        pages = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
    reporter = Recording()
    _run_scan(url, jobs=jobs, reporter=reporter)

    assert _copied(url) == (PAGE_ROWS, PAGE_ROWS, PAGE_ROWS)
    assert (reporter.total, reporter.written, reporter.finished) == (PAGE_ROWS, PAGE_ROWS, True)
    state = _state(url)
    assert all(finished for *_, finished in state)
    if jobs == 1:  # the position: the end of the table, and the horizon the walk kept
        assert state[0][:3] == ("copy", state[0][1], PAGE_ROWS)
        assert state[0][1].split(":")[0] == str(pages) and state[0][1].split(":")[1].isdigit()
    else:
        assert len(state) == 4 and sum(r[2] for r in state[1:]) == PAGE_ROWS


@pytest.mark.parametrize("jobs", [1, 2])
def test_interrupted_page_scan_reads_each_row_once_though_rows_moved_meanwhile(wide: str, jobs: int) -> None:
    """Rows the application rewrites between the interruption and the resume land on pages the walk has yet
    to read, including rows it has read already: each still reaches dst exactly once, and so do new rows."""
    url = _with_dst(wide)
    with _connect(url) as conn:
        conn.execute("UPDATE trip SET remaining = 3")
    with pytest.raises(psycopg.errors.RaiseException, match="tripped"):
        _run_scan(url, jobs=jobs)
    copied, distinct, _ = _copied(url)
    assert 0 < copied == distinct < PAGE_ROWS

    with _connect(url) as conn:
        # Read already (the first pages) and not yet (the last ones); both move to new pages at the end.
        moved = conn.execute(
            f"UPDATE wide SET pad = {LONG_PAD} WHERE n <= 40 OR n > {PAGE_ROWS} - 40 RETURNING (ctid::text::point)[0]"
        ).fetchall()
        conn.execute(f"INSERT INTO wide (n, pad) SELECT g, md5(g::text) FROM generate_series({PAGE_ROWS} + 1, {PAGE_ROWS} + 5) g")
        assert len(moved) == 80
        was_read = conn.execute("SELECT count(*) FROM dst JOIN wide USING (id) WHERE n <= 40").fetchone()
        conn.execute("UPDATE trip SET remaining = 1000000")
    assert was_read == (40,)

    _run_scan(url, jobs=jobs)
    assert _copied(url) == (PAGE_ROWS + 5, PAGE_ROWS + 5, PAGE_ROWS + 5)
    assert all(finished for *_, finished in _state(url))


def test_a_pass_begun_by_key_is_recognised(empty_url: str) -> None:
    with _connect(empty_url) as conn:
        conn.execute(backfill.LEDGER_DDL.encode())
        conn.execute("INSERT INTO mcb_backfill_state (name, cursor) VALUES ('a', '12:3456'), "
                     "('b', '6f1b2c3d-0000-4000-8000-000000000000'), ('c', NULL), "
                     "('c/..7fffffff-ffff-ffff-ffff-ffffffffffff', NULL), ('d', NULL), ('d/0..40', '12:3456')")
        conn.execute("INSERT INTO mcb_backfill_state (name, cursor, finished_at) "
                     "VALUES ('e', '6f1b2c3d-0000-4000-8000-000000000000', now())")
        assert [backfill.begun_by_key(conn, n) for n in "abcde"] == [False, True, True, False, False]
    assert backfill.scan_position("12:3456") == (12, 3456)
    assert backfill.scan_position(None) == (None, None)
    with pytest.raises(ValueError, match="not the position of a page walk"):
        backfill.scan_position("6f1b2c3d-0000-4000-8000-000000000000")


def test_rows_committed_before_the_horizon_on_pages_added_after_the_parts_were_cut_are_read(wide: str) -> None:
    """A pass cut into parts whose first batch failed keeps its parts, but takes its horizon when it resumes.
    Rows committed in between on new pages are older than that horizon, so the sweep leaves them to the
    walk: the last part must walk to the table's end as it is then, not as it was when the parts were cut."""
    url = _with_dst(wide)
    with _connect(url) as conn:
        conn.execute("UPDATE trip SET remaining = 0")
    with pytest.raises(psycopg.errors.RaiseException, match="tripped"):
        _run_scan(url, jobs=2)
    assert [r[1] for r in _state(url)] == [None, None, None]  # three rows: the pass, its two parts; no position
    with _connect(url) as conn:
        pages = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
        conn.execute(f"INSERT INTO wide (n, pad) SELECT g, repeat(md5(g::text), 6) "
                     f"FROM generate_series({PAGE_ROWS} + 1, {PAGE_ROWS} + 300) g")
        grown = int(conn.execute("SELECT pg_relation_size('wide') / 8192").fetchone()[0])  # type: ignore[index]
        conn.execute("UPDATE trip SET remaining = 1000000")
    assert grown > pages

    _run_scan(url, jobs=2)
    assert _copied(url) == (PAGE_ROWS + 300, PAGE_ROWS + 300, PAGE_ROWS + 300)
