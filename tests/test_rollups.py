"""The rollups stay exact, whatever the order in which deliveries arrive and whoever writes, and a rebuild
from the source tables changes nothing: contact_leads (revisions 0013 and 0015: each contact's earliest
lead event and identity facts, kept per statement since revision 0018), funnel_event_repeats and
shared_emails (revision 0015)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from mcb.analytics.rollups import (
    REPEAT_TYPES,
    compact_event_counts,
    rebuild_contact_leads,
    rebuild_event_counts,
    rebuild_event_repeats,
)
from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.funnel.apply import EventBatch, apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized
from tests.analytics_data import CENTNER, PPCU, event, ghl_contact, subscriber, utc


@pytest.fixture
def engine(pg: Any, head_template: str) -> Iterator[Engine]:
    with pg.database(template=head_template) as url:
        eng = make_engine(url)
        yield eng
        eng.dispose()


def leads(engine: Engine, tenant: Any) -> dict[str, str]:
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text("SELECT coalesce(c.mc_id, c.ghl_id), l.lead_at FROM contact_leads l "
                                 "JOIN contacts c ON c.tenant_id = l.tenant_id AND c.id = l.contact_id")).all()
    return {r[0]: r[1].isoformat() for r in rows}


def test_the_earliest_lead_event_wins_in_any_order(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 11, 5, 12), ghl_id="ghl_late")
        subscriber(conn, PPCU, "mc_one", utc(2025, 11, 1, 9))
    assert leads(engine, PPCU) == {"mc_late": "2025-11-05T12:00:00+00:00", "mc_one": "2025-11-01T09:00:00+00:00"}
    # GHL reports the same person, created earlier (its own lead event, contact_created, Oct 30).
    with tenant_session(engine, PPCU) as conn:
        n = Normalized(source="ghl", event_type="test", contact=ContactFacts(ghl_id="ghl_late"),
                       events=(FunnelEvent("contact_created", "ghl_ghl_late_contact_created", utc(2025, 10, 30, 8)),))
        apply_event(conn, PPCU, n, received_at=utc(2025, 11, 6))
    assert leads(engine, PPCU)["mc_late"] == "2025-10-30T08:00:00+00:00"
    # A redelivery of the ManyChat subscription with an even earlier time moves the event's time back.
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 10, 29, 7))
    assert leads(engine, PPCU)["mc_late"] == "2025-10-29T07:00:00+00:00"
    # A later duplicate changes nothing.
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_late", utc(2025, 12, 1, 7))
        ghl_contact(conn, PPCU, "ghl_new", utc(2025, 11, 2, 10))
    assert leads(engine, PPCU) == {"mc_late": "2025-10-29T07:00:00+00:00", "mc_one": "2025-11-01T09:00:00+00:00",
                                   "ghl_new": "2025-11-02T10:00:00+00:00"}
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 0
    # The rollup is tenant-scoped like everything else: centner sees none of it.
    assert leads(engine, CENTNER) == {}


def test_one_statement_of_many_lead_events_keeps_each_contacts_earliest(engine: Engine) -> None:
    """The worker writes a chunk's events with one INSERT (EventBatch): the statement triggers of 0018 see
    every lead event of it at once, several of them for one contact, and must end where one delivery at a
    time ends."""
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_known", utc(2025, 11, 4, 9), ghl_id="ghl_known")
    with tenant_session(engine, PPCU) as conn:
        batch = EventBatch(PPCU)
        deliveries = [
            # A new subscriber, reported twice in the chunk: the later report comes first.
            Normalized(source="manychat", event_type="test", contact=ContactFacts(mc_id="mc_twice"),
                       events=(FunnelEvent("contact_subscribed", "mc_mc_twice_contact_subscribed",
                                           utc(2025, 11, 3, 12), stage="new_lead"),)),
            Normalized(source="manychat", event_type="test", contact=ContactFacts(mc_id="mc_twice"),
                       events=(FunnelEvent("contact_subscribed", "mc_mc_twice_contact_subscribed",
                                           utc(2025, 11, 2, 8), stage="new_lead"),)),
            # The known contact, created earlier in GoHighLevel (its own lead event), and a later one.
            Normalized(source="ghl", event_type="test", contact=ContactFacts(ghl_id="ghl_known"),
                       events=(FunnelEvent("contact_created", "ghl_ghl_known_contact_created", utc(2025, 10, 31, 7)),
                               FunnelEvent("contact_created", "ghl_ghl_known_again", utc(2025, 11, 8, 7)))),
            # No lead event at all.
            Normalized(source="manychat", event_type="test", contact=ContactFacts(mc_id="mc_known"),
                       events=(FunnelEvent("link_sent", "mc_known_link", utc(2025, 11, 9)),),
                       may_create_contact=False, match_by=("mc_id",)),
        ]
        for n in deliveries:
            apply_event(conn, PPCU, n, received_at=utc(2025, 11, 10), events_into=batch)
        batch.flush(conn)
    assert leads(engine, PPCU) == {"mc_known": "2025-10-31T07:00:00+00:00", "mc_twice": "2025-11-02T08:00:00+00:00"}
    with admin_session(engine) as conn:
        compact_event_counts(conn)
        first_leads = conn.execute(text(
            "SELECT bucket, n FROM event_counts WHERE tenant_id = :t AND kind = 'lead' AND n <> 0 ORDER BY bucket"),
            {"t": PPCU}).all()
        # Each contact is one lead, counted in the quarter hour of its earliest lead event.
        assert [(b.isoformat(), n) for b, n in first_leads] == [("2025-10-31T07:00:00+00:00", 1),
                                                               ("2025-11-02T08:00:00+00:00", 1)]
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 0
        assert rebuild_event_counts(conn, PPCU) == 0


def test_rebuild_restores_a_damaged_rollup(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_a", utc(2025, 11, 1, 9))
        subscriber(conn, PPCU, "mc_b", utc(2025, 11, 2, 9))
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE contact_leads SET lead_at = lead_at + interval '1 day' WHERE tenant_id = :t"),
                     {"t": PPCU})
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 2
    assert leads(engine, PPCU) == {"mc_a": "2025-11-01T09:00:00+00:00", "mc_b": "2025-11-02T09:00:00+00:00"}
    with admin_session(engine) as conn:  # deleting a contact deletes its row
        conn.execute(text("DELETE FROM contacts WHERE mc_id = 'mc_a'"))
    assert leads(engine, PPCU) == {"mc_b": "2025-11-02T09:00:00+00:00"}


# ------------------------------------------------------------------ revision 0015


def repeats(engine: Engine, tenant: Any, mc_id: str) -> list[tuple[str, str, str]]:
    """(event type, time, previous time) of one contact's repeat rows, in time order."""
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text(
            "SELECT r.event_type, r.event_timestamp, r.previous_at FROM funnel_event_repeats r "
            "JOIN contacts c ON c.tenant_id = r.tenant_id AND c.id = r.contact_id WHERE c.mc_id = :m "
            "ORDER BY 2, 3"), {"m": mc_id}).all()
    return [(r[0], r[1].strftime("%d %H:%M"), r[2].strftime("%d %H:%M")) for r in rows]


CLICKS = [("k1", utc(2025, 11, 10, 9)), ("k2", utc(2025, 11, 11, 9)), ("k3", utc(2025, 11, 11, 9)),
          ("k4", utc(2025, 11, 12, 9))]
"""Four link clicks of one contact, two of them at the same instant."""


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]], ids=["in order", "reversed", "mixed"])
def test_repeats_are_the_same_whatever_the_delivery_order(engine: Engine, order: list[int]) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_r", utc(2025, 11, 1, 9))
        for i in order:
            key, at = CLICKS[i]
            event(conn, PPCU, "mc_r", "link_clicked", at, key=key)
        event(conn, PPCU, "mc_r", "dm_qualified", utc(2025, 11, 2, 9), key="q1")
    # Each click after the first names the one before it; the tie is ordered, so one of the two 11th
    # clicks follows the other. The single qualification and the lead are no repeats.
    assert repeats(engine, PPCU, "mc_r") == [("link_clicked", "11 09:00", "10 09:00"),
                                             ("link_clicked", "11 09:00", "11 09:00"),
                                             ("link_clicked", "12 09:00", "11 09:00")]
    # A redelivery of the last click with an earlier time moves it first: every link changes.
    with tenant_session(engine, PPCU) as conn:
        event(conn, PPCU, "mc_r", "link_clicked", utc(2025, 11, 9, 9), key="k4")
    assert repeats(engine, PPCU, "mc_r") == [("link_clicked", "10 09:00", "09 09:00"),
                                             ("link_clicked", "11 09:00", "10 09:00"),
                                             ("link_clicked", "11 09:00", "11 09:00")]
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_event_repeats(conn, PPCU) == 0
        assert rebuild_event_counts(conn, PPCU) == 0
    assert repeats(engine, CENTNER, "mc_r") == []
    # The quarter-hour counts moved with the redelivered click: Nov 9 09:00 has it, Nov 12 09:00 no longer.
    assert counts(engine, PPCU) == {("lead", "01 09:00"): 1, ("dm_qualified", "02 09:00"): 1,
                                    ("link_clicked", "09 09:00"): 1, ("link_clicked", "10 09:00"): 1,
                                    ("link_clicked", "11 09:00"): 2}


def counts(engine: Engine, tenant: Any) -> dict[tuple[str, str], int]:
    """event_counts with its pending deltas, as {(kind, quarter hour): n}, leaving out quarter hours
    counted down to zero."""
    with tenant_session(engine, tenant) as conn:
        rows = conn.execute(text(
            "SELECT kind, bucket, sum(n)::bigint FROM (SELECT kind, bucket, n FROM event_counts UNION ALL "
            "SELECT kind, bucket, n FROM event_count_deltas) x GROUP BY 1, 2 HAVING sum(n) <> 0")).all()
    return {(r[0], r[1].strftime("%d %H:%M")): r[2] for r in rows}


def test_compaction_folds_the_deltas_and_changes_no_number(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_f", utc(2025, 11, 1, 9), ("link_sent", utc(2025, 11, 1, 9, 20)))
        subscriber(conn, PPCU, "mc_g", utc(2025, 11, 1, 9, 5), ("link_sent", utc(2025, 11, 1, 9, 25)))
    expected = {("lead", "01 09:00"): 2, ("link_sent", "01 09:15"): 2}
    assert counts(engine, PPCU) == expected
    with admin_session(engine) as conn:
        pending = conn.execute(text("SELECT count(*) FROM event_count_deltas")).scalar()
        assert pending == 4  # one row per statement that added a lead or an event
        assert compact_event_counts(conn) == 2  # the two quarter hours' counters
        assert conn.execute(text("SELECT count(*) FROM event_count_deltas")).scalar() == 0
        assert conn.execute(text("SELECT kind, n FROM event_counts ORDER BY 1")).all() == [("lead", 2), ("link_sent", 2)]
    assert counts(engine, PPCU) == expected


def test_event_counts_follow_inserts_moves_and_deletes(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_c", utc(2025, 11, 1, 9, 7), ("link_sent", utc(2025, 11, 1, 9, 14)),
                   ("link_sent", utc(2025, 11, 1, 9, 15)), ("appointment_cancelled", utc(2025, 11, 1, 9, 20)))
        subscriber(conn, PPCU, "mc_c2", utc(2025, 11, 1, 9, 29, 59))
    # 09:07 and 09:14 are in the 09:00 quarter hour, 09:15 and 09:29:59 in the next; a cancellation is no
    # stage, so it is not counted.
    assert counts(engine, PPCU) == {("lead", "01 09:00"): 1, ("link_sent", "01 09:00"): 1,
                                    ("link_sent", "01 09:15"): 1, ("lead", "01 09:15"): 1}
    with tenant_session(engine, PPCU) as conn:  # an earlier subscription moves mc_c2's lead back a day
        subscriber(conn, PPCU, "mc_c2", utc(2025, 10, 31, 9))
    assert counts(engine, PPCU) == {("lead", "01 09:00"): 1, ("link_sent", "01 09:00"): 1,
                                    ("link_sent", "01 09:15"): 1, ("lead", "31 09:00"): 1}
    with admin_session(engine) as conn:  # deleting a contact deletes its events, its lead and their counts
        conn.execute(text("DELETE FROM contacts WHERE mc_id = 'mc_c'"))
        compact_event_counts(conn)
        conn.execute(text("UPDATE event_counts SET n = n + 5 WHERE kind = 'lead'"))  # and some damage
    # (the two quarter hours that lost their lead kept a row counted down to zero: it has 5 now)
    assert counts(engine, PPCU) == {("lead", "31 09:00"): 6, ("lead", "01 09:00"): 5, ("lead", "01 09:15"): 5}
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_event_counts(conn, PPCU) == 3
    assert counts(engine, PPCU) == {("lead", "31 09:00"): 1}


def test_rebuild_restores_damaged_repeats_and_deletes_follow_the_events(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_d", utc(2025, 11, 1, 9), ("link_sent", utc(2025, 11, 2, 9)),
                   ("link_sent", utc(2025, 11, 3, 9)))
    assert repeats(engine, PPCU, "mc_d") == [("link_sent", "03 09:00", "02 09:00")]
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE funnel_event_repeats SET previous_at = previous_at - interval '1 day'"))
        conn.execute(text("INSERT INTO funnel_event_repeats SELECT tenant_id, contact_id, id, event_type, "
                          "event_timestamp, event_timestamp FROM funnel_events WHERE event_type = 'contact_subscribed'"))
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_event_repeats(conn, PPCU) == 2
    assert repeats(engine, PPCU, "mc_d") == [("link_sent", "03 09:00", "02 09:00")]
    with admin_session(engine) as conn:  # deleting the first event makes the second the first
        conn.execute(text("DELETE FROM funnel_events WHERE event_type = 'link_sent' AND event_timestamp = :at"),
                     {"at": utc(2025, 11, 2, 9)})
    assert repeats(engine, PPCU, "mc_d") == []


def test_the_revision_keeps_repeats_of_every_type_a_stage_counts() -> None:
    import importlib

    revision = importlib.import_module("mcb.migrations.versions.0015_report_rollups")
    assert set(revision.REPEAT_TYPES) == set(REPEAT_TYPES) == {
        "dm_qualified", "link_sent", "link_clicked", "form_submitted", "appointment_scheduled", "appointment_held",
        "package_sent", "deposit_paid", "purchase_completed", "payment_plan_created"}


def identity(engine: Engine, mc_id: str) -> tuple[Any, ...]:
    with tenant_session(engine, PPCU) as conn:
        return tuple(conn.execute(text(
            "SELECT l.has_ad_id, l.has_mc_id, l.has_ghl_id, l.has_email, l.primary_email FROM contact_leads l "
            "JOIN contacts c ON c.tenant_id = l.tenant_id AND c.id = l.contact_id WHERE c.mc_id = :m"),
            {"m": mc_id}).one())


def test_a_leads_identity_facts_follow_its_contact_whoever_writes(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_i", utc(2025, 11, 1, 9))
    assert identity(engine, "mc_i") == (False, True, False, False, None)
    with tenant_session(engine, PPCU) as conn:  # a later delivery brings an e-mail and a GHL id
        subscriber(conn, PPCU, "mc_i", utc(2025, 11, 2, 9), email="Ann@Example.com", ghl_id="ghl_i")
    assert identity(engine, "mc_i") == (False, True, True, True, "ann@example.com")
    with admin_session(engine) as conn:  # the original application writes without a tenant session
        conn.execute(text("UPDATE contacts SET ad_id = 'ad_7', email_primary = NULL, email_booking = 'b@x.io' "
                          "WHERE mc_id = 'mc_i'"))
    assert identity(engine, "mc_i") == (True, True, True, True, None)
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_contact_leads(conn, PPCU) == 0


def shared(engine: Engine, tenant: Any) -> set[str]:
    with tenant_session(engine, tenant) as conn:
        return set(conn.execute(text("SELECT email FROM shared_emails")).scalars())


def test_shared_emails_hold_the_primary_addresses_of_two_or_more_contacts(engine: Engine) -> None:
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_s1", utc(2025, 11, 1, 9), email="Sam@Example.com")
        subscriber(conn, PPCU, "mc_s2", utc(2025, 11, 1, 10), email="other@example.com")
        subscriber(conn, PPCU, "mc_s3", utc(2025, 11, 1, 11))
    with tenant_session(engine, CENTNER) as conn:  # the same address in another tenant shares nothing
        subscriber(conn, CENTNER, "mc_s1", utc(2025, 11, 1, 9), email="sam@example.com")
    assert shared(engine, PPCU) == set() and shared(engine, CENTNER) == set()
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE contacts SET email_primary = 'sam@EXAMPLE.com' WHERE mc_id = 'mc_s2'"))
        conn.execute(text("UPDATE contacts SET email_booking = 'sam@example.com' WHERE mc_id = 'mc_s3'"))
    # a booking address is not a primary one: only s1 and s2 share it
    assert shared(engine, PPCU) == {"sam@example.com"} and shared(engine, CENTNER) == set()
    with admin_session(engine) as conn:
        conn.execute(text("DELETE FROM contacts WHERE mc_id = 'mc_s2' AND tenant_id = :t"), {"t": PPCU})
    assert shared(engine, PPCU) == set()


def test_two_writers_of_one_address_at_once_still_share_it(engine: Engine) -> None:
    """The original application inserting two contacts with one address in overlapping transactions:
    neither sees the other's row, so without the address lock neither would record the share."""
    import threading

    first = engine.connect()
    first.execute(text("SET mcb.admin = 'on'"))
    first.execute(text("INSERT INTO contacts (tenant_id, mc_id, email_primary) VALUES (:t, 'mc_w1', 'w@x.io')"),
                  {"t": PPCU})
    done = threading.Event()

    def second() -> None:
        with admin_session(engine) as conn:
            conn.execute(text("INSERT INTO contacts (tenant_id, mc_id, email_primary) VALUES (:t, 'mc_w2', 'W@x.io')"),
                         {"t": PPCU})
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not done.wait(0.5)  # it waits for the first writer's address lock
    first.commit()
    first.close()
    thread.join(10)
    assert done.is_set()
    assert shared(engine, PPCU) == {"w@x.io"}


def test_event_counts_keep_historical_contacts_apart_and_move_them_when_they_graduate(engine: Engine) -> None:
    def flags() -> dict[tuple[str, bool], int]:
        with tenant_session(engine, PPCU) as conn:
            rows = conn.execute(text(
                "SELECT kind, historical, sum(n)::bigint FROM (SELECT kind, historical, n FROM event_counts "
                "UNION ALL SELECT kind, historical, n FROM event_count_deltas) x GROUP BY 1, 2 HAVING sum(n) <> 0")).all()
        return {(r[0], r[1]): r[2] for r in rows}

    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_h", utc(2025, 11, 1, 9), ("dm_qualified", utc(2025, 11, 2, 9)),
                   source="instagram_historical")
        subscriber(conn, PPCU, "mc_live", utc(2025, 11, 1, 9), ("dm_qualified", utc(2025, 11, 2, 9)))
    assert flags() == {("lead", True): 1, ("dm_qualified", True): 1, ("lead", False): 1, ("dm_qualified", False): 1}
    with admin_session(engine) as conn:  # the contact graduates: its lead and event count as live now
        conn.execute(text("UPDATE contacts SET source = 'instagram' WHERE mc_id = 'mc_h'"))
    assert flags() == {("lead", False): 2, ("dm_qualified", False): 2}
    with admin_session(engine) as conn:  # and back
        conn.execute(text("UPDATE contacts SET source = 'csv_historical' WHERE mc_id = 'mc_live'"))
    assert flags() == {("lead", False): 1, ("dm_qualified", False): 1, ("lead", True): 1, ("dm_qualified", True): 1}
    with tenant_session(engine, PPCU) as conn:
        assert rebuild_event_counts(conn, PPCU) == 0


def test_a_bulk_change_of_thousands_of_addresses_in_one_transaction(engine: Engine) -> None:
    """The original application may rewrite many contacts in one statement: the shared-address locks are
    a fixed few, so the transaction does not run out of lock space (it did with one lock per address)."""
    with admin_session(engine) as conn:
        conn.execute(text("INSERT INTO contacts (tenant_id, mc_id, email_primary) "
                          "SELECT :t, 'mc_bulk_' || i, 'bulk' || i || '@x.io' FROM generate_series(1, 8000) i"),
                     {"t": PPCU})
        conn.execute(text("UPDATE contacts SET email_primary = 'bulk' || (substr(mc_id, 9)::int + 1) || '@x.io' "
                          "WHERE mc_id LIKE 'mc_bulk_%' AND substr(mc_id, 9)::int % 2 = 1"))
    # contact 2k-1 now has 2k's address: 4,000 shared addresses
    shared_now = shared(engine, PPCU)
    assert len(shared_now) == 4000 and "bulk2@x.io" in shared_now and "bulk1@x.io" not in shared_now
