"""``contact TERM``: one contact's timeline — every funnel event in order with the time since the previous
one, its payments and tags. TERM is an e-mail, a name, a ManyChat or GHL id, or the contact's id."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from mcb.analytics import metrics
from mcb.analytics.render import Column, Layout, Table
from mcb.analytics.reports.common import header
from mcb.analytics.window import Window, zone
from mcb.errors import UserError
from mcb.tenancy.tenants import Tenant

_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


def find_contacts(conn: Connection, tenant: Tenant, term: str, limit: int = 10) -> list[dict[str, Any]]:
    """Contacts matching the term: exact ids first, then e-mail or name (case-insensitive, substring);
    oldest first within each."""
    term = term.strip()
    if not term:
        raise UserError("Give a contact to look for: an e-mail, a name, a ManyChat or GHL id.")
    like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    exact_id = UUID(term) if _UUID.match(term) else None
    rows = conn.execute(text("""
        SELECT id, first_name, last_name, email_primary, email_booking, email_payment, phone, mc_id, ghl_id,
               ad_id, source, stage, tags, created_at,
               CASE WHEN id = CAST(:id AS uuid) OR mc_id = :term OR ghl_id = :term THEN 0
                    WHEN lower(email_primary) = lower(:term) OR lower(email_booking) = lower(:term)
                         OR lower(email_payment) = lower(:term) THEN 1 ELSE 2 END AS rank
        FROM contacts
        WHERE tenant_id = :t AND (id = CAST(:id AS uuid) OR mc_id = :term OR ghl_id = :term
              OR email_primary ILIKE :like OR email_booking ILIKE :like OR email_payment ILIKE :like
              OR (coalesce(first_name, '') || ' ' || coalesce(last_name, '')) ILIKE :like)
        ORDER BY rank, created_at NULLS LAST, id LIMIT :n"""),
        {"t": tenant.id, "id": exact_id, "term": term, "like": like, "n": limit}).mappings()
    return [dict(r) for r in rows]


def _hours(delta: Any) -> float | None:
    return None if delta is None else round(delta.total_seconds() / 3600, 2)


def build(conn: Connection, tenant: Tenant, window: Window | None = None, *, term: str,
          include_historical: bool | None = None) -> dict[str, Any]:
    found = find_contacts(conn, tenant, term)
    if not found:
        raise UserError(f"No contact of {tenant.slug} matches {term!r}.")
    c = found[0]
    events = conn.execute(text(
        "SELECT event_timestamp, event_type, source, source_event_id, event_data, tags FROM funnel_events "
        "WHERE tenant_id = :t AND contact_id = :c ORDER BY event_timestamp, event_type, source_event_id"),
        {"t": tenant.id, "c": c["id"]}).mappings().all()
    timeline = []
    previous = None
    tz = zone(tenant.timezone)
    for e in events:
        at = e["event_timestamp"]
        timeline.append({"at": at.isoformat(), "local_time": at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                         "event_type": e["event_type"], "source": e["source"],
                         "hours_since_previous": _hours(at - previous) if previous else None,
                         "amount": e["event_data"].get("amount") if e["event_data"] else None})
        previous = at
    payments = conn.execute(text(
        "SELECT payment_event_id, payment_date, payment_source, payment_category, amount, status FROM payments "
        "WHERE tenant_id = :t AND contact_id = :c ORDER BY payment_date, payment_event_id"),
        {"t": tenant.id, "c": c["id"]}).mappings().all()
    return {
        **header("contact", tenant, None, include_historical=include_historical, term=term),
        "contact": {
            "id": str(c["id"]), "name": " ".join(p for p in (c["first_name"], c["last_name"]) if p) or None,
            "emails": list(dict.fromkeys(e for e in (c["email_primary"], c["email_booking"], c["email_payment"]) if e)),
            "phone": c["phone"], "mc_id": c["mc_id"], "ghl_id": c["ghl_id"], "ad_id": c["ad_id"],
            "source": c["source"], "stage": c["stage"], "tags": c["tags"] or {},
            "historical": bool(c["source"] and c["source"].endswith("_historical")),
        },
        "events": timeline,
        "payments": [{**dict(p), "payment_date": p["payment_date"].isoformat(),
                      "amount": metrics.money_value(p["amount"])} for p in payments],
        "other_matches": [{"id": str(o["id"]), "email": o["email_primary"] or o["email_booking"] or o["email_payment"],
                           "name": " ".join(p for p in (o["first_name"], o["last_name"]) if p) or None}
                          for o in found[1:]],
    }


def layout(data: dict[str, Any]) -> Layout:
    c = data["contact"]
    details = Table("Contact", [Column("Field", key="field"), Column("Value", key="value")], [
        ["name", c["name"]], ["e-mails", ", ".join(c["emails"])], ["phone", c["phone"]], ["ManyChat id", c["mc_id"]],
        ["GHL id", c["ghl_id"]], ["ad id", c["ad_id"]], ["source", c["source"]], ["stage", c["stage"]],
        ["tags", ", ".join(f"{k}={v}" for k, v in sorted(c["tags"].items()))], ["id", c["id"]]])
    events = Table("Timeline", [Column("When (local)", "date", "local_time"), Column("Event", key="event_type"),
                                Column("Source", key="source"), Column("Hours since previous", key="hours_since_previous"),
                                Column("Amount", "money", "amount")],
                   [[e["local_time"], e["event_type"], e["source"], e["hours_since_previous"], e["amount"]]
                    for e in data["events"]])
    payments = Table("Payments", [Column("Payment", key="payment_event_id"), Column("Date", "date", "payment_date"),
                                  Column("Source", key="payment_source"), Column("Category", key="payment_category"),
                                  Column("Amount", "money", "amount"), Column("Status", key="status")],
                     [[p["payment_event_id"], p["payment_date"][:10], p["payment_source"], p["payment_category"],
                       p["amount"], p["status"]] for p in data["payments"]])
    notes = []
    if data["other_matches"]:
        notes.append(f"{len(data['other_matches'])} other contact(s) also match: "
                     + ", ".join(o["email"] or o["name"] or o["id"] for o in data["other_matches"]))
    tenant = data["tenant"]
    return Layout(title=f"Contact journey: {c['name'] or (c['emails'] or [c['id']])[0]}",
                  subtitle=f"{tenant['name']} · times in {tenant['timezone']}", tables=[details, events, payments],
                  notes=notes, csv=events)
