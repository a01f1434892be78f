"""``mcb worker``, ``mcb webhooks replay|stats`` and ``mcb payments link-orphans`` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


def mcb(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCB, *args], env={**env, "DATABASE_URL": url}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def store(url: str, source: str, payload: Any) -> int:
    """An inbox row exactly as the HTTP layer stores it."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO webhook_logs (tenant_id, source, payload, headers, status, inbox) "
            "VALUES (%s, %s, %s, '{}', 'received', true) RETURNING id",
            (PPCU, source, Jsonb(payload)),
        ).fetchone()
        assert row is not None
        return int(row[0])


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_worker_once_processes_and_records_outcomes(head_url: str, cli_env: dict[str, str]) -> None:
    good = store(head_url, "manychat", {"subscriber": {"id": "s1", "first_name": "Ann", "custom_fields": {}},
                                        "event_type": "contact_created", "surprise": 1})
    bad = store(head_url, "manychat", {"nothing": "here"})
    done = mcb(cli_env, head_url, "worker", "--once", "--nice", "3")  # below the HTTP side, as in production
    assert done.returncode == 0, done.stderr
    assert "Processed: error 1, processed 1" in done.stdout
    outcome = rows(head_url, "SELECT status, unknown_keys, outcome->>'created', contact_id IS NOT NULL, "
                             "processed_at IS NOT NULL FROM webhook_logs WHERE id = %s", (good,))
    assert outcome == [("processed", ["surprise"], "true", True, True)]
    failed = rows(head_url, "SELECT status, error_message FROM webhook_logs WHERE id = %s", (bad,))
    assert failed == [("error", "unreadable manychat payload: ManyChat payload has no subscriber")]

    stats = mcb(cli_env, head_url, "webhooks", "stats", "--tenant", "ppcu", "--json")
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert sorted((r["status"], r["count"]) for r in report["by_status"]) == [("error", 1), ("processed", 1)]
    assert report["unknown_keys"] == [{"source": "manychat", "key": "surprise", "count": 1}]

    events_before = rows(head_url, "SELECT count(*) FROM funnel_events")[0][0]
    replay = mcb(cli_env, head_url, "webhooks", "replay", "--tenant", "ppcu")
    assert replay.returncode == 0, replay.stderr
    assert "Replayed: error 1, processed 1" in replay.stdout
    assert rows(head_url, "SELECT count(*) FROM funnel_events")[0][0] == events_before  # idempotent
    assert rows(head_url, "SELECT count(*) FROM contacts WHERE mc_id = 's1'")[0][0] == 1

    only_errors = mcb(cli_env, head_url, "webhooks", "replay", "--tenant", "ppcu", "--status", "error")
    assert "Replayed: error 1" in only_errors.stdout
    nothing = mcb(cli_env, head_url, "webhooks", "replay", "--tenant", "ppcu", "--id", "999999")
    assert "No stored webhooks match." in nothing.stdout
    unknown = mcb(cli_env, head_url, "webhooks", "stats", "--tenant", "nobody")
    assert unknown.returncode == 1 and "No tenant 'nobody'" in unknown.stderr


def test_link_orphans_attaches_payments_to_contacts_that_appeared(head_url: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(head_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO payments (tenant_id, payment_event_id, payment_source, payment_type, payment_category, "
            "customer_email, amount, status, payment_date, raw_payload) VALUES "
            "(%s, 'evt_orphan_1', 'stripe', 'buy_in_full', 'full_purchase', 'Late@Example.com', 2997, 'paid', "
            "'2025-11-20 12:00+00', '{}')",
            (PPCU,),
        )
        # The contact arrives by a path that does not link (here: the original application's insert).
        conn.execute("INSERT INTO contacts (tenant_id, email_booking, stage) VALUES (%s, 'late@example.com', "
                     "'meeting_held')", (PPCU,))
    linked = mcb(cli_env, head_url, "payments", "link-orphans", "--tenant", "ppcu")
    assert linked.returncode == 0, linked.stderr
    assert "Linked 1 payment(s); 0 remain without a contact." in linked.stdout
    contact = rows(head_url, "SELECT id, stage, email_payment FROM contacts WHERE email_booking = 'late@example.com'")
    assert contact[0][1:] == ("purchased", "late@example.com")
    assert rows(head_url, "SELECT contact_id FROM payments WHERE payment_event_id = 'evt_orphan_1'") == [(contact[0][0],)]
    events = rows(head_url, "SELECT event_type, source_event_id, event_timestamp::text FROM funnel_events "
                            "WHERE contact_id = %s", (contact[0][0],))
    assert events == [("purchase_completed", "stripe_purchase_evt_orphan_1", "2025-11-20 12:00:00+00")]
    again = mcb(cli_env, head_url, "payments", "link-orphans", "--tenant", "ppcu")
    assert "No orphan payment could be linked; 0 remain without a contact." in again.stdout


def test_tail_shows_recent_rows_then_new_ones_and_their_outcome(head_url: str, cli_env: dict[str, str]) -> None:
    import queue
    import signal
    import threading

    old = [store(head_url, "ghl", {"type": "ContactCreate", "n": i}) for i in range(3)]
    proc = subprocess.Popen([*MCB, "webhooks", "tail", "--tenant", "ppcu", "--interval", "0.1", "--last", "2"],
                            env={**cli_env, "DATABASE_URL": head_url}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()

    def next_line() -> str:
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"tail printed nothing more; stderr: {err}") from None

    try:
        first = [next_line(), next_line()]  # --last 2: the two newest, oldest first
        assert [f" #{old[1]} " in first[0], f" #{old[2]} " in first[1]] == [True, True], first
        assert all(" ghl " in line and " received " in line for line in first), first

        new = store(head_url, "stripe", {"type": "charge.refunded"})
        arrived = next_line()
        assert f" #{new} " in arrived and " stripe " in arrived and " received " in arrived, arrived

        with psycopg.connect(head_url, autocommit=True) as conn:  # the worker's verdicts, as they land
            conn.execute("UPDATE webhook_logs SET status = 'processed', status_detail = 'refund recorded' "
                         "WHERE id = %s", (new,))
            conn.execute("UPDATE webhook_logs SET status = 'error', error_message = 'no such contact' "
                         "WHERE id = %s", (old[2],))
        outcomes = sorted([next_line(), next_line()])
        assert any(f" #{new} " in o and " processed " in o and o.rstrip().endswith("refund recorded")
                   for o in outcomes), outcomes
        assert any(f" #{old[2]} " in o and " error " in o and o.rstrip().endswith("no such contact")
                   for o in outcomes), outcomes
        assert not any(f" #{old[0]} " in o for o in outcomes)  # older than --last, never shown
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in (proc.stderr.read() if proc.stderr else "")
