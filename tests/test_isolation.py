"""Database-enforced tenant isolation, over every tenant table found by introspection.

Two tenants hold overlapping data (the same natural keys, the same values) in every table that has a
NOT NULL tenant_id. Through ``tenant_session(A)``, queries without any WHERE see only A's rows, writes
for B fail, updates and deletes of B's rows touch nothing, and a session with no tenant sees nothing.
A table added later is covered without being named here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from mcb.db.engine import make_engine
from mcb.db.session import admin_session, app_session, tenant_session
from mcb.migrate.verify import run_checks

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")


def tenant_tables(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute(text(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'tenant_id' AND is_nullable = 'NO' ORDER BY table_name"
    ))]


def _columns(conn: Connection, table: str) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "(a.atthasdef OR a.attidentity <> '') AS has_default "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    ), {"t": f"public.{table}"})
    return [dict(name=r[0], type=r[1], not_null=r[2], has_default=r[3]) for r in rows]


def _foreign_keys(conn: Connection, table: str) -> list[tuple[list[str], str, list[str]]]:
    rows = conn.execute(text(
        """
        SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)::text[],
               c.confrelid::regclass::text,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)::text[]
        FROM pg_constraint c WHERE c.conrelid = to_regclass(:t) AND c.contype = 'f'
        """
    ), {"t": f"public.{table}"})
    return [(list(r[0]), r[1], list(r[2])) for r in rows]


def _check_choices(conn: Connection, table: str) -> dict[str, str]:
    """For CHECK (col IN ('a', ...)) constraints, one allowed value per column."""
    choices: dict[str, str] = {}
    for (definition,) in conn.execute(text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'c'"
    ), {"t": f"public.{table}"}):
        match = re.search(r"\(+(\w+)\s*=\s*ANY\s*\(+ARRAY\['([^']*)'", definition)
        if match:
            choices.setdefault(match.group(1), match.group(2))
    return choices


def _value(column: dict[str, Any], choices: dict[str, str]) -> Any:
    name, kind = column["name"], column["type"]
    if name in choices:
        return choices[name]
    if kind.endswith("[]"):
        return []
    if kind == "uuid":
        return uuid4()
    if kind in ("text",) or kind.startswith("character"):
        return f"same-{name}"  # the same value in both tenants: overlapping natural keys
    if kind in ("integer", "bigint", "smallint"):
        return 1
    if kind.startswith("numeric"):
        return Decimal("1.00")
    if kind == "boolean":
        return False
    if kind == "date":
        return date(2025, 11, 3)
    if kind.startswith("timestamp"):
        return datetime(2025, 11, 3, 12, tzinfo=UTC)
    if kind in ("jsonb", "json"):
        return "{}"
    raise AssertionError(f"no sample value for {name} {kind}")


def _ordered(conn: Connection, tables: list[str]) -> list[str]:
    deps = {t: {ref for _, ref, _ in _foreign_keys(conn, t) if ref in tables and ref != t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and deps[t] <= set(ordered)]
        assert ready, f"circular foreign keys among {set(tables) - set(ordered)}"
        ordered += sorted(ready)
    return ordered


def fill_every_tenant_table(engine: Engine) -> dict[str, dict[UUID, dict[str, Any]]]:
    """One row per tenant in every tenant table, parents first; returns the rows as inserted."""
    inserted: dict[str, dict[UUID, dict[str, Any]]] = {}
    with admin_session(engine) as conn:
        tables = _ordered(conn, tenant_tables(conn))
        for table in tables:
            columns = _columns(conn, table)
            fks = _foreign_keys(conn, table)
            choices = _check_choices(conn, table)
            for tenant in (PPCU, CENTNER):
                values: dict[str, Any] = {"tenant_id": tenant}
                for cols, ref, ref_cols in fks:
                    if ref in inserted and "tenant_id" in cols:
                        parent = inserted[ref][tenant]
                        for col, ref_col in zip(cols, ref_cols, strict=True):
                            values[col] = parent[ref_col]
                for column in columns:
                    if column["name"] in values or not column["not_null"] or column["has_default"]:
                        continue
                    values[column["name"]] = _value(column, choices)
                names = ", ".join(values)
                params = ", ".join(f":{k}" for k in values)
                row = conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({params}) RETURNING *"), values)
                inserted.setdefault(table, {})[tenant] = dict(row.mappings().one())
    return inserted


@pytest.fixture
def engine(head_url: str) -> Iterator[Engine]:
    eng = make_engine(head_url)
    yield eng
    eng.dispose()


def test_every_tenant_table_is_isolated(engine: Engine) -> None:
    rows = fill_every_tenant_table(engine)
    tables = sorted(rows)
    with admin_session(engine) as conn:  # B's rows (triggers may have written more than the one inserted)
        theirs = {table: conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :b"),
                                      {"b": CENTNER}).scalar() for table in tables}
    # The introspection really found the tables (and would find a new one).
    assert {"contacts", "payments", "webhook_logs", "funnel_events", "meta_ads", "meta_ad_insights",
            "tenant_integrations", "weekly_snapshots", "meta_capi_events"} <= set(tables)
    assert len(tables) >= 20

    for table in tables:
        with admin_session(engine) as conn:
            # Append-only tables (webhook_rejections) grant the runtime role no UPDATE/DELETE at all.
            mutable = conn.execute(text("SELECT has_table_privilege('mcb_app', :t, 'UPDATE')"),
                                   {"t": f"public.{table}"}).scalar()
        with tenant_session(engine, PPCU) as conn:
            # (a table that triggers also write, such as event_count_deltas, may hold more than the one row)
            seen = conn.execute(text(f"SELECT tenant_id FROM {table}")).scalars().all()
            assert seen and set(seen) == {PPCU}, table
            if mutable:
                updated = conn.execute(text(f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = :b"),
                                       {"b": CENTNER}).rowcount
                deleted = conn.execute(text(f"DELETE FROM {table} WHERE tenant_id = :b"), {"b": CENTNER}).rowcount
                assert (updated, deleted) == (0, 0), table

        other = {k: v for k, v in rows[table][CENTNER].items() if k != "id"}
        if "id" in rows[table][CENTNER] and isinstance(rows[table][CENTNER]["id"], UUID):
            other["id"] = uuid4()
        for column in ("mc_id", "payment_event_id", "source_event_id", "event_id", "config_name"):
            if column in other and other[column] is not None:
                other[column] = uuid4() if isinstance(other[column], UUID) else f"{other[column]}-2"
        with pytest.raises(DBAPIError) as refused, tenant_session(engine, PPCU) as conn:
            names = ", ".join(k for k in other if k != "id" or isinstance(other[k], UUID))
            conn.execute(
                text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in names.split(', '))})"),
                {k: (Jsonb(v) if isinstance(v, dict) else v) for k, v in other.items()},
            )
        assert refused.value.orig is not None
        assert refused.value.orig.sqlstate == "42501", (table, refused.value.orig)  # RLS WITH CHECK

        with pytest.raises(DBAPIError) as moved, tenant_session(engine, PPCU) as conn:
            conn.execute(text(f"UPDATE {table} SET tenant_id = :b"), {"b": CENTNER})
        assert moved.value.orig is not None and moved.value.orig.sqlstate == "42501", table  # RLS or privilege

        with app_session(engine) as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table

    # Nothing of B's was touched by all of the above.
    with admin_session(engine) as conn:
        for table in tables:
            n = conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id = :b"), {"b": CENTNER}).scalar()
            assert n == theirs[table] >= 1, table


def test_tenant_session_sees_same_natural_keys_separately(engine: Engine) -> None:
    with admin_session(engine) as conn:
        for tenant, name in ((PPCU, "Ann at PPCU"), (CENTNER, "Ann at Centner")):
            conn.execute(text("INSERT INTO contacts (tenant_id, mc_id, email_primary, first_name) "
                              "VALUES (:t, 'mc_shared', 'ann@example.com', :n)"), {"t": tenant, "n": name})
    with tenant_session(engine, CENTNER) as conn:
        names = conn.execute(text("SELECT first_name FROM contacts WHERE mc_id = 'mc_shared'")).scalars().all()
        by_email = conn.execute(text("SELECT first_name FROM contacts WHERE email_primary = 'ann@example.com'"))
        assert names == ["Ann at Centner"]
        assert by_email.scalars().all() == ["Ann at Centner"]


@pytest.fixture
def app_engine(head_url: str) -> Iterator[Engine]:
    """An engine that logs in as mcb_app itself, as production does (MCB_APP_DATABASE_URL)."""
    with psycopg.connect(head_url, autocommit=True) as conn:
        conn.execute("ALTER ROLE mcb_app LOGIN")
    url = re.sub(r"//[^@/]*@", "//mcb_app@", head_url, count=1)
    eng = make_engine(url, admin=False)
    yield eng
    eng.dispose()


def test_runtime_role_cannot_turn_rls_off_or_become_owner(engine: Engine, app_engine: Engine) -> None:
    with pytest.raises(DBAPIError), tenant_session(app_engine, PPCU) as conn:
        conn.execute(text("ALTER TABLE contacts DISABLE ROW LEVEL SECURITY"))
    with pytest.raises(DBAPIError), tenant_session(app_engine, PPCU) as conn:
        conn.execute(text("SET LOCAL ROLE postgres"))
    with pytest.raises(DBAPIError), tenant_session(app_engine, PPCU) as conn:
        conn.execute(text("SELECT count(*) FROM mcb_migration_log"))
    # Claiming admin does not help the runtime role: the owner policy applies to the owner only.
    with admin_session(engine) as conn:
        conn.execute(text("INSERT INTO contacts (tenant_id, mc_id) VALUES (:t, 'mc_x')"), {"t": CENTNER})
    with tenant_session(app_engine, PPCU) as conn:
        conn.execute(text("SELECT set_config('mcb.admin', 'on', true)"))
        assert conn.execute(text("SELECT count(*) FROM contacts WHERE tenant_id = :t"), {"t": CENTNER}).scalar() == 0


def test_verify_flags_a_new_tenant_table_without_rls(engine: Engine, head_url: str) -> None:
    with psycopg.connect(head_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE later_feature (id uuid PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants (id))")
    report = run_checks(engine)
    failing = {c.name: c.detail for c in report.checks if not c.passed}
    assert "row_level_security" in failing
    assert "later_feature: RLS enabled=False forced=False policy=False" in failing["row_level_security"]


def test_hosted_api_roles_cannot_reach_mcb_tables(empty_url: str, settings: object) -> None:
    """On Supabase, anon/authenticated get every new table by default privilege; 0011 takes MCB's back."""
    from mcb.config import Settings
    from mcb.migrate import runner

    with psycopg.connect(empty_url, autocommit=True) as conn:
        for role in ("anon", "authenticated"):
            conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                         f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")
        conn.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated")
    eng = make_engine(empty_url)
    try:
        assert isinstance(settings, Settings)
        assert runner.upgrade(eng, empty_url, make_backup=False, settings=settings).verification.passed
    finally:
        eng.dispose()
    with psycopg.connect(empty_url) as conn:
        for table in ("tenants", "api_tokens", "tenant_integrations", "funnel_events", "mcb_migration_log"):
            for role in ("anon", "authenticated"):
                for privilege in ("SELECT", "INSERT", "UPDATE"):
                    allowed = conn.execute("SELECT has_table_privilege(%s, %s, %s)",
                                           (role, f"public.{table}", privilege)).fetchone()
                    assert allowed == (False,), (role, table, privilege)
        # The default privilege still works for the original's own tables (not MCB's to change).
        assert conn.execute("SELECT has_table_privilege('anon', 'public.contacts', 'SELECT')").fetchone() == (True,)
