"""Hand-built funnel histories for the analytics tests, written through the one write path.

Each helper is one delivery to ``funnel.apply.apply_event``: a ManyChat subscriber (lead event
``contact_subscribed`` at the delivery's earliest time), a GHL contact (``contact_created``), a Stripe or
Denefits payment matched by e-mail. Ad insights are plain rows (the Meta sync writes them directly).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from mcb.funnel.apply import apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, Payment

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
COLUMNLINE = UUID("35e77fae-2a37-5f5e-a6c0-ecc3275f346f")


def new_york_with_historical_filter(conn: Connection) -> None:
    """Every tenant in America/New_York with the historical filter on (an admin session's connection)."""
    conn.execute(text("UPDATE tenants SET config = config || "
                      "'{\"timezone\": \"America/New_York\", \"historical_filter\": true}'::jsonb"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def subscriber(conn: Connection, tenant: UUID, mc_id: str, at: datetime, *events: tuple[str, datetime],
               email: str | None = None, ad_id: str | None = None, source: str = "instagram",
               tags: dict[str, Any] | None = None, ghl_id: str | None = None) -> UUID:
    """A ManyChat subscriber first seen at ``at`` with later events (type, time)."""
    n = Normalized(
        source="manychat", event_type="test",
        contact=ContactFacts(mc_id=mc_id, email_primary=email, ad_id=ad_id, source=source,
                             source_rule="live", tags=tags or {}, ghl_id=ghl_id),
        events=(FunnelEvent("contact_subscribed", f"mc_{mc_id}_contact_subscribed", at, stage="new_lead"),),
        lead_event_type="contact_subscribed",
    )
    result = apply_event(conn, tenant, n, received_at=at)
    assert result.contact_id is not None
    for i, (event_type, when) in enumerate(events):
        event(conn, tenant, mc_id, event_type, when, key=f"{mc_id}_{event_type}_{i}")
    return result.contact_id


def event(conn: Connection, tenant: UUID, mc_id: str, event_type: str, at: datetime, *, key: str) -> None:
    n = Normalized(source="manychat", event_type="test", contact=ContactFacts(mc_id=mc_id),
                   events=(FunnelEvent(event_type, key, at),), may_create_contact=False, match_by=("mc_id",))
    assert apply_event(conn, tenant, n, received_at=at).status == "processed"


def ghl_contact(conn: Connection, tenant: UUID, ghl_id: str, at: datetime, *, email: str | None = None,
                source: str = "website") -> UUID:
    """A contact GoHighLevel created (lead event contact_created)."""
    n = Normalized(source="ghl", event_type="test",
                   contact=ContactFacts(ghl_id=ghl_id, email_booking=email, source=source),
                   events=(FunnelEvent("appointment_scheduled", f"ghl_{ghl_id}_booked", at,
                                       stage="meeting_booked"),),
                   match_by=("ghl_id", "email"))
    result = apply_event(conn, tenant, n, received_at=at)
    assert result.contact_id is not None
    return result.contact_id


def payment(conn: Connection, tenant: UUID, key: str, email: str, category: str, amount: str, at: datetime,
            *, source: str = "stripe", status: str = "paid") -> str:
    """A payment matched to the contact with this e-mail (or an orphan); returns the apply status."""
    kind = {"refund": "refund", "payment_plan": "buy_now_pay_later", "downpayment": "buy_now_pay_later",
            "recurring": "buy_now_pay_later"}.get(category, "buy_in_full")
    p = Payment(payment_event_id=key, payment_source=source,  # type: ignore[arg-type]
                payment_type=kind, payment_category=category,  # type: ignore[arg-type]
                amount=Decimal(amount), status=status, payment_date=at, customer_email=email,
                denefits_contract_code=key.split("_")[0] if source == "denefits" else None)
    n = Normalized(source=source, event_type="test",  # type: ignore[arg-type]
                   contact=ContactFacts(email_payment=email), payments=(p,),
                   may_create_contact=False, match_by=("email",))
    return apply_event(conn, tenant, n, received_at=at).status


def insight(conn: Connection, tenant: UUID, ad_id: str, day: date, spend: str, *, name: str | None = None,
            theme: str | None = None) -> None:
    conn.execute(text("INSERT INTO meta_ads (tenant_id, ad_id, ad_name) VALUES (:t, :a, :n) "
                      "ON CONFLICT (tenant_id, ad_id) DO NOTHING"), {"t": tenant, "a": ad_id, "n": name})
    if theme:
        conn.execute(text("INSERT INTO meta_ad_creatives (tenant_id, ad_id, transformation_theme) "
                          "VALUES (:t, :a, :th) ON CONFLICT (tenant_id, ad_id) DO NOTHING"),
                     {"t": tenant, "a": ad_id, "th": theme})
    conn.execute(text("INSERT INTO meta_ad_insights (tenant_id, ad_id, snapshot_date, spend, synced_at) "
                      "VALUES (:t, :a, :d, :s, now())"), {"t": tenant, "a": ad_id, "d": day, "s": Decimal(spend)})
