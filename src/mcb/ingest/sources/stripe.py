"""Stripe webhooks, spec 3.7, with R-17, R-20, R-21, R-23 and R-24 fixed.

``parse`` receives the event the HTTP layer has already verified (signature, tolerance); it only reads it.

Events:

- ``checkout.session.completed`` (and ``checkout.session.async_payment_succeeded``, which completes a
  session paid by a delayed method): always one payment keyed by the event id (the original's key, so a
  delivery the original already stored deduplicates against its row): source ``stripe``, type
  ``buy_in_full``, amount = ``amount_total`` / 100 as an exact ``Decimal``, category by amount (exactly
  100 → ``deposit``, more → ``full_purchase``, less → ``miscellaneous``, spec 1.6), status ``paid``,
  payment date = ``event.created`` (R-17). E-mail = ``customer_email``, else ``customer_details.email``.
  The funnel event (deposit_paid / purchase_completed) is derived from the stored row by
  ``mcb.funnel.payments.payment_funnel_event``, so a payment that waits as an orphan yields the same event
  once its contact appears. A payment never creates a contact (R-21): it matches by Stripe customer id,
  then e-mail, and otherwise stays an orphan until a contact with its e-mail appears. On a match the
  contact learns ``email_payment`` and ``stripe_customer_id`` (R-20).
  A completed session whose ``payment_status`` is ``unpaid`` (delayed payment methods) has not been paid
  yet: it is skipped, and the ``async_payment_succeeded`` event that follows records the payment.
  ``mode: setup`` sessions carry no payment and are skipped.
- ``checkout.session.created``: a ``checkout_started`` event (stage checkout_started) keyed
  ``stripe_checkout_<session id>``, for an existing contact found by e-mail; never a payment, never a new
  contact. (Stripe's own catalogue has no such event type; it is handled for senders configured to post
  it, as the original did.)
- ``checkout.session.expired``: skipped. The original recorded no event for abandonment (no
  ``checkout_abandoned`` event type exists); the skip reason keeps it visible in the inbox.
- ``charge.refunded`` (R-23): a payment keyed by the event id, type and category ``refund``, status
  ``refunded``, a negative amount, e-mail = ``billing_details.email`` (else ``receipt_email``), payment date
  = ``event.created``; its ``payment_refunded`` event comes from ``payment_funnel_event``. Stripe sends one
  ``charge.refunded`` per refund with the charge's *cumulative* ``amount_refunded``; the amount of this
  refund is that total minus ``data.previous_attributes.amount_refunded`` when Stripe sends it (so two
  partial refunds are not counted as 1 + 2 partial refunds), else the whole ``amount_refunded``.
- any other type: skipped with "Stripe event <type> is not used".

Amounts: Stripe sends integer minor units; they are divided by 100 exactly (``Decimal``, never float),
except for Stripe's zero-decimal currencies (JPY, KRW, …), whose amounts are already whole units.

Unknown keys (R-45): the documented top-level keys of an event object (``id, object, api_version, created,
data, livemode, pending_webhooks, request, type``) and of ``data`` (``object, previous_attributes``) are
known; any other is recorded. Inside ``data.object`` Stripe sends dozens of keys that MCB has no use for,
so only the keys read are listed here and the rest are ignored, not flagged:
checkout session ``id, amount_total, currency, customer, customer_email, customer_details.{email, name,
phone}, mode, payment_status``; charge ``id, amount_refunded, currency, customer, billing_details.{email,
name, phone}, receipt_email``. The whole event is stored as the payment's ``raw_payload``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, PayloadError, Payment
from mcb.funnel.identity import clean_text, normalize_email, normalize_phone
from mcb.ingest.sources.common import first_object, known_keys_missing

SOURCE: Final = "stripe"

EVENT_KEYS = {"id", "object", "api_version", "created", "data", "livemode", "pending_webhooks", "request", "type"}
DATA_KEYS = {"object", "previous_attributes"}

COMPLETED = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
CREATED = "checkout.session.created"
EXPIRED = "checkout.session.expired"
REFUNDED = "charge.refunded"
ACCEPTED_EVENTS = (*COMPLETED, CREATED, EXPIRED, REFUNDED)

# A payment's category by its amount (spec 1.6): exactly this much is a deposit.
DEPOSIT_AMOUNT = Decimal("100.00")

# https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL_CURRENCIES = frozenset({
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
})

MATCH_BY = ("stripe_customer_id", "email")


def category_for(amount: Decimal) -> str:
    """deposit (exactly 100), full_purchase (more), miscellaneous (less) — spec 1.6."""
    if amount == DEPOSIT_AMOUNT:
        return "deposit"
    return "full_purchase" if amount > DEPOSIT_AMOUNT else "miscellaneous"


def _minor_units(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PayloadError(f"Stripe {what} must be an integer amount in minor units, got {value!r}")
    text = str(value).strip()
    if not text.lstrip("-").isdigit():
        raise PayloadError(f"Stripe {what} must be an integer amount in minor units, got {value!r}")
    return int(text)


def _amount(minor: int, currency: str) -> Decimal:
    """Exact major units: 299700 usd → Decimal('2997.00'); 5000 jpy → Decimal('5000.00')."""
    value = Decimal(minor) if currency in ZERO_DECIMAL_CURRENCIES else Decimal(minor).scaleb(-2)
    return value.quantize(Decimal("0.01"))


def _created(event: dict[str, Any]) -> datetime:
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise PayloadError(f"Stripe event has no readable 'created' time (got {created!r})")
    return datetime.fromtimestamp(created, UTC)


def _customer_id(value: Any) -> str | None:
    if isinstance(value, dict):  # an expanded customer object
        value = value.get("id")
    return clean_text(value) if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _currency(obj: dict[str, Any]) -> str:
    return (clean_text(obj.get("currency")) or "usd").lower()


def parse(payload: Any, *, received_at: datetime) -> Normalized:
    event = first_object(payload)
    event_type = clean_text(event.get("type"))
    if event_type is None:
        raise PayloadError("Stripe payload has no event type ('type')")
    data = event.get("data")
    unknown = known_keys_missing(event, EVENT_KEYS)
    if isinstance(data, dict):
        unknown += known_keys_missing(data, DATA_KEYS, prefix="data.")

    if event_type not in ACCEPTED_EVENTS:
        return Normalized(source=SOURCE, event_type=event_type, skip_reason=f"Stripe event {event_type} is not used",
                          unknown_keys=tuple(unknown))
    event_id = clean_text(event.get("id"))
    if event_id is None:
        raise PayloadError(f"Stripe {event_type} event has no id")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise PayloadError(f"Stripe {event_type} event {event_id} has no data.object")
    obj: dict[str, Any] = data["object"]

    if event_type == EXPIRED:
        return Normalized(source=SOURCE, event_type=event_type,
                          skip_reason="checkout expired (abandonment is not a funnel event)",
                          unknown_keys=tuple(unknown))
    if event_type == REFUNDED:
        return _refund(event, event_id, obj, _dict(data.get("previous_attributes")), tuple(unknown))
    if event_type == CREATED:
        return _checkout_started(event, event_type, obj, tuple(unknown))
    return _completed(event, event_type, event_id, obj, tuple(unknown))


def _completed(event: dict[str, Any], event_type: str, event_id: str, session: dict[str, Any],
               unknown: tuple[str, ...]) -> Normalized:
    if session.get("mode") == "setup":
        return Normalized(source=SOURCE, event_type=event_type, unknown_keys=unknown,
                          skip_reason="checkout session in setup mode carries no payment")
    if session.get("payment_status") == "unpaid":
        return Normalized(source=SOURCE, event_type=event_type, unknown_keys=unknown,
                          skip_reason="checkout completed but not paid yet (delayed payment method); "
                                      "checkout.session.async_payment_succeeded will record the payment")
    if session.get("amount_total") is None:
        raise PayloadError(f"Stripe {event_type} event {event_id} has no amount_total")
    currency = _currency(session)
    amount = _amount(_minor_units(session["amount_total"], "amount_total"), currency)
    details = _dict(session.get("customer_details"))
    email = normalize_email(session.get("customer_email")) or normalize_email(details.get("email"))
    customer_id = _customer_id(session.get("customer"))
    payment = Payment(
        payment_event_id=event_id,
        payment_source="stripe",
        payment_type="buy_in_full",
        payment_category=category_for(amount),
        amount=amount,
        currency=currency,
        status="paid",
        payment_date=_created(event),
        customer_email=email,
        customer_name=clean_text(details.get("name")),
        customer_phone=normalize_phone(clean_text(details.get("phone"))),
        stripe_event_type=event_type,
        stripe_customer_id=customer_id,
        stripe_session_id=clean_text(session.get("id")),
        raw_payload=event,
    )
    return Normalized(
        source=SOURCE,
        event_type=event_type,
        contact=ContactFacts(email_payment=email, stripe_customer_id=customer_id),
        payments=(payment,),
        may_create_contact=False,
        match_by=MATCH_BY,
        unknown_keys=unknown,
    )


def _checkout_started(event: dict[str, Any], event_type: str, session: dict[str, Any],
                      unknown: tuple[str, ...]) -> Normalized:
    session_id = clean_text(session.get("id"))
    if session_id is None:
        raise PayloadError("Stripe checkout.session.created event has no session id (data.object.id)")
    details = _dict(session.get("customer_details"))
    email = normalize_email(session.get("customer_email")) or normalize_email(details.get("email"))
    customer_id = _customer_id(session.get("customer"))
    data: dict[str, Any] = {"stripe_session_id": session_id, "currency": _currency(session)}
    if session.get("amount_total") is not None:
        data["amount"] = float(_amount(_minor_units(session["amount_total"], "amount_total"), data["currency"]))
    return Normalized(
        source=SOURCE,
        event_type=event_type,
        contact=ContactFacts(email_payment=email, stripe_customer_id=customer_id),
        events=(FunnelEvent(event_type="checkout_started", source_event_id=f"stripe_checkout_{session_id}",
                            occurred_at=_created(event), stage="checkout_started", data=data),),
        may_create_contact=False,
        match_by=MATCH_BY,
        unknown_keys=unknown,
    )


def _refund(event: dict[str, Any], event_id: str, charge: dict[str, Any], previous: dict[str, Any],
            unknown: tuple[str, ...]) -> Normalized:
    if charge.get("amount_refunded") is None:
        raise PayloadError(f"Stripe charge.refunded event {event_id} has no amount_refunded")
    currency = _currency(charge)
    total = _minor_units(charge["amount_refunded"], "amount_refunded")
    before = previous.get("amount_refunded")
    refunded = total - (_minor_units(before, "previous amount_refunded") if before is not None else 0)
    if refunded <= 0:
        return Normalized(source=SOURCE, event_type=REFUNDED, unknown_keys=unknown,
                          skip_reason=f"charge.refunded {event_id} refunds nothing new "
                                      f"(amount_refunded {total}, previously {before})")
    billing = _dict(charge.get("billing_details"))
    email = normalize_email(billing.get("email")) or normalize_email(charge.get("receipt_email"))
    customer_id = _customer_id(charge.get("customer"))
    payment = Payment(
        payment_event_id=event_id,
        payment_source="stripe",
        payment_type="refund",
        payment_category="refund",
        amount=-_amount(refunded, currency),
        currency=currency,
        status="refunded",
        payment_date=_created(event),
        customer_email=email,
        customer_name=clean_text(billing.get("name")),
        customer_phone=normalize_phone(clean_text(billing.get("phone"))),
        stripe_event_type=REFUNDED,
        stripe_customer_id=customer_id,
        raw_payload=event,
    )
    return Normalized(
        source=SOURCE,
        event_type=REFUNDED,
        contact=ContactFacts(email_payment=email, stripe_customer_id=customer_id),
        payments=(payment,),
        may_create_contact=False,
        match_by=MATCH_BY,
        unknown_keys=unknown,
    )
