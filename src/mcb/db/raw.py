"""Statements on the hot write path, executed by psycopg directly inside a SQLAlchemy transaction.

``funnel.apply`` runs about five statements per webhook delivery. Through SQLAlchemy's ``text()`` each one
paid for parsing the SQL for bind parameters, a compiled-cache lookup and result metadata: more CPU than
the database spent on it. These helpers take the same SQL (``:name`` parameters) and run it on the
connection's own psycopg connection, in the same transaction, with psycopg's prepared statements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import dict_row
from sqlalchemy import Connection

TUPLES_OK = ExecStatus.TUPLES_OK
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=1024)
def psycopg_sql(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s`` (``::type`` casts untouched, ``%`` escaped)."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


# One cursor per psycopg connection, reused by every statement: a new cursor per statement (and the copy
# of the adapters it makes) was about a twentieth of the worker's Python time. The statements run one at a
# time on a connection and each result is fetched whole before the next, so nothing is shared across
# them. It is kept in the pool's per-connection ``info`` (which lives as long as the driver connection),
# with the driver connection it belongs to, so a replaced connection never gets an old cursor.
def _cursor(conn: Connection) -> psycopg.Cursor[dict[str, Any]]:
    driver = _driver(conn)
    info = conn.connection.info
    held = info.get("mcb.raw.cursor")
    if held is None or held[0] is not driver or held[1].closed:
        held = info["mcb.raw.cursor"] = (driver, driver.cursor(row_factory=dict_row))
    cur: psycopg.Cursor[dict[str, Any]] = held[1]
    return cur


def fetch_all(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    cur = _cursor(conn)
    cur.execute(psycopg_sql(sql), params)
    # Whether rows came back, from the result's status: ``cur.description`` would build a Column object
    # per column of every result just to be compared with None.
    result = cur.pgresult
    return cur.fetchall() if result is not None and result.status == TUPLES_OK else []


def fetch_first(conn: Connection, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    rows = fetch_all(conn, sql, params)
    return rows[0] if rows else None


def fetch_one(conn: Connection, sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    rows = fetch_all(conn, sql, params)
    if len(rows) != 1:
        raise LookupError(f"expected one row, got {len(rows)}")
    return rows[0]


def execute(conn: Connection, sql: str, params: Mapping[str, Any]) -> None:
    _cursor(conn).execute(psycopg_sql(sql), params)
