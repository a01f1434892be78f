"""contact_emails (revision 0014): contact matching by e-mail can use an index under Row Level Security,
and the table stays an exact copy of the contacts' addresses whoever writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import text

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import tenant_session
from mcb.funnel.apply import apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized
from mcb.migrate import runner
from tests.legacy_data import fill_legacy

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")


def stored(url: str) -> set[tuple[str, str, str]]:
    """(tenant slug, contact key, e-mail) for every contact_emails row, read as the owner."""
    with psycopg.connect(url) as conn:
        conn.execute("SET mcb.admin = on")
        rows = conn.execute(
            "SELECT t.slug, coalesce(c.mc_id, c.ghl_id, c.id::text), e.email FROM contact_emails e "
            "JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = e.contact_id JOIN tenants t ON t.id = e.tenant_id"
        ).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def test_the_original_applications_writes_keep_it_exact(head_url: str) -> None:
    # The original application writes as the owner, without a tenant session and without mcb.admin.
    with psycopg.connect(head_url, autocommit=True) as legacy:
        legacy.execute("INSERT INTO contacts (mc_id, email_primary, email_booking) "
                       "VALUES ('mc1', 'Ann.Lee@Example.COM', 'ann.lee@example.com')")
        legacy.execute("INSERT INTO contacts (mc_id, email_primary, email_payment) "
                       "VALUES ('mc2', 'bo@example.com', 'Bo.Pay@Example.com')")
        legacy.execute("INSERT INTO contacts (mc_id) VALUES ('mc3')")
    assert stored(head_url) == {("ppcu", "mc1", "ann.lee@example.com"), ("ppcu", "mc2", "bo@example.com"),
                                ("ppcu", "mc2", "bo.pay@example.com")}

    with psycopg.connect(head_url, autocommit=True) as legacy:
        legacy.execute("UPDATE contacts SET email_booking = 'Ann.Work@Example.com' WHERE mc_id = 'mc1'")
        legacy.execute("UPDATE contacts SET email_payment = NULL WHERE mc_id = 'mc2'")
        legacy.execute("UPDATE contacts SET email_primary = 'Cy@Example.com' WHERE mc_id = 'mc3'")
        legacy.execute("UPDATE contacts SET first_name = 'Bo' WHERE mc_id = 'mc2'")  # no e-mail change
    assert stored(head_url) == {("ppcu", "mc1", "ann.lee@example.com"), ("ppcu", "mc1", "ann.work@example.com"),
                                ("ppcu", "mc2", "bo@example.com"), ("ppcu", "mc3", "cy@example.com")}

    with psycopg.connect(head_url, autocommit=True) as legacy:
        legacy.execute("DELETE FROM contacts WHERE mc_id = 'mc1'")
    assert stored(head_url) == {("ppcu", "mc2", "bo@example.com"), ("ppcu", "mc3", "cy@example.com")}


def test_matching_by_email_finds_the_contact_in_its_tenant_only(head_url: str) -> None:
    engine = make_engine(head_url)
    try:
        for tenant, mc_id in ((PPCU, "p1"), (CENTNER, "c1")):
            with tenant_session(engine, tenant) as conn:
                n = Normalized(source="manychat", event_type="test",
                               contact=ContactFacts(mc_id=mc_id, email_primary="Same.Person@Example.com"),
                               events=(FunnelEvent("contact_subscribed", f"mc_{mc_id}_sub",
                                                   datetime(2025, 11, 1, tzinfo=UTC)),))
                apply_event(conn, tenant, n, received_at=datetime(2025, 11, 1, tzinfo=UTC))
        # A Stripe payment e-mail in another case matches each tenant's own contact, never the other's.
        for tenant, mc_id in ((PPCU, "p1"), (CENTNER, "c1")):
            with tenant_session(engine, tenant) as conn:
                n = Normalized(source="stripe", event_type="test",
                               contact=ContactFacts(email_payment="same.person@EXAMPLE.com"),
                               may_create_contact=False, match_by=("email",))
                result = apply_event(conn, tenant, n, received_at=datetime(2025, 11, 2, tzinfo=UTC))
                found = conn.execute(text("SELECT mc_id FROM contacts WHERE id = :i"), {"i": result.contact_id})
                assert found.scalar_one() == mc_id
        assert stored(head_url) == {("ppcu", "p1", "same.person@example.com"),
                                    ("centner", "c1", "same.person@example.com")}
    finally:
        engine.dispose()


def plan(url: str, sql: str, params: dict[str, Any]) -> str:
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE mcb_app")
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(PPCU),))
        conn.execute("SET enable_seqscan = off")  # so that the plan shows what the indexes can do
        rows = conn.execute("EXPLAIN (COSTS OFF) " + sql, params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_under_row_level_security_the_email_is_an_index_condition(head_url: str) -> None:
    params = {"t": PPCU, "v": ["ann@example.com"]}
    ours = plan(head_url, "SELECT contact_id FROM contact_emails WHERE tenant_id = %(t)s AND email = ANY(%(v)s)",
                params)
    assert "Index Cond: ((tenant_id = " in ours and "AND (email = ANY (" in ours, ours
    # What 0014 replaces: the expression index exists, but lower() is not leakproof, so under the policy
    # the e-mail can only be a filter over every row of the tenant.
    before = plan(head_url, "SELECT id FROM contacts WHERE tenant_id = %(t)s AND lower(email_primary) = ANY(%(v)s)",
                  params)
    assert "lower(email_primary) = ANY" not in "".join(ln for ln in before.splitlines() if "Index Cond" in ln), before


def test_the_upgrade_copies_the_legacy_contacts_addresses(legacy_url: str) -> None:
    fill_legacy(legacy_url, contacts=300)
    with psycopg.connect(legacy_url) as conn:
        expected = {("ppcu", str(r[0]), r[1].lower()) for r in conn.execute(
            "SELECT id, e FROM contacts, unnest(ARRAY[email_primary, email_booking, email_payment]) e "
            "WHERE e IS NOT NULL").fetchall()}
    assert len(expected) > 300  # mixed-case and duplicate addresses among them
    engine = make_engine(legacy_url)
    try:
        result = runner.upgrade(engine, legacy_url, make_backup=False, settings=Settings())
        assert result.verification is not None and result.verification.passed
    finally:
        engine.dispose()
    with psycopg.connect(legacy_url) as conn:
        conn.execute("SET mcb.admin = on")
        copied = {("ppcu", str(r[0]), r[1]) for r in conn.execute(
            "SELECT contact_id, email FROM contact_emails").fetchall()}
    assert copied == expected
