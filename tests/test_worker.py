"""The worker's own mechanics: a claimed batch on one connection, non-durable commits that stay local to
the worker's transactions, and the worker thread's lower scheduling priority."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, text

from mcb.db.engine import make_engine
from mcb.db.session import tenant_transaction
from mcb.ingest.worker import WorkerThread, drain

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")


@pytest.fixture
def engines(head_url: str) -> Iterator[tuple[Engine, Engine]]:
    admin, app = make_engine(head_url), make_engine(head_url, admin=False)
    yield admin, app
    admin.dispose()
    app.dispose()


def store(url: str, source: str, payload: Any, tenant: UUID = PPCU) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO webhook_logs (tenant_id, source, payload, headers, status, inbox) "
            "VALUES (%s, %s, %s, '{}', 'received', true) RETURNING id", (tenant, source, Jsonb(payload))).fetchone()
        assert row is not None
        return int(row[0])


def manychat(sub: str, event: str = "contact_created") -> dict[str, Any]:
    return {"subscriber": {"id": sub, "first_name": "Ann", "email": f"{sub}@example.com", "custom_fields": {}},
            "event_type": event}


def statuses(url: str, ids: list[int]) -> list[str]:
    with psycopg.connect(url) as conn:
        found = dict(conn.execute("SELECT id, status FROM webhook_logs WHERE id = ANY(%s)", (ids,)).fetchall())
    return [found[i] for i in ids]


def test_one_batch_on_one_connection_survives_a_failed_row(head_url: str, engines: tuple[Engine, Engine]) -> None:
    ids = [store(head_url, "manychat", manychat("w1")),
           store(head_url, "manychat", {"nothing": "here"}),  # unreadable: its transaction ends in error
           store(head_url, "manychat", manychat("w2")),
           store(head_url, "manychat", manychat("w1", "dm_qualified"))]
    counts = drain(*engines)
    assert counts == {"processed": 3, "error": 1}
    assert statuses(head_url, ids) == ["processed", "error", "processed", "processed"]
    with psycopg.connect(head_url) as conn:
        contacts = conn.execute("SELECT mc_id, stage FROM contacts WHERE mc_id IN ('w1', 'w2') ORDER BY mc_id").fetchall()
        pending = conn.execute("SELECT count(*) FROM webhook_logs WHERE inbox AND status IN "
                               "('received', 'processing', 'retry')").fetchone()
        # The batch's event counts were folded into event_counts (revision 0016): two leads, one qualified.
        deltas = conn.execute("SELECT count(*) FROM event_count_deltas").fetchone()
        counted = dict(conn.execute("SELECT kind, sum(n)::int FROM event_counts GROUP BY 1").fetchall())
    assert contacts == [("w1", "dm_qualified"), ("w2", "new_lead")]
    assert pending == (0,)
    assert deltas == (0,) and counted == {"lead": 2, "dm_qualified": 1}


def test_non_durable_commits_are_local_to_the_worker_transaction(engines: tuple[Engine, Engine]) -> None:
    _, app = engines
    with app.connect() as conn:
        # A stricter setting than on (as with synchronous replicas): durable transactions keep it.
        conn.execute(text("SET synchronous_commit = remote_apply"))
        conn.commit()
        with tenant_transaction(conn, PPCU, durable=False) as tx:
            assert tx.execute(text("SELECT current_setting('synchronous_commit'), current_user, "
                                   "current_setting('app.tenant_id')")).one() == ("off", "mcb_app", str(PPCU))
        with conn.begin():  # the next transaction on the same connection is back to the session's setting
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "remote_apply"
            assert conn.execute(text("SELECT current_user")).scalar() != "mcb_app"
        with tenant_transaction(conn, PPCU) as tx:
            assert tx.execute(text("SHOW synchronous_commit")).scalar() == "remote_apply"
        conn.execute(text("RESET synchronous_commit"))
        conn.commit()


def test_worker_thread_runs_below_the_process_and_still_processes(
        head_url: str, engines: tuple[Engine, Engine]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    row = store(head_url, "manychat", manychat("nice1"))
    thread = WorkerThread(*engines, poll_seconds=0.05, nice=3)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while statuses(head_url, [row]) != ["processed"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(head_url, [row]) == ["processed"]
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, base + 3)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the process (the HTTP side) is untouched
    finally:
        thread.stop()
        thread.join(timeout=10)


CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")


def ghl(contact_id: str, mc_id: str, email: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "email": email, "customData": {"contact_id": contact_id, "MC_ID": mc_id}}


def finished(url: str, ids: list[int]) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, status, status_detail, error_message, outcome, unknown_keys, event_type, "
            "contact_id IS NOT NULL, processed_at IS NOT NULL, next_attempt_at, claimed_by "
            "FROM webhook_logs WHERE id = ANY(%s)", (ids,)).fetchall()}
    return [rows[i] for i in ids]


def test_a_chunk_writes_every_row_its_own_outcome_across_tenants(
        head_url: str, engines: tuple[Engine, Engine]) -> None:
    ids = [store(head_url, "manychat", manychat("c1"), PPCU),
           store(head_url, "manychat", manychat("c1"), CENTNER),  # the same subscriber id, another tenant
           store(head_url, "manychat", {"nothing": "here"}, PPCU),
           store(head_url, "manychat", manychat("c1", "dm_qualified"), PPCU)]
    assert drain(*engines, chunk=16) == {"processed": 3, "error": 1}
    with psycopg.connect(head_url) as conn:
        contacts = dict(conn.execute("SELECT tenant_id, id FROM contacts WHERE mc_id = 'c1'").fetchall())
        events = conn.execute("SELECT tenant_id, event_type FROM funnel_events ORDER BY tenant_id, event_type").fetchall()
    assert set(contacts) == {PPCU, CENTNER}
    created = {"created": True, "events_created": 1, "payments": [], "linked_payments": []}
    rows = finished(head_url, ids)
    assert rows[0][:4] == ("processed", None, None, {"contact_id": str(contacts[PPCU]), **created})
    assert rows[1][:4] == ("processed", None, None, {"contact_id": str(contacts[CENTNER]), **created})
    assert rows[3][:4] == ("processed", None, None, {"contact_id": str(contacts[PPCU]), "created": False,
                                                     "events_created": 1, "payments": [], "linked_payments": []})
    assert [r[5:] for r in (rows[0], rows[1], rows[3])] == [
        ("contact_created", True, True, None, None), ("contact_created", True, True, None, None),
        ("dm_qualified", True, True, None, None)]
    assert rows[2][0] == "error" and rows[2][2].startswith("unreadable manychat payload")
    assert rows[2][3:] == (None, None, None, False, True, None, None)
    assert events == sorted([(PPCU, "contact_subscribed"), (PPCU, "dm_qualified"), (CENTNER, "contact_subscribed")])


def test_a_failing_delivery_rolls_its_chunk_back_and_the_others_are_redone_alone(
        head_url: str, engines: tuple[Engine, Engine], caplog: pytest.LogCaptureFixture) -> None:
    ids = [store(head_url, "ghl", ghl("g1", "m1", "one@example.com"), PPCU),
           store(head_url, "manychat", manychat("k1"), CENTNER),
           # g1 belongs to the contact of m1: a delivery saying g1 is m2 is refused (not retried)
           store(head_url, "ghl", ghl("g1", "m2", "two@example.com"), PPCU),
           store(head_url, "manychat", manychat("k2"), PPCU)]
    with caplog.at_level("DEBUG", logger="mcb.ingest.worker"):
        assert drain(*engines, chunk=16) == {"processed": 3, "error": 1}
    assert "a chunk of 4 rows was rolled back (IdentityConflict)" in caplog.text
    rows = finished(head_url, ids)
    assert [r[0] for r in rows] == ["processed", "processed", "error", "processed"]
    assert rows[2][2].startswith("identity conflict: ghl_id g1 belongs to contact")
    with psycopg.connect(head_url) as conn:
        contacts = conn.execute("SELECT tenant_id, ghl_id, mc_id, email_booking, email_primary FROM contacts "
                                "ORDER BY tenant_id, mc_id").fetchall()
        events = conn.execute("SELECT source_event_id FROM funnel_events ORDER BY 1").fetchall()
    # each contact once (nothing of the rolled-back chunk is left twice), nothing of the refused row
    assert contacts == [(PPCU, None, "k2", None, "k2@example.com"), (PPCU, "g1", "m1", "one@example.com", None),
                        (CENTNER, None, "k1", None, "k1@example.com")]
    # a lead event each, and the first GHL delivery's own event (keyed by a hash of what it says)
    keys = [key for (key,) in events]
    assert keys[0] == "ghl_g1_contact_created" and keys[1].startswith("ghl_g1_contact_updated_")
    assert keys[2:] == ["mc_k1_contact_subscribed", "mc_k2_contact_subscribed"]


def test_a_chunk_that_waits_for_a_lock_gives_up_soon_and_its_rows_wait_alone(
        head_url: str, engines: tuple[Engine, Engine], caplog: pytest.LogCaptureFixture) -> None:
    # A chunk waiting for another transaction's lock is most often one side of a deadlock between two
    # workers' chunks, which PostgreSQL would only break after deadlock_timeout: the chunk gives up after
    # CHUNK_LOCK_TIMEOUT instead, and its rows are processed one by one, each waiting as long as it needs.
    store(head_url, "manychat", manychat("L1"))
    assert drain(*engines) == {"processed": 1}
    ids = [store(head_url, "manychat", manychat("L1", "dm_qualified")), store(head_url, "manychat", manychat("L2"))]
    holder = psycopg.connect(head_url)
    holder.execute("SET mcb.admin = 'on'")
    assert holder.execute("SELECT id FROM contacts WHERE mc_id = 'L1' FOR UPDATE").fetchall()  # held open
    done: list[dict[str, int]] = []
    with caplog.at_level("DEBUG", logger="mcb.ingest.worker"):
        worker = threading.Thread(target=lambda: done.append(drain(*engines)))
        worker.start()
        deadline = time.monotonic() + 60
        while "rolled back (LockNotAvailable)" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "a chunk of 2 rows was rolled back (LockNotAvailable)" in caplog.text
        assert worker.is_alive() and statuses(head_url, ids) != ["processed", "processed"]  # L1's row waits
        holder.commit()
        holder.close()
        worker.join(60)
    assert done == [{"processed": 2}]
    assert statuses(head_url, ids) == ["processed", "processed"]
    with psycopg.connect(head_url) as conn:
        stages = conn.execute("SELECT mc_id, stage FROM contacts ORDER BY mc_id").fetchall()
    assert stages == [("L1", "dm_qualified"), ("L2", "new_lead")]


def set_claim(url: str, row_id: int, status: str, *, lease: str | None, claimed_by: int | None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE webhook_logs SET status = %s, claimed_by = %s, attempts = 1, "
                     "next_attempt_at = now() + CAST(%s AS interval) WHERE id = %s", (status, claimed_by, lease, row_id))


def test_the_claim_takes_waiting_due_and_abandoned_rows_in_id_order(head_url: str, engines: tuple[Engine, Engine]) -> None:
    from mcb.ingest.worker import claim_inbox_batch

    admin, _ = engines
    ids = [store(head_url, "manychat", manychat(f"q{i}")) for i in range(7)]
    with psycopg.connect(head_url, autocommit=True) as holder:
        live = holder.info.backend_pid
        set_claim(head_url, ids[0], "processed", lease=None, claimed_by=None)
        set_claim(head_url, ids[1], "retry", lease="1 hour", claimed_by=None)            # not due yet
        set_claim(head_url, ids[2], "retry", lease="-1 second", claimed_by=None)         # due
        set_claim(head_url, ids[3], "processing", lease="1 hour", claimed_by=live)       # held by a live session
        set_claim(head_url, ids[4], "processing", lease="1 hour", claimed_by=2_000_000)  # its session is gone
        set_claim(head_url, ids[5], "processing", lease="-1 second", claimed_by=live)    # its lease ran out
        first = claim_inbox_batch(admin, 3)
        rest = claim_inbox_batch(admin, 10)
        assert claim_inbox_batch(admin, 10) == []
    assert [(c.id, c.attempts) for c in first] == [(ids[2], 2), (ids[4], 2), (ids[5], 2)]
    assert [(c.id, c.attempts) for c in rest] == [(ids[6], 1)]
    with psycopg.connect(head_url) as conn:
        claimed = conn.execute("SELECT id, status, next_attempt_at > now() + interval '4 minutes' FROM webhook_logs "
                               "WHERE id = ANY(%s) ORDER BY id", ([ids[2], ids[4], ids[5], ids[6]],)).fetchall()
    assert claimed == [(i, "processing", True) for i in (ids[2], ids[4], ids[5], ids[6])]


def test_an_update_that_gives_a_contact_an_orphans_email_links_the_orphan_in_the_same_statement(
        head_url: str, engines: tuple[Engine, Engine]) -> None:
    stripe = json.loads((Path(__file__).parent / "fixtures" / "stripe" / "checkout_session_completed_full.json").read_text())
    first = store(head_url, "manychat", {"subscriber": {"id": "m9", "first_name": "Jane", "custom_fields": {}},
                                         "event_type": "contact_created"})
    assert drain(*engines) == {"processed": 1}
    orphan = store(head_url, "stripe", stripe)
    assert drain(*engines) == {"orphan": 1}
    # the contact's UPDATE (its e-mail and stage) and the orphan's link run as one statement
    update = store(head_url, "manychat", {"subscriber": {"id": "m9", "email": "Jane.Doe@example.com",
                                                         "custom_fields": {}}, "event_type": "dm_qualified"})
    assert drain(*engines) == {"processed": 1}
    rows = finished(head_url, [first, orphan, update])
    with psycopg.connect(head_url) as conn:
        contact = conn.execute("SELECT id, stage, email_primary, email_payment, stripe_customer_id FROM contacts").fetchall()
        payment = conn.execute("SELECT payment_event_id, contact_id FROM payments").fetchall()
        events = conn.execute("SELECT event_type, source_event_id FROM funnel_events ORDER BY event_type").fetchall()
    assert len(contact) == 1
    cid, *fields = contact[0]
    assert fields == ["purchased", "jane.doe@example.com", "jane.doe@example.com", "cus_RfUlLpUrChAsE1"]
    assert payment == [("evt_1QfUlLpUrChAsE2997aaaa", cid)]
    assert rows[1][0] == "orphan"
    assert rows[2][:4] == ("processed", None, None, {
        "contact_id": str(cid), "created": False, "events_created": 2, "payments": [],
        "linked_payments": ["evt_1QfUlLpUrChAsE2997aaaa"]})
    assert events == [("contact_subscribed", "mc_m9_contact_subscribed"), ("dm_qualified", "mc_m9_dm_qualified"),
                      ("purchase_completed", "stripe_purchase_evt_1QfUlLpUrChAsE2997aaaa")]


def _history(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The funnel events (contact named by its mc_id) and the rows' outcomes (contact ids as mc_ids)."""
    with psycopg.connect(url) as conn:
        mc = {str(cid): mc_id for cid, mc_id in conn.execute("SELECT id, mc_id FROM contacts").fetchall()}
        events = conn.execute(
            "SELECT c.mc_id, e.event_type, e.event_timestamp, e.source, e.source_event_id, e.event_data, e.tags, "
            "e.contact_snapshot, e.created_by FROM funnel_events e JOIN contacts c ON c.id = e.contact_id "
            "ORDER BY e.source, e.source_event_id").fetchall()
        outcomes = conn.execute("SELECT status, outcome FROM webhook_logs ORDER BY id").fetchall()
    return events, [(status, {**outcome, "contact_id": mc.get(outcome["contact_id"])}) for status, outcome in outcomes]


def test_a_chunk_writes_its_events_as_its_deliveries_would_one_by_one(pg: Any, head_template: str) -> None:
    # Redeliveries, and a lead whose earliest evidence arrives last, in one chunk and one row at a time.
    def subscribed(sub: str, at: str) -> dict[str, Any]:
        payload = manychat(sub)
        payload["subscriber"]["subscribed"] = at
        return payload

    deliveries = [subscribed("s1", "2026-01-02T10:00:00Z"), manychat("s1", "dm_qualified"),
                  subscribed("s1", "2026-01-01T09:00:00Z"), subscribed("s1", "2026-01-02T10:00:00Z"),
                  manychat("s2", "link_sent"), subscribed("s2", "2026-01-03T08:00:00Z"), manychat("s1", "dm_qualified")]
    histories = []
    for chunk in (16, 1):
        with pg.database(head_template) as url:
            with psycopg.connect(url, autocommit=True) as conn:
                for n, payload in enumerate(deliveries):
                    conn.execute("INSERT INTO webhook_logs (tenant_id, source, payload, headers, status, inbox, created_at) "
                                 "VALUES (%s, 'manychat', %s, '{}', 'received', true, "
                                 "TIMESTAMPTZ '2026-01-05 12:00:00+00' + %s * interval '1 minute')", (PPCU, Jsonb(payload), n))
            admin, app = make_engine(url), make_engine(url, admin=False)
            try:
                assert drain(admin, app, chunk=chunk) == {"processed": 7}
            finally:
                admin.dispose()
                app.dispose()
            histories.append(_history(url))
    (events, outcomes), (alone_events, alone_outcomes) = histories
    assert events == alone_events
    assert outcomes == alone_outcomes
    # what one-by-one processing gives: s1's lead at its earliest evidence, each event counted once, by the first
    leads = {(mc_id, key): at for mc_id, _, at, _, key, *_ in events if key.endswith("_contact_subscribed")}
    assert {k: v.isoformat() for k, v in leads.items()} == {
        ("s1", "mc_s1_contact_subscribed"): "2026-01-01T09:00:00+00:00",
        ("s2", "mc_s2_contact_subscribed"): "2026-01-03T08:00:00+00:00"}
    assert [o["events_created"] for _, o in outcomes] == [1, 1, 0, 0, 2, 0, 0]
