"""MCB's vocabulary for what happened: normalized events, as every provider module produces them.

A provider module (``mcb.ingest.sources.<provider>``) turns one stored webhook into one ``Normalized``
value: either events to apply, or a skip with its reason. Everything after the provider module speaks
only these types; provider quirks never leak past it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

# "system": MCB itself, e.g. a historical import (the funnel_events source check allows it).
Source = Literal["manychat", "ghl", "stripe", "denefits", "perspective", "system"]

# Identity fields of a contact: matched on, filled when empty, never cleared.
IDENTITY_FIELDS: tuple[str, ...] = (
    "mc_id",
    "ghl_id",
    "stripe_customer_id",
    "ig_id",
    "email_primary",
    "email_booking",
    "email_payment",
    "phone",
    "first_name",
    "last_name",
    "ig",
    "fb",
    "fbclid",
    "fbp",
    "fbc",
)


@dataclass(frozen=True)
class ContactFacts:
    """What an event says about its contact. ``None`` means "not said", never "clear it"."""

    mc_id: str | None = None
    ghl_id: str | None = None
    stripe_customer_id: str | None = None
    ig_id: int | None = None
    email_primary: str | None = None
    email_booking: str | None = None
    email_payment: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    ig: str | None = None
    fb: str | None = None
    fbclid: str | None = None
    fbp: str | None = None
    fbc: str | None = None
    ad_id: str | None = None  # first touch: set only while the contact has none
    source: str | None = None  # traffic source; see ``source_rule``
    source_rule: Literal["if_empty", "live", "default"] = "if_empty"
    """``live``: an engagement from a live channel (ManyChat, GHL) replaces a historical source
    ("auto-graduation", spec 5.1); ``default``: a guess (GHL's "website" when no ManyChat id is known) that
    fills an empty source and yields to any evidence; payments never change the source."""
    tags: dict[str, Any] = field(default_factory=dict)

    def emails(self) -> list[str]:
        return [e for e in (self.email_primary, self.email_booking, self.email_payment) if e]

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS if getattr(self, name) is not None}


@dataclass(frozen=True)
class FunnelEvent:
    """One entry of the append-only history."""

    event_type: str
    source_event_id: str  # deterministic: the same delivery always yields the same key
    occurred_at: datetime  # the provider's time when it sends one, else the receive time
    stage: str | None = None  # the stage this event evidences (moves the contact forward only)
    data: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Payment:
    """One row of ``payments``, keyed by (tenant, payment_event_id) in the original's formats."""

    payment_event_id: str
    payment_source: Literal["stripe", "denefits"]
    payment_type: Literal["buy_in_full", "buy_now_pay_later", "refund"]
    payment_category: str
    amount: Decimal
    status: str
    payment_date: datetime
    currency: str = "usd"
    customer_email: str | None = None
    customer_name: str | None = None
    customer_phone: str | None = None
    stripe_event_type: str | None = None
    stripe_customer_id: str | None = None
    stripe_session_id: str | None = None
    denefits_contract_id: int | None = None
    denefits_contract_code: str | None = None
    denefits_financed_amount: Decimal | None = None
    denefits_downpayment: Decimal | None = None
    denefits_recurring_amount: Decimal | None = None
    denefits_num_payments: int | None = None
    denefits_remaining_payments: int | None = None
    raw_payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Normalized:
    """A provider module's reading of one webhook."""

    source: Source
    event_type: str  # the provider's own event name, for logs and stats
    contact: ContactFacts = field(default_factory=ContactFacts)
    events: tuple[FunnelEvent, ...] = ()
    payments: tuple[Payment, ...] = ()
    may_create_contact: bool = True
    match_by: tuple[str, ...] = ("mc_id", "ghl_id", "email", "phone", "stripe_customer_id")
    """Which identifiers may find an existing contact, strongest first (spec 3.4 per source)."""
    lead_event_type: str = "contact_created"
    """The event a new contact gets (R-28): contact_subscribed for ManyChat, contact_created otherwise."""
    skip_reason: str | None = None
    unknown_keys: tuple[str, ...] = ()
    """Payload keys the parser did not read: recorded on the inbox row, never silently dropped (R-45)."""


class PayloadError(ValueError):
    """The payload cannot be read as this provider's (missing required field, wrong type). The webhook
    row ends ``error`` with this message; replaying it after a parser fix processes it."""
