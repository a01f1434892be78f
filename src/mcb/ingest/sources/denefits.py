"""Denefits (buy now, pay later) webhooks relayed by Make.com, spec 3.8, with R-15, R-17, R-22, R-24 and
R-27 fixed.

Body: a JSON object, or an array whose first element is that object (Make.com, R-27). The event name is
``webhook_type`` | ``event_type`` | ``type``; the contract is ``data.contract``, else the root itself.
Contract fields read: ``contract_id, contract_code, customer_email, customer_first_name,
customer_last_name, customer_mobile, financed_amount, downpayment_amount, recurring_amount,
number_of_payments, remaining_payments`` (defaults to ``number_of_payments``), ``date_added,
contract_status``; the e-mail falls back to the root's ``customer_email``, ``email`` and
``customer.email``; ``status_change.previous_status/current_status`` is looked up on the contract, then
``data``, then the root.

Events:

- ``contract.created``: payment ``<code>_plan`` {category ``payment_plan``, type ``buy_now_pay_later``,
  amount = financed amount (the contract value without the down payment, spec "Decisions" 2), status
  ``active``, payment date = ``date_added`` (R-17), every ``denefits_*`` column} and, when the down
  payment is above zero, ``<code>_downpayment`` {category ``downpayment``, amount = down payment, status
  ``paid``}. The ``payment_plan_created`` event (key = contract code, stage purchased) is derived from the
  stored plan row by ``mcb.funnel.payments.payment_funnel_event``. A replay is idempotent: the rows are
  upserted by (tenant, payment_event_id) (R-15), where the original threw on the unique key.
- ``contract.payments.recurring_payment``: payment ``<code>_recurring_<remaining_payments>`` {category
  ``recurring``, amount = recurring amount, status ``paid``, payment date = the payment's own date when the
  payload carries one (``payment_date`` | ``paid_at`` | ``transaction_date`` on ``data.payment``,
  ``data``, the contract or the root), else the receive time}. Cash, not a sale (R-22): its event is
  ``recurring_payment_received`` with no stage, and it never produces a purchase event.
- ``contract.status``: skipped; the reason names the status change (the original only logged it).
- anything else: skipped with "Denefits event <type> is not used".

Contact: Denefits never creates one. It is matched by e-mail (any of the contact's three, stored as
``email_payment``), then by normalized phone (``customer_mobile``); otherwise the payments stay orphans
until a contact with their e-mail appears (R-21). The original's last resort, a first-name match among
contacts with an appointment_held event in the last 14 days, is deliberately NOT implemented: a first
name is too weak an identifier to attach money to a person.

Amounts are exact ``Decimal`` values (numbers or strings; a leading ``$`` and thousands separators are
accepted). ``date_added`` without a zone is read as UTC (the original handed it to a UTC database).

The payload's ``secret_key`` authenticates Make.com's call: the HTTP layer checks it. It is a known key,
and it is removed (wherever it appears) from the ``raw_payload`` stored on the payment rows.
Unknown keys of the root, ``data`` and the contract are recorded (R-45).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from dateutil import parser as dateparser

from mcb.funnel.events import ContactFacts, Normalized, PayloadError, Payment
from mcb.funnel.identity import clean_text, normalize_email, normalize_phone
from mcb.ingest.sources.common import first_object, known_keys_missing

SOURCE: Final = "denefits"

CREATED = "contract.created"
RECURRING = "contract.payments.recurring_payment"
STATUS = "contract.status"
ACCEPTED_EVENTS = (CREATED, RECURRING, STATUS)

SECRET_KEY = "secret_key"
CONTRACT_KEYS = {
    "contract_id", "contract_code", "customer_email", "customer_first_name", "customer_last_name",
    "customer_mobile", "financed_amount", "downpayment_amount", "recurring_amount", "number_of_payments",
    "remaining_payments", "date_added", "contract_status", "status_change", SECRET_KEY,
}
PAYMENT_DATE_KEYS = ("payment_date", "paid_at", "transaction_date")
ROOT_KEYS = {"webhook_type", "event_type", "type", "data", SECRET_KEY, "customer_email", "email", "customer",
             "status_change", *PAYMENT_DATE_KEYS}
DATA_KEYS = {"contract", "payment", "status_change", SECRET_KEY, *PAYMENT_DATE_KEYS}

MATCH_BY = ("email", "phone")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _without_secret(value: Any) -> Any:
    """The payload as stored: the shared secret never reaches the database."""
    if isinstance(value, dict):
        return {k: _without_secret(v) for k, v in value.items() if k != SECRET_KEY}
    if isinstance(value, list):
        return [_without_secret(v) for v in value]
    return value


def _money(value: Any, name: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and clean_text(value) is None):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise PayloadError(f"Denefits {name} is not an amount: {value!r}")
    text = str(value).strip().replace(",", "").removeprefix("$")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise PayloadError(f"Denefits {name} is not an amount: {value!r}") from None
    if not amount.is_finite():
        raise PayloadError(f"Denefits {name} is not an amount: {value!r}")
    return amount.quantize(Decimal("0.01"))


def _count(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and clean_text(value) is None):
        return None
    if isinstance(value, bool):
        raise PayloadError(f"Denefits {name} is not a whole number: {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise PayloadError(f"Denefits {name} is not a whole number: {value!r}")


def _time(value: Any, name: str) -> datetime | None:
    if value is None or (isinstance(value, str) and clean_text(value) is None):
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value) / (1000 if value > 1e11 else 1), UTC)
        parsed = dateparser.parse(str(value))
    except (ValueError, OverflowError):
        raise PayloadError(f"Denefits {name} is not a date: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _email(contract: dict[str, Any], root: dict[str, Any]) -> str | None:
    for value in (contract.get("customer_email"), root.get("customer_email"), root.get("email"),
                  _dict(root.get("customer")).get("email")):
        email = normalize_email(value)
        if email:
            return email
    return None


def parse(payload: Any, *, received_at: datetime) -> Normalized:
    root = first_object(payload)
    event = clean_text(root.get("webhook_type") or root.get("event_type") or root.get("type"))
    if event is None:
        raise PayloadError("Denefits payload has no event name (webhook_type, event_type or type)")
    data = _dict(root.get("data"))
    nested = isinstance(data.get("contract"), dict)
    contract: dict[str, Any] = data["contract"] if nested else root

    if nested:
        unknown = known_keys_missing(root, ROOT_KEYS)
        unknown += known_keys_missing(data, DATA_KEYS, prefix="data.")
        unknown += known_keys_missing(contract, CONTRACT_KEYS, prefix="data.contract.")
    else:
        unknown = known_keys_missing(root, ROOT_KEYS | CONTRACT_KEYS)
        if data:
            unknown += known_keys_missing(data, DATA_KEYS, prefix="data.")
    unknown_keys = tuple(sorted(unknown))

    code = clean_text(contract.get("contract_code"))
    if event == STATUS:
        change = next((_dict(where.get("status_change")) for where in (contract, data, root)
                       if isinstance(where.get("status_change"), dict)), {})
        previous = clean_text(change.get("previous_status")) or "?"
        current = clean_text(change.get("current_status")) or clean_text(contract.get("contract_status")) or "?"
        who = code or clean_text(contract.get("contract_id")) or "(no code)"
        return Normalized(source=SOURCE, event_type=event, unknown_keys=unknown_keys,
                          skip_reason=f"Denefits contract {who} status changed from {previous} to {current} "
                                      "(not a funnel event)")
    if event not in (CREATED, RECURRING):
        return Normalized(source=SOURCE, event_type=event, unknown_keys=unknown_keys,
                          skip_reason=f"Denefits event {event} is not used")
    if code is None:
        raise PayloadError(f"Denefits {event} has no contract_code")

    email = _email(contract, root)
    phone = normalize_phone(clean_text(contract.get("customer_mobile")))
    first = clean_text(contract.get("customer_first_name"))
    last = clean_text(contract.get("customer_last_name"))
    financed = _money(contract.get("financed_amount"), "financed_amount")
    downpayment = _money(contract.get("downpayment_amount"), "downpayment_amount")
    recurring = _money(contract.get("recurring_amount"), "recurring_amount")
    number = _count(contract.get("number_of_payments"), "number_of_payments")
    remaining = _count(contract.get("remaining_payments"), "remaining_payments")
    remaining = number if remaining is None else remaining
    contract_id = _count(contract.get("contract_id"), "contract_id")

    def payment(key: str, category: str, amount: Decimal, status: str, when: datetime) -> Payment:
        return Payment(
            payment_event_id=key,
            payment_source="denefits",
            payment_type="buy_now_pay_later",
            payment_category=category,
            amount=amount,
            status=status,
            payment_date=when,
            customer_email=email,
            customer_name=" ".join(n for n in (first, last) if n) or None,
            customer_phone=phone,
            denefits_contract_id=contract_id,
            denefits_contract_code=code,
            denefits_financed_amount=financed,
            denefits_downpayment=downpayment,
            denefits_recurring_amount=recurring,
            denefits_num_payments=number,
            denefits_remaining_payments=remaining,
            raw_payload=_without_secret(root),
        )

    payments: list[Payment] = []
    if event == CREATED:
        if financed is None:
            raise PayloadError(f"Denefits contract.created {code} has no financed_amount")
        added = _time(contract.get("date_added"), "date_added") or received_at
        payments.append(payment(f"{code}_plan", "payment_plan", financed, "active", added))
        if downpayment is not None and downpayment > 0:
            payments.append(payment(f"{code}_downpayment", "downpayment", downpayment, "paid", added))
    else:
        if recurring is None:
            raise PayloadError(f"Denefits recurring payment of {code} has no recurring_amount")
        if remaining is None:
            raise PayloadError(f"Denefits recurring payment of {code} has neither remaining_payments nor "
                               "number_of_payments, so it cannot be told apart from the other instalments")
        paid_on = None
        for where in (_dict(data.get("payment")), data, contract, root):
            found = next((where[k] for k in PAYMENT_DATE_KEYS if clean_text(where.get(k)) is not None), None)
            if found is not None:
                paid_on = _time(found, "payment date")
                break
        payments.append(payment(f"{code}_recurring_{remaining}", "recurring", recurring, "paid",
                                paid_on or received_at))

    return Normalized(
        source=SOURCE,
        event_type=event,
        contact=ContactFacts(email_payment=email, phone=phone, first_name=first, last_name=last),
        payments=tuple(payments),
        may_create_contact=False,
        match_by=MATCH_BY,
        unknown_keys=unknown_keys,
    )
