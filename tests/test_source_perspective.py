"""Perspective funnel forms (spec 3.9): the pure parser on recorded-shape fixtures, then ``apply_event`` on a
real PostgreSQL — created leads (R-28), conversion time (R-17), one submission per funnel and person
(R-15), the rename alias and deprecated funnels (R-30), existing contacts, two tenants, and order
independence (hypothesis)."""

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
from mcb.ingest.sources import ghl, manychat
from mcb.ingest.sources.perspective import funnel_tags, parse

FIXTURES = Path(__file__).parent / "fixtures" / "perspective"
PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
T = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
CALENDLY_ID = "6650f1c2a7b3e40012ab34cd"
JANE_ID = "6650f1c2a7b3e40012ab9911"
SOFIA = "sofia.reyes@example.com"
CALENDLY_TAGS = {"funnel": "LVNG_BOF_Calendly", "booking_source": "calendly", "perspective_funnel_id": CALENDLY_ID}
JANE_TAGS = {"funnel": "LVNG_BOF_JANE", "booking_source": "jane", "perspective_funnel_id": JANE_ID}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------------ pure parse

def test_calendly_conversion() -> None:
    """The profile's address (normalized) wins over the form's; ps_converted_at is the event time."""
    assert parse(fixture("calendly"), received_at=T) == Normalized(
        source="perspective",
        event_type="conversion",
        contact=ContactFacts(
            email_primary=SOFIA, first_name="Sofia", phone="+17865550177", ad_id="120211111111110001",
            source="instagram_direct", source_rule="if_empty", tags=CALENDLY_TAGS,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id=f"perspective_{CALENDLY_ID}_{SOFIA}",
            occurred_at=datetime(2025, 11, 12, 18, 4, 31, 512000, tzinfo=UTC),
            stage="form_submitted",
            data={"funnel_name": "LVNG_BOF_Calendly", "funnel": "LVNG_BOF_Calendly", "funnel_id": CALENDLY_ID,
                  "ad_id": "120211111111110001", "utm_source": "instagram", "utm_medium": "paid",
                  "utm_campaign": "lvng_bof"},
            tags=CALENDLY_TAGS,
        ),),
        match_by=("email", "phone"),
        lead_event_type="contact_created",
    )


def test_jane_conversion_reads_values_ad_id_and_meta_time() -> None:
    assert parse(fixture("jane"), received_at=T) == Normalized(
        source="perspective",
        event_type="conversion",
        contact=ContactFacts(
            email_primary=SOFIA, first_name="Sofia", ad_id="120211111111110002", source="instagram_direct",
            source_rule="if_empty", tags=JANE_TAGS,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id=f"perspective_{JANE_ID}_{SOFIA}",
            occurred_at=datetime(2025, 11, 14, 9, 30, tzinfo=UTC),
            stage="form_submitted",
            data={"funnel_name": "LVNG_BOF_JANE", "funnel": "LVNG_BOF_JANE", "funnel_id": JANE_ID,
                  "ad_id": "120211111111110002", "utm_source": "instagram"},
            tags=JANE_TAGS,
        ),),
        match_by=("email", "phone"),
        lead_event_type="contact_created",
    )


def test_manychat_jane_payload_tags_override_and_epoch_time() -> None:
    """An empty profile phone falls back to the form's; ``adid``; ps_converted_at in epoch milliseconds;
    the payload's tags override the derived traffic_source."""
    tags = {"funnel": "LVNG_TOFMOF_MANYCHAT_JANE", "booking_source": "jane", "traffic_source": "manychat_story",
            "perspective_funnel_id": "6650f1c2a7b3e40012ab7722", "funnel_type": "tofmof"}
    assert parse(fixture("manychat_jane"), received_at=T) == Normalized(
        source="perspective",
        event_type="conversion",
        contact=ContactFacts(
            email_primary="carla.mendes@example.com", first_name="Carla", phone="+19545550160",
            ad_id="120213333333330003", source="instagram_direct", source_rule="if_empty", tags=tags,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id="perspective_6650f1c2a7b3e40012ab7722_carla.mendes@example.com",
            occurred_at=datetime(2025, 11, 12, 18, 0, tzinfo=UTC),
            stage="form_submitted",
            data={"funnel_name": "LVNG_TOFMOF_MANYCHAT_JANE", "funnel": "LVNG_TOFMOF_MANYCHAT_JANE",
                  "funnel_id": "6650f1c2a7b3e40012ab7722", "ad_id": "120213333333330003", "utm_source": "manychat"},
            tags=tags,
        ),),
        match_by=("email", "phone"),
        lead_event_type="contact_created",
    )


def test_renamed_calendly_is_the_same_funnel() -> None:
    """R-30: the tag and the key name the canonical funnel; the raw name stays in the event; without
    ps_converted_at the receive time is used; meta.ad_id is read."""
    assert parse(fixture("renamed_calendly"), received_at=T) == Normalized(
        source="perspective",
        event_type="conversion",
        contact=ContactFacts(
            email_primary=SOFIA, first_name="Sofia", phone="+17865550177", ad_id="120211111111110009",
            source="instagram_direct", source_rule="if_empty", tags=CALENDLY_TAGS,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id=f"perspective_{CALENDLY_ID}_{SOFIA}",
            occurred_at=T,
            stage="form_submitted",
            data={"funnel_name": "LVNG_TOFMOFBOF_Calendly", "funnel": "LVNG_BOF_Calendly", "funnel_id": CALENDLY_ID,
                  "ad_id": "120211111111110009"},
            tags=CALENDLY_TAGS,
        ),),
        match_by=("email", "phone"),
        lead_event_type="contact_created",
    )


def test_renamed_funnel_without_id_keys_by_canonical_name() -> None:
    body = fixture("renamed_calendly")
    del body["funnelId"]
    assert parse(body, received_at=T).events[0].source_event_id == f"perspective_LVNG_BOF_Calendly_{SOFIA}"
    body["funnelName"] = "LVNG_BOF_Calendly"
    assert parse(body, received_at=T).events[0].source_event_id == f"perspective_LVNG_BOF_Calendly_{SOFIA}"


@pytest.mark.parametrize(
    ("name", "funnel"), [("deprecated_checkout", "LVNG_CHECKOUT"), ("deprecated_lm", "LVNG_TOF_LM")]
)
def test_deprecated_funnels_are_skipped(name: str, funnel: str) -> None:
    """Skipped before the e-mail check: the LM form without an address is a skip, not an error."""
    assert parse(fixture(name), received_at=T) == Normalized(
        source="perspective",
        event_type="deprecated_funnel",
        match_by=("email", "phone"),
        skip_reason=f"deprecated funnel {funnel!r}",
    )


def test_supplements_funnel_is_deprecated() -> None:
    body = fixture("calendly") | {"funnelName": "LVNG_TOF_SUPPLEMENTS"}
    assert parse(body, received_at=T).skip_reason == "deprecated funnel 'LVNG_TOF_SUPPLEMENTS'"


def test_missing_email_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="no e-mail"):
        parse(fixture("missing_email"), received_at=T)


def test_array_wrapped_body_records_unknown_keys() -> None:
    """R-27 and R-45: the first element is read; keys MCB does not read are listed, never dropped."""
    assert parse(fixture("array_wrapped"), received_at=T) == Normalized(
        source="perspective",
        event_type="conversion",
        contact=ContactFacts(
            email_primary="beatriz.costa@example.com", first_name="Beatriz", ad_id="120214444444440004",
            source="instagram_direct", source_rule="if_empty", tags=JANE_TAGS,
        ),
        events=(FunnelEvent(
            event_type="form_submitted",
            source_event_id=f"perspective_{JANE_ID}_beatriz.costa@example.com",
            occurred_at=datetime(2025, 11, 17, 2, 10, tzinfo=UTC),
            stage="form_submitted",
            data={"funnel_name": "LVNG_BOF_JANE", "funnel": "LVNG_BOF_JANE", "funnel_id": JANE_ID,
                  "ad_id": "120214444444440004"},
            tags=JANE_TAGS,
        ),),
        match_by=("email", "phone"),
        lead_event_type="contact_created",
        unknown_keys=("meta.fbclid", "profile.lastName", "values.lastName", "workspaceId"),
    )


@pytest.mark.parametrize("body", [[], "text", 42, [None]])
def test_unreadable_bodies_are_payload_errors(body: Any) -> None:
    with pytest.raises(PayloadError):
        parse(body, received_at=T)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LVNG_BOF_Calendly", {"funnel": "LVNG_BOF_Calendly", "booking_source": "calendly"}),
        ("LVNG_TOFMOFBOF_Calendly", {"funnel": "LVNG_BOF_Calendly", "booking_source": "calendly"}),
        ("lvng_tofmofbof_calendly", {"funnel": "LVNG_BOF_Calendly", "booking_source": "calendly"}),
        ("LVNG_BOF_JANE", {"funnel": "LVNG_BOF_JANE", "booking_source": "jane"}),
        ("LVNG_TOFMOF_MANYCHAT_JANE", {"funnel": "LVNG_TOFMOF_MANYCHAT_JANE", "booking_source": "jane",
                                       "traffic_source": "manychat"}),
        ("LVNG_WEBSITE_JANE", {"funnel": "LVNG_WEBSITE_JANE", "booking_source": "jane",
                               "traffic_source": "website_other"}),
        ("LVNG_OTHER", {"funnel": "LVNG_OTHER", "traffic_source": "website_other"}),
    ],
)
def test_funnel_tags(name: str, expected: dict[str, str]) -> None:
    assert funnel_tags(name, None) == expected


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


def test_a_conversion_creates_a_lead_at_the_conversion_time(head_url: str, engine: Engine) -> None:
    result = deliver(engine, PPCU, fixture("calendly"))
    assert (result.status, result.created, result.events_created) == ("processed", True, 2)
    converted = datetime(2025, 11, 12, 18, 4, 31, 512000, tzinfo=UTC)

    [contact] = contacts(head_url)
    assert contact["id"] == result.contact_id
    assert contact["tenant_id"] == PPCU
    assert contact["email_primary"] == SOFIA
    assert (contact["email_booking"], contact["email_payment"]) == (None, None)
    assert contact["first_name"] == "Sofia"
    assert contact["last_name"] is None
    assert contact["phone"] == "+17865550177"
    assert contact["ad_id"] == "120211111111110001"
    assert contact["source"] == "instagram_direct"
    assert contact["stage"] == "form_submitted"
    assert (contact["mc_id"], contact["ghl_id"]) == (None, None)
    assert contact["tags"] == CALENDLY_TAGS

    rows = events(head_url)
    assert len(rows) == 2
    lead, form = (next(e for e in rows if e["event_type"] == t) for t in ("contact_created", "form_submitted"))
    assert (lead["source"], lead["source_event_id"], lead["event_timestamp"]) == (
        "perspective", f"perspective_{SOFIA}_contact_created", converted)  # Perspective-born contacts are leads
    assert (form["source"], form["source_event_id"], form["event_timestamp"]) == (
        "perspective", f"perspective_{CALENDLY_ID}_{SOFIA}", converted)
    assert form["event_data"] == {"funnel_name": "LVNG_BOF_Calendly", "funnel": "LVNG_BOF_Calendly",
                                  "funnel_id": CALENDLY_ID, "ad_id": "120211111111110001",
                                  "utm_source": "instagram", "utm_medium": "paid", "utm_campaign": "lvng_bof"}
    assert form["tags"] == CALENDLY_TAGS
    assert {lead["contact_id"], form["contact_id"]} == {contact["id"]}


def test_redelivery_and_the_renamed_funnel_create_nothing_new(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("calendly"))
    before = contacts(head_url), events(head_url)

    replay = deliver(engine, PPCU, fixture("calendly"))
    assert (replay.status, replay.created, replay.events_created) == ("processed", False, 0)
    assert (contacts(head_url), events(head_url)) == before

    renamed = deliver(engine, PPCU, fixture("renamed_calendly"), T + timedelta(hours=1))
    assert (renamed.status, renamed.created, renamed.events_created) == ("processed", False, 0)
    assert events(head_url) == before[1]
    [contact] = contacts(head_url)
    assert contact["ad_id"] == "120211111111110001"  # first touch
    assert contact["tags"] == CALENDLY_TAGS  # the canonical funnel name, not the new raw one
    assert contact["stage"] == "form_submitted"


def test_a_second_funnel_is_a_second_submission_and_its_tags_are_newer(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("calendly"))
    jane = deliver(engine, PPCU, fixture("jane"))
    assert (jane.created, jane.events_created) == (False, 1)
    [contact] = contacts(head_url)
    assert contact["tags"] == JANE_TAGS  # the later conversion's funnel tags
    assert contact["ad_id"] == "120211111111110001"
    assert [(e["event_type"], e["source_event_id"]) for e in events(head_url)] == [
        ("form_submitted", f"perspective_{CALENDLY_ID}_{SOFIA}"),
        ("contact_created", f"perspective_{SOFIA}_contact_created"),
        ("form_submitted", f"perspective_{JANE_ID}_{SOFIA}"),
    ]


def test_an_existing_manychat_contact_is_found_by_email(head_url: str, engine: Engine) -> None:
    """Any of the three e-mails, case-insensitively; the source stays (if_empty); no second lead event."""
    subscriber = {"event_type": "dm_qualified", "subscriber": {
        "id": "555000111", "first_name": "Sofia", "email": "Sofia.Reyes@Example.com",
        "custom_fields": {"AD_ID": "120211111111110000", "DATE_DM_QUALIFIED": "2025-11-10T08:00:00+00:00"}}}
    with tenant_session(engine, PPCU) as conn:
        mc = apply_event(conn, PPCU, manychat.parse(subscriber, received_at=T), received_at=T)
    result = deliver(engine, PPCU, fixture("calendly"))
    # The form and Perspective's lead evidence (the contact's lead time stays ManyChat's, the earliest).
    assert (result.contact_id, result.created, result.events_created) == (mc.contact_id, False, 2)
    [contact] = contacts(head_url)
    assert contact["source"] == "instagram"
    assert contact["mc_id"] == "555000111"
    assert contact["stage"] == "form_submitted"
    assert contact["phone"] == "+17865550177"
    assert contact["ad_id"] == "120211111111110000"  # ManyChat's first touch is earlier
    assert [e["event_type"] for e in events(head_url)] == ["contact_subscribed", "dm_qualified", "form_submitted",
                                                           "contact_created"]


def test_a_ghl_booking_email_is_matched_and_the_stage_stays_ahead(head_url: str, engine: Engine) -> None:
    booked = {"contact_id": "GHLsofia01", "email": SOFIA, "pipleline_stage": "DC BOOKED",
              "customData": {"contact_id": "GHLsofia01"}}
    with tenant_session(engine, PPCU) as conn:
        g = apply_event(conn, PPCU, ghl.parse(booked, received_at=T - timedelta(days=9)),
                        received_at=T - timedelta(days=9))
    result = deliver(engine, PPCU, fixture("calendly"))
    assert (result.contact_id, result.created) == (g.contact_id, False)
    [contact] = contacts(head_url)
    assert contact["email_booking"] == SOFIA
    assert contact["email_primary"] == SOFIA
    assert contact["ghl_id"] == "GHLsofia01"
    assert contact["stage"] == "meeting_booked"  # form_submitted is behind it
    assert contact["source"] == "website"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("deprecated_checkout", "deprecated funnel 'LVNG_CHECKOUT'"), ("deprecated_lm", "deprecated funnel 'LVNG_TOF_LM'")],
)
def test_deprecated_funnels_write_nothing(head_url: str, engine: Engine, name: str, reason: str) -> None:
    result = deliver(engine, PPCU, fixture(name))
    assert (result.status, result.detail, result.contact_id) == ("skipped", reason, None)
    assert contacts(head_url) == []
    assert events(head_url) == []


def test_array_wrapped_and_manychat_funnels_create_their_contacts(head_url: str, engine: Engine) -> None:
    deliver(engine, PPCU, fixture("array_wrapped"))
    deliver(engine, PPCU, fixture("manychat_jane"))
    by_email = {c["email_primary"]: c for c in contacts(head_url)}
    assert set(by_email) == {"beatriz.costa@example.com", "carla.mendes@example.com"}
    assert by_email["carla.mendes@example.com"]["tags"]["traffic_source"] == "manychat_story"
    assert by_email["beatriz.costa@example.com"]["ad_id"] == "120214444444440004"
    assert {e["event_type"] for e in events(head_url)} == {"contact_created", "form_submitted"}
    assert len(events(head_url)) == 4


def test_two_tenants_never_share_a_contact(head_url: str, engine: Engine) -> None:
    ppcu = deliver(engine, PPCU, fixture("calendly"))
    centner = deliver(engine, CENTNER, fixture("calendly"))
    assert ppcu.created and centner.created and ppcu.contact_id != centner.contact_id
    [a], [b] = contacts(head_url, PPCU), contacts(head_url, CENTNER)
    assert (a["tenant_id"], b["tenant_id"], a["email_primary"], b["email_primary"]) == (PPCU, CENTNER, SOFIA, SOFIA)
    assert {e["contact_id"] for e in events(head_url, CENTNER)} == {b["id"]}
    with tenant_session(engine, PPCU) as conn:
        assert conn.execute(text("SELECT count(*) FROM contacts")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM funnel_events")).scalar() == 2
    deliver(engine, CENTNER, fixture("jane"))
    assert contacts(head_url, PPCU)[0]["tags"] == CALENDLY_TAGS
    assert contacts(head_url, CENTNER)[0]["tags"] == JANE_TAGS


# ------------------------------------------------------------------------------- order independence

# One person's Perspective deliveries, each with the time it was received.
DELIVERIES: list[tuple[str, datetime]] = [
    ("calendly", datetime(2025, 11, 12, 18, 5, tzinfo=UTC)),
    ("jane", datetime(2025, 11, 14, 9, 31, tzinfo=UTC)),
    ("deprecated_checkout", datetime(2025, 11, 15, 12, 1, tzinfo=UTC)),
    ("renamed_calendly", datetime(2025, 11, 18, 10, 0, tzinfo=UTC)),
]

State = tuple[list[tuple[Any, ...]], set[tuple[str, str, datetime | None]]]
_IN_ORDER: dict[str, State] = {}


def _truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE contacts, funnel_events, payments CASCADE")


def _state(url: str, *, times: bool = False) -> State:
    """Final contact rows and (event type, key), the lead key's contact id abstracted; with ``times``, each
    event's time too (see test_a_resubmission_keeps_the_first_submission_time)."""
    rows = [
        (c["stage"], c["mc_id"], c["ghl_id"], c["email_primary"], c["email_booking"], c["email_payment"],
         c["phone"], c["first_name"], c["ad_id"], c["source"], c["tags"])
        for c in contacts(url)
    ]
    keyed = {
        (e["event_type"], e["source_event_id"].replace(str(e["contact_id"]), "<contact>"),
         e["event_timestamp"] if times and e["event_type"] != "contact_created" else None)
        for e in events(url)
    }
    return rows, keyed


def _deliver_all(url: str, engine: Engine, order: list[tuple[int, bool]], *, times: bool = False) -> State:
    """Apply DELIVERIES[i] for each (i, retry) in order; a retry is Perspective sending it again a second
    later."""
    _truncate(url)
    for i, retry in order:
        name, at = DELIVERIES[i]
        deliver(engine, PPCU, fixture(name), at + timedelta(seconds=1 if retry else 0))
    return _state(url, times=times)


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
    assert [(row[0], row[10]) for row in expected[0]] == [("form_submitted", CALENDLY_TAGS)]
    assert _deliver_all(head_url, engine, order) == expected


def test_a_resubmission_keeps_the_first_submission_time(head_url: str, engine: Engine) -> None:
    """The renamed Calendly funnel has the same funnelId, so Sofia's later submission there has the same key
    as her first one. Delivered out of order, the stored form_submitted time is the later submission's."""
    in_order = _deliver_all(head_url, engine, [(0, False), (3, False)], times=True)
    assert _deliver_all(head_url, engine, [(3, False), (0, False)], times=True) == in_order
