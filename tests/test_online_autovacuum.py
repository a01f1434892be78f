"""A migration step that needs a table an autovacuum is working on (``online.run_with_retries``).

Autovacuum holds a lock that DDL waits for, for as long as it runs, and PostgreSQL cancels it only once a
lock request has waited ``deadlock_timeout``, which the steps' 50 ms attempts never do: without help,
the step spends its retries and fails. These tests need a real autovacuum worker on a table, so they run
on a server of their own (embedded, whatever server the rest of the suite uses) whose launcher looks at
its databases every second; the table's vacuum is throttled so that it runs until it is cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mcb.migrate import online
from tests.pg import private_server
from tests.reporting import Messages


@pytest.fixture(scope="module")
def vacuuming_server() -> Iterator[str]:
    with private_server("autovacuum_naptime = 1") as url:
        yield url


@pytest.fixture
def retries() -> Iterator[None]:
    # Few retries: without the help, the step fails within seconds instead of minutes.
    saved = online.settings.lock_timeout_ms, online.settings.lock_retries
    online.settings.lock_timeout_ms, online.settings.lock_retries = 50, 15
    yield
    online.settings.lock_timeout_ms, online.settings.lock_retries = saved


def _vacuumed_table(conn: psycopg.Connection[Any], table: str) -> None:
    """``table`` with dead rows and an autovacuum of it running, slowed down to a crawl."""
    conn.execute(
        f"CREATE TABLE {table} (id int, pad text) WITH (autovacuum_vacuum_cost_delay = 100, "
        "autovacuum_vacuum_cost_limit = 1, autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0, "
        "autovacuum_analyze_threshold = 1000000000)"
    )
    conn.execute(f"INSERT INTO {table} SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
    conn.execute(f"DELETE FROM {table}")
    deadline = time.monotonic() + 60
    while not _autovacuum_on(conn, table):
        assert time.monotonic() < deadline, f"no autovacuum of {table} started within 60 s"
        time.sleep(0.2)


def _autovacuum_on(conn: psycopg.Connection[Any], table: str) -> bool:
    # By its locks: an ordinary role does not see another role's query text in pg_stat_activity.
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'relation' "
        "WHERE a.backend_type = 'autovacuum worker' AND l.relation = %s::regclass", (table,)
    ).fetchone()
    return bool(row and row[0])


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
        (table,)).fetchall()]


def test_an_autovacuum_in_the_way_is_cancelled_and_the_step_goes_through(vacuuming_server: str, retries: None) -> None:
    with psycopg.connect(vacuuming_server, autocommit=True) as conn:
        _vacuumed_table(conn, "swept")
        report = Messages()
        online.run_with_retries(conn, "ALTER TABLE swept ADD COLUMN tenant_id uuid", "swept: tenant_id", report)

        assert _columns(conn, "swept") == ["id", "pad", "tenant_id"]
        assert report.lock_retries >= 1
        assert "cancelled an autovacuum of swept that held a lock the migration needs (autovacuum runs again later)" in report.texts


def test_a_role_that_may_not_cancel_it_waits_once_for_postgresql_to(vacuuming_server: str, retries: None) -> None:
    # The table's owner is an ordinary role (as on a hosted database): it may not signal autovacuum. It
    # may read other sessions' activity (pg_read_all_stats), without which it cannot tell who holds a lock.
    with psycopg.connect(vacuuming_server, autocommit=True) as admin:
        admin.execute("CREATE ROLE plain_owner LOGIN")
        admin.execute("GRANT CREATE ON SCHEMA public TO plain_owner")
        admin.execute("GRANT pg_read_all_stats TO plain_owner")
    owner_url = psycopg.conninfo.make_conninfo(vacuuming_server, user="plain_owner")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        _vacuumed_table(conn, "held")
        report = Messages()
        online.run_with_retries(conn, "ALTER TABLE held ADD COLUMN tenant_id uuid", "held: tenant_id", report)

        assert _columns(conn, "held") == ["id", "pad", "tenant_id"]
        assert not any(text.startswith("cancelled") for text in report.texts)
        assert ("an autovacuum of held holds the lock (held: tenant_id); waiting past deadlock_timeout once so "
                "that PostgreSQL cancels it") in report.texts


def test_an_autovacuum_of_another_table_is_left_alone(vacuuming_server: str, retries: None) -> None:
    with psycopg.connect(vacuuming_server, autocommit=True) as conn:
        _vacuumed_table(conn, "elsewhere")
        conn.execute("CREATE TABLE target (id int)")
        online.run_with_retries(conn, "ALTER TABLE target ADD COLUMN tenant_id uuid", "target", Messages())
        assert online.autovacuums_in_the_way(conn, "ALTER TABLE target ADD COLUMN x int") == {}
        assert list(online.autovacuums_in_the_way(conn, "ALTER TABLE elsewhere ADD COLUMN x int").values()) == ["elsewhere"]
        assert _autovacuum_on(conn, "elsewhere")
