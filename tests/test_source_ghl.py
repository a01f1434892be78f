"""GoHighLevel webhooks (spec 3.6): the pure parser on recorded-shape fixtures, then ``apply_event`` on a
real PostgreSQL — created contacts, stages, tags, keys, redelivery, ManyChat linking (R-20), null never
unlinks (R-13), stage only forward (R-14), skips, two tenants, and order independence (hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row
from sqlalchemy import Engine, text

from mcb.db.engine import make_engine
from mcb.db.session import tenant_session
from mcb.funnel.apply import ApplyResult, apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, PayloadError
from mcb.ingest.sources import manychat
from mcb.ingest.sources.ghl import classify, derive, parse

FIXTURES = Path(__file__).parent / "fixtures" / "ghl"
PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
T = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
MARIA = "Xk3fP9qLmN2rT8vB1cD4"
MATCH_BY = ("ghl_id", "mc_id", "email", "phone")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------ pure parse

def test_form_filled_is_a_form_submission_not_an_appointment() -> None:
    """R-18: the PPCU pipeline's Form Filled stage is a form_submitted event and stage."""
    tags = {"funnel": "jane_paid", "booking_source": "jane", "ghl_stage": "Form Filled", "pipeline": "ppcu_pipeline"}
    assert parse(fixture("opportunity_create_form_filled"), received_at=T) == Normalized(
        source="ghl",
        event_type="OpportunityCreate",
        contact=ContactFacts(
            ghl_id=MARIA, mc_id="1234567890", email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", ad_id="120212345678900123", source="instagram",
            source_rule="live", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id=f"ghl_{MARIA}_form_submitted",
            occurred_at=T,
            stage="form_submitted",
            data={
                "ghl_event": "OpportunityCreate", "ghl_contact_id": MARIA, "ghl_stage": "Form Filled",
                "custom_stage": "form_filled", "pipeline_name": "PPCU PIPELINE", "pipeline_id": "PIPEppcu0001",
                "opportunity_name": "Maria Lopez", "opportunity_status": "open",
                "opportunity_source": "jane booking", "lead_value": 0, "workflow_name": "MCB - Form Filled",
                "ghl_tags": ["ppcu lead", "jane"], "mc_id": "1234567890", "ad_id": "120212345678900123",
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_dc_booked_is_an_appointment_at_the_booking_time() -> None:
    """Exact stage "DC BOOKED" (correctly spelled pipeline_stage key); the booking's creation time is the
    event time; an empty customData.MC_ID falls back to the root MC_ID; an unrendered merge tag is no AD_ID."""
    tags = {"ghl_stage": "DC BOOKED", "pipeline": "free_discovery_call"}
    assert parse(fixture("dc_booked"), received_at=T) == Normalized(
        source="ghl",
        event_type="OpportunityCreate",
        contact=ContactFacts(
            ghl_id=MARIA, mc_id="1234567890", email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", source="instagram", source_rule="live", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="appointment_scheduled",
            source_event_id=f"ghl_{MARIA}_appointment_scheduled",
            occurred_at=datetime(2025, 11, 4, 16, 20, 5, tzinfo=UTC),
            stage="meeting_booked",
            data={
                "ghl_event": "OpportunityCreate", "ghl_contact_id": MARIA, "ghl_stage": "DC BOOKED",
                "pipeline_name": "FREE DISCOVERY CALL PIPELINE", "pipeline_id": "PIPEfdc0001",
                "opportunity_name": "Maria Lopez - Discovery Call", "opportunity_status": "open",
                "lead_value": 100, "appointment_at": "2025-11-06T15:00:00+00:00",
                "calendar_name": "Free Discovery Call", "workflow_name": "MCB - DC Booked",
                "ghl_tags": ["discovery call"], "mc_id": "1234567890",
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_meeting_attended_uses_the_mapped_date() -> None:
    tags = {"ghl_stage": "Meeting Attended", "pipeline": "ppcu_pipeline"}
    assert parse(fixture("meeting_attended"), received_at=T) == Normalized(
        source="ghl",
        event_type="MeetingCompleted",
        contact=ContactFacts(
            ghl_id=MARIA, mc_id="1234567890", email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", source="instagram", source_rule="live", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="appointment_held",
            source_event_id=f"ghl_{MARIA}_appointment_held",
            occurred_at=datetime(2025, 11, 10, 19, 45, tzinfo=UTC),
            stage="meeting_held",
            data={
                "ghl_event": "MeetingCompleted", "ghl_contact_id": MARIA, "ghl_stage": "Meeting Attended",
                "custom_stage": "meeting_attended", "pipeline_name": "PPCU PIPELINE",
                "pipeline_id": "PIPEppcu0001", "opportunity_name": "Maria Lopez", "opportunity_status": "open",
                "lead_value": 0, "workflow_name": "MCB - Meeting Attended",
                "ghl_tags": ["ppcu lead", "jane", "attended"], "mc_id": "1234567890",
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_completed_dc_is_held_at_the_appointment_start_in_the_calendar_zone() -> None:
    """"COMPLETED DC" exactly; startTime 10:00 America/New_York is 15:00 UTC; MC_ID null says nothing (R-13),
    so the contact facts carry no mc_id and the fallback source "website" is a default, not evidence."""
    tags = {"ghl_stage": "COMPLETED DC", "pipeline": "free_discovery_call"}
    assert parse(fixture("completed_dc"), received_at=T) == Normalized(
        source="ghl",
        event_type="MeetingCompleted",
        contact=ContactFacts(
            ghl_id=MARIA, email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", source="website", source_rule="default", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="appointment_held",
            source_event_id=f"ghl_{MARIA}_appointment_held",
            occurred_at=datetime(2025, 11, 6, 15, 0, tzinfo=UTC),
            stage="meeting_held",
            data={
                "ghl_event": "MeetingCompleted", "ghl_contact_id": MARIA, "ghl_stage": "COMPLETED DC",
                "pipeline_name": "FREE DISCOVERY CALL PIPELINE", "pipeline_id": "PIPEfdc0001",
                "opportunity_name": "Maria Lopez - Discovery Call", "opportunity_status": "open",
                "lead_value": 100, "appointment_at": "2025-11-06T15:00:00+00:00",
                "calendar_name": "Free Discovery Call", "workflow_name": "MCB - Completed DC",
                "ghl_tags": ["discovery call"],
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_held_time_is_never_after_the_receive_time() -> None:
    early = datetime(2025, 11, 5, tzinfo=UTC)  # before the appointment's start
    assert parse(fixture("completed_dc"), received_at=early).events[0].occurred_at == early


def test_package_sent() -> None:
    tags = {"package": "12-week", "ghl_stage": "Package Sent", "pipeline": "ppcu_pipeline"}
    assert parse(fixture("package_sent"), received_at=T) == Normalized(
        source="ghl",
        event_type="PackageSent",
        contact=ContactFacts(
            ghl_id=MARIA, mc_id="1234567890", email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", source="instagram", source_rule="live", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="package_sent",
            source_event_id=f"ghl_{MARIA}_package_sent",
            occurred_at=T,
            stage="package_sent",
            data={
                "ghl_event": "PackageSent", "ghl_contact_id": MARIA, "ghl_stage": "Package Sent",
                "custom_stage": "package_sent", "pipeline_name": "PPCU PIPELINE", "pipeline_id": "PIPEppcu0001",
                "opportunity_name": "Maria Lopez", "opportunity_status": "open", "lead_value": 3600,
                "workflow_name": "MCB - Package Sent",
                "ghl_tags": ["ppcu lead", "jane", "attended", "package sent"], "mc_id": "1234567890",
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_no_show_is_skipped() -> None:
    assert parse(fixture("no_show"), received_at=T) == Normalized(
        source="ghl",
        event_type="NoShow",
        contact=ContactFacts(
            ghl_id=MARIA, email_booking="maria.lopez@example.com", phone="+13055550142", first_name="Maria",
            last_name="Lopez", source="website", source_rule="default",
            tags={"ghl_stage": "NO SHOW", "pipeline": "free_discovery_call"},
        ),
        match_by=MATCH_BY,
        skip_reason="no-show stage 'NO SHOW': nothing happened to record",
    )


def test_deposit_paid_stage_is_skipped() -> None:
    assert parse(fixture("deposit_paid"), received_at=T) == Normalized(
        source="ghl",
        event_type="PaymentStage",
        contact=ContactFacts(
            ghl_id=MARIA, mc_id="1234567890", email_booking="maria.lopez@example.com", phone="+13055550142",
            first_name="Maria", last_name="Lopez", source="instagram", source_rule="live",
            tags={"ghl_stage": "$100 Deposit Paid", "pipeline": "free_discovery_call"},
        ),
        match_by=MATCH_BY,
        skip_reason="payment stage '$100 Deposit Paid': payments come from Stripe and Denefits",
    )


def test_contact_update_has_a_content_key_and_records_unknown_keys() -> None:
    """No stage; MC_ID null and AD_ID "null" say nothing; customData.tags as a JSON string is read; a
    contact custom field GHL puts at the root is recorded as unknown (R-45)."""
    n = parse(fixture("contact_update"), received_at=T)
    key = n.events[0].source_event_id
    assert key.startswith(f"ghl_{MARIA}_contact_updated_") and len(key) == len(f"ghl_{MARIA}_contact_updated_") + 16
    assert n == Normalized(
        source="ghl",
        event_type="ContactUpdate",
        contact=ContactFacts(
            ghl_id=MARIA, email_booking="maria.lopez@example.com", phone="+13055550142", first_name="Maria",
            last_name="Lopez", source="website", source_rule="default", tags={"lead_type": "postpartum"},
        ),
        events=(FunnelEvent(
            event_type="contact_updated",
            source_event_id=key,
            occurred_at=T,
            stage=None,
            data={"ghl_event": "ContactUpdate", "ghl_contact_id": MARIA, "workflow_name": "MCB - Contact Changed",
                  "ghl_tags": ["ppcu lead"]},
            tags={"lead_type": "postpartum"},
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
        unknown_keys=("How far postpartum are you?",),
    )
    # The same body is the same update; a different body is another one.
    assert parse(fixture("contact_update"), received_at=T + timedelta(hours=1)).events[0].source_event_id == key
    changed = fixture("contact_update") | {"last_name": "Lopez-Diaz"}
    assert parse(changed, received_at=T).events[0].source_event_id != key


def test_misspelled_pipleline_stage_is_read() -> None:
    tags = {"ghl_stage": "Call Scheduled", "pipeline": "centner_consults"}
    ana = "Qw7eR5tY3uI1oP9aS2dF"
    assert parse(fixture("misspelled_pipleline_stage"), received_at=T) == Normalized(
        source="ghl",
        event_type="OpportunityCreate",
        contact=ContactFacts(
            ghl_id=ana, email_booking="ana.silva@example.com", phone="+17865550133", first_name="Ana",
            last_name="Silva", source="website", source_rule="default", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="appointment_scheduled",
            source_event_id=f"ghl_{ana}_appointment_scheduled",
            occurred_at=T,
            stage="meeting_booked",
            data={
                "ghl_event": "OpportunityCreate", "ghl_contact_id": ana, "ghl_stage": "Call Scheduled",
                "pipeline_name": "Centner Consults", "pipeline_id": "PIPEother01",
                "opportunity_name": "Ana Silva", "opportunity_status": "open",
            },
            tags=tags,
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_array_wrapped_body_with_an_explicit_type() -> None:
    """R-27: the first element of an array body; customData.event_type decides; empty root fields fall back
    to customData; full_name is split when there are no first/last names; customData.source wins."""
    lucia = "Zx9cV7bN5mL3kJ1hG8fD"
    assert parse(fixture("array_wrapped"), received_at=T) == Normalized(
        source="ghl",
        event_type="MeetingCompleted",
        contact=ContactFacts(
            ghl_id=lucia, email_booking="lucia.gomez@example.com", phone="+19545550119", first_name="Lucia",
            last_name="Gomez Perez", ad_id="120219999999990077", source="instagram_story", source_rule="live",
        ),
        events=(FunnelEvent(
            event_type="appointment_held",
            source_event_id=f"ghl_{lucia}_appointment_held",
            occurred_at=T,
            stage="meeting_held",
            data={"ghl_event": "MeetingCompleted", "ghl_contact_id": lucia, "ad_id": "120219999999990077"},
        ),),
        match_by=MATCH_BY,
        lead_event_type="contact_created",
    )


def test_missing_contact_id_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="no contact_id"):
        parse(fixture("missing_contact_id"), received_at=T)


@pytest.mark.parametrize("body", [[], "text", 42, [7]])
def test_unreadable_bodies_are_payload_errors(body: Any) -> None:
    with pytest.raises(PayloadError):
        parse(body, received_at=T)


def test_unknown_explicit_type_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="unknown GHL event type 'InboundMessage'"):
        parse({"contact_id": "c1", "type": "InboundMessage"}, received_at=T)


def test_root_email_wins_over_custom_data_email() -> None:
    """customData.email sometimes held the host's address (spec 3.6)."""
    body = {"contact_id": "c1", "email": "Client@Example.com", "customData": {"email": "host@clinic.com"}}
    assert parse(body, received_at=T).contact.email_booking == "client@example.com"
    body = {"contact_id": "c1", "email": "", "customData": {"email": "host@clinic.com"}}
    assert parse(body, received_at=T).contact.email_booking == "host@clinic.com"


def test_unreadable_custom_tags_are_recorded_not_dropped() -> None:
    n = parse({"contact_id": "c1", "customData": {"contact_id": "c1", "tags": ["a", "b"], "extra": 1}}, received_at=T)
    assert n.contact.tags == {}
    assert n.unknown_keys == ("customData.extra", "customData.tags")


@pytest.mark.parametrize(
    ("ghl_stage", "custom_stage", "expected"),
    [
        ("No Show", None, ("NoShow", "skip_no_show")),
        ("NOSHOW - follow up", None, ("NoShow", "skip_no_show")),
        ("no-show", "meeting_booked", ("NoShow", "skip_no_show")),
        ("$100 Deposit Paid", None, ("PaymentStage", "skip_payment")),
        ("Pay In Full", None, ("PaymentStage", "skip_payment")),
        ("Payment Plan", None, ("PaymentStage", "skip_payment")),
        (None, "form_filled", ("OpportunityCreate", "form_submitted")),
        ("Form Filled", None, ("OpportunityCreate", "form_submitted")),
        ("DC BOOKED", "form_filled", ("OpportunityCreate", "form_submitted")),  # custom stage first
        (None, "meeting_booked", ("OpportunityCreate", "appointment_scheduled")),
        (None, "meeting_attended", ("MeetingCompleted", "appointment_held")),
        (None, "package_sent", ("PackageSent", "package_sent")),
        ("dc booked", None, ("OpportunityCreate", "appointment_scheduled")),
        ("Completed DC", None, ("MeetingCompleted", "appointment_held")),
        ("Rescheduled", None, ("OpportunityCreate", "appointment_scheduled")),
        ("Consult Booked", None, ("OpportunityCreate", "appointment_scheduled")),
        ("Call Completed", None, ("MeetingCompleted", "appointment_held")),
        ("Attended", None, ("MeetingCompleted", "appointment_held")),
        ("Package Presented", None, ("PackageSent", "package_sent")),
        ("Contract Sent", None, ("PackageSent", "package_sent")),
        ("Consent Form", None, ("ContactUpdate", "contact_updated")),
        ("New Lead", None, ("ContactUpdate", "contact_updated")),
        (None, None, ("ContactUpdate", "contact_updated")),
    ],
)
def test_stage_name_derivation(ghl_stage: str | None, custom_stage: str | None, expected: tuple[str, str]) -> None:
    assert derive(ghl_stage, custom_stage) == expected


@pytest.mark.parametrize(
    ("explicit", "ghl_stage", "expected"),
    [
        ("OpportunityCreate", "Form Filled", ("OpportunityCreate", "form_submitted")),
        ("OpportunityCreate", "DC BOOKED", ("OpportunityCreate", "appointment_scheduled")),
        ("OpportunityCreate", None, ("OpportunityCreate", "form_submitted")),
        ("opportunity_stage_update", "Meeting Attended", ("OpportunityStageUpdate", "appointment_held")),
        ("OpportunityStageUpdate", "New Lead", ("OpportunityStageUpdate", "contact_updated")),
        ("OpportunityCreate", "NO SHOW", ("OpportunityCreate", "skip_no_show")),
        ("MeetingCompleted", "DC BOOKED", ("MeetingCompleted", "appointment_held")),
        ("PackageSent", None, ("PackageSent", "package_sent")),
        ("ContactCreate", "DC BOOKED", ("ContactCreate", "contact_updated")),
        ("contact update", None, ("ContactUpdate", "contact_updated")),
        ("NoShow", "DC BOOKED", ("NoShow", "skip_no_show")),
        ("PaymentStage", None, ("PaymentStage", "skip_payment")),
        ("appointment_scheduled", None, ("appointment_scheduled", "appointment_scheduled")),
        ("form_submitted", "Meeting Attended", ("form_submitted", "form_submitted")),
    ],
)
def test_explicit_types(explicit: str, ghl_stage: str | None, expected: tuple[str, str]) -> None:
    assert classify(explicit, ghl_stage, None) == expected


# ------------------------------------------------------------------------------------ apply on Postgres

@pytest.fixture
def engine(head_url: str) -> Iterator[Engine]:
    engine = make_engine(head_url)
    yield engine
    engine.dispose()


def deliver(engine: Engine, tenant: UUID, payload: Any, at: datetime = T) -> ApplyResult:
    with tenant_session(engine, tenant) as conn:
        return apply_event(conn, tenant, parse(payload, received_at=at), received_at=at)


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("SET mcb.admin = 'on'")
        return conn.execute(sql, params or {}).fetchall()


def contacts(url: str, tenant: UUID = PPCU) -> list[dict[str, Any]]:
    return query(url, "SELECT * FROM contacts WHERE tenant_id = %(t)s ORDER BY created_at, id", {"t": tenant})


def events(url: str, tenant: UUID = PPCU) -> list[dict[str, Any]]:
    return query(url, "SELECT * FROM funnel_events WHERE tenant_id = %(t)s ORDER BY event_timestamp, source_event_id",
                 {"t": tenant})


def test_form_filled_creates_a_lead_with_its_milestone(head_url: str, engine: Engine) -> None:
    result = deliver(engine, PPCU, fixture("opportunity_create_form_filled"))
    assert (result.status, result.created, result.events_created) == ("processed", True, 2)

    [contact] = contacts(head_url)
    assert contact["id"] == result.contact_id
    assert contact["tenant_id"] == PPCU
    assert contact["ghl_id"] == MARIA
    assert contact["mc_id"] == "1234567890"
    assert contact["email_primary"] is None
    assert contact["email_booking"] == "maria.lopez@example.com"
    assert contact["email_payment"] is None
    assert contact["phone"] == "+13055550142"
    assert (contact["first_name"], contact["last_name"]) == ("Maria", "Lopez")
    assert contact["ad_id"] == "120212345678900123"
    assert contact["source"] == "instagram"
    assert contact["stage"] == "form_submitted"
    assert contact["tags"] == {"funnel": "jane_paid", "booking_source": "jane", "ghl_stage": "Form Filled",
                               "pipeline": "ppcu_pipeline"}

    rows = events(head_url)
    assert len(rows) == 2
    lead, form = (next(e for e in rows if e["event_type"] == t) for t in ("contact_created", "form_submitted"))
    assert (lead["event_type"], lead["source"], lead["source_event_id"]) == (
        "contact_created", "ghl", f"ghl_{contact['ghl_id']}_contact_created")
    assert lead["event_timestamp"] == T
    assert lead["contact_id"] == contact["id"]
    assert lead["event_data"] == {"evidenced_by": "OpportunityCreate"}
    assert (form["event_type"], form["source"], form["source_event_id"]) == (
        "form_submitted", "ghl", f"ghl_{MARIA}_form_submitted")
    assert form["event_timestamp"] == T
    assert form["contact_id"] == contact["id"]
    assert form["event_data"]["custom_stage"] == "form_filled"
    assert form["event_data"]["pipeline_name"] == "PPCU PIPELINE"
    assert form["tags"] == contact["tags"]
    assert form["contact_snapshot"]["stage"] == "form_submitted"
    assert form["created_by"] == "webhook"


def test_redelivery_creates_nothing(head_url: str, engine: Engine) -> None:
    body = fixture("dc_booked")
    deliver(engine, PPCU, body)
    before_contacts, before_events = contacts(head_url), events(head_url)

    replay = deliver(engine, PPCU, body)  # the same inbox row processed again
    assert (replay.status, replay.created, replay.events_created) == ("processed", False, 0)
    assert contacts(head_url) == before_contacts
    assert events(head_url) == before_events

    retry = deliver(engine, PPCU, body, T + timedelta(minutes=5))  # GHL sends it again later
    assert (retry.status, retry.created, retry.events_created) == ("processed", False, 0)
    assert events(head_url) == before_events
    [after] = contacts(head_url)
    for column in ("ghl_id", "mc_id", "email_booking", "phone", "first_name", "last_name", "source", "stage", "tags"):
        assert after[column] == before_contacts[0][column]


def test_manychat_contact_is_linked_by_mc_id_and_null_never_unlinks(head_url: str, engine: Engine) -> None:
    subscriber = {
        "event_type": "contact_created",
        "subscriber": {"id": "1234567890", "first_name": "Maria", "last_name": "Lopez", "ig_username": "maria.lopez",
                       "subscribed": "2025-11-01T10:00:00+00:00", "custom_fields": {"AD_ID": "120212345678900123"}},
    }
    with tenant_session(engine, PPCU) as conn:
        mc = apply_event(conn, PPCU, manychat.parse(subscriber, received_at=T - timedelta(days=19)),
                         received_at=T - timedelta(days=19))
    assert mc.created

    booked = deliver(engine, PPCU, fixture("dc_booked"), T - timedelta(days=16))
    assert (booked.status, booked.contact_id, booked.created) == ("processed", mc.contact_id, False)
    [contact] = contacts(head_url)
    assert contact["ghl_id"] == MARIA  # the link is persisted
    assert contact["mc_id"] == "1234567890"
    assert contact["email_booking"] == "maria.lopez@example.com"
    assert contact["ig"] == "maria.lopez"
    assert contact["stage"] == "meeting_booked"
    assert contact["source"] == "instagram"

    held = deliver(engine, PPCU, fixture("completed_dc"))  # customData.MC_ID null
    assert (held.contact_id, held.created) == (mc.contact_id, False)
    [contact] = contacts(head_url)
    assert contact["mc_id"] == "1234567890"
    assert contact["ghl_id"] == MARIA
    assert contact["stage"] == "meeting_held"
    assert [(e["event_type"], e["source"], e["source_event_id"]) for e in events(head_url)] == [
        ("contact_subscribed", "manychat", "mc_1234567890_contact_subscribed"),
        ("appointment_scheduled", "ghl", f"ghl_{MARIA}_appointment_scheduled"),
        # GoHighLevel's deliveries evidence its lead event too (the contact's lead time is the earliest one).
        ("contact_created", "ghl", f"ghl_{MARIA}_contact_created"),
        ("appointment_held", "ghl", f"ghl_{MARIA}_appointment_held"),
    ]


def test_stage_never_moves_back(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("meeting_attended"))
    late_booking = deliver(engine, PPCU, fixture("dc_booked"), T + timedelta(hours=1))
    assert (late_booking.status, late_booking.events_created) == ("processed", 1)
    [contact] = contacts(head_url)
    assert contact["stage"] == "meeting_held"
    assert {e["event_type"] for e in events(head_url)} == {"contact_created", "appointment_held", "appointment_scheduled"}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("no_show", "no-show stage 'NO SHOW': nothing happened to record"),
        ("deposit_paid", "payment stage '$100 Deposit Paid': payments come from Stripe and Denefits"),
    ],
)
def test_skips_write_nothing(head_url: str, engine: Engine, name: str, reason: str) -> None:
    result = deliver(engine, PPCU, fixture(name))
    assert (result.status, result.detail, result.contact_id) == ("skipped", reason, None)
    assert contacts(head_url) == []
    assert events(head_url) == []


def test_skip_leaves_an_existing_contact_untouched(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("dc_booked"))
    before = contacts(head_url), events(head_url)
    assert deliver(engine, PPCU, fixture("no_show"), T + timedelta(hours=1)).status == "skipped"
    assert (contacts(head_url), events(head_url)) == before


def test_contact_update_creates_a_lead_without_a_stage(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("contact_update"))
    [contact] = contacts(head_url)
    assert contact["stage"] == "new_lead"
    assert contact["mc_id"] is None
    assert contact["source"] == "website"
    assert contact["tags"] == {"lead_type": "postpartum"}
    assert [(e["event_type"], e["source_event_id"]) for e in events(head_url)] == sorted(
        [("contact_created", f"ghl_{contact['ghl_id']}_contact_created"),
         ("contact_updated", parse(fixture("contact_update"), received_at=T).events[0].source_event_id)],
        key=lambda pair: pair[1])


def test_array_wrapped_and_misspelled_stage_create_their_contacts(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("array_wrapped"))
    deliver(engine, PPCU, fixture("misspelled_pipleline_stage"))
    by_ghl = {c["ghl_id"]: c for c in contacts(head_url)}
    assert by_ghl["Zx9cV7bN5mL3kJ1hG8fD"]["stage"] == "meeting_held"
    assert by_ghl["Zx9cV7bN5mL3kJ1hG8fD"]["source"] == "instagram_story"
    assert by_ghl["Qw7eR5tY3uI1oP9aS2dF"]["stage"] == "meeting_booked"
    assert by_ghl["Qw7eR5tY3uI1oP9aS2dF"]["tags"] == {"ghl_stage": "Call Scheduled", "pipeline": "centner_consults"}


def test_two_tenants_never_share_a_contact(head_url: str, engine: Engine) -> None:
    ppcu = deliver(engine, PPCU, fixture("opportunity_create_form_filled"))
    centner = deliver(engine, CENTNER, fixture("opportunity_create_form_filled"))
    assert ppcu.created and centner.created and ppcu.contact_id != centner.contact_id
    [a], [b] = contacts(head_url, PPCU), contacts(head_url, CENTNER)
    assert (a["tenant_id"], b["tenant_id"]) == (PPCU, CENTNER)
    assert a["ghl_id"] == b["ghl_id"] == MARIA
    assert {e["contact_id"] for e in events(head_url, CENTNER)} == {b["id"]}
    assert [e["source_event_id"] for e in events(head_url, CENTNER) if e["event_type"] == "form_submitted"] == [
        f"ghl_{MARIA}_form_submitted"]
    with tenant_session(engine, CENTNER) as conn:
        assert conn.execute(text("SELECT count(*) FROM contacts")).scalar() == 1
    # A later delivery for PPCU touches only PPCU's contact.
    deliver(engine, PPCU, fixture("meeting_attended"), T + timedelta(hours=1))
    assert contacts(head_url, PPCU)[0]["stage"] == "meeting_held"
    assert contacts(head_url, CENTNER)[0]["stage"] == "form_submitted"


# ------------------------------------------------------------------------------- order independence

# One person's GHL deliveries, each with the time it was received. The deliveries without MC_ID (so with
# source "website") are the latest evidence: see test_same_value_evidence_keeps_its_earliest_time.
DELIVERIES: list[tuple[str, datetime]] = [
    ("opportunity_create_form_filled", datetime(2025, 11, 3, 14, 5, tzinfo=UTC)),
    ("dc_booked", datetime(2025, 11, 4, 16, 21, tzinfo=UTC)),
    ("no_show", datetime(2025, 11, 6, 16, 0, tzinfo=UTC)),
    ("meeting_attended", datetime(2025, 11, 10, 19, 50, tzinfo=UTC)),
    ("package_sent", datetime(2025, 11, 11, 9, 0, tzinfo=UTC)),
    ("deposit_paid", datetime(2025, 11, 12, 9, 0, tzinfo=UTC)),
    ("contact_update", datetime(2025, 11, 13, 9, 0, tzinfo=UTC)),
]


def _truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE contacts, funnel_events, payments CASCADE")


State = tuple[list[tuple[Any, ...]], set[tuple[str, str, datetime | None]]]


def _state(url: str, *, times: bool = False) -> State:
    """The final contact rows and the set of (event type, key), the lead key's contact id abstracted (it is
    a fresh UUID each run); with ``times``, each non-lead event's time too."""
    people = contacts(url)
    rows = [
        (c["stage"], c["ghl_id"], c["mc_id"], c["email_primary"], c["email_booking"], c["email_payment"],
         c["phone"], c["first_name"], c["last_name"], c["ad_id"], c["source"], c["tags"])
        for c in people
    ]
    keyed = {
        (e["event_type"], e["source_event_id"].replace(str(e["contact_id"]), "<contact>"),
         e["event_timestamp"] if times and e["event_type"] != "contact_created" else None)
        for e in events(url)
    }
    return rows, keyed


def _deliver_all(url: str, engine: Engine, order: list[tuple[int, bool]],
                 deliveries: list[tuple[str, datetime]] = DELIVERIES, *, times: bool = False) -> State:
    """Apply deliveries[i] for each (i, retry) in order; a retry is GHL sending it again a second later."""
    _truncate(url)
    for i, retry in order:
        name, at = deliveries[i]
        deliver(engine, PPCU, fixture(name), at + timedelta(seconds=1 if retry else 0))
    return _state(url, times=times)


_IN_ORDER: dict[str, State] = {}


@st.composite
def deliveries_with_repeats(draw: st.DrawFn) -> list[tuple[int, bool]]:
    """Every delivery once, in any order, plus up to four repeats anywhere: the same inbox row processed
    again (replay) or the sender's retry, received a second later."""
    order = [(i, False) for i in draw(st.permutations(range(len(DELIVERIES))))]
    for repeat in draw(st.lists(st.tuples(st.sampled_from(range(len(DELIVERIES))), st.booleans()), max_size=4)):
        order.insert(draw(st.integers(0, len(order))), repeat)
    return order


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=deliveries_with_repeats())
def test_any_order_and_duplication_gives_the_in_order_state(head_url: str, engine: Engine,
                                                            order: list[tuple[int, bool]]) -> None:
    if head_url not in _IN_ORDER:  # one database per test, shared by its examples
        _IN_ORDER[head_url] = _deliver_all(head_url, engine, [(i, False) for i in range(len(DELIVERIES))])
    expected = _IN_ORDER[head_url]
    assert [row[0] for row in expected[0]] == ["package_sent"]
    assert _deliver_all(head_url, engine, order) == expected


def test_same_value_evidence_keeps_its_earliest_time(head_url: str, engine: Engine) -> None:
    """Source "instagram" (MC_ID present) at t1 and t3, "website" (MC_ID null) at t2: the earliest evidence,
    instagram at t1, must win whatever the order. Delivered t3, t1, t2, the stored source time stays t3
    (the same value at t1 does not lower it), so website (t2) replaces instagram."""
    deliveries = [
        ("opportunity_create_form_filled", datetime(2025, 11, 3, 14, 5, tzinfo=UTC)),  # instagram, t1
        ("completed_dc", datetime(2025, 11, 6, 16, 0, tzinfo=UTC)),  # website, held at t2 = 11-06 15:00
        ("meeting_attended", datetime(2025, 11, 10, 19, 50, tzinfo=UTC)),  # instagram, t3 = 11-10 19:45
    ]
    in_order = _deliver_all(head_url, engine, [(0, False), (1, False), (2, False)], deliveries)
    assert in_order[0][0][10] == "instagram"
    assert _deliver_all(head_url, engine, [(2, False), (0, False), (1, False)], deliveries) == in_order
