"""Recent activity: the latest funnel events and payments of one tenant, as rows to list (no metric).

The dashboard's "recent activity" panel (the original's /recent-activity, spec 5.3) shows what happened
last, not a count; the numbers all come from ``mcb.analytics.metrics``. Run in the tenant's session, and
filtered by the tenant too.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

EVENTS = 15
PAYMENTS = 10


def _who(first: str | None, last: str | None, email: str | None) -> str:
    name = " ".join(p for p in (first, last) if p)
    return name or email or "(unnamed contact)"


def recent_activity(conn: Connection, tenant_id: UUID, *, events: int = EVENTS, payments: int = PAYMENTS
                    ) -> dict[str, list[dict[str, Any]]]:
    """The tenant's latest events (by event time) and payments (by payment date), newest first."""
    event_rows = conn.execute(
        text(
            "SELECT e.event_timestamp, e.event_type, e.source, c.first_name, c.last_name, "
            "coalesce(c.email_primary, c.email_booking, c.email_payment) "
            "FROM funnel_events e JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = e.contact_id "
            "WHERE e.tenant_id = :t ORDER BY e.event_timestamp DESC, e.id LIMIT :n"
        ),
        {"t": tenant_id, "n": events},
    ).all()
    payment_rows = conn.execute(
        text(
            "SELECT p.payment_date, p.payment_source, p.payment_category, p.amount, p.contact_id IS NULL, "
            "c.first_name, c.last_name, coalesce(c.email_primary, p.customer_email) "
            "FROM payments p LEFT JOIN contacts c ON c.tenant_id = p.tenant_id AND c.id = p.contact_id "
            "WHERE p.tenant_id = :t ORDER BY p.payment_date DESC, p.id LIMIT :n"
        ),
        {"t": tenant_id, "n": payments},
    ).all()
    return {
        "events": [{"at": r[0].isoformat(), "event_type": r[1], "source": r[2], "who": _who(r[3], r[4], r[5])}
                   for r in event_rows],
        "payments": [{"at": r[0].isoformat(), "source": r[1], "category": r[2], "amount": float(r[3]),
                      "orphan": bool(r[4]), "who": _who(r[5], r[6], r[7])} for r in payment_rows],
    }
