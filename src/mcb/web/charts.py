"""Charts drawn on the server as SVG: pure functions from numbers to markup, no JavaScript, no CDN.

Each function returns one ``<svg>`` element as a string (safe to embed: every text is escaped). Shapes
carry ``data-*`` attributes with the value they draw and a ``<title>`` for the hover tooltip, so a test
or a screen reader can read the chart without measuring pixels. Colours come from CSS classes (the page's
stylesheet), so the charts follow the page's palette.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from html import escape

Number = int | float | Decimal


def _fmt(value: float) -> str:
    """Coordinates with two decimals at most (stable output, small markup)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``value`` (the top of an axis); 1 for nothing."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def compact(value: Number, *, money: bool = False) -> str:
    """1234 → "1.23k", 2500000 → "2.5M", 0.5 → "0.5"; with ``money`` a leading "$"."""
    number = float(value)
    sign = "-" if number < 0 else ""
    number = abs(number)
    prefix = "$" if money else ""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if number >= limit:
            scaled = number / limit
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            text = f"{scaled:.{digits}f}"
            text = text.rstrip("0").rstrip(".") if "." in text else text
            return f"{sign}{prefix}{text}{suffix}"
    if number != int(number):
        text = f"{number:,.2f}"
        return f"{sign}{prefix}{text if money else text.rstrip('0').rstrip('.')}"
    return f"{sign}{prefix}{number:,.0f}"


def tick_count(top: float) -> int:
    """How many steps divide the axis into whole numbers: 4 or 5 when they do, else 2, else 1."""
    for n in (4, 5, 2):
        step = top / n
        if abs(step - round(step)) < 1e-9 and step >= 1:
            return n
    return 1


def _svg(width: int, height: int, label: str, body: list[str], css_class: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def _empty(width: int, height: int, label: str, css_class: str) -> str:
    text = (f'<text class="empty" x="{width / 2:g}" y="{height / 2:g}" text-anchor="middle">'
            "No data in this range</text>")
    return _svg(width, height, label, [text], css_class)


def funnel_chart(stages: Sequence[tuple[str, int]], *, width: int = 560, bar_height: int = 26,
                 gap: int = 8, label_width: int = 130) -> str:
    """Horizontal bars, one per stage in order, as long as its count relative to the largest; beside each
    bar its count and its conversion from the stage before."""
    label = "Funnel: " + ", ".join(f"{name} {count}" for name, count in stages)
    height = max(len(stages), 1) * (bar_height + gap) + gap
    if not stages:
        return _empty(width, 60, label, "funnel")
    biggest = max((count for _, count in stages), default=0) or 1
    track = width - label_width - 120
    body: list[str] = []
    previous: int | None = None
    for i, (name, count) in enumerate(stages):
        y = gap + i * (bar_height + gap)
        length = track * count / biggest
        rate = f"{count / previous:.0%} of previous" if previous else ""
        body.append(
            f'<g class="stage" data-stage="{escape(name)}" data-value="{count}">'
            f"<title>{escape(name)}: {count:,}{' (' + rate + ')' if rate else ''}</title>"
            f'<text class="label" x="{label_width - 8}" y="{_fmt(y + bar_height * 0.68)}" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect class="bar" x="{label_width}" y="{y}" width="{_fmt(length)}" height="{bar_height}" rx="3"/>'
            f'<text class="value" x="{_fmt(label_width + length + 6)}" y="{_fmt(y + bar_height * 0.68)}">'
            f"{count:,}</text>"
            + (f'<text class="rate" x="{width - 4}" y="{_fmt(y + bar_height * 0.68)}" text-anchor="end">'
               f"{count / previous:.0%}</text>" if previous else "")
            + "</g>"
        )
        previous = count
    return _svg(width, height, label, body, "funnel")


def _y_axis(top: float, plot_left: int, plot_top: int, plot_height: int, plot_right: int, *,
            money: bool) -> list[str]:
    ticks = tick_count(top)
    body = []
    for i in range(ticks + 1):
        value = top * i / ticks
        y = plot_top + plot_height - plot_height * i / ticks
        body.append(f'<line class="grid" x1="{plot_left}" x2="{plot_right}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
                    f'<text class="tick" x="{plot_left - 6}" y="{_fmt(y + 4)}" text-anchor="end">'
                    f"{escape(compact(value, money=money))}</text>")
    return body


def _x_labels(labels: Sequence[str], centers: list[float], baseline: float, room: float) -> list[str]:
    """Period labels under the axis; every n-th when they would not fit (about 48 px each)."""
    every = max(1, math.ceil(len(labels) / max(1, int(room // 48))))
    return [f'<text class="tick" x="{_fmt(x)}" y="{_fmt(baseline + 16)}" text-anchor="middle">{escape(text)}</text>'
            for i, (text, x) in enumerate(zip(labels, centers, strict=True)) if i % every == 0]


def revenue_chart(points: Sequence[tuple[str, Number, Number]], *, width: int = 560, height: int = 240) -> str:
    """Cash collected beside projected revenue per period: ``points`` are (label, cash, projected), in
    order. Two bars per period on one money axis starting at zero (refunds can make a period negative;
    such a bar is drawn at zero height and its value is in its title)."""
    label = "Cash collected and projected revenue per period"
    if not points:
        return _empty(width, height, label, "revenue")
    left, right, top, bottom = 56, 8, 24, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    biggest = max(max(float(c), float(p)) for _, c, p in points)
    axis_top = nice_ceiling(biggest)
    slot = plot_w / len(points)
    bar = max(min(slot * 0.38, 28), 1.0)
    body = _y_axis(axis_top, left, top, plot_h, width - right, money=True)
    centers = []
    for i, (period, cash, projected) in enumerate(points):
        center = left + slot * (i + 0.5)
        centers.append(center)
        for kind, value, x in (("cash", cash, center - bar), ("projected", projected, center)):
            h = plot_h * max(float(value), 0) / axis_top
            body.append(
                f'<rect class="bar {kind}" data-period="{escape(period)}" data-value="{_fmt(float(value))}" '
                f'x="{_fmt(x)}" y="{_fmt(top + plot_h - h)}" width="{_fmt(bar)}" height="{_fmt(h)}">'
                f"<title>{escape(period)}: {kind} {escape(compact(value, money=True))}</title></rect>")
    body += _x_labels([p for p, _, _ in points], centers, top + plot_h, plot_w)
    body.append(f'<g class="legend"><rect class="bar cash" x="{left}" y="4" width="10" height="10"/>'
                f'<text x="{left + 14}" y="13">Cash collected</text>'
                f'<rect class="bar projected" x="{left + 120}" y="4" width="10" height="10"/>'
                f'<text x="{left + 134}" y="13">Projected revenue</text></g>')
    return _svg(width, height, label, body, "revenue")


def trend_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[Number]]], *, width: int = 560,
                height: int = 200, money: bool = False) -> str:
    """One line per series over the same periods (e.g. 13 weeks of leads and buyers), on one axis from
    zero. Each point is a circle carrying its value."""
    label = "Trend: " + ", ".join(name for name, _ in series)
    if not labels or not series:
        return _empty(width, height, label, "trend")
    left, right, top, bottom = 56, 24, 24, 28  # room on the right for the last period's label
    plot_w, plot_h = width - left - right, height - top - bottom
    biggest = max((float(v) for _, values in series for v in values), default=0.0)
    axis_top = nice_ceiling(biggest)
    step = plot_w / max(len(labels) - 1, 1)
    xs = [left + step * i if len(labels) > 1 else left + plot_w / 2 for i in range(len(labels))]
    body = _y_axis(axis_top, left, top, plot_h, width - right, money=money)
    legend_x = left
    for n, (name, values) in enumerate(series):
        points = [(x, top + plot_h - plot_h * max(float(v), 0) / axis_top) for x, v in zip(xs, values, strict=True)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{_fmt(x)},{_fmt(y)}" for i, (x, y) in enumerate(points))
        body.append(f'<g class="series s{n}" data-series="{escape(name)}"><path class="line" d="{path}"/>')
        for (x, y), period, value in zip(points, labels, values, strict=True):
            body.append(f'<circle class="point" cx="{_fmt(x)}" cy="{_fmt(y)}" r="3" data-period="{escape(period)}" '
                        f'data-value="{_fmt(float(value))}"><title>{escape(period)}: {escape(name)} '
                        f"{escape(compact(value, money=money))}</title></circle>")
        body.append("</g>")
        body.append(f'<g class="legend s{n}"><rect x="{legend_x}" y="4" width="10" height="10"/>'
                    f'<text x="{legend_x + 14}" y="13">{escape(name)}</text></g>')
        legend_x += 20 + 8 * len(name) + 16
    body += _x_labels(labels, xs, top + plot_h, plot_w)
    return _svg(width, height, label, body, "trend")
