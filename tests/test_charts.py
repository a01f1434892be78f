"""The dashboard's SVG charts as pure functions: parsed as XML, every drawn value and size checked by hand."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from mcb.web.charts import compact, funnel_chart, nice_ceiling, revenue_chart, tick_count, trend_chart

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_nice_ceiling_and_compact_numbers() -> None:
    assert [nice_ceiling(v) for v in (0, 0.7, 1, 3, 7297, 1050, 100, 249)] == [
        1.0, 1.0, 1.0, 5.0, 10000.0, 2000.0, 100.0, 250.0]
    assert compact(1234) == "1.23k"
    assert compact(1250, money=True) == "$1.25k"
    assert compact(0.5) == "0.5"
    assert [tick_count(t) for t in (100, 10, 2, 1, 5000, 2.5)] == [4, 5, 2, 1, 4, 1]
    assert compact(2_500_000, money=True) == "$2.5M"
    assert compact(Decimal("12.5"), money=True) == "$12.50"
    assert compact(-1997, money=True) == "-$2k"
    assert compact(999) == "999"


def test_funnel_bars_are_proportional_to_the_largest_stage() -> None:
    root = parse(funnel_chart([("Leads", 4), ("Qualified", 2), ("Buyers", 1)], width=560, label_width=130))
    assert root.get("viewBox") == "0 0 560 110"  # 3 × (26 + 8) + 8
    stages = root.findall("s:g[@class='stage']", NS)
    assert [(g.get("data-stage"), g.get("data-value")) for g in stages] == [
        ("Leads", "4"), ("Qualified", "2"), ("Buyers", "1")]
    # the track is 560 − 130 − 120 = 310 wide; bars are 310 × count / 4
    assert [g.find("s:rect", NS).get("width") for g in stages] == ["310", "155", "77.5"]  # type: ignore[union-attr]
    rates = [g.find("s:text[@class='rate']", NS) for g in stages]
    assert rates[0] is None and [r.text for r in rates[1:]] == ["50%", "50%"]  # type: ignore[union-attr]
    assert root.get("aria-label") == "Funnel: Leads 4, Qualified 2, Buyers 1"


def test_funnel_of_zeros_and_of_nothing() -> None:
    zeros = parse(funnel_chart([("Leads", 0), ("Buyers", 0)]))
    assert [r.get("width") for r in zeros.iter("{http://www.w3.org/2000/svg}rect")] == ["0", "0"]
    empty = parse(funnel_chart([]))
    assert empty.find("s:text[@class='empty']", NS).text == "No data in this range"  # type: ignore[union-attr]


def test_revenue_bars_share_one_axis_from_zero() -> None:
    root = parse(revenue_chart([("Nov 2", 50, 100), ("Nov 3", Decimal("0"), Decimal("25"))], width=560, height=240))
    bars = root.findall(".//s:rect[@data-period]", NS)
    # plot height 240 − 24 − 28 = 188; axis top nice_ceiling(100) = 100
    assert [(b.get("class"), b.get("data-period"), b.get("data-value"), b.get("height")) for b in bars] == [
        ("bar cash", "Nov 2", "50", "94"), ("bar projected", "Nov 2", "100", "188"),
        ("bar cash", "Nov 3", "0", "0"), ("bar projected", "Nov 3", "25", "47")]
    assert [b.get("y") for b in bars] == ["118", "24", "212", "165"]  # 24 + 188 − height
    ticks = [t.text for t in root.findall("s:text[@class='tick']", NS)]
    assert ticks[:5] == ["$0", "$25", "$50", "$75", "$100"] and ticks[5:] == ["Nov 2", "Nov 3"]


def test_negative_period_draws_nothing_below_zero_but_keeps_its_value() -> None:
    root = parse(revenue_chart([("Nov 9", -200, -200)]))
    bars = root.findall(".//s:rect[@data-period]", NS)
    assert [(b.get("data-value"), b.get("height")) for b in bars] == [("-200", "0"), ("-200", "0")]
    assert bars[0].find("s:title", NS).text == "Nov 9: cash -$200"  # type: ignore[union-attr]


def test_trend_lines_have_one_point_per_period() -> None:
    root = parse(trend_chart(["W1", "W2", "W3"], [("Leads", [0, 5, 10]), ("Buyers", [0, 1, 2])],
                             width=560, height=200))
    series = root.findall("s:g[@data-series]", NS)
    assert [g.get("data-series") for g in series] == ["Leads", "Buyers"]
    leads = series[0].findall("s:circle", NS)
    # plot: x from 56 to 536 (step 240), y from 24 to 172 (height 148), axis top 10 in 5 steps of 2
    assert [(c.get("cx"), c.get("cy"), c.get("data-value")) for c in leads] == [
        ("56", "172", "0"), ("296", "98", "5"), ("536", "24", "10")]
    assert series[0].find("s:path", NS).get("d") == "M56,172 L296,98 L536,24"  # type: ignore[union-attr]
    ticks = [t.text for t in root.findall("s:text[@class='tick']", NS)]
    assert ticks == ["0", "2", "4", "6", "8", "10", "W1", "W2", "W3"]


def test_text_is_escaped() -> None:
    svg = funnel_chart([("<script>alert(1)</script>", 1)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    parse(svg)  # still well-formed XML
