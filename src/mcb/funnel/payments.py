"""Payments: stored before anything else (R-24), linked to their contact whenever it appears (R-21).

The funnel event a payment evidences is derived from the stored row by one function, so a payment that
waited as an orphan produces exactly the event it would have produced had its contact been known.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from sqlalchemy import Connection

from mcb.db import raw
from mcb.funnel.events import FunnelEvent, Payment

_COLUMNS = tuple(k for k in Payment.__dataclass_fields__ if k != "raw_payload")
# What the write path reads back from a stored payment (not raw_payload, which can be large).
PAYMENT_COLUMNS: tuple[str, ...] = ("payment_event_id", "contact_id", "payment_source", "payment_category",
                                    "denefits_contract_code", "amount", "currency", "payment_date",
                                    "customer_email", "stripe_customer_id")
_RETURNED = ", ".join(PAYMENT_COLUMNS)


def upsert_payment(conn: Connection, tenant_id: UUID, payment: Payment) -> dict[str, Any]:
    """Insert the payment unless (tenant, payment_event_id) exists; return the stored row either way."""
    values = {k: v for k, v in asdict(payment).items() if k in _COLUMNS}
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    # One round trip: the inserted row, or (on a redelivery) the stored one. The second branch cannot
    # see the first's row (one snapshot), so at most one of them returns it.
    row = raw.fetch_first(
        conn,
        (
            f"WITH inserted AS (INSERT INTO payments (tenant_id, {columns}, raw_payload) "
            f"VALUES (:tenant_id, {params}, :raw) ON CONFLICT (tenant_id, payment_event_id) DO NOTHING "
            f"RETURNING {_RETURNED}) "
            f"SELECT {_RETURNED} FROM inserted UNION ALL "
            f"SELECT {_RETURNED} FROM payments WHERE tenant_id = :tenant_id AND payment_event_id = :payment_event_id "
            "AND NOT EXISTS (SELECT 1 FROM inserted)"
        ),
        {**values, "tenant_id": tenant_id, "raw": Jsonb(payment.raw_payload)},
    )
    if row is None:
        # A concurrent delivery committed the same payment after this statement's snapshot was taken: the
        # INSERT waited for it and did nothing. A new statement sees it.
        row = raw.fetch_one(conn, f"SELECT {_RETURNED} FROM payments WHERE tenant_id = :t AND payment_event_id = :k",
                            {"t": tenant_id, "k": payment.payment_event_id})
    return row


# category -> (event type, key format, stage)
_EVENTS: dict[tuple[str, str], tuple[str, str, str | None]] = {
    ("stripe", "deposit"): ("deposit_paid", "stripe_deposit_{id}", "deposit_paid"),
    ("stripe", "full_purchase"): ("purchase_completed", "stripe_purchase_{id}", "purchased"),
    ("stripe", "refund"): ("payment_refunded", "{id}", None),
    ("denefits", "payment_plan"): ("payment_plan_created", "{code}", "purchased"),
    ("denefits", "recurring"): ("recurring_payment_received", "{id}", None),
    ("denefits", "refund"): ("payment_refunded", "{id}", None),
}


def payment_funnel_event(row: dict[str, Any]) -> FunnelEvent | None:
    """The event a stored payment evidences (keys in the original's formats, spec 3.11), or None.

    Recurring instalments are cash, never a new sale (R-22): an event, no stage. Refunds never move the
    stage back. Down payments and miscellaneous charges are covered by their plan or are not sales.
    """
    spec = _EVENTS.get((row["payment_source"], row["payment_category"] or ""))
    if spec is None:
        return None
    event_type, key_format, stage = spec
    code = row.get("denefits_contract_code") or row["payment_event_id"].removesuffix("_plan")
    amount: Decimal = row["amount"]
    payment_date: datetime = row["payment_date"]
    return FunnelEvent(
        event_type=event_type,
        source_event_id=key_format.format(id=row["payment_event_id"], code=code),
        occurred_at=payment_date,
        stage=stage,
        data={
            "amount": float(amount),
            "currency": row.get("currency") or "usd",
            "payment_category": row["payment_category"],
            "payment_event_id": row["payment_event_id"],
        },
    )


# The payments a contact claims: this delivery's own, and every orphan that names the contact by one of its
# e-mails, its phone or its Stripe customer. One definition, used alone (link_payments) and inside the
# contact's UPDATE (funnel.apply), which saves a statement per delivery.
LINK_SQL = (
    "UPDATE payments SET contact_id = :c WHERE tenant_id = :t AND contact_id IS NULL AND "
    "(payment_event_id = ANY(:ids) OR lower(customer_email) = ANY(:emails) "
    "OR (CAST(:phone AS text) IS NOT NULL AND customer_phone = :phone) "
    "OR (CAST(:customer AS text) IS NOT NULL AND stripe_customer_id = :customer))"
)


def link_params(tenant_id: UUID, contact: dict[str, Any], *, payment_event_ids: list[str],
                emails: list[str]) -> dict[str, Any]:
    return {"c": contact["id"], "t": tenant_id, "ids": payment_event_ids, "emails": emails,
            "phone": contact.get("phone"), "customer": contact.get("stripe_customer_id")}


def link_payments(conn: Connection, tenant_id: UUID, contact: dict[str, Any], *, payment_event_ids: list[str],
                  emails: list[str]) -> list[dict[str, Any]]:
    """Attach this delivery's payments and every orphan payment that names the contact: one of its
    e-mails, its phone, or its Stripe customer."""
    return raw.fetch_all(
        conn, f"{LINK_SQL} RETURNING {_RETURNED}",
        link_params(tenant_id, contact, payment_event_ids=payment_event_ids, emails=emails),
    )
