"""Shared fixtures: a real PostgreSQL, template databases, and the environment for CLI subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.migrate import runner
from tests.pg import PgServer, build_legacy_schema, start_server


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    server, handle = start_server()
    yield server
    if handle is not None:
        handle.cleanup()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def legacy_template(pg: PgServer) -> Iterator[str]:
    name = pg.create_database(name=f"tmpl_legacy_{os.getpid()}")
    build_legacy_schema(pg.url_for(name))
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def head_template(pg: PgServer) -> Iterator[str]:
    name = pg.create_database(name=f"tmpl_head_{os.getpid()}")
    url = pg.url_for(name)
    engine = make_engine(url)
    result = runner.upgrade(engine, url, make_backup=False, settings=Settings())
    engine.dispose()
    assert result.verification is not None and result.verification.passed
    yield name
    pg.drop_database(name)


@pytest.fixture
def legacy_url(pg: PgServer, legacy_template: str) -> Iterator[str]:
    with pg.database(template=legacy_template) as url:
        yield url


@pytest.fixture
def head_url(pg: PgServer, head_template: str) -> Iterator[str]:
    with pg.database(template=head_template) as url:
        yield url


@pytest.fixture
def empty_url(pg: PgServer) -> Iterator[str]:
    with pg.database() as url:
        yield url


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the ``mcb`` command as a subprocess against a test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCB_") and k != "DATABASE_URL"}
    env["MCB_HOME"] = str(tmp_path / "home")
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(MCB_HOME=tmp_path / "home")  # type: ignore[call-arg]
