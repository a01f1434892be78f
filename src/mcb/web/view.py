"""What the dashboard shows for one tenant and one window, as a JSON-able dict.

Every number comes from the metric layer (``mcb.analytics.metrics``) and the report builders
(``mcb.analytics.reports``: the ads table, the data-quality checks); this module only chooses which
metrics, over which windows, and shapes them for the page. ``dashboard_data`` is also what the JSON view
(``/t/{tenant}/data.json``) returns and what ``bench/report.py`` can time for the page's cost.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics as m
from mcb.analytics.parallel import beside
from mcb.analytics.reports import ads as ads_report
from mcb.analytics.reports import quality as quality_report
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant
from mcb.web.activity import recent_activity

TREND_WEEKS = 13
DAILY_UP_TO = 31  # windows up to this many days chart revenue per day, longer ones per week
TOP_ADS = 15

# Headline tiles: (metric key in ``metrics.summary``, label, format, whether a rise is good news).
TILES: tuple[tuple[str, str, str, bool], ...] = (
    ("leads", "Leads", "count", True),
    ("meetings_held", "Meetings held", "count", True),
    ("buyers", "Buyers", "count", True),
    ("cash_collected", "Cash collected", "money", True),
    ("projected_revenue", "Projected revenue", "money", True),
    ("ad_spend", "Ad spend", "money", True),
    ("roas", "ROAS (projected)", "ratio", True),
    ("roas_cash", "ROAS (cash)", "ratio", True),
    ("cpl", "Cost per lead", "money", False),
    ("cpa", "Cost per buyer", "money", False),
)

TILE_STAGES: tuple[str, ...] = tuple(key for key, *_ in TILES if key in m.STAGE_NAMES)


def trend_window(window: Window, weeks: int = TREND_WEEKS) -> Window:
    """The ``weeks`` Monday–Sunday weeks ending with the week that holds the window's last day."""
    sunday = window.end + timedelta(days=6 - window.end.weekday())
    return Window(sunday - timedelta(days=7 * weeks - 1), sunday, window.timezone)


def _periods(window: Window) -> list[Window]:
    if window.days <= DAILY_UP_TO:
        return [Window(d, d, window.timezone) for d in window.dates()]
    return window.weeks()


def _period_label(period: Window) -> str:
    return period.start.strftime("%b %-d")


def _tiles(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    tiles = []
    for key, label, fmt, rise_is_good in TILES:
        delta = m.change(current.get(key), previous.get(key))
        good = None if not delta["delta"] else (delta["delta"] > 0) == rise_is_good
        tiles.append({"key": key, "label": label, "format": fmt, "good": good, **delta})
    return tiles


def _warnings(quality: dict[str, Any]) -> list[dict[str, Any]]:
    """The data-quality report's checks that miss their target, and its silent sources, as sentences."""
    out = []
    for c in quality["checks"]:
        if c["status"] in ("warning", "critical"):
            direction = "at least" if c["higher_is_better"] else "at most"
            out.append({"kind": "check", "check": c["check"], "level": c["status"],
                        "message": f"{c['label']} {c['value']:.0%} ({c['count']} of {c['of']}); "
                                   f"target {direction} {c['target']:.0%}."})
    for item in quality["silence"]:
        if item["status"] != "ok":
            out.append({"kind": "silence", "check": item["what"], "level": "warning",
                        "message": f"No {item['what']} for {item['days_since']:g} days."})
    return out


def _side_work(conn: Connection, tenant: Tenant, window: Window) -> dict[str, Any]:
    """The page's parts that need nothing from the headline numbers: the revenue chart, the 13-week trend,
    the ad table and the recent activity."""
    periods = _periods(window)
    revenue = [{"period": _period_label(period), "start": period.start.isoformat(),
                "cash_collected": m.money_value(paid.cash_collected),
                "projected_revenue": m.money_value(paid.projected_revenue)}
               for period, paid in zip(periods, m.money_per(conn, tenant, periods), strict=True)]
    trend = [{"week": w["window"]["iso_week"] or w["window"]["start"], "start": w["window"]["start"],
              "label": date.fromisoformat(w["window"]["start"]).strftime("%b %-d"),
              **{k: w[k] for k in ("leads", "meetings_held", "buyers", "cash_collected", "projected_revenue",
                                   "ad_spend", "roas")}}
             for w in m.weekly_trend(conn, tenant, trend_window(window))]
    return {"revenue": revenue, "trend": trend, "ads": ads_report.top_ad_rows(conn, tenant, window, TOP_ADS),
            "activity": recent_activity(conn, tenant.id)}


def dashboard_data(conn: Connection, tenant: Tenant, window: Window, *,
                   side: Connection | None = None) -> dict[str, Any]:
    """Everything the dashboard page shows. ``conn`` is the tenant's session (RLS), ``window`` in the
    tenant's time zone. ``side``: a second connection of the same session reading the same snapshot
    (``mcb.analytics.run.report_sessions``); the charts, the ad table and the activity are then computed
    on it in a thread while ``conn`` computes the headline numbers and the checks, which on two CPUs about
    halves the page's time. The result is the same either way."""
    with beside(conn, side, _side_work, tenant, window) as other_parts:
        previous_window = window.previous()
        current = m.summary(conn, tenant, window)
        # The previous range only feeds the tiles' changes: of its stages, only the tiles' (meetings held
        # and buyers are a few events; every stage would be most of the range's events again).
        previous = m.summaries(conn, tenant, [previous_window], only=TILE_STAGES)[0]
        quality = quality_report.build(conn, tenant, window, counts={k: current[k] for k in m.STAGE_NAMES},
                                       stage_distribution=False)  # the page does not show it
        other = other_parts()
    return {
        "tenant": {"slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone,
                   "historical_filter": m.historical_filter(tenant)},
        "window": window.to_dict(),
        "previous_window": previous_window.to_dict(),
        "summary": current,
        "tiles": _tiles(current, previous),
        "funnel": [{"stage": s, "label": m.STAGE_LABELS[s], "count": current[s]} for s in m.FUNNEL],
        "conversions": m.conversions(current),
        "biggest_drop_off": m.biggest_drop_off(current),
        "revenue": other["revenue"],
        "trend": other["trend"],
        "ads": other["ads"],
        "data_quality": {"problems": quality["problems"], "warnings": _warnings(quality)},
        "activity": other["activity"],
    }
