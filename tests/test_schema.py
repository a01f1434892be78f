"""The metadata is the head revision: both ways to reach head (fresh install, adoption of the original's
database) build exactly what ``mcb.schema`` states, and ``schema_drift`` notices when they stop agreeing."""

from __future__ import annotations

import re

import psycopg
import pytest
from sqlalchemy import Index, PrimaryKeyConstraint, UniqueConstraint

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.migrate import runner
from mcb.migrate.drift import schema_drift
from mcb.migrate.legacy import LEGACY_TABLES
from mcb.schema import TENANT_OWNED, TENANT_TABLES, metadata
from tests.legacy_data import fill_legacy

CENTNER = "4b8c38aa-969f-4fb6-846e-f59436bda9d4"


def _upgrade(url: str, settings: Settings) -> None:
    engine = make_engine(url)
    try:
        result = runner.upgrade(engine, url, make_backup=False, settings=settings)
    finally:
        engine.dispose()
    assert result.verification is not None and result.verification.passed, result.verification.checks


def _drift(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return schema_drift(conn)
    finally:
        engine.dispose()


def _named(line: str) -> str:
    """The ``table.object`` a drift line is about (the first dotted name in it)."""
    found = re.search(r"\w+\.\w+", line)
    assert found, line
    return found.group(0)


def _run(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


# --------------------------------------------------------------------------------------------- head = metadata


def test_fresh_install_matches_the_metadata(empty_url: str, settings: Settings) -> None:
    _upgrade(empty_url, settings)
    assert _drift(empty_url) == []


def test_adopted_legacy_database_matches_the_metadata(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url)
    _upgrade(legacy_url, settings)
    assert _drift(legacy_url) == []


def test_drift_check_changes_nothing(head_url: str) -> None:
    engine = make_engine(head_url)
    try:
        with engine.connect() as conn:
            assert schema_drift(conn) == []
            # The probe's temporary tables are gone and the session is usable.
            assert conn.exec_driver_sql("SELECT to_regclass('pg_temp.contacts')").scalar() is None
            assert conn.exec_driver_sql("SELECT count(*) FROM contacts").scalar() == 0
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------- drift is detected


def test_extra_column_and_missing_index_are_named(head_url: str) -> None:
    _run(head_url, "ALTER TABLE contacts ADD COLUMN surprise text", "DROP INDEX idx_contacts_phone")
    drift = _drift(head_url)
    assert "unexpected column: contacts.surprise" in drift
    assert "missing index: contacts.idx_contacts_phone" in drift
    assert len(drift) == 2, drift


def test_what_autogenerate_does_not_compare_is_still_detected(head_url: str) -> None:
    _run(
        head_url,
        # Same columns, another predicate: autogenerate compares index columns only.
        "DROP INDEX idx_payments_orphans",
        "CREATE INDEX idx_payments_orphans ON payments (customer_email) WHERE contact_id IS NOT NULL",
        # Same name, without INCLUDE.
        "DROP INDEX idx_funnel_events_tenant_time",
        "CREATE INDEX idx_funnel_events_tenant_time ON funnel_events (tenant_id, event_timestamp)",
        # Autogenerate ignores CHECK constraints altogether.
        "ALTER TABLE ab_tests DROP CONSTRAINT ab_tests_winner_check",
        "ALTER TABLE payments DROP CONSTRAINT payments_payment_source_check, ADD CONSTRAINT "
        "payments_payment_source_check CHECK (payment_source IN ('stripe', 'denefits', 'paypal'))",
        # A foreign key left NOT VALID by an interrupted migration.
        "ALTER TABLE funnel_events DROP CONSTRAINT funnel_events_tenant_id_fkey, ADD CONSTRAINT "
        "funnel_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) NOT VALID",
    )
    drift = _drift(head_url)
    named = {_named(line) for line in drift}
    assert named == {
        "payments.idx_payments_orphans",
        "funnel_events.idx_funnel_events_tenant_time",
        "ab_tests.ab_tests_winner_check",
        "payments.payments_payment_source_check",
        "funnel_events.funnel_events_tenant_id_fkey",
    }, drift
    assert any(line.startswith("missing check constraint: ab_tests.ab_tests_winner_check") for line in drift)
    assert any("NOT VALID" in line for line in drift)


def test_type_nullability_and_defaults_are_compared(head_url: str) -> None:
    _run(
        head_url,
        "ALTER TABLE meta_capi_events ALTER COLUMN event_value TYPE numeric(10,2)",
        "ALTER TABLE webhook_logs ALTER COLUMN status SET NOT NULL",
        "ALTER TABLE payments ALTER COLUMN currency SET DEFAULT 'eur'",
        # The legacy tables' tenant_id must default to the database's default tenant.
        f"ALTER TABLE contacts ALTER COLUMN tenant_id SET DEFAULT '{CENTNER}'",
    )
    drift = _drift(head_url)
    assert sorted(_named(line) for line in drift) == [
        "contacts.tenant_id",
        "meta_capi_events.event_value",
        "payments.currency",
        "webhook_logs.status",
    ], drift


# --------------------------------------------------------------------------------------------- tenancy rules


def test_tenant_tables_are_the_tables_with_tenant_id() -> None:
    with_tenant_id = {t.name for t in metadata.tables.values() if "tenant_id" in t.c}
    # The one exception is declared on the table: an api token's tenant_id is its scope (NULL = admin).
    assert with_tenant_id - set(TENANT_TABLES) == {"api_tokens"}
    assert metadata.tables["api_tokens"].info[TENANT_OWNED] is False
    assert not {"tenants", "mcb_migration_log", "mcb_backfill_state"} & with_tenant_id
    # Today these are the original's fifteen tables and MCB's nine; a new table joins by having tenant_id.
    assert set(TENANT_TABLES) == {*LEGACY_TABLES, "tenant_integrations", "funnel_events", "chatbot_configs",
                                  "conversation_threads", "meta_capi_events", "webhook_rejections",
                                  "sync_runs", "contact_leads",
                                  "contact_emails", "funnel_event_repeats",
                                  "shared_emails", "event_counts", "event_count_deltas"}


@pytest.mark.parametrize("name", TENANT_TABLES)
def test_every_key_of_a_tenant_table_includes_tenant_id(name: str) -> None:
    table = metadata.tables[name]
    assert not table.c.tenant_id.nullable
    keys: list[tuple[str | None, list[str]]] = []
    for constraint in table.constraints:
        if isinstance(constraint, (PrimaryKeyConstraint, UniqueConstraint)):
            keys.append((str(constraint.name), [c.name for c in constraint.columns]))
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            keys.append((str(index.name), [c.name for c in index.columns]))
    assert keys, f"{name} has no key"
    for key_name, columns in keys:
        if columns == ["id"] and key_name == f"{name}_pkey":
            continue  # a surrogate primary key is unique on its own
        assert "tenant_id" in columns, f"{key_name} on {name} ({', '.join(columns)}) is not tenant-scoped"


@pytest.mark.parametrize("name", TENANT_TABLES)
def test_references_between_tenant_tables_include_tenant_id(name: str) -> None:
    for fk in metadata.tables[name].foreign_key_constraints:
        if fk.referred_table.name in TENANT_TABLES:
            pairs = {(c.name, e.column.name) for c, e in zip(fk.columns, fk.elements, strict=True)}
            assert ("tenant_id", "tenant_id") in pairs, f"{fk.name} can reach another tenant's row"
