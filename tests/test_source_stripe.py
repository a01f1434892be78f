"""Stripe: the parser on recorded-shape fixtures (pure), then through ``apply_event`` on a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.funnel.apply import ApplyResult, apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, PayloadError
from mcb.ingest.sources import manychat, stripe

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
T = datetime(2025, 12, 2, 9, 0, tzinfo=UTC)  # receive time: later than every Stripe event time
FIXTURES = Path(__file__).parent / "fixtures" / "stripe"

FULL = "checkout_session_completed_full"
DEPOSIT = "checkout_session_completed_deposit"
MISC = "checkout_session_completed_misc"
DETAILS = "checkout_session_completed_with_customer_details_email"
CREATED = "checkout_session_created"
EXPIRED = "checkout_session_expired"
REFUND = "charge_refunded"
CUSTOMER = "customer_created"
ALL = (FULL, DEPOSIT, MISC, DETAILS, CREATED, EXPIRED, REFUND, CUSTOMER)

JANE = "jane.doe@example.com"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------
# parse: pure


def test_completed_full_purchase() -> None:
    payload = load(FULL)
    n = stripe.parse(payload, received_at=T)
    assert n.source == "stripe"
    assert n.event_type == "checkout.session.completed"
    assert n.skip_reason is None
    assert n.events == ()
    assert n.may_create_contact is False
    assert n.match_by == ("stripe_customer_id", "email")
    assert n.contact == ContactFacts(email_payment=JANE, stripe_customer_id="cus_RfUlLpUrChAsE1")
    assert n.unknown_keys == ()
    [p] = n.payments
    assert p.payment_event_id == "evt_1QfUlLpUrChAsE2997aaaa"
    assert p.payment_source == "stripe"
    assert p.payment_type == "buy_in_full"
    assert p.payment_category == "full_purchase"
    assert p.amount == Decimal("2997.00")
    assert str(p.amount) == "2997.00"
    assert p.currency == "usd"
    assert p.status == "paid"
    assert p.payment_date == at("2025-11-20T16:00:00")  # event.created, not the receive time
    assert p.customer_email == JANE  # customer_email wins over customer_details.email, normalized
    assert p.customer_name == "Jane Doe"
    assert p.customer_phone == "+15125550101"
    assert p.stripe_event_type == "checkout.session.completed"
    assert p.stripe_customer_id == "cus_RfUlLpUrChAsE1"
    assert p.stripe_session_id == "cs_live_a1B2c3D4e5F6g7H8i9J0full"
    assert p.denefits_contract_code is None
    assert p.raw_payload == payload


def test_completed_deposit_is_exactly_100() -> None:
    [p] = stripe.parse(load(DEPOSIT), received_at=T).payments
    assert (p.payment_category, p.amount, p.payment_event_id) == ("deposit", Decimal("100.00"), "evt_1QdEpOsIt100bbbbbbbbbb")
    assert p.payment_date == at("2025-11-21T10:00:00")


def test_completed_below_100_is_miscellaneous_and_still_stored() -> None:
    n = stripe.parse(load(MISC), received_at=T)
    [p] = n.payments
    assert (p.payment_category, p.amount, p.stripe_customer_id) == ("miscellaneous", Decimal("49.00"), None)
    assert n.contact == ContactFacts(email_payment=JANE)


def test_completed_email_from_customer_details() -> None:
    n = stripe.parse(load(DETAILS), received_at=T)
    [p] = n.payments
    assert p.customer_email == "mary.major@example.org"
    assert p.customer_name == "Mary Major"
    assert p.customer_phone is None
    assert n.contact.email_payment == "mary.major@example.org"


@pytest.mark.parametrize(
    ("cents", "currency", "amount", "category"),
    [
        (10001, "usd", Decimal("100.01"), "full_purchase"),
        (9999, "usd", Decimal("99.99"), "miscellaneous"),
        (1999, "usd", Decimal("19.99"), "miscellaneous"),
        (10000, "USD", Decimal("100.00"), "deposit"),
        (0, "usd", Decimal("0.00"), "miscellaneous"),
        (5000, "jpy", Decimal("5000.00"), "full_purchase"),  # zero-decimal currency: already whole units
    ],
)
def test_amounts_are_exact(cents: int, currency: str, amount: Decimal, category: str) -> None:
    payload = load(FULL)
    payload["data"]["object"].update(amount_total=cents, currency=currency)
    [p] = stripe.parse(payload, received_at=T).payments
    assert (p.amount, p.payment_category, p.currency) == (amount, category, currency.lower())
    assert p.amount.as_tuple().exponent == -2


def test_async_payment_succeeded_records_the_payment_and_unpaid_completion_waits() -> None:
    unpaid = load(FULL)
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    n = stripe.parse(unpaid, received_at=T)
    assert n.payments == ()
    assert n.skip_reason is not None and "not paid yet" in n.skip_reason

    later = load(FULL)
    later.update(id="evt_1QaSyNcSuCcEeDeD", type="checkout.session.async_payment_succeeded")
    [p] = stripe.parse(later, received_at=T).payments
    assert (p.payment_event_id, p.stripe_event_type, p.amount) == (
        "evt_1QaSyNcSuCcEeDeD", "checkout.session.async_payment_succeeded", Decimal("2997.00"))


def test_setup_mode_session_is_skipped() -> None:
    payload = load(FULL)
    payload["data"]["object"].update(mode="setup", amount_total=None)
    assert stripe.parse(payload, received_at=T).skip_reason == "checkout session in setup mode carries no payment"


def test_checkout_created_is_a_checkout_started_event() -> None:
    n = stripe.parse(load(CREATED), received_at=T)
    assert n.payments == ()
    assert n.may_create_contact is False
    assert n.contact == ContactFacts(email_payment=JANE)
    assert n.events == (
        FunnelEvent(
            event_type="checkout_started",
            source_event_id="stripe_checkout_cs_live_a1B2c3D4e5F6g7H8i9J0full",
            occurred_at=at("2025-11-20T15:40:00"),
            stage="checkout_started",
            data={"stripe_session_id": "cs_live_a1B2c3D4e5F6g7H8i9J0full", "currency": "usd", "amount": 2997.0},
        ),
    )


def test_checkout_expired_is_skipped() -> None:
    n = stripe.parse(load(EXPIRED), received_at=T)
    assert n.skip_reason == "checkout expired (abandonment is not a funnel event)"
    assert (n.events, n.payments) == ((), ())


def test_charge_refunded_is_a_negative_refund_payment() -> None:
    payload = load(REFUND)
    n = stripe.parse(payload, received_at=T)
    assert n.contact == ContactFacts(email_payment=JANE, stripe_customer_id="cus_RfUlLpUrChAsE1")
    assert n.may_create_contact is False
    [p] = n.payments
    assert p.payment_event_id == "evt_3QrEfUnDgggggggggggggg"
    assert (p.payment_type, p.payment_category, p.status) == ("refund", "refund", "refunded")
    assert p.amount == Decimal("-2997.00")
    assert p.payment_date == at("2025-12-01T12:00:00")
    assert (p.customer_email, p.customer_name, p.stripe_session_id) == (JANE, "Jane Doe", None)
    assert p.stripe_event_type == "charge.refunded"
    assert p.raw_payload == payload


def test_partial_refunds_count_only_the_new_amount() -> None:
    payload = load(REFUND)
    payload["data"]["object"]["amount_refunded"] = 150000  # cumulative on the charge
    payload["data"]["previous_attributes"]["amount_refunded"] = 100000
    [p] = stripe.parse(payload, received_at=T).payments
    assert p.amount == Decimal("-500.00")

    del payload["data"]["previous_attributes"]
    [p] = stripe.parse(payload, received_at=T).payments
    assert p.amount == Decimal("-1500.00")


def test_refund_email_falls_back_to_receipt_email() -> None:
    payload = load(REFUND)
    payload["data"]["object"]["billing_details"]["email"] = None
    payload["data"]["object"]["receipt_email"] = "Other@Example.com"
    [p] = stripe.parse(payload, received_at=T).payments
    assert p.customer_email == "other@example.com"


def test_unused_event_type_is_skipped() -> None:
    n = stripe.parse(load(CUSTOMER), received_at=T)
    assert n.skip_reason == "Stripe event customer.created is not used"
    assert (n.events, n.payments) == ((), ())


def test_unknown_top_level_keys_are_recorded_not_the_session_keys() -> None:
    payload = load(FULL)
    payload["account"] = "acct_1"
    payload["data"]["extra"] = 1
    payload["data"]["object"]["brand_new_stripe_field"] = True  # data.object keys are not flagged
    n = stripe.parse(payload, received_at=T)
    assert n.unknown_keys == ("account", "data.extra")
    assert len(n.payments) == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("type"), "no event type"),
        (lambda p: p.pop("id"), "has no id"),
        (lambda p: p["data"].pop("object"), "has no data.object"),
        (lambda p: p["data"]["object"].pop("amount_total"), "has no amount_total"),
        (lambda p: p["data"]["object"].update(amount_total=2997.5), "integer amount"),
        (lambda p: p["data"]["object"].update(amount_total=True), "integer amount"),
        (lambda p: p.update(created="yesterday"), "'created'"),
    ],
)
def test_unreadable_payloads_are_errors(mutate: Any, message: str) -> None:
    payload = load(FULL)
    mutate(payload)
    with pytest.raises(PayloadError, match=message):
        stripe.parse(payload, received_at=T)


@pytest.mark.parametrize("body", [[], "text", 12, None])
def test_non_object_bodies_are_errors(body: Any) -> None:
    with pytest.raises(PayloadError):
        stripe.parse(body, received_at=T)


def test_parse_is_deterministic() -> None:
    for name in ALL:
        assert stripe.parse(load(name), received_at=T) == stripe.parse(load(name), received_at=T)


# ---------------------------------------------------------------------------------------------------
# apply_event on PostgreSQL


@pytest.fixture
def engine(head_url: str) -> Iterator[Engine]:
    engine = make_engine(head_url)
    yield engine
    engine.dispose()


def deliver(engine: Engine, payload: Any, tenant: UUID = PPCU, received_at: datetime = T) -> ApplyResult:
    with tenant_session(engine, tenant) as conn:
        return apply_event(conn, tenant, stripe.parse(payload, received_at=received_at), received_at=received_at)


def manychat_contact(mc_id: str = "5550001", email: str = JANE) -> dict[str, Any]:
    return {
        "event_type": "contact_created",
        "subscriber": {"id": mc_id, "first_name": "Jane", "last_name": "Doe", "email": email,
                       "subscribed": "2025-11-01T12:00:00+00:00", "custom_fields": {}},
    }


def subscribe(engine: Engine, payload: Any | None = None, tenant: UUID = PPCU) -> ApplyResult:
    payload = payload or manychat_contact()
    with tenant_session(engine, tenant) as conn:
        return apply_event(conn, tenant, manychat.parse(payload, received_at=T), received_at=T)


def payments(engine: Engine, tenant: UUID = PPCU) -> dict[str, dict[str, Any]]:
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text("SELECT * FROM payments ORDER BY payment_event_id")).mappings().all()
    return {r["payment_event_id"]: dict(r) for r in rows}


def events(engine: Engine, tenant: UUID = PPCU) -> dict[str, dict[str, Any]]:
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text("SELECT * FROM funnel_events ORDER BY source_event_id")).mappings().all()
    return {r["source_event_id"]: dict(r) for r in rows}


def contacts(engine: Engine, tenant: UUID = PPCU) -> list[dict[str, Any]]:
    with tenant_session(engine, tenant) as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM contacts ORDER BY created_at, id")).mappings()]


def test_orphan_payment_is_stored_then_linked_when_its_contact_appears(engine: Engine) -> None:
    payload = load(FULL)
    result = deliver(engine, payload)
    assert result.status == "orphan"
    assert result.contact_id is None
    assert result.payments == ["evt_1QfUlLpUrChAsE2997aaaa"]
    row = payments(engine)["evt_1QfUlLpUrChAsE2997aaaa"]
    assert row["tenant_id"] == PPCU
    assert row["contact_id"] is None
    assert row["payment_source"] == "stripe"
    assert row["payment_type"] == "buy_in_full"
    assert row["payment_category"] == "full_purchase"
    assert row["amount"] == Decimal("2997.00")
    assert row["currency"] == "usd"
    assert row["status"] == "paid"
    assert row["payment_date"] == at("2025-11-20T16:00:00")
    assert row["customer_email"] == JANE
    assert row["customer_name"] == "Jane Doe"
    assert row["customer_phone"] == "+15125550101"
    assert row["stripe_event_type"] == "checkout.session.completed"
    assert row["stripe_customer_id"] == "cus_RfUlLpUrChAsE1"
    assert row["stripe_session_id"] == "cs_live_a1B2c3D4e5F6g7H8i9J0full"
    assert row["denefits_contract_code"] is None
    assert row["raw_payload"] == payload
    assert contacts(engine) == []
    assert events(engine) == {}

    linked = subscribe(engine)  # ManyChat: the contact appears, in another transaction
    assert linked.status == "processed"
    assert linked.linked_payments == ["evt_1QfUlLpUrChAsE2997aaaa"]
    [contact] = contacts(engine)
    assert contact["stage"] == "purchased"
    assert payments(engine)["evt_1QfUlLpUrChAsE2997aaaa"]["contact_id"] == contact["id"]
    evs = events(engine)
    assert set(evs) == {"mc_5550001_contact_subscribed", "stripe_purchase_evt_1QfUlLpUrChAsE2997aaaa"}
    purchase = evs["stripe_purchase_evt_1QfUlLpUrChAsE2997aaaa"]
    assert purchase["event_type"] == "purchase_completed"
    assert purchase["source"] == "stripe"
    assert purchase["contact_id"] == contact["id"]
    assert purchase["event_timestamp"] == at("2025-11-20T16:00:00")  # the payment's date, not the link time
    assert purchase["event_data"]["amount"] == 2997.0
    assert purchase["event_data"]["payment_category"] == "full_purchase"


def test_payment_for_a_known_contact_links_and_persists_stripe_identity(engine: Engine) -> None:
    subscribe(engine)
    result = deliver(engine, load(FULL))
    assert result.status == "processed"
    [contact] = contacts(engine)
    assert result.contact_id == contact["id"]
    assert result.created is False
    assert contact["stage"] == "purchased"
    assert contact["email_payment"] == JANE
    assert contact["stripe_customer_id"] == "cus_RfUlLpUrChAsE1"
    assert payments(engine)["evt_1QfUlLpUrChAsE2997aaaa"]["contact_id"] == contact["id"]
    assert events(engine)["stripe_purchase_evt_1QfUlLpUrChAsE2997aaaa"]["event_type"] == "purchase_completed"


def test_matching_by_stripe_customer_id_when_the_email_differs(engine: Engine) -> None:
    subscribe(engine)
    deliver(engine, load(FULL))  # teaches the contact its Stripe customer id
    payload = load(DEPOSIT)
    payload["data"]["object"].update(customer_email="jane.work@example.com", customer_details=None)
    result = deliver(engine, payload)
    [contact] = contacts(engine)
    assert (result.status, result.contact_id) == ("processed", contact["id"])


def test_deposit_moves_to_deposit_paid(engine: Engine) -> None:
    subscribe(engine)
    deliver(engine, load(DEPOSIT))
    [contact] = contacts(engine)
    assert contact["stage"] == "deposit_paid"
    row = payments(engine)["evt_1QdEpOsIt100bbbbbbbbbb"]
    assert (row["payment_category"], row["amount"], row["contact_id"]) == ("deposit", Decimal("100.00"), contact["id"])
    ev = events(engine)["stripe_deposit_evt_1QdEpOsIt100bbbbbbbbbb"]
    assert (ev["event_type"], ev["event_timestamp"]) == ("deposit_paid", at("2025-11-21T10:00:00"))


def test_deposit_after_purchase_does_not_move_the_stage_back(engine: Engine) -> None:
    subscribe(engine)
    deliver(engine, load(FULL))
    deliver(engine, load(DEPOSIT))
    [contact] = contacts(engine)
    assert contact["stage"] == "purchased"
    assert {e["event_type"] for e in events(engine).values()} == {
        "contact_subscribed", "purchase_completed", "deposit_paid"}


def test_miscellaneous_payment_is_stored_without_event_or_stage(engine: Engine) -> None:
    subscribe(engine)
    result = deliver(engine, load(MISC))
    assert result.status == "processed"
    [contact] = contacts(engine)
    assert contact["stage"] == "new_lead"
    row = payments(engine)["evt_1QmIsC49cccccccccccccc"]
    assert (row["payment_category"], row["amount"], row["contact_id"]) == (
        "miscellaneous", Decimal("49.00"), contact["id"])
    assert set(events(engine)) == {"mc_5550001_contact_subscribed"}


def test_refund_is_stored_negative_with_a_payment_refunded_event(engine: Engine) -> None:
    subscribe(engine)
    deliver(engine, load(FULL))
    result = deliver(engine, load(REFUND))
    assert result.status == "processed"
    [contact] = contacts(engine)
    assert contact["stage"] == "purchased"  # a refund never moves the stage
    row = payments(engine)["evt_3QrEfUnDgggggggggggggg"]
    assert row["amount"] == Decimal("-2997.00")
    assert (row["payment_type"], row["payment_category"], row["status"]) == ("refund", "refund", "refunded")
    assert row["payment_date"] == at("2025-12-01T12:00:00")
    assert row["contact_id"] == contact["id"]
    ev = events(engine)["evt_3QrEfUnDgggggggggggggg"]
    assert (ev["event_type"], ev["source"], ev["event_timestamp"]) == (
        "payment_refunded", "stripe", at("2025-12-01T12:00:00"))
    assert ev["event_data"]["amount"] == -2997.0


def test_checkout_started_needs_an_existing_contact(engine: Engine) -> None:
    result = deliver(engine, load(CREATED))
    assert result.status == "skipped"
    assert contacts(engine) == [] and events(engine) == {}

    subscribe(engine)
    result = deliver(engine, load(CREATED))
    assert result.status == "processed"
    [contact] = contacts(engine)
    assert contact["stage"] == "checkout_started"
    ev = events(engine)["stripe_checkout_cs_live_a1B2c3D4e5F6g7H8i9J0full"]
    assert (ev["event_type"], ev["event_timestamp"]) == ("checkout_started", at("2025-11-20T15:40:00"))
    assert payments(engine) == {}


def test_skipped_events_write_nothing(engine: Engine) -> None:
    subscribe(engine)
    before = (payments(engine), events(engine), contacts(engine))
    for name in (EXPIRED, CUSTOMER):
        assert deliver(engine, load(name)).status == "skipped"
    assert (payments(engine), events(engine), contacts(engine)) == before


def test_replaying_every_fixture_changes_nothing(engine: Engine) -> None:
    for name in ALL:  # first pass: payments before their contact (orphans)
        deliver(engine, load(name))
    subscribe(engine)
    subscribe(engine, manychat_contact("5550002", "mary.major@example.org"))
    for name in ALL:
        deliver(engine, load(name))
    state = (payments(engine), events(engine), contacts(engine))
    assert len(state[0]) == 5 and all(p["contact_id"] is not None for p in state[0].values())
    for name in ALL:
        deliver(engine, load(name))
    subscribe(engine)
    assert (payments(engine), events(engine), contacts(engine)) == state


def test_same_event_id_in_another_tenant_is_another_payment(engine: Engine) -> None:
    subscribe(engine)
    assert deliver(engine, load(FULL)).status == "processed"
    assert deliver(engine, load(FULL), tenant=CENTNER).status == "orphan"  # CENTNER has no such contact
    ppcu, centner = payments(engine), payments(engine, CENTNER)
    assert set(ppcu) == set(centner) == {"evt_1QfUlLpUrChAsE2997aaaa"}
    assert ppcu["evt_1QfUlLpUrChAsE2997aaaa"]["id"] != centner["evt_1QfUlLpUrChAsE2997aaaa"]["id"]
    assert centner["evt_1QfUlLpUrChAsE2997aaaa"]["contact_id"] is None
    assert centner["evt_1QfUlLpUrChAsE2997aaaa"]["tenant_id"] == CENTNER
    assert events(engine, CENTNER) == {}
    subscribe(engine, tenant=CENTNER)  # CENTNER's own contact links only CENTNER's payment
    assert payments(engine, CENTNER)["evt_1QfUlLpUrChAsE2997aaaa"]["contact_id"] == contacts(engine, CENTNER)[0]["id"]
    assert payments(engine)["evt_1QfUlLpUrChAsE2997aaaa"]["contact_id"] == contacts(engine)[0]["id"]


def test_a_payment_the_original_stored_deduplicates_against_its_row(engine: Engine) -> None:
    with admin_session(engine) as conn:  # the original's row: no category, its own raw payload
        legacy_id = conn.execute(text(
            "INSERT INTO payments (tenant_id, payment_event_id, payment_source, payment_type, customer_email, "
            "amount, currency, status, payment_date, stripe_session_id, raw_payload) VALUES (:t, "
            "'evt_1QfUlLpUrChAsE2997aaaa', 'stripe', 'buy_in_full', 'Jane.Doe@Example.com', 2997, 'usd', "
            "'paid', '2025-11-20T16:00:00Z', 'cs_live_a1B2c3D4e5F6g7H8i9J0full', '{\"legacy\": true}') RETURNING id"
        ), {"t": PPCU}).scalar_one()
    subscribe(engine)
    result = deliver(engine, load(FULL))
    assert result.status == "processed"
    [row] = payments(engine).values()
    assert row["id"] == legacy_id
    assert row["raw_payload"] == {"legacy": True}  # the stored row is kept, not overwritten
    assert row["payment_category"] == "full_purchase"  # filled by the category trigger
    [contact] = contacts(engine)
    assert row["contact_id"] == contact["id"]
    assert contact["stage"] == "purchased"
    assert events(engine)["stripe_purchase_evt_1QfUlLpUrChAsE2997aaaa"]["event_type"] == "purchase_completed"


# ---------------------------------------------------------------------------------------------------
# Property: any order and duplication of deliveries ends in the same state

PROPERTY_DELIVERIES: tuple[tuple[str, str], ...] = (
    ("manychat", "contact"),
    ("stripe", FULL),
    ("stripe", DEPOSIT),
    ("stripe", MISC),
    ("stripe", REFUND),
    ("stripe", EXPIRED),
)
# checkout.session.created is left out on purpose: like the original, a checkout start for a contact
# that does not exist yet is skipped, not kept for later, so its outcome depends on the order.


def _run(engine: Engine, order: list[int]) -> tuple[Any, ...]:
    with admin_session(engine) as conn:
        conn.execute(text("TRUNCATE contacts, funnel_events, payments CASCADE"))
    for i in order:
        source, name = PROPERTY_DELIVERIES[i]
        if source == "manychat":
            subscribe(engine)
        else:
            deliver(engine, load(name))
    [contact] = contacts(engine)
    pays = {k: (v["contact_id"] == contact["id"], v["amount"], v["payment_category"], v["payment_date"],
                v["status"]) for k, v in payments(engine).items()}
    evs = {(e["event_type"], e["source"], k, e["event_timestamp"], json.dumps(e["event_data"], sort_keys=True),
            e["contact_id"] == contact["id"]) for k, e in events(engine).items()}
    return pays, evs, contact["stage"]


_EXPECTED: dict[str, tuple[Any, ...]] = {}


@st.composite
def orders(draw: st.DrawFn) -> list[int]:
    extra = draw(st.lists(st.sampled_from(range(len(PROPERTY_DELIVERIES))), max_size=4))
    return draw(st.permutations(list(range(len(PROPERTY_DELIVERIES))) + extra))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=orders())
def test_any_order_and_duplication_gives_the_same_state(engine: Engine, order: list[int]) -> None:
    key = str(engine.url)
    if key not in _EXPECTED:  # the in-order delivery, once per database
        _EXPECTED[key] = _run(engine, list(range(len(PROPERTY_DELIVERIES))))
    expected = _EXPECTED[key]
    assert expected[2] == "purchased"
    assert all(linked for linked, *_ in expected[0].values())
    assert _run(engine, order) == expected
