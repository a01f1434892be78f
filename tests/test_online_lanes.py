"""``online.side_by_side``: a revision's lanes of DDL, each on a connection of its own, at the same time."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import make_url

from mcb.db.engine import make_engine
from mcb.migrate import online
from mcb.migrate.progress import reporting
from tests.reporting import Messages


@contextmanager
def revision(url: str, *, jobs: int) -> Iterator[int]:
    """What a revision's ``upgrade()`` runs in: Alembic's context, ``online.steps()``, ``jobs`` connections.
    Yields the backend pid of the migration's own connection."""
    saved = online.settings.backfill_jobs
    online.settings.backfill_jobs = jobs
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET application_name = 'mcb lanes test'")
            conn.commit()
            with Operations.context(MigrationContext.configure(conn)), online.steps():
                yield int(online.scalar("SELECT pg_backend_pid()"))
    finally:
        online.settings.backfill_jobs = saved
        engine.dispose()


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")}


def test_lanes_run_at_the_same_time_each_on_a_connection_of_its_own(empty_url: str) -> None:
    started = {"a": threading.Event(), "b": threading.Event()}
    seen: dict[str, tuple[int, str]] = {}

    def lane(name: str, other: str) -> Callable[[], None]:
        def run() -> None:
            online.execute(f"CREATE TABLE lane_{name} (id int)")
            seen[name] = (int(online.scalar("SELECT pg_backend_pid()")),
                          str(online.scalar("SELECT current_setting('application_name')")))
            started[name].set()
            # One after the other, the first lane would wait here for a lane that has not begun.
            assert started[other].wait(20), f"lane {other} did not run beside lane {name}"
        return run

    with revision(empty_url, jobs=2) as main_pid:
        online.side_by_side(lane("a", "b"), lane("b", "a"))

    assert {"lane_a", "lane_b"} <= _tables(empty_url)
    pids = {pid for pid, _ in seen.values()}
    assert len(pids) == 2 and main_pid not in pids
    # The settings of the migration's session come along (here its name; also its statement timeout).
    assert {name for _, name in seen.values()} == {"mcb lanes test"}


def test_with_one_job_the_lanes_run_in_order_on_the_migration_connection(empty_url: str) -> None:
    order: list[tuple[str, int]] = []

    def lane(name: str) -> Callable[[], None]:
        return lambda: order.append((name, int(online.scalar("SELECT pg_backend_pid()"))))

    with revision(empty_url, jobs=1) as main_pid:
        online.side_by_side(lane("a"), lane("b"), lane("c"))
    assert order == [("a", main_pid), ("b", main_pid), ("c", main_pid)]


def test_the_first_failure_stops_the_other_lanes_and_is_raised(empty_url: str) -> None:
    def failing() -> None:
        online.execute("CREATE TABLE before_failure (id int)")
        online.execute("SELECT 1 / 0")

    def stopped() -> None:
        online.execute("CREATE TABLE beside_failure (id int)")
        deadline = time.monotonic() + 20
        while not online.stopping():
            assert time.monotonic() < deadline, "the other lane's failure never stopped this one"
            time.sleep(0.01)
        online.execute("CREATE TABLE after_failure (id int)")

    def queued() -> None:
        online.execute("CREATE TABLE never_begun (id int)")

    with revision(empty_url, jobs=2), pytest.raises(psycopg.errors.DivisionByZero):
        online.side_by_side(stopped, failing, queued)
    tables = _tables(empty_url)
    assert {"before_failure", "beside_failure"} <= tables
    assert not {"after_failure", "never_begun"} & tables


def test_lanes_run_on_the_migration_connection_when_the_server_refuses_more(empty_url: str) -> None:
    """A role at its connection limit: the lanes run one after the other on the connection it has."""
    role = f"lanes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    try:
        order: list[tuple[str, int]] = []
        report = Messages()

        def lane(name: str) -> Callable[[], None]:
            def run() -> None:
                online.execute(f"CREATE TABLE refused_{name} (id int)")
                order.append((name, int(online.scalar("SELECT pg_backend_pid()"))))
            return run

        url = make_url(empty_url).set(username=role).render_as_string(hide_password=False)
        with reporting(report), revision(url, jobs=2) as main_pid:
            online.side_by_side(lane("a"), lane("b"))
        assert order == [("a", main_pid), ("b", main_pid)]
        assert {"refused_a", "refused_b"} <= _tables(empty_url)
        assert any(text.startswith("a migration connection was refused") for text in report.texts)
    finally:
        with psycopg.connect(empty_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")




def test_ctrl_c_cancels_the_statements_of_the_lanes_and_starts_no_more(empty_url: str) -> None:
    main_thread = threading.get_ident()
    outcome: dict[str, type[BaseException]] = {}

    def sleeping() -> None:
        try:
            online.execute("SELECT pg_sleep(120)", step="sleep", blocks_writes=False)
        except BaseException as exc:
            outcome["sleeping"] = type(exc)
            raise

    def interrupting() -> None:
        deadline = time.monotonic() + 20
        while not online.scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)' "
                                "AND state = 'active' AND datname = current_database()"):
            assert time.monotonic() < deadline, "the other lane's statement never started"
            time.sleep(0.02)
        signal.pthread_kill(main_thread, signal.SIGINT)  # what Ctrl-C does to mcb db upgrade
        while not online.stopping():  # so that this connection takes no other lane meanwhile
            assert time.monotonic() < deadline, "Ctrl-C did not stop the lanes"
            time.sleep(0.01)

    def queued() -> None:
        online.execute("CREATE TABLE after_interrupt (id int)")

    with revision(empty_url, jobs=2), pytest.raises(KeyboardInterrupt):
        online.side_by_side(sleeping, interrupting, queued)
    assert outcome == {"sleeping": psycopg.errors.QueryCanceled}
    assert "after_interrupt" not in _tables(empty_url)
