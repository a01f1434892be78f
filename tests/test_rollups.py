"""contact_leads (revision 0013) stays exact: each contact's earliest lead event, whatever the order in
which deliveries arrive, and a rebuild from the events changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from mcb.analytics.rollups import rebuild_contact_leads
from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.funnel.apply import apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized
from tests.analytics_data import CENTNER, PPCU, ghl_contact, subscriber, utc


@pytest.fixture
def engine(pg: Any, head_template: str) -> Iterator[Engine]:
    with pg.database(template=head_template) as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


def leads(engine: Engine, tenant: Any) -> dict[str, str]:
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text("SELECT coalesce(c.mc_id, c.ghl_id), l.lead_at FROM contact_leads l "
                                 "JOIN contacts c ON c.tenant_id = l.tenant_id AND c.id = l.contact_id")).all()
    return {r[0]: r[1].isoformat() for r in rows}


def test_the_earliest_lead_event_wins_in_any_order(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 11, 5, 12), ghl_id="ghl_late")
        subscriber(conn, PPCU, "mc_one", utc(2025, 11, 1, 9))
    assert leads(engine, PPCU) == {"mc_late": "2025-11-05T12:00:00+00:00", "mc_one": "2025-11-01T09:00:00+00:00"}
    # GHL reports the same person, created earlier (its own lead event, contact_created, Oct 30).
    with tenant_session(engine, PPCU) as conn:
        n = Normalized(source="ghl", event_type="test", contact=ContactFacts(ghl_id="ghl_late"),
                       events=(FunnelEvent("contact_created", "ghl_ghl_late_contact_created", utc(2025, 10, 30, 8)),))
        apply_event(conn, PPCU, n, received_at=utc(2025, 11, 6))
    assert leads(engine, PPCU)["mc_late"] == "2025-10-30T08:00:00+00:00"
    # A redelivery of the ManyChat subscription with an even earlier time moves the event's time back.
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 10, 29, 7))
    assert leads(engine, PPCU)["mc_late"] == "2025-10-29T07:00:00+00:00"
    # A later duplicate changes nothing.
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 12, 1, 7))
        ghl_contact(conn, PPCU, "ghl_new", utc(2025, 11, 2, 10))
    assert leads(engine, PPCU) == {"mc_late": "2025-10-29T07:00:00+00:00", "mc_one": "2025-11-01T09:00:00+00:00",
                                   "ghl_new": "2025-11-02T10:00:00+00:00"}
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 0
    # The rollup is tenant-scoped like everything else: centner sees none of it.
    assert leads(engine, CENTNER) == {}


def test_rebuild_restores_a_damaged_rollup(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_a", utc(2025, 11, 1, 9))
        subscriber(conn, PPCU, "mc_b", utc(2025, 11, 2, 9))
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE contact_leads SET lead_at = lead_at + interval '1 day' WHERE tenant_id = :t"),
                     {"t": PPCU})
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 2
    assert leads(engine, PPCU) == {"mc_a": "2025-11-01T09:00:00+00:00", "mc_b": "2025-11-02T09:00:00+00:00"}
    with admin_session(engine) as conn:  # deleting a contact deletes its row
        conn.execute(text("DELETE FROM contacts WHERE mc_id = 'mc_a'"))
    assert leads(engine, PPCU) == {"mc_b": "2025-11-02T09:00:00+00:00"}
