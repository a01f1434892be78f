"""What every command group shares: the console, the admin engine, JSON output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from sqlalchemy import Connection, Engine

from mcb.db.engine import connect_engine, database_url
from mcb.db.session import admin_session

out = Console(soft_wrap=True)


def admin_engine() -> Engine:
    return connect_engine(database_url())


@contextmanager
def admin() -> Iterator[Connection]:
    """One admin transaction on the configured database (committed on success)."""
    engine = admin_engine()
    try:
        with admin_session(engine) as conn:
            yield conn
    finally:
        engine.dispose()


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))
