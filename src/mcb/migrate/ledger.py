"""The migration log: every backup, adoption, revision, verification and downgrade, with its timing.

It replaces the original guide's hand-kept checklist ("backup created, migration applied, verification
passed") with rows in the database being migrated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS mcb_migration_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    action TEXT NOT NULL,
    revision TEXT,
    status TEXT NOT NULL,
    duration_ms INTEGER,
    detail JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE TABLE IF NOT EXISTS mcb_backfill_state (
    name TEXT PRIMARY KEY,
    cursor TEXT,
    rows_done BIGINT NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE mcb_backfill_state ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ NOT NULL DEFAULT now()
"""


@dataclass
class LogEntry:
    at: datetime
    action: str
    revision: str | None
    status: str
    duration_ms: int | None
    detail: dict[str, Any]


def ensure_ledger(conn: Connection) -> None:
    raw = conn.connection.driver_connection
    raw.execute(LEDGER_DDL.encode())  # type: ignore[union-attr]


def ledger_exists(conn: Connection) -> bool:
    return conn.execute(text("SELECT to_regclass('public.mcb_migration_log')")).scalar() is not None


def record(
    conn: Connection,
    action: str,
    status: str,
    *,
    revision: str | None = None,
    seconds: float | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        text(
            "INSERT INTO mcb_migration_log (action, revision, status, duration_ms, detail) "
            "VALUES (:action, :revision, :status, :ms, CAST(:detail AS jsonb))"
        ),
        {
            "action": action,
            "revision": revision,
            "status": status,
            "ms": None if seconds is None else round(seconds * 1000),
            "detail": json.dumps(detail or {}, default=str),
        },
    )


def recent(conn: Connection, limit: int = 20) -> list[LogEntry]:
    if not ledger_exists(conn):
        return []
    rows = conn.execute(
        text(
            "SELECT at, action, revision, status, duration_ms, detail FROM mcb_migration_log "
            "ORDER BY id DESC LIMIT :n"
        ),
        {"n": limit},
    )
    return [LogEntry(*row) for row in rows]


def last_verification_passed(conn: Connection) -> bool:
    if not ledger_exists(conn):
        return False
    row = conn.execute(
        text(
            "SELECT status, revision FROM mcb_migration_log WHERE action IN ('verify', 'upgrade', 'downgrade') "
            "ORDER BY id DESC LIMIT 1"
        )
    ).first()
    return row is not None and row[0] == "passed"
