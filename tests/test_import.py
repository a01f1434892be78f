"""``mcb import contacts|payments``: the original's CSV exports through funnel.apply, on a real PostgreSQL.

Fixtures in tests/fixtures/import/ follow the hist_contacts / hist_payments column lists (spec 1.2) and the
Stripe and Denefits dashboard exports (spec 5.3, /reconcile-payments). Every expected value below is
worked out by hand from those files; PPCU's zone is America/New_York (EDT, UTC-4, in August 2024).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from mcb.analytics.metrics import stage_counts
from mcb.analytics.window import Window
from mcb.db.engine import make_engine
from mcb.db.session import tenant_session
from mcb.funnel.apply import apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized
from mcb.tenancy.tenants import get_tenant

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
FIXTURES = Path(__file__).parent / "fixtures" / "import"


def mcb(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCB, *args], env={**env, "DATABASE_URL": url}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def import_json(env: dict[str, str], url: str, kind: str, name: str, *extra: str) -> dict[str, Any]:
    done = mcb(env, url, "import", kind, str(FIXTURES / name), "--tenant", "ppcu", "--json", *extra)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def live_erin(url: str) -> None:
    """Erin is already known live (ManyChat) before the import."""
    engine = make_engine(url)
    n = Normalized(source="manychat", event_type="contact_subscribed",
                   contact=ContactFacts(mc_id="mc_erin", email_primary="erin@example.com", source="instagram",
                                        source_rule="live"),
                   events=(FunnelEvent("contact_subscribed", "mc_mc_erin_contact_subscribed", utc(2024, 9, 1, 12),
                                       stage="new_lead"),))
    with tenant_session(engine, PPCU) as conn:
        apply_event(conn, PPCU, n, received_at=utc(2024, 9, 1, 12))
    engine.dispose()


CONTACT_SQL = ("SELECT email_primary, first_name, last_name, phone, source, stage, mc_id FROM contacts "
               "WHERE tenant_id = %s ORDER BY email_primary")
EVENT_SQL = ("SELECT c.email_primary, e.event_type, e.event_timestamp, e.source, e.source_event_id, e.created_by, "
             "e.event_data->>'historical', e.event_data ? 'estimated_time' FROM funnel_events e "
             "JOIN contacts c ON c.id = e.contact_id WHERE e.tenant_id = %s ORDER BY 1, 3, 2")  # same time: by type


def test_contacts_import_field_by_field_and_rerun(head_url: str, cli_env: dict[str, str]) -> None:
    live_erin(head_url)
    summary = import_json(cli_env, head_url, "contacts", "contacts.csv")
    assert {k: summary[k] for k in ("rows", "imported", "already_imported", "skipped", "suspicious",
                                    "contacts_created", "contacts_updated")} == {
        "rows": 7, "imported": 3, "already_imported": 0, "skipped": 4, "suspicious": 2, "contacts_created": 2,
        "contacts_updated": 1}
    assert summary["reasons"] == {
        "skipped": {"bad email": 1, "unparseable date": 1, "duplicate row": 1, "no email": 1},
        "suspicious": {"phone too short (not kept)": 1, "flagged suspicious in the export": 1},
    }
    assert sorted((p["line"], p["reason"]) for p in summary["problems"]) == [
        (3, "phone too short (not kept)"), (4, "bad email"), (5, "unparseable date"),
        (6, "flagged suspicious in the export"), (7, "duplicate row"), (8, "no email")]

    assert rows(head_url, CONTACT_SQL, (PPCU,)) == [
        ("ann.lee@example.com", "Ann", "Lee", "+15551230001", "instagram_historical", "purchased", None),
        ("bob@example.com", "Bob", None, None, "unknown_historical", "new_lead", None),
        # known live before: keeps its live source, gains the export's facts and stage
        ("erin@example.com", "Erin", "Ray", "+15551230005", "instagram", "meeting_held", "mc_erin"),
    ]
    # The import folded the event counts it recorded (revision 0016): no delta is left behind.
    assert rows(head_url, "SELECT count(*) FROM event_count_deltas WHERE tenant_id = %s", (PPCU,)) == [(0,)]
    ann_purchase = utc(2024, 8, 20, 19, 30)  # 15:30 EDT
    assert rows(head_url, EVENT_SQL, (PPCU,)) == [
        ("ann.lee@example.com", "contact_created", utc(2024, 8, 5, 4), "system",
         "hist_ann.lee@example.com_contact_created", "import", "true", False),
        ("ann.lee@example.com", "dm_qualified", utc(2024, 8, 5, 4), "system",
         "hist_ann.lee@example.com_dm_qualified", "import", "true", True),
        # booked 7 days before held, held 5 days before the purchase (spec 6's estimates)
        ("ann.lee@example.com", "appointment_scheduled", utc(2024, 8, 8, 19, 30), "system",
         "hist_ann.lee@example.com_appointment_scheduled", "import", "true", True),
        ("ann.lee@example.com", "appointment_held", utc(2024, 8, 15, 19, 30), "system",
         "hist_ann.lee@example.com_appointment_held", "import", "true", True),
        ("ann.lee@example.com", "purchase_completed", ann_purchase, "system",
         "hist_ann.lee@example.com_purchase_completed", "import", "true", False),
        ("bob@example.com", "contact_created", utc(2024, 8, 7, 4), "system",
         "hist_bob@example.com_contact_created", "import", "true", False),
        ("erin@example.com", "contact_created", utc(2024, 8, 10, 13), "system",
         "hist_erin@example.com_contact_created", "import", "true", False),
        ("erin@example.com", "dm_qualified", utc(2024, 8, 10, 13), "system",
         "hist_erin@example.com_dm_qualified", "import", "true", True),
        ("erin@example.com", "appointment_held", utc(2024, 8, 15, 4), "system",
         "hist_erin@example.com_appointment_held", "import", "true", True),
        ("erin@example.com", "appointment_scheduled", utc(2024, 8, 15, 4), "system",
         "hist_erin@example.com_appointment_scheduled", "import", "true", True),
        ("erin@example.com", "contact_subscribed", utc(2024, 9, 1, 12), "manychat",
         "mc_mc_erin_contact_subscribed", "webhook", None, False),
    ]
    ann_data = rows(head_url, "SELECT event_data FROM funnel_events WHERE source_event_id = "
                              "'hist_ann.lee@example.com_contact_created'")[0][0]
    assert ann_data == {"historical": True, "import_source": "instagram", "ad_type": "paid",
                        "trigger_word": "HEAL", "campaign_name": "Spring Promo"}
    log = rows(head_url, "SELECT tenant_id, source_file, source_type, rows_processed, rows_imported, rows_skipped, "
                         "rows_updated, jsonb_array_length(errors), jsonb_array_length(warnings) FROM hist_import_logs")
    assert log == [(PPCU, "contacts.csv", "contacts", 7, 3, 4, 1, 4, 2)]

    # The metric layer sees the marking: with PPCU's historical filter on, of August 2024's leads only Erin
    # (a live contact whose earliest lead event is the imported one) counts; with it off, all three.
    engine = make_engine(head_url)
    with tenant_session(engine, PPCU) as conn:
        tenant = get_tenant(conn, "ppcu")
        august = Window(date(2024, 8, 1), date(2024, 8, 31), tenant.timezone)
        assert stage_counts(conn, tenant, august)["leads"] == 1
        assert stage_counts(conn, tenant, august, include_historical=True)["leads"] == 3
    engine.dispose()

    before = rows(head_url, "SELECT count(*), max(updated_at) FROM contacts")
    events_before = rows(head_url, "SELECT count(*) FROM funnel_events")
    again = import_json(cli_env, head_url, "contacts", "contacts.csv")
    assert (again["imported"], again["already_imported"], again["skipped"], again["suspicious"]) == (0, 3, 4, 0)
    assert rows(head_url, "SELECT count(*), max(updated_at) FROM contacts") == before
    assert rows(head_url, "SELECT count(*) FROM funnel_events") == events_before
    assert rows(head_url, "SELECT count(*) FROM hist_import_logs") == [(2,)]
    # the other tenant saw nothing
    assert rows(head_url, "SELECT count(*) FROM contacts WHERE tenant_id = %s", (CENTNER,)) == [(0,)]


def test_source_label_names_the_historical_source(head_url: str, cli_env: dict[str, str]) -> None:
    import_json(cli_env, head_url, "contacts", "contacts.csv", "--source-label", "Airtable")
    assert rows(head_url, "SELECT DISTINCT source FROM contacts WHERE tenant_id = %s", (PPCU,)) == [
        ("airtable_historical",)]
    data = rows(head_url, "SELECT DISTINCT event_data->>'import_source' FROM funnel_events "
                          "WHERE event_type = 'contact_created'")
    assert data == [("Airtable",)]


PAYMENT_SQL = ("SELECT p.payment_event_id, c.email_primary, p.payment_source, p.payment_type, p.payment_category, "
               "p.amount, p.status, p.payment_date, p.customer_email, p.denefits_contract_code "
               "FROM payments p LEFT JOIN contacts c ON c.id = p.contact_id WHERE p.tenant_id = %s "
               "ORDER BY p.payment_event_id")


def test_payments_import_links_to_contacts_and_is_idempotent(head_url: str, cli_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    import_json(cli_env, head_url, "contacts", "contacts.csv")
    summary = import_json(cli_env, head_url, "payments", "payments.csv")
    assert {k: summary[k] for k in ("rows", "imported", "already_imported", "skipped", "suspicious",
                                    "payments_created", "orphan_payments")} == {
        "rows": 8, "imported": 5, "already_imported": 0, "skipped": 3, "suspicious": 1,
        "payments_created": 5, "orphan_payments": 2}
    assert summary["reasons"] == {
        "skipped": {"amount not a number": 1, "unparseable date": 1, "duplicate row": 1},
        "suspicious": {"bad email (stored as an orphan payment)": 1},
    }
    assert rows(head_url, PAYMENT_SQL, (PPCU,)) == [
        ("BRKSHIST0001_plan", None, "denefits", "buy_now_pay_later", "payment_plan", Decimal("4500.00"), "active",
         utc(2024, 8, 21, 4), "frank@example.com", "BRKSHIST0001"),
        ("ch_hist_001", "ann.lee@example.com", "stripe", "buy_in_full", "full_purchase", Decimal("1997.00"), "paid",
         utc(2024, 8, 20, 19, 30), "ann.lee@example.com", None),
        ("ch_hist_001_refund", "ann.lee@example.com", "stripe", "refund", "refund", Decimal("-1997.00"), "refunded",
         utc(2024, 9, 1, 4), "ann.lee@example.com", None),
        ("ch_hist_002", "ann.lee@example.com", "stripe", "buy_in_full", "deposit", Decimal("100.00"), "paid",
         utc(2024, 8, 12, 4), "ann.lee@example.com", None),
        ("ch_hist_005", None, "stripe", "buy_in_full", "full_purchase", Decimal("300.00"), "paid",
         utc(2024, 8, 23, 4), None, None),
    ]
    events = rows(head_url, "SELECT event_type, source, source_event_id, created_by FROM funnel_events "
                            "WHERE source = 'stripe' ORDER BY event_timestamp")
    assert events == [
        ("deposit_paid", "stripe", "stripe_deposit_ch_hist_002", "import"),
        ("purchase_completed", "stripe", "stripe_purchase_ch_hist_001", "import"),
        ("payment_refunded", "stripe", "ch_hist_001_refund", "import"),
    ]
    counts = rows(head_url, "SELECT (SELECT count(*) FROM payments), (SELECT count(*) FROM funnel_events)")
    again = import_json(cli_env, head_url, "payments", "payments.csv")
    assert (again["imported"], again["already_imported"], again["skipped"]) == (0, 5, 3)
    assert rows(head_url, "SELECT (SELECT count(*) FROM payments), (SELECT count(*) FROM funnel_events)") == counts

    # Frank's contract waited as an orphan; importing Frank links it (the write path's orphan rule).
    frank = tmp_path / "frank.csv"  # an absolute path: FIXTURES / frank is frank
    frank.write_text("email,first_seen\nfrank@example.com,2024-08-01\n")
    import_json(cli_env, head_url, "contacts", str(frank))
    linked = rows(head_url, "SELECT c.email_primary, c.stage FROM payments p JOIN contacts c ON c.id = p.contact_id "
                            "WHERE p.payment_event_id = 'BRKSHIST0001_plan'")
    assert linked == [("frank@example.com", "purchased")]


def test_dashboard_exports_of_stripe_and_denefits(head_url: str, cli_env: dict[str, str]) -> None:
    stripe = import_json(cli_env, head_url, "payments", "stripe_export.csv")
    assert (stripe["imported"], stripe["skipped"], stripe["reasons"]["skipped"]) == (
        1, 1, {"not a payment (status failed)": 1})
    denefits = import_json(cli_env, head_url, "payments", "denefits_export.csv")
    assert (denefits["imported"], denefits["skipped"], denefits["reasons"]["skipped"]) == (
        1, 1, {"not a payment (status cancelled)": 1})
    assert rows(head_url, PAYMENT_SQL, (PPCU,)) == [
        ("BRKSDEN0001_plan", None, "denefits", "buy_now_pay_later", "payment_plan", Decimal("3600.00"), "active",
         utc(2024, 8, 27, 4), "hana@example.com", "BRKSDEN0001"),
        # "Created date (UTC)" is read as UTC, not in the tenant's zone
        ("ch_3Stripe001", None, "stripe", "buy_in_full", "full_purchase", Decimal("297.00"), "paid",
         utc(2024, 8, 25, 14), "bob@example.com", None),
    ]
    names = rows(head_url, "SELECT customer_name FROM payments WHERE payment_event_id = 'BRKSDEN0001_plan'")
    assert names == [("Hana Ito",)]


def test_table_output_and_bad_files(head_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    shown = mcb(cli_env, head_url, "import", "contacts", str(FIXTURES / "contacts.csv"), "--tenant", "ppcu")
    assert shown.returncode == 0, shown.stderr
    assert "Import of contacts from contacts.csv into ppcu" in shown.stdout
    assert "bad email: 1" in shown.stdout and "Lines to look at: 3 (phone too short (not kept))" in shown.stdout

    wrong = mcb(cli_env, head_url, "import", "contacts", str(FIXTURES / "not_contacts.csv"), "--tenant", "ppcu")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == ("Error: not_contacts.csv is not a contacts export: it has no email column "
                                    "(its columns are: name, notes).")
    assert "Traceback" not in wrong.stderr
    missing = mcb(cli_env, head_url, "import", "payments", str(tmp_path / "nope.csv"), "--tenant", "ppcu")
    assert missing.returncode == 1 and missing.stderr.strip() == f"Error: No file '{tmp_path / 'nope.csv'}'."
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    blank = mcb(cli_env, head_url, "import", "payments", str(empty), "--tenant", "ppcu")
    assert blank.returncode == 1 and blank.stderr.strip() == "Error: empty.csv is empty."
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x81\x8d\x8f\x90\x9d" * 10)
    unreadable = mcb(cli_env, head_url, "import", "payments", str(binary), "--tenant", "ppcu")
    assert unreadable.returncode == 1 and "Traceback" not in unreadable.stderr
    nobody = mcb(cli_env, head_url, "import", "payments", str(FIXTURES / "payments.csv"), "--tenant", "nobody")
    assert nobody.returncode == 1 and "No tenant 'nobody'" in nobody.stderr
    assert rows(head_url, "SELECT count(*) FROM payments") == [(0,)]
