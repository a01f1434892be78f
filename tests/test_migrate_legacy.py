"""Adopting and migrating the original single-tenant database: values kept, backfills right, reversible."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.errors import DowngradeRefused, UnknownSchema
from mcb.migrate import runner
from mcb.migrate.adopt import inspect_shape
from mcb.migrate.drift import schema_drift
from tests.legacy_data import (
    BARE_CONTACT,
    KNOWN_CONTACT,
    SWAPPED_CONTACT,
    fill_legacy,
    fingerprint,
    legacy_columns,
)
from tests.revisions import FORWARD, HEAD, upgrade_to

PPCU = "2cb58664-a84a-4d74-844a-4ccd49fcef5a"
CENTNER = "4b8c38aa-969f-4fb6-846e-f59436bda9d4"


def _upgrade(url: str, settings: Settings, **kwargs: object) -> runner.UpgradeResult:
    engine = make_engine(url)
    try:
        return runner.upgrade(engine, url, settings=settings, **kwargs)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def _fetch(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_upgrade_keeps_every_legacy_value_and_downgrade_restores_them(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url)
    columns = legacy_columns(legacy_url)
    before = fingerprint(legacy_url, columns)
    assert before["contacts"][0] == 203 and before["payments"][0] == 86

    result = _upgrade(legacy_url, settings)

    assert result.adopted
    assert [p.revision for p in result.plan] == FORWARD
    assert result.applied == [p.revision for p in result.plan]
    assert result.backup_path is not None and result.backup_path.stat().st_size > 0
    assert result.verification is not None and result.verification.passed, result.verification.checks
    assert fingerprint(legacy_url, columns) == before
    # Every legacy row now belongs to the default tenant, and no tenant_id is NULL anywhere.
    assert _fetch(legacy_url, "SELECT DISTINCT tenant_id::text FROM contacts") == [(PPCU,)]
    assert _fetch(legacy_url, "SELECT DISTINCT tenant_id::text FROM meta_ad_insights") == [(PPCU,)]

    second = _upgrade(legacy_url, settings)
    assert second.noop and second.applied == [] and second.backup_path is None
    assert fingerprint(legacy_url, columns) == before

    engine = make_engine(legacy_url)
    try:
        down = runner.downgrade_single_tenant(engine, legacy_url, settings=settings)
        assert down.reverted == FORWARD[::-1]
        assert runner.current_revision(engine) == "0001"
        with engine.connect() as conn:
            assert inspect_shape(conn).kind == "versioned"
    finally:
        engine.dispose()
    assert legacy_columns(legacy_url) == columns
    assert fingerprint(legacy_url, columns) == before
    # The original's global keys are back, so the original application works as before.
    keys = {r[0] for r in _fetch(legacy_url, "SELECT conname FROM pg_constraint WHERE contype IN ('u', 'p')")}
    assert {"contacts_mc_id_key", "contacts_ghl_id_key", "payments_payment_event_id_key", "meta_ads_ad_id_key",
            "weekly_snapshots_pkey"} <= keys

    # And up again from there.
    again = _upgrade(legacy_url, settings)
    assert again.applied[-1] == HEAD and again.verification.passed
    assert fingerprint(legacy_url, columns) == before


def test_backfilled_events_use_semantic_names_and_deterministic_keys(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url, contacts=0, payments=0, webhook_logs=0, ads=0, insights_per_ad=0)
    _upgrade(legacy_url, settings)

    events = {
        r[0]: r[1:]
        for r in _fetch(
            legacy_url,
            "SELECT event_type, event_timestamp::text, source, source_event_id, event_data, created_by "
            "FROM funnel_events WHERE contact_id = %s",
            (KNOWN_CONTACT,),
        )
    }
    assert sorted(events) == [
        "appointment_held", "appointment_scheduled", "contact_subscribed", "dm_qualified", "link_sent",
        "purchase_completed",
    ]
    ts, source, key, data, created_by = events["dm_qualified"]
    assert ts == "2025-11-01 10:05:00+00"
    assert (source, key, created_by) == ("system", f"migration_{KNOWN_CONTACT}_dm_qualified", "migration")
    assert data["symptoms"] == "Diastasis and back pain"
    assert data["months_postpartum"] == "3 months"
    assert data["objections"] == "price" and data["lead_summary"] == "Warm lead"
    assert data["legacy_q1_question"] == "Diastasis and back pain"
    assert events["contact_subscribed"][3] == {
        "trigger_word": "HEAL", "chatbot_variant": "A-OCT30", "mc_id": "mc_known", "ghl_id": "ghl_known",
        "source": "instagram",
    }
    # The superseded meeting_held_date still yields the held event.
    assert events["appointment_held"][0] == "2025-11-04 15:00:00+00"
    assert events["purchase_completed"][3] == {"amount": 2997.0, "currency": "usd"}

    swapped = dict(_fetch(
        legacy_url, "SELECT event_type, event_data FROM funnel_events WHERE contact_id = %s", (SWAPPED_CONTACT,)
    ))
    assert swapped["dm_qualified"]["months_postpartum"] == "6 weeks postpartum"
    assert swapped["dm_qualified"]["symptoms"] == "Pelvic floor weakness"
    # Historical contact with no ManyChat date: the lead event is contact_created at created_at.
    assert swapped["contact_created"] == {"source": "instagram_historical", "mc_id": "mc_swapped"}

    bare = _fetch(legacy_url, "SELECT event_type, event_timestamp::text FROM funnel_events WHERE contact_id = %s",
                  (BARE_CONTACT,))
    assert bare == [("contact_created", "2025-09-09 09:09:00+00")]


def test_payment_categories_follow_the_rules(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url, contacts=0, payments=0, webhook_logs=0, ads=0, insights_per_ad=0)
    before = dict(_fetch(legacy_url, "SELECT payment_event_id, updated_at FROM payments"))
    _upgrade(legacy_url, settings)
    rows = dict(_fetch(legacy_url, "SELECT payment_event_id, payment_category FROM payments"))
    assert rows == {
        "evt_known_deposit": "deposit",
        "evt_known_full": "full_purchase",
        "evt_orphan_misc": "miscellaneous",
        "BRKSKNOWN001_plan": "payment_plan",
        "BRKSKNOWN001_downpayment": "downpayment",
        "BRKSKNOWN001_recurring_17": "recurring",
    }
    # Filling the new column did not move updated_at (the legacy values are untouched).
    assert dict(_fetch(legacy_url, "SELECT payment_event_id, updated_at FROM payments")) == before
    # A refund (negative, type refund) is now storable.
    with psycopg.connect(legacy_url) as conn:
        conn.execute(
            "INSERT INTO payments (payment_event_id, payment_source, payment_type, payment_category, amount, status,"
            " payment_date, raw_payload) VALUES ('evt_refund', 'stripe', 'refund', 'refund', -100, 'refunded', now(),"
            " '{}')"
        )
    amount = _fetch(legacy_url, "SELECT amount FROM payments WHERE payment_event_id = 'evt_refund'")[0][0]
    assert amount == Decimal("-100.00")


def test_the_rollups_start_from_the_legacy_contacts(legacy_url: str, settings: Settings) -> None:
    """Revision 0015 finds the primary addresses legacy contacts already share (case aside) and fills each
    lead's identity facts; the triggers are not what put them there."""
    fill_legacy(legacy_url, contacts=0, payments=0, webhook_logs=0, ads=0, insights_per_ad=0)
    with psycopg.connect(legacy_url) as conn:
        conn.execute(
            "INSERT INTO contacts (id, mc_id, email_primary, ad_id, created_at) VALUES "
            "(md5('s1')::uuid, 'mc_s1', 'Same@Example.com', 'ad_9', '2025-11-01 10:00+00'), "
            "(md5('s2')::uuid, 'mc_s2', 'same@example.COM', NULL, '2025-11-02 10:00+00'), "
            "(md5('s3')::uuid, 'mc_s3', 'other@example.com', NULL, '2025-11-03 10:00+00')")
    _upgrade(legacy_url, settings)
    assert _fetch(legacy_url, "SELECT email FROM shared_emails") == [("same@example.com",)]
    assert _fetch(legacy_url, "SELECT c.mc_id, l.has_ad_id, l.has_mc_id, l.has_email, l.primary_email "
                              "FROM contact_leads l JOIN contacts c ON c.id = l.contact_id "
                              "WHERE c.mc_id LIKE 'mc_s_' ORDER BY 1") == [
        ("mc_s1", True, True, True, "same@example.com"), ("mc_s2", False, True, True, "same@example.com"),
        ("mc_s3", False, True, True, "other@example.com")]


def test_downgrade_refuses_when_another_tenant_owns_rows(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url, contacts=20, payments=5, webhook_logs=5, ads=2, insights_per_ad=2)
    _upgrade(legacy_url, settings)
    with psycopg.connect(legacy_url) as conn:
        conn.execute("INSERT INTO contacts (tenant_id, mc_id) VALUES (%s, 'mc_known')", (CENTNER,))
    columns = legacy_columns(legacy_url)
    before = fingerprint(legacy_url, columns)
    engine = make_engine(legacy_url)
    try:
        with pytest.raises(DowngradeRefused) as refused:
            runner.downgrade_single_tenant(engine, legacy_url, settings=settings)
        assert "contacts holds 1 row(s) of tenant centner" in str(refused.value)
        assert "contacts.(mc_id)" in str(refused.value)  # the same mc_id twice would collide
        assert runner.current_revision(engine) == HEAD
    finally:
        engine.dispose()
    assert fingerprint(legacy_url, columns) == before
    assert _fetch(legacy_url, "SELECT status FROM mcb_migration_log WHERE action = 'downgrade'") == [("refused",)]


def test_unknown_shape_is_refused_with_its_differences(empty_url: str, settings: Settings) -> None:
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (id uuid PRIMARY KEY, email text)")
        conn.execute("CREATE TABLE orders (id int)")
    with pytest.raises(UnknownSchema) as refused:
        _upgrade(empty_url, settings)
    message = str(refused.value)
    assert "table payments is missing" in message
    assert "contacts lacks 44 of the original's 45 columns (mc_id, ghl_id, ad_id, stripe_customer_id, ig_id, …)" in message
    tables = {r[0] for r in _fetch(empty_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"contacts", "orders"}


def test_hand_built_database_with_other_names_is_adopted(empty_url: str, settings: Settings, tmp_path: Path) -> None:
    """The live database was built by hand: other constraint names, unique indexes instead of constraints,
    an extra column, missing optional tables. It is recognised by structure and migrated all the same."""
    from mcb.migrate.online import read_sql

    sql = read_sql("0001_tables.sql")
    sql = sql.replace("mc_id TEXT UNIQUE,", "mc_id TEXT,").replace("ghl_id TEXT UNIQUE,", "ghl_id TEXT,")
    sql = sql.replace("CONSTRAINT fk_contact FOREIGN KEY", "CONSTRAINT webhook_logs_contact_fk FOREIGN KEY")
    for table in ("hist_timeline", "hist_import_logs", "reports_sent"):
        start = sql.index(f"CREATE TABLE {table}")
        sql = sql[:start] + sql[sql.index(");", start) + 2:]
    sql = sql.replace("CREATE INDEX idx_hist_timeline_email ON hist_timeline (email);", "")
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(sql.encode())
        conn.execute("CREATE UNIQUE INDEX contacts_mc_unique_idx ON contacts (mc_id)")
        conn.execute("ALTER TABLE contacts ADD CONSTRAINT ghl_unique UNIQUE (ghl_id)")
        conn.execute("ALTER TABLE contacts ADD COLUMN legacy_notes text")
        conn.execute("INSERT INTO contacts (mc_id, ghl_id, legacy_notes) VALUES ('m1', 'g1', 'kept')")
    result = _upgrade(empty_url, settings)
    assert result.adopted
    assert any("legacy_notes" in n for n in result.shape.notes)
    assert any("hist_timeline" in n for n in result.shape.notes)
    assert result.verification.passed, result.verification.checks
    # The hand-made global keys are gone whatever they were called; the tenant keys replace them.
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("INSERT INTO contacts (tenant_id, mc_id, ghl_id) VALUES (%s, 'm1', 'g1')", (CENTNER,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO contacts (mc_id) VALUES ('m1')")
    assert _fetch(empty_url, "SELECT legacy_notes FROM contacts WHERE mc_id = 'm1' AND tenant_id = %s",
                  (PPCU,)) == [("kept",)]
    # The optional tables it lacked were created, so it has the shape of every database at head; the
    # only difference left is the operator's own extra column.
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            assert schema_drift(conn) == ["unexpected column: contacts.legacy_notes"]
    finally:
        engine.dispose()


def test_dry_run_changes_nothing(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url, contacts=10, payments=3, webhook_logs=3, ads=2, insights_per_ad=1)
    columns = legacy_columns(legacy_url)
    before = fingerprint(legacy_url, columns)
    result = _upgrade(legacy_url, settings, dry_run=True)
    assert result.plan[0].revision == "0002"
    assert result.sql is not None
    assert "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contacts_tenant_id_mc_id_key" in result.sql
    assert "ADD COLUMN IF NOT EXISTS tenant_id UUID NOT NULL DEFAULT" in result.sql
    assert fingerprint(legacy_url, columns) == before
    tables = {r[0] for r in _fetch(legacy_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "tenants" not in tables and "alembic_version" not in tables and "mcb_migration_log" not in tables


def test_migration_log_records_each_step(legacy_url: str, settings: Settings) -> None:
    fill_legacy(legacy_url, contacts=5, payments=2, webhook_logs=2, ads=1, insights_per_ad=1)
    _upgrade(legacy_url, settings)
    log = _fetch(legacy_url, "SELECT action, revision, status FROM mcb_migration_log ORDER BY id")
    assert log[0] == ("backup", "0001", "done")
    assert log[1] == ("adopt", "0001", "done")
    assert [r[1] for r in log if r[0] == "upgrade"] == FORWARD
    assert log[-2] == ("analyze", None, "done")
    assert log[-1] == ("verify", HEAD, "passed")
    steps = _fetch(legacy_url, "SELECT detail->'steps' FROM mcb_migration_log WHERE revision = '0004' "
                               "AND action = 'upgrade'")[0][0]
    assert "contacts: build index contacts_tenant_id_mc_id_key" in steps


def test_the_upgrade_leaves_statistics_on_the_tables_it_filled_or_rewrote(legacy_url: str, settings: Settings) -> None:
    """funnel_events (filled by 0005) and payments (every row rewritten by 0006) are analyzed before verify,
    not a minute later by autovacuum; a table the upgrade left alone is not."""
    fill_legacy(legacy_url, contacts=400, payments=300, webhook_logs=20, ads=2, insights_per_ad=2)
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute("ANALYZE")  # as a live database would be: every table analyzed before the upgrade
        conn.execute("SELECT pg_sleep(0.01)")
        before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    _upgrade(legacy_url, settings)
    analyzed = {r[0] for r in _fetch(legacy_url, "SELECT relname FROM pg_stat_user_tables WHERE last_analyze > %s",
                                     (before,))}
    assert {"funnel_events", "payments", "contact_leads"} <= analyzed
    assert "meta_ads" not in analyzed and "tenants" not in analyzed
    stats = {r[0] for r in _fetch(legacy_url, "SELECT attname FROM pg_stats WHERE tablename = 'funnel_events'")}
    assert {"event_type", "contact_id", "event_timestamp"} <= stats
    log = _fetch(legacy_url, "SELECT action, detail->'tables' FROM mcb_migration_log ORDER BY id")
    assert [a for a, _ in log[-2:]] == ["analyze", "verify"]
    assert "funnel_events" in log[-2][1]


def test_an_event_backfill_an_earlier_version_began_by_key_is_finished_by_key(
    legacy_url: str, settings: Settings
) -> None:
    """0005 once walked the contacts in key order. A pass such a version left half done resumes from its
    saved key: the contacts before it keep their events, the others get theirs, none twice (a contact's
    events written twice would also fail the unique key 0005 builds at the end)."""
    import importlib.util

    fill_legacy(legacy_url, contacts=300, payments=0, webhook_logs=0, ads=0, insights_per_ad=0)
    upgrade_to(legacy_url, "0004")
    path = Path(runner.__file__).parent.parent / "migrations" / "versions" / "0005_funnel_events.py"
    spec = importlib.util.spec_from_file_location("revision_0005", path)
    assert spec is not None and spec.loader is not None
    r0005 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(r0005)
    with psycopg.connect(legacy_url, autocommit=True) as conn:
        cursor = conn.execute("SELECT id::text FROM contacts ORDER BY id OFFSET 150 LIMIT 1").fetchone()[0]  # type: ignore[index]
        conn.execute(r0005.CREATE_TABLE.encode())
        written = conn.execute(r0005.BY_KEY, {"lo": None, "hi": cursor}).rowcount
        conn.execute("INSERT INTO mcb_backfill_state (name, cursor, rows_done) VALUES (%s, %s, %s)",
                     (r0005.NAME, cursor, written))
        before = conn.execute("SELECT id, source_event_id, created_at FROM funnel_events ORDER BY id").fetchall()
    assert written > 150

    result = _upgrade(legacy_url, settings, make_backup=False)
    assert result.verification.passed
    with psycopg.connect(legacy_url) as conn:
        leads = conn.execute(
            "SELECT count(*), count(DISTINCT contact_id), (SELECT count(*) FROM contacts) FROM funnel_events "
            "WHERE event_type IN ('contact_subscribed', 'contact_created')"
        ).fetchone()
        kept = conn.execute("SELECT id, source_event_id, created_at FROM funnel_events WHERE id = ANY(%s) ORDER BY id",
                            ([r[0] for r in before],)).fetchall()
        state = conn.execute("SELECT cursor IS NULL OR cursor LIKE '%%-%%', finished_at IS NOT NULL "
                             "FROM mcb_backfill_state WHERE name = %s", (r0005.NAME,)).fetchone()
    assert leads is not None and leads[0] == leads[1] == leads[2] > 300
    assert kept == before
    assert state == (True, True)
