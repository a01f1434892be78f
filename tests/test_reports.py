"""``mcb report`` as an operator runs it, on the hand-built history of tests/test_metrics.py (its module
doc tells the story; the expected numbers here are worked out from it in the comments)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from tests.analytics_data import CENTNER, PPCU, new_york_with_historical_filter, payment, subscriber, utc
from tests.test_metrics import build_history

MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


@pytest.fixture(scope="module")
def url(pg: Any, head_template: str) -> Iterator[str]:
    with pg.database(template=head_template) as db_url:
        engine = make_engine(db_url)
        with admin_session(engine) as conn:
            new_york_with_historical_filter(conn)
        build_history(engine, PPCU)
        build_history(engine, CENTNER)
        with tenant_session(engine, PPCU) as conn:
            # Funnel and chatbot tags for the comparison reports: two chatbot variants in W45.
            subscriber(conn, PPCU, "mc_v1", utc(2025, 11, 5, 12), tags={"chatbot": "A-OCT30", "funnel": "LVNG_BOF_Jane"})
            subscriber(conn, PPCU, "mc_v2", utc(2025, 11, 5, 13), ("dm_qualified", utc(2025, 11, 5, 14)),
                       email="v2@example.com", tags={"chatbot": "B-OCT30", "funnel": "LVNG_BOF_Calendly"})
            payment(conn, PPCU, "evt_v2", "v2@example.com", "full_purchase", "2250", utc(2025, 11, 6, 12))
        engine.dispose()
        yield db_url


def mcb(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCB, *args], env={**env, "DATABASE_URL": url}, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def report_json(env: dict[str, str], url: str, *args: str) -> dict[str, Any]:
    done = mcb(env, url, "report", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_weekly_json(url: str, cli_env: dict[str, str]) -> None:
    data = report_json(cli_env, url, "weekly", "--tenant", "centner", "--week", "2025-W45")
    assert data["report"] == "weekly" and data["tenant"]["slug"] == "centner"
    assert data["window"]["start"] == "2025-11-03" and data["window"]["end"] == "2025-11-09"
    assert data["window"]["start_utc"] == "2025-11-03T05:00:00+00:00"
    # Centner holds the story alone (ppcu got two extra contacts in this module).
    assert (data["leads"], data["qualified"], data["meetings_held"], data["buyers"], data["deposits"]) == (2, 2, 1, 2, 1)
    assert (data["cash_collected"], data["projected_revenue"], data["refunds"]) == (5473.0, 7997.0, 500.0)
    assert (data["ad_spend"], data["cpl"], data["cpa"], data["roas"], data["roas_cash"]) == (75.0, 37.5, 37.5, 106.63, 72.97)
    assert data["payments"]["recurring"] == {"count": 2, "amount": 376.0}
    # Top ad by meetings held: ad_1 (E held and bought; A is its lead).
    top = data["top_ads"][0]
    assert (top["ad_id"], top["meetings_held"], top["leads"], top["buyers"], top["ad_spend"]) == ("ad_1", 1, 1, 1, 75.0)
    # E's projected revenue: full purchase 2,997 - refund 500 (a deposit is cash, not projected).
    assert top["projected_revenue"] == 2497.0 and top["roas"] == round(2497 / 75, 2)
    assert top["ad_name"] == "Ad one"
    # The previous week, W44: leads D and J; spend ad_2's 111.
    assert data["previous"]["leads"] == 2 and data["previous"]["ad_spend"] == 111.0
    assert data["week_over_week"]["leads"] == {"current": 2, "previous": 2, "delta": 0.0, "pct": 0.0}
    assert data["week_over_week"]["ad_spend"]["pct"] == round((75 - 111) / 111, 4)
    assert "contacts" not in data  # only the CSV and the e-mail list the contacts


def test_two_tenants_with_identical_data_give_identical_separate_reports(url: str, cli_env: dict[str, str]) -> None:
    ppcu = report_json(cli_env, url, "weekly", "--tenant", "ppcu", "--week", "2025-W44")
    centner = report_json(cli_env, url, "weekly", "--tenant", "centner", "--week", "2025-W44")
    assert ppcu["tenant"]["slug"] == "ppcu" and centner["tenant"]["slug"] == "centner"
    own = ("tenant", "csv_filename")
    assert {k: v for k, v in ppcu.items() if k not in own} == {k: v for k, v in centner.items() if k not in own}
    assert centner["csv_filename"] == "CENTNER_Weekly_Data_2025-10-27_to_2025-11-02.csv"
    # W45 differs: ppcu has two more leads (v1, v2) and v2's $2,250 purchase; centner does not see them.
    ppcu45 = report_json(cli_env, url, "weekly", "--tenant", "ppcu", "--week", "2025-W45")
    assert (ppcu45["leads"], ppcu45["buyers"], ppcu45["cash_collected"]) == (4, 3, 5473.0 + 2250)
    empty = report_json(cli_env, url, "weekly", "--tenant", "columnline", "--week", "2025-W45")
    assert (empty["leads"], empty["cash_collected"], empty["roas"], empty["top_ads"]) == (0, 0.0, None, [])


def test_weekly_csv_lists_the_contacts_active_in_the_week(url: str, cli_env: dict[str, str]) -> None:
    done = mcb(cli_env, url, "report", "weekly", "--tenant", "centner", "--week", "2025-W45", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    # Active in W45: A, B, D, E, F, G, I (H is historical, C is in W46, the orphan has no contact).
    assert len(rows) == 7
    a = next(r for r in rows if r["email"] == "a@example.com")
    assert (a["lead_date"], a["qualified_date"], a["link_clicked_date"], a["ad_id"]) == \
        ("2025-11-03", "2025-11-04", "2025-11-05", "ad_1")
    e = next(r for r in rows if r["email"] == "e@example.com")
    assert (e["lead_date"], e["meeting_held_date"], e["purchased_date"]) == ("2025-10-01", "2025-11-06", "2025-11-07")
    b = next(r for r in rows if r["ad_id"] == "ad_2")
    assert b["lead_date"] == "2025-11-09"  # 04:59:59 UTC on Nov 10 is still Sunday in New York


def test_funnel_report_and_its_formats(url: str, cli_env: dict[str, str], tmp_path: Any) -> None:
    data = report_json(cli_env, url, "funnel", "--tenant", "centner", "--from", "2025-11-03", "--to", "2025-11-09")
    assert (data["leads"], data["qualified"], data["link_clicked"], data["buyers"]) == (2, 2, 1, 2)
    assert data["biggest_drop_off"]["from"] == "link_clicked" and data["biggest_drop_off"]["to"] == "forms"
    cohort = report_json(cli_env, url, "funnel", "--tenant", "centner", "--week", "2025-W45", "--mode", "cohort")
    assert (cohort["leads"], cohort["qualified"], cohort["buyers"]) == (2, 1, 0)  # A and B only
    table = mcb(cli_env, url, "report", "funnel", "--tenant", "centner", "--week", "2025-W45")
    assert table.returncode == 0 and "Biggest drop-off: Link clicked → Forms" in table.stdout
    md = mcb(cli_env, url, "report", "funnel", "--tenant", "centner", "--week", "2025-W45", "--format", "markdown")
    assert "| Leads | 2 |" in md.stdout
    target = tmp_path / "funnel.html"
    html = mcb(cli_env, url, "report", "funnel", "--tenant", "centner", "--week", "2025-W45", "--format", "html",
               "--output", str(target))
    assert html.returncode == 0 and target.read_text().startswith("<!DOCTYPE html>")
    assert "Centner Wellness" in target.read_text()


def test_revenue_ads_sources(url: str, cli_env: dict[str, str]) -> None:
    rev = report_json(cli_env, url, "revenue", "--tenant", "centner", "--week", "2025-W45")
    assert rev["by_category"]["payment_plan"] == {"count": 1, "amount": 3000.0}
    assert [o["payment_event_id"] for o in rev["orphan_payments"]] == ["evt_orphan"]
    by_source = {r["payment_source"]: r for r in rev["by_payment_source"]}
    # Stripe: 100 + 2,997 + 2,000 - 500 cash; Denefits: 500 + 376 cash, 3,000 + 500 projected.
    assert by_source["stripe"]["cash_collected"] == 4597.0 and by_source["denefits"]["cash_collected"] == 876.0
    assert by_source["denefits"]["projected_revenue"] == 3500.0
    ads = report_json(cli_env, url, "ads", "--tenant", "centner", "--week", "2025-W45")
    assert {a["ad_id"]: (a["leads"], a["ad_spend"]) for a in ads["ads"]} == {"ad_1": (1, 75.0), "ad_2": (1, 0.0)}
    assert ads["unattributed"] == {"leads": 0, "buyers": 1}  # F bought and has no ad
    src = report_json(cli_env, url, "sources", "--tenant", "centner", "--week", "2025-W45")
    assert {s["source"]: s["leads"] for s in src["sources"]} == {"instagram": 2}


def test_compare_reports_warn_on_small_samples(url: str, cli_env: dict[str, str]) -> None:
    ab = report_json(cli_env, url, "chatbot-ab", "--tenant", "ppcu", "--week", "2025-W45")
    variants = {v["variant"]: v for v in ab["variants"]}
    assert (variants["A-OCT30"]["leads"], variants["B-OCT30"]["leads"], variants["B-OCT30"]["qualified"]) == (1, 1, 1)
    assert variants["B-OCT30"]["buyers"] == 1 and variants["B-OCT30"]["revenue_per_lead"] == 2250.0
    assert ab["winners"]["qualified"] == "B-OCT30" and variants["A-OCT30"]["small_sample"] is True
    assert "Fewer than 30 leads in" in ab["warnings"][0]
    fc = report_json(cli_env, url, "funnel-compare", "--tenant", "ppcu", "--week", "2025-W45")
    assert {v["variant"] for v in fc["variants"]} >= {"LVNG_BOF_Jane", "LVNG_BOF_Calendly"}


def test_contact_journey(url: str, cli_env: dict[str, str]) -> None:
    data = report_json(cli_env, url, "contact", "E@example.com", "--tenant", "ppcu")
    assert [e["event_type"] for e in data["events"]] == [
        "contact_subscribed", "appointment_scheduled", "appointment_held", "deposit_paid", "purchase_completed",
        "payment_refunded"]
    assert data["events"][2]["hours_since_previous"] == 24.0  # Nov 5 15:00 -> Nov 6 15:00
    assert data["events"][0]["local_time"] == "2025-10-01 08:00"  # 12:00 UTC in New York (EDT)
    assert [p["amount"] for p in data["payments"]] == [100.0, 2997.0, -500.0]
    missing = mcb(cli_env, url, "report", "contact", "nobody-at-all", "--tenant", "ppcu")
    assert missing.returncode == 1 and "No contact of ppcu matches 'nobody-at-all'." in missing.stderr


def test_data_quality(url: str, cli_env: dict[str, str]) -> None:
    data = report_json(cli_env, url, "data-quality", "--tenant", "centner", "--week", "2025-W45")
    checks = {c["check"]: c for c in data["checks"]}
    # Leads A and B: both carry an ad id; of the two with a ManyChat id only A has a GHL id.
    assert checks["attribution_coverage"]["value"] == 1.0 and checks["attribution_coverage"]["status"] == "ok"
    assert checks["mc_ghl_linkage"]["value"] == 0.5 and checks["mc_ghl_linkage"]["status"] == "critical"
    assert checks["orphan_rate"]["count"] == 1 and checks["orphan_rate"]["of"] == 8
    assert checks["leads_to_qualified"]["value"] == 1.0
    assert data["stage_distribution"]["purchased"] == 3  # E, F and H (all contacts, all time)


def test_monthly_counts_distinct_over_the_period(url: str, cli_env: dict[str, str]) -> None:
    data = report_json(cli_env, url, "monthly", "--tenant", "centner", "--from", "2025-10-27", "--to", "2025-11-23")
    assert [w["window"]["start"] for w in data["weeks"]] == ["2025-10-27", "2025-11-03", "2025-11-10", "2025-11-17"]
    assert [w["leads"] for w in data["weeks"]] == [2, 2, 1, 0]  # D, J | A, B | C
    # D is qualified in W45 only; A too: 2 distinct over the period (the weeks' sum is 0 + 2 + 0 + 0).
    assert data["leads"] == 5 and data["qualified"] == 2
    assert data["weeks"][1]["cohort"]["qualified"] == 1  # of A and B, A qualified


def test_bad_input_gives_one_sentence(url: str, cli_env: dict[str, str]) -> None:
    for args, message in (
        (("weekly", "--tenant", "nobody"), "No tenant 'nobody'"),
        (("weekly", "--tenant", "ppcu", "--week", "2025-45"), "is not an ISO week"),
        (("weekly", "--tenant", "ppcu", "--format", "pdf"), "--format 'pdf' is not one of"),
        (("funnel", "--tenant", "ppcu", "--week", "2025-W45", "--last", "7d"), "Give one window"),
        (("weekly", "--tenant", "ppcu", "--test"), "--test goes with --send"),
        (("weekly", "--tenant", "ppcu", "--send"), "MCB_SMTP_URL is not set"),
    ):
        done = mcb(cli_env, url, "report", *args)
        assert done.returncode == 1, (args, done.stdout)
        assert message in done.stderr and "Traceback" not in done.stderr


def test_weekly_and_monthly_on_two_connections_equal_one(url: str) -> None:
    """``mcb report weekly|monthly`` builds the top ads on a second connection of the same snapshot
    (``run.report_sessions``); the report is the one a single connection builds."""
    from datetime import date

    from mcb.analytics.reports import REPORTS
    from mcb.analytics.run import report_session, report_sessions
    from mcb.analytics.window import Window
    from mcb.tenancy.tenants import get_tenant

    engine = make_engine(url)
    try:
        with admin_session(engine) as conn:
            tenant = get_tenant(conn, "ppcu")
        for name, window in (("weekly", Window(date(2025, 11, 3), date(2025, 11, 9), tenant.timezone)),
                             ("monthly", Window(date(2025, 10, 20), date(2025, 11, 16), tenant.timezone))):
            with report_session(engine, tenant.id) as conn:
                alone = REPORTS[name].build(conn, tenant, window)
            with report_sessions(engine, tenant.id, 2) as (conn, side):
                together = REPORTS[name].build(conn, tenant, window, side=side)
            assert together == alone and alone["top_ads"], name
    finally:
        engine.dispose()
