"""The metric layer on a hand-built history. Every expected number is worked out in the comments from the
deliveries below, never by calling the code under test.

The story (tenant time zone America/New_York; week 2025-W45 is Mon Nov 3 – Sun Nov 9, i.e.
[2025-11-03 05:00 UTC, 2025-11-10 05:00 UTC); W44, Oct 27 – Nov 2, holds the end of daylight time and is
[2025-10-27 04:00 UTC, 2025-11-03 05:00 UTC), 169 hours):

- A: subscribed at local midnight starting W45 (Nov 3 05:00 UTC), ad_1; qualified, link sent, clicked in W45.
- B: subscribed at the last second of W45 (Nov 10 04:59:59 UTC), ad_2.
- C: subscribed at local midnight after W45 (Nov 10 05:00 UTC): W46.
- D: subscribed at Nov 3 04:59 UTC (Sun Nov 2 23:59 local: W44); qualified in W45.
- J: subscribed Oct 27 04:00 UTC (local midnight starting W44). K: Oct 27 03:59 UTC (W43).
- E: subscribed Oct 1; booked, held, $100 deposit, $2,997 purchase and a $500 refund in W45.
- F: subscribed Oct 3; Denefits plan $3,000 + $500 down payment + $188 instalment in W45.
- G: subscribed Sep 1; only a $188 Denefits instalment in W45 (cash, not a buyer).
- H: historical (source instagram_historical): subscribed, qualified and a $1,000 purchase in W45.
- I: created by GHL on Oct 20 (lead then), subscribes to ManyChat in W45 with the same e-mail.
- an orphan $2,000 purchase in W45 (nobody has that e-mail).
- spend: ad_1 $50 on Nov 3 and $25 on Nov 9; ad_2 $111 on Nov 2 and $999 on Nov 10.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, text

from mcb.analytics import metrics
from mcb.analytics.window import Window, iso_week, last_complete_week, resolve
from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.errors import UserError
from mcb.tenancy.tenants import Tenant, get_tenant
from tests.analytics_data import (
    CENTNER,
    COLUMNLINE,
    PPCU,
    ghl_contact,
    insight,
    new_york_with_historical_filter,
    payment,
    subscriber,
    utc,
)

NY = "America/New_York"
W45 = Window(date(2025, 11, 3), date(2025, 11, 9), NY)
W44 = Window(date(2025, 10, 27), date(2025, 11, 2), NY)


def build_history(engine: Engine, tenant: UUID) -> None:
    with tenant_session(engine, tenant) as conn:
        subscriber(conn, tenant, "mc_a", utc(2025, 11, 3, 5), ("dm_qualified", utc(2025, 11, 4, 12)),
                   ("link_sent", utc(2025, 11, 4, 13)), ("link_clicked", utc(2025, 11, 5, 12)),
                   ad_id="ad_1", email="a@example.com", ghl_id="ghl_a")
        subscriber(conn, tenant, "mc_b", utc(2025, 11, 10, 4, 59, 59), ad_id="ad_2")
        subscriber(conn, tenant, "mc_c", utc(2025, 11, 10, 5))
        subscriber(conn, tenant, "mc_d", utc(2025, 11, 3, 4, 59), ("dm_qualified", utc(2025, 11, 4, 12)))
        subscriber(conn, tenant, "mc_j", utc(2025, 10, 27, 4))
        subscriber(conn, tenant, "mc_k", utc(2025, 10, 27, 3, 59))
        subscriber(conn, tenant, "mc_e", utc(2025, 10, 1, 12), ("appointment_scheduled", utc(2025, 11, 5, 15)),
                   ("appointment_held", utc(2025, 11, 6, 15)), email="e@example.com", ad_id="ad_1")
        payment(conn, tenant, "evt_e_dep", "e@example.com", "deposit", "100", utc(2025, 11, 6, 16))
        payment(conn, tenant, "evt_e_full", "e@example.com", "full_purchase", "2997", utc(2025, 11, 7, 12))
        payment(conn, tenant, "evt_e_ref", "e@example.com", "refund", "-500", utc(2025, 11, 8, 12))
        subscriber(conn, tenant, "mc_f", utc(2025, 10, 3, 12), email="f@example.com")
        payment(conn, tenant, "F1_plan", "f@example.com", "payment_plan", "3000", utc(2025, 11, 7, 12),
                source="denefits", status="active")
        payment(conn, tenant, "F1_downpayment", "f@example.com", "downpayment", "500", utc(2025, 11, 7, 12),
                source="denefits")
        payment(conn, tenant, "F1_recurring_17", "f@example.com", "recurring", "188", utc(2025, 11, 8, 12),
                source="denefits")
        subscriber(conn, tenant, "mc_g", utc(2025, 9, 1, 12), email="g@example.com")
        payment(conn, tenant, "G1_recurring_5", "g@example.com", "recurring", "188", utc(2025, 11, 8, 12),
                source="denefits")
        subscriber(conn, tenant, "mc_h", utc(2025, 11, 4, 12), ("dm_qualified", utc(2025, 11, 4, 13)),
                   email="h@example.com", source="instagram_historical")
        payment(conn, tenant, "evt_h_full", "h@example.com", "full_purchase", "1000", utc(2025, 11, 5, 12))
        ghl_contact(conn, tenant, "ghl_i", utc(2025, 10, 20, 12), email="i@example.com")
        subscriber(conn, tenant, "mc_i", utc(2025, 11, 4, 12), email="i@example.com")
        assert payment(conn, tenant, "evt_orphan", "nobody@example.com", "full_purchase", "2000",
                       utc(2025, 11, 6, 12)) == "orphan"
        insight(conn, tenant, "ad_1", date(2025, 11, 3), "50", name="Ad one")
        insight(conn, tenant, "ad_1", date(2025, 11, 9), "25")
        insight(conn, tenant, "ad_2", date(2025, 11, 2), "111")
        insight(conn, tenant, "ad_2", date(2025, 11, 10), "999")


@pytest.fixture(scope="module")
def engine(pg: Any, head_template: str) -> Iterator[Engine]:
    with pg.database(template=head_template) as url:
        eng = make_engine(url)
        with admin_session(eng) as conn:
            new_york_with_historical_filter(conn)
        build_history(eng, PPCU)
        build_history(eng, CENTNER)
        yield eng
        eng.dispose()


def tenant(engine: Engine, slug: str = "ppcu") -> Tenant:
    with admin_session(engine) as conn:
        return get_tenant(conn, slug)


def run(engine: Engine, fn: Any, window: Window = W45, slug: str = "ppcu", **kw: Any) -> Any:
    t = tenant(engine, slug)
    with tenant_session(engine, t.id) as conn:
        return fn(conn, t, window, **kw)


# ------------------------------------------------------------------------------------------- windows


def test_window_bounds_follow_the_tenant_zone_across_dst() -> None:
    assert W45.start_utc.isoformat() == "2025-11-03T05:00:00+00:00"
    assert W45.end_utc.isoformat() == "2025-11-10T05:00:00+00:00"
    assert W44.start_utc.isoformat() == "2025-10-27T04:00:00+00:00"  # still daylight time (UTC-4)
    assert (W44.end_utc - W44.start_utc) == timedelta(hours=169)  # the week the clocks went back
    spring = iso_week("2025-W10", NY)  # Mar 3 – Mar 9, clocks forward on Sunday Mar 9
    assert (spring.start, spring.end) == (date(2025, 3, 3), date(2025, 3, 9))
    assert (spring.end_utc - spring.start_utc) == timedelta(hours=167)
    assert iso_week("2025-W45", NY) == W45
    assert W45.previous() == W44 and W45.iso_week == "2025-W45"
    assert W45.label == "Mon Nov 3 – Sun Nov 9, 2025"


def test_window_parsing() -> None:
    today = date(2025, 11, 13)  # a Thursday
    assert last_complete_week(NY, today=today) == W45
    assert resolve(NY, last="30d", today=today) == Window(date(2025, 10, 15), today, NY)
    assert resolve(NY, last="2w", today=today) == Window(date(2025, 10, 31), today, NY)
    assert resolve(NY, from_date="2025-11-03", to_date="2025-11-09") == W45
    for bad in ({"week": "2025-45"}, {"last": "soon"}, {"from_date": "11/03/2025"},
                {"week": "2025-W45", "last": "7d"}, {"from_date": "2025-11-09", "to_date": "2025-11-03"}):
        with pytest.raises(UserError):
            resolve(NY, today=today, **bad)


# ------------------------------------------------------------------------------------------- counts


def test_activity_counts_of_the_week(engine: Engine) -> None:
    counts = run(engine, metrics.stage_counts)
    assert counts == {
        "leads": 2,  # A (local midnight) and B (last second); not C, D, the old ones, H (historical), I (GHL lead Oct 20)
        "qualified": 2,  # A, D (H is historical)
        "link_sent": 1,  # A
        "link_clicked": 1,  # A
        "forms": 0,
        "meetings_booked": 1,  # E
        "meetings_held": 1,  # E
        "packages_sent": 0,
        "deposits": 1,  # E's $100
        "buyers": 2,  # E (Stripe purchase), F (Denefits plan); G's instalment is not a sale
    }
    assert run(engine, metrics.leads, W44) == 2  # D (23:59 Sunday local) and J (local midnight Monday)
    assert run(engine, metrics.leads, Window(date(2025, 11, 10), date(2025, 11, 16), NY)) == 1  # C


def test_historical_filter_is_the_tenant_setting(engine: Engine) -> None:
    counts = run(engine, metrics.stage_counts, include_historical=True)
    assert (counts["leads"], counts["qualified"], counts["buyers"]) == (3, 3, 3)  # H counts again
    m = run(engine, metrics.money, include_historical=True)
    assert m.cash_collected == Decimal("6473")  # 5,473 (below) + H's 1,000
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE tenants SET config = config || '{\"historical_filter\": false}'::jsonb "
                          "WHERE slug = 'columnline'"))
    assert metrics.historical_filter(tenant(engine, "columnline")) is False
    assert metrics.historical_filter(tenant(engine, "ppcu")) is True


def test_cohort_counts_follow_the_weeks_leads(engine: Engine) -> None:
    counts = run(engine, metrics.stage_counts, mode="cohort")
    # The W45 cohort is A and B: A qualified, got and clicked the link; B did nothing else.
    assert counts == {**dict.fromkeys(metrics.STAGE_NAMES, 0), "leads": 2, "qualified": 1, "link_sent": 1,
                      "link_clicked": 1}


def test_counts_by_first_touch_ad(engine: Engine) -> None:
    by_ad = run(engine, metrics.stage_counts_by, dimension="ad_id")
    assert by_ad["ad_1"]["leads"] == 1 and by_ad["ad_1"]["meetings_held"] == 1  # A; E
    assert by_ad["ad_1"]["buyers"] == 1  # E
    assert by_ad["ad_2"]["leads"] == 1  # B
    assert by_ad[None]["buyers"] == 1 and by_ad[None]["qualified"] == 1  # F; D


# ------------------------------------------------------------------------------------------- money


def test_money_refunds_reduce_cash_and_recurring_is_cash_only(engine: Engine) -> None:
    m = run(engine, metrics.money)
    # deposit 100; full purchases 2,997 (E) + 2,000 (orphan); plan 3,000; down payment 500;
    # instalments 188 + 188; refund -500. H (historical) is out.
    assert m.category("full_purchase") == metrics.CategoryTotal(2, Decimal("4997"))
    assert m.category("recurring") == metrics.CategoryTotal(2, Decimal("376"))
    assert m.cash_collected == Decimal("5473")  # 100 + 4,997 + 500 + 376 - 500
    assert m.projected_revenue == Decimal("7997")  # 4,997 + 3,000 + 500 - 500
    assert m.refunds == Decimal("500")


def test_ad_spend_is_a_sum_of_the_windows_days(engine: Engine) -> None:
    # The original's own row: a rolling 7-day total (no synced_at). Summing those is R-34's over-count.
    with tenant_session(engine, tenant(engine, "ppcu").id) as conn:
        conn.execute(text("INSERT INTO meta_ads (tenant_id, ad_id) VALUES (:t, 'ad_legacy')"),
                     {"t": tenant(engine, "ppcu").id})
        conn.execute(text("INSERT INTO meta_ad_insights (tenant_id, ad_id, snapshot_date, spend) "
                          "VALUES (:t, 'ad_legacy', DATE '2025-11-05', 350)"), {"t": tenant(engine, "ppcu").id})
    assert run(engine, metrics.ad_spend) == Decimal("75")  # ad_1's 50 + 25; ad_2's days are outside
    assert run(engine, metrics.ad_spend, W44) == Decimal("111")
    delivery = run(engine, metrics.ad_delivery_by_ad)
    assert set(delivery) == {"ad_1"} and delivery["ad_1"].days == 2


def test_summary_ratios(engine: Engine) -> None:
    s = run(engine, metrics.summary)
    assert (s["cash_collected"], s["projected_revenue"], s["refunds"], s["ad_spend"]) == (5473.0, 7997.0, 500.0, 75.0)
    assert s["cpl"] == 37.5  # 75 / 2 leads
    assert s["cpa"] == 37.5  # 75 / 2 buyers
    assert s["roas"] == 106.63  # 7,997 / 75
    assert s["roas_cash"] == 72.97  # 5,473 / 75
    assert s["show_rate"] == 1.0  # 1 held / 1 booked
    assert s["close_rate"] == 2.0  # 2 buyers / 1 held (activity-based: different people)
    steps = metrics.conversions(s)
    assert steps[0] == {"from": "leads", "to": "qualified", "from_count": 2, "to_count": 2, "rate": 1.0}
    drop = metrics.biggest_drop_off(s)
    assert drop is not None and (drop["from"], drop["to"], drop["lost_rate"]) == ("link_clicked", "forms", 1.0)


def test_weekly_trend(engine: Engine) -> None:
    trend = run(engine, metrics.weekly_trend, Window(date(2025, 10, 27), date(2025, 11, 9), NY))
    assert [(w["window"]["start"], w["leads"], w["meetings_held"], w["buyers"], w["cash_collected"],
             w["projected_revenue"], w["ad_spend"], w["roas"]) for w in trend] == [
        ("2025-10-27", 2, 0, 0, 0.0, 0.0, 111.0, 0.0),  # D, J; ad_2's 111 on Nov 2
        ("2025-11-03", 2, 1, 2, 5473.0, 7997.0, 75.0, 106.63),
    ]


def test_time_to_convert_is_the_median_days(engine: Engine) -> None:
    # E: Oct 1 12:00 -> Nov 7 12:00 = 37 days; F: Oct 3 12:00 -> Nov 7 12:00 = 35 days.
    assert run(engine, metrics.time_to_convert) == 36.0
    assert run(engine, metrics.time_to_convert, W44) is None


def test_data_quality_ratios(engine: Engine) -> None:
    q = run(engine, metrics.contact_quality)
    # The W45 leads are A (ad, mc+ghl, e-mail) and B (ad, mc only, no e-mail).
    assert q.attribution_coverage.to_dict() == {"count": 2, "of": 2, "rate": 1.0}
    assert q.mc_ghl_linkage.to_dict() == {"count": 1, "of": 2, "rate": 0.5}
    assert (q.without_email, q.duplicate_email_rate.of, q.duplicate_email_rate.count) == (1, 1, 0)
    orphans = run(engine, metrics.orphan_rate)
    # 8 payments count (E 3, F 3, G 1, orphan 1); one orphan of 2,000; absolute total 3,597 + 3,688 + 188 + 2,000 = 9,473.
    assert (orphans.payments, orphans.orphans) == (8, 1)
    assert orphans.amount == Decimal("9473") and orphans.by_amount == round(2000 / 9473, 4)


def test_webhook_error_rate_per_source(engine: Engine) -> None:
    with admin_session(engine) as conn:
        for source, status, at in (("manychat", "processed", utc(2025, 11, 4)), ("manychat", "error", utc(2025, 11, 4)),
                                   ("manychat", "processed", utc(2025, 11, 5)), ("ghl", "processed", utc(2025, 11, 5)),
                                   ("ghl", "error", utc(2025, 11, 11))):
            conn.execute(text("INSERT INTO webhook_logs (tenant_id, source, payload, status, created_at) "
                              "VALUES (:t, :s, '{}', :st, :at)"), {"t": PPCU, "s": source, "st": status, "at": at})
    rates = run(engine, metrics.webhook_error_rates)
    assert {k: v.error_rate.to_dict() for k, v in rates.items()} == {
        "manychat": {"count": 1, "of": 3, "rate": 0.3333}, "ghl": {"count": 0, "of": 1, "rate": 0.0}}


# ------------------------------------------------------------------------------------------- tenants


def test_two_tenants_with_identical_data_give_identical_separate_numbers(engine: Engine) -> None:
    ppcu = run(engine, metrics.summary)
    centner = run(engine, metrics.summary, slug="centner")
    assert ppcu == centner
    assert run(engine, metrics.summary, slug="columnline")["leads"] == 0  # no data there
    # One more lead for ppcu only: ppcu changes, centner does not.
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "mc_extra", utc(2025, 11, 5, 12))
    assert run(engine, metrics.leads) == 3
    assert run(engine, metrics.leads, slug="centner") == 2
    # Under centner's session, a query naming ppcu's id still sees nothing (Row Level Security).
    with tenant_session(engine, CENTNER) as conn:
        assert conn.execute(text("SELECT count(*) FROM contacts WHERE tenant_id = :t"), {"t": PPCU}).scalar() == 0
    assert COLUMNLINE != PPCU
