"""The metric layer's grouped forms: several consecutive windows in one statement (``stage_counts_per``,
``money_per``, ``ad_spend_per``, ``summaries``, ``weekly_trend``), on a hand-built history. Every expected
number is worked out in the comments, never by calling the code under test.

Tenant time zone America/New_York. W44 is Mon Oct 27 – Sun Nov 2, 2025, the week the clocks went back:
[2025-10-27 04:00 UTC, 2025-11-03 05:00 UTC), 169 hours. W45 is Mon Nov 3 – Sun Nov 9:
[2025-11-03 05:00 UTC, 2025-11-10 05:00 UTC).

- P (ad_1): subscribed Oct 27 04:00 UTC (W44's first instant); qualified Nov 3 04:30 UTC (Sun Nov 2 23:30
  local: W44) and again Nov 4 12:00 UTC (W45).
- Q (ad_1): subscribed Nov 3 04:59 UTC (Sun 23:59 local: W44); meeting held Nov 3 05:00 UTC (W45's first
  instant) and again Nov 5; purchase Nov 6 and payment plan Nov 7 (W45: one buyer, two buying events).
- R (ad_2): subscribed Nov 10 04:59:59 UTC (W45's last second); meeting held Nov 10 05:00 UTC (W46).
- S: historical (source instagram_historical): subscribed and qualified Nov 4 (W45) — left out.
- T: subscribed Oct 26 23:00 UTC (Sun Oct 26 19:00 local: W43); qualified Oct 28 (W44).
- U: subscribed Sep 1; pays: $1,000 full purchase Nov 3 04:59:59 UTC (Sun Nov 2 local: W44; the payment
  emits U's purchase_completed), $100 deposit Nov 3 05:00 UTC (W45; emits deposit_paid), a $200 refund
  Nov 9 (W45).
- orphan payments: $500 on Oct 27 03:59:59 UTC (W43), $300 on Oct 27 04:00 UTC (W44).
- spend (daily rows of ad_1): Oct 26 $3 (W43), Nov 2 $10 (W44), Nov 3 $20 and Nov 9 $5 (W45), Nov 10 $7 (W46).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from mcb.analytics import metrics
from mcb.analytics.window import Window
from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.tenancy.tenants import Tenant, get_tenant
from tests.analytics_data import PPCU, insight, new_york_with_historical_filter, payment, subscriber, utc

NY = "America/New_York"
W44 = Window(date(2025, 10, 27), date(2025, 11, 2), NY)
W45 = Window(date(2025, 11, 3), date(2025, 11, 9), NY)
ZERO = dict.fromkeys(metrics.STAGE_NAMES, 0)


@pytest.fixture(scope="module")
def engine(pg: Any, head_template: str) -> Iterator[Engine]:
    with pg.database(template=head_template) as url:
        eng = make_engine(url)
        with admin_session(eng) as conn:
            new_york_with_historical_filter(conn)
        with tenant_session(eng, PPCU) as conn:
            subscriber(conn, PPCU, "p", utc(2025, 10, 27, 4), ("dm_qualified", utc(2025, 11, 3, 4, 30)),
                       ("dm_qualified", utc(2025, 11, 4, 12)), ad_id="ad_1")
            subscriber(conn, PPCU, "q", utc(2025, 11, 3, 4, 59), ("appointment_held", utc(2025, 11, 3, 5)),
                       ("appointment_held", utc(2025, 11, 5, 12)), ("purchase_completed", utc(2025, 11, 6, 12)),
                       ("payment_plan_created", utc(2025, 11, 7, 12)), ad_id="ad_1")
            subscriber(conn, PPCU, "r", utc(2025, 11, 10, 4, 59, 59), ("appointment_held", utc(2025, 11, 10, 5)),
                       ad_id="ad_2")
            subscriber(conn, PPCU, "s", utc(2025, 11, 4, 12), ("dm_qualified", utc(2025, 11, 4, 13)),
                       source="instagram_historical")
            subscriber(conn, PPCU, "t", utc(2025, 10, 26, 23), ("dm_qualified", utc(2025, 10, 28, 12)))
            subscriber(conn, PPCU, "u", utc(2025, 9, 1, 12), email="u@example.com")
            payment(conn, PPCU, "evt_u_full", "u@example.com", "full_purchase", "1000", utc(2025, 11, 3, 4, 59, 59))
            payment(conn, PPCU, "evt_u_dep", "u@example.com", "deposit", "100", utc(2025, 11, 3, 5))
            payment(conn, PPCU, "evt_u_ref", "u@example.com", "refund", "-200", utc(2025, 11, 9, 12))
            assert payment(conn, PPCU, "evt_o1", "nobody@example.com", "full_purchase", "500",
                           utc(2025, 10, 27, 3, 59, 59)) == "orphan"
            assert payment(conn, PPCU, "evt_o2", "nobody@example.com", "full_purchase", "300",
                           utc(2025, 10, 27, 4)) == "orphan"
            for day, spend in ((date(2025, 10, 26), "3"), (date(2025, 11, 2), "10"), (date(2025, 11, 3), "20"),
                               (date(2025, 11, 9), "5"), (date(2025, 11, 10), "7")):
                insight(conn, PPCU, "ad_1", day, spend)
        yield eng
        eng.dispose()


def call(engine: Engine, fn: Any, *args: Any, **kw: Any) -> Any:
    with admin_session(engine) as conn:
        tenant: Tenant = get_tenant(conn, "ppcu")
    with tenant_session(engine, tenant.id) as conn:
        return fn(conn, tenant, *args, **kw)


@pytest.fixture(params=["quarter-hour counts", "event rows"])
def counted_from(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on event_counts and once on the rows: with a quarter hour of a year, no window
    boundary is on one, so the metrics count the events and leads themselves."""
    if request.param == "event rows":
        monkeypatch.setattr(metrics, "QUARTER_HOUR", 366 * 86400 + 1)
    return str(request.param)


@pytest.mark.usefixtures("counted_from")
def test_two_weeks_in_one_statement_count_each_week_as_its_own(engine: Engine) -> None:
    w44, w45 = call(engine, metrics.stage_counts_per, [W44, W45])
    # W44: leads P (first instant) and Q (Sunday 23:59 local); qualified P (Sunday 23:30 local) and T;
    # buyers U (the $1,000 purchase, Sunday local).
    assert w44 == {**ZERO, "leads": 2, "qualified": 2, "buyers": 1}
    # W45: leads R (last second; S is historical); qualified P (again; S left out); meetings held Q (twice:
    # one contact); deposits U; buyers Q (purchase and plan: one contact).
    assert w45 == {**ZERO, "leads": 1, "qualified": 1, "meetings_held": 1, "deposits": 1, "buyers": 1}
    # Asked one week at a time, the same numbers.
    assert call(engine, metrics.stage_counts, W44) == w44
    assert call(engine, metrics.stage_counts, W45) == w45


@pytest.mark.usefixtures("counted_from")
def test_a_contact_counts_once_in_a_window_that_holds_two_of_its_events(engine: Engine) -> None:
    # W44 and W45 as one window: qualified P (Nov 3 04:30 and Nov 4: its second qualification follows the
    # first inside the window, so it is not counted again) and T: 2; meetings held Q (Nov 3 and Nov 5): 1;
    # leads P, Q, R (S is historical): 3; deposits U; buyers U (W44's purchase) and Q: 2.
    both = Window(date(2025, 10, 27), date(2025, 11, 9), NY)
    assert call(engine, metrics.stage_counts, both) == {**ZERO, "leads": 3, "qualified": 2, "meetings_held": 1,
                                                          "deposits": 1, "buyers": 2}
    # The window that starts between P's two qualifications counts the second: Nov 4 00:00 local onwards.
    later = Window(date(2025, 11, 4), date(2025, 11, 9), NY)
    assert call(engine, metrics.stage_counts, later, only=["qualified", "meetings_held"]) == {
        **ZERO, "qualified": 1, "meetings_held": 1}


def test_grouped_counts_by_ad_and_in_cohort_mode(engine: Engine) -> None:
    w44, w45 = call(engine, metrics.stage_counts_per_by, [W44, W45], "ad_id")
    assert w44["ad_1"] == {**ZERO, "leads": 2, "qualified": 1}  # P and Q; P qualified
    assert w44[None] == {**ZERO, "qualified": 1, "buyers": 1}  # T; U
    assert w45["ad_1"] == {**ZERO, "qualified": 1, "meetings_held": 1, "buyers": 1}  # P; Q; Q
    assert w45["ad_2"] == {**ZERO, "leads": 1}  # R
    assert w45[None] == {**ZERO, "deposits": 1}  # U
    c44, c45 = call(engine, metrics.stage_counts_per, [W44, W45], mode="cohort")
    # W44's leads P and Q, and what they ever did: P qualified; Q held meetings and bought.
    assert c44 == {**ZERO, "leads": 2, "qualified": 1, "meetings_held": 1, "buyers": 1}
    # W45's lead R held a meeting in W46: the cohort counts it.
    assert c45 == {**ZERO, "leads": 1, "meetings_held": 1}


def test_money_and_spend_per_window(engine: Engine) -> None:
    m44, m45 = call(engine, metrics.money_per, [W44, W45])
    assert (m44.cash_collected, m44.projected_revenue) == (Decimal("1300"), Decimal("1300"))  # 1,000 + 300
    assert m45.cash_collected == Decimal("-100")  # 100 deposit - 200 refund
    assert m45.projected_revenue == Decimal("-200")  # no sale, the refund
    assert m45.refunds == Decimal("200")
    assert call(engine, metrics.ad_spend_per, [W44, W45]) == [Decimal("10"), Decimal("25")]
    # Days around the change of clocks: Sun Nov 2 local is 25 hours and holds the 04:59:59 UTC purchase.
    days = [Window(date(2025, 11, d), date(2025, 11, d), NY) for d in (1, 2, 3)]
    paid = call(engine, metrics.money_per, days)
    assert [p.cash_collected for p in paid] == [Decimal("0"), Decimal("1000"), Decimal("100")]
    assert call(engine, metrics.ad_spend_per, days) == [Decimal("0"), Decimal("10"), Decimal("20")]


def test_summaries_and_the_weekly_trend(engine: Engine) -> None:
    s44, s45 = call(engine, metrics.summaries, [W44, W45])
    assert (s44["leads"], s44["buyers"], s44["cash_collected"], s44["ad_spend"]) == (2, 1, 1300.0, 10.0)
    assert s44["cpl"] == 5.0 and s44["roas"] == 130.0  # 10 / 2; 1,300 / 10
    assert (s45["leads"], s45["meetings_held"], s45["projected_revenue"], s45["ad_spend"]) == (1, 1, -200.0, 25.0)
    assert s45["payments"]["refund"] == {"count": 1, "amount": -200.0}
    # Only some stages (what the dashboard's previous range needs): the others read 0.
    (few,) = call(engine, metrics.summaries, [W45], only=("leads", "buyers"))
    assert [few[k] for k in metrics.STAGE_NAMES] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]  # R; Q
    assert (few["cash_collected"], few["ad_spend"], few["cpa"]) == (-100.0, 25.0, 25.0)  # 25 / 1 buyer
    trend = call(engine, metrics.weekly_trend, Window(date(2025, 10, 27), date(2025, 11, 9), NY))
    assert [(w["window"]["start"], w["leads"], w["meetings_held"], w["buyers"], w["cash_collected"], w["ad_spend"])
            for w in trend] == [("2025-10-27", 2, 0, 1, 1300.0, 10.0), ("2025-11-03", 1, 1, 1, -100.0, 25.0)]


def test_windows_must_be_consecutive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="consecutive"):
        call(engine, metrics.stage_counts_per, [W44, Window(date(2025, 11, 10), date(2025, 11, 16), NY)])
    with pytest.raises(ValueError, match="consecutive"):
        call(engine, metrics.money_per, [W45, W44])
