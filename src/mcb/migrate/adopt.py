"""Recognising what a database is before touching it: empty, MCB's own, the original's, or unknown.

The original's live database was built by hand, so it is recognised by structure: revision 0001's SQL is
run into a scratch schema inside a transaction that is rolled back, and the core tables of the database
are compared column by column with what that produced. Extra columns and tables are tolerated and
reported; a missing core table or column, or a column of another type, is an unknown shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Connection, text

from mcb.migrate.legacy import CORE_TABLES, LEGACY_TABLES
from mcb.migrate.online import read_sql

Kind = Literal["empty", "versioned", "legacy", "unknown"]

# Tables of MCB's own bookkeeping, never part of a shape comparison.
BOOKKEEPING = ("alembic_version", "mcb_migration_log", "mcb_backfill_state")

PROBE_SCHEMA = "mcb_shape_probe"


@dataclass
class DatabaseShape:
    kind: Kind
    revision: str | None = None
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)


def public_tables(conn: Connection, schema: str = "public") -> list[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        ),
        {"schema": schema},
    )
    return [r[0] for r in rows]


def columns_of(conn: Connection, schema: str, table: str) -> dict[str, str]:
    rows = conn.execute(
        text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"schema": schema, "table": table},
    )
    return {name: typ for name, typ in rows}


def current_revision(conn: Connection) -> str | None:
    if conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar() is None:
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def expected_legacy_columns(conn: Connection) -> dict[str, dict[str, str]]:
    """Columns and types of revision 0001's tables, read from a rolled-back scratch build."""
    tx = conn.begin_nested() if conn.in_transaction() else conn.begin()
    try:
        conn.exec_driver_sql(f"CREATE SCHEMA {PROBE_SCHEMA}")
        conn.exec_driver_sql(f"SET LOCAL search_path = {PROBE_SCHEMA}, public")
        raw = conn.connection.driver_connection
        raw.execute(read_sql("0001_tables.sql").encode())  # type: ignore[union-attr]
        return {t: columns_of(conn, PROBE_SCHEMA, t) for t in LEGACY_TABLES}
    finally:
        tx.rollback()


def inspect_shape(conn: Connection) -> DatabaseShape:
    tables = [t for t in public_tables(conn) if t not in BOOKKEEPING]
    revision = current_revision(conn)
    if revision is not None:
        return DatabaseShape("versioned", revision=revision, tables=tables)
    if not tables:
        return DatabaseShape("empty", tables=tables)
    expected = expected_legacy_columns(conn)
    differences: list[str] = []
    notes: list[str] = []
    for table in LEGACY_TABLES:
        if table not in tables:
            if table in CORE_TABLES:
                differences.append(f"table {table} is missing")
            else:
                notes.append(f"optional table {table} is absent (it will be skipped)")
            continue
        actual = columns_of(conn, "public", table)
        target = differences if table in CORE_TABLES else notes
        missing = [c for c in expected[table] if c not in actual]
        if len(missing) > 5:
            target.append(
                f"{table} lacks {len(missing)} of the original's {len(expected[table])} columns "
                f"({', '.join(missing[:5])}, …)"
            )
        else:
            target.extend(f"{table}.{column} is missing" for column in missing)
        target.extend(
            f"{table}.{column} is {actual[column]}, expected {typ}"
            for column, typ in expected[table].items()
            if column in actual and actual[column] != typ
        )
        extra = sorted(set(actual) - set(expected[table]))
        if "tenant_id" in extra and table in CORE_TABLES:
            differences.append(
                f"{table} already has a tenant_id column (a multi-tenant migration not made by MCB was applied)"
            )
        elif extra:
            notes.append(f"{table} has extra column(s) {', '.join(extra)} (kept as they are)")
    others = sorted(set(tables) - set(LEGACY_TABLES))
    if others:
        notes.append(f"other tables present and left alone: {', '.join(others)}")
    kind: Kind = "unknown" if differences else "legacy"
    return DatabaseShape(kind, differences=differences, notes=notes, tables=tables)


def holds_rows(conn: Connection) -> bool:
    """Whether any table in public (bookkeeping aside) holds at least one row."""
    for table in public_tables(conn):
        if table in BOOKKEEPING:
            continue
        if conn.exec_driver_sql(f'SELECT EXISTS (SELECT 1 FROM public."{table}")').scalar():
            return True
    return False
