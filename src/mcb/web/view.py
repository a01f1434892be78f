"""What the dashboard shows for one tenant and one window, as a JSON-able dict.

Every number comes from the metric layer (``mcb.analytics.metrics``); this module only chooses which
metrics, over which windows, and shapes them for the page. ``dashboard_data`` is also what the JSON view
(``/t/{tenant}/data.json``) returns and what ``bench/report.py`` can time for the page's cost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics as m
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

# Data-quality targets of spec 5.2 / R-44: (name, label, threshold, direction, level when crossed).
QUALITY_TARGETS: tuple[tuple[str, str, float, str, str], ...] = (
    ("mc_ghl_linkage", "MC→GHL linkage", 0.85, "below", "critical"),
    ("mc_ghl_linkage", "MC→GHL linkage", 0.90, "below", "warning"),
    ("attribution_coverage", "Ad id capture", 0.80, "below", "warning"),
    ("orphan_rate", "Orphan payments", 0.20, "above", "critical"),
    ("orphan_rate", "Orphan payments", 0.10, "above", "warning"),
    ("duplicate_email_rate", "Duplicate e-mails", 0.05, "above", "warning"),
    ("webhook_error_rate", "Webhook errors", 0.05, "above", "warning"),
)


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


def _ads(conn: Connection, tenant: Tenant, window: Window) -> list[dict[str, Any]]:
    delivery = m.ad_delivery_by_ad(conn, tenant, window)
    counts = m.stage_counts_by(conn, tenant, window, "ad_id")
    money = m.money_by(conn, tenant, window, "ad_id")
    rows = []
    for ad_id in {*delivery, *(k for k in counts if k), *(k for k in money if k)}:
        spend = delivery.get(ad_id, m.AdDelivery()).spend
        c = counts.get(ad_id) or {}
        paid = money.get(ad_id, m.Money())
        rows.append({
            "ad_id": ad_id,
            "spend": m.money_value(spend),
            "leads": c.get("leads", 0),
            "meetings_held": c.get("meetings_held", 0),
            "buyers": c.get("buyers", 0),
            "cash_collected": m.money_value(paid.cash_collected),
            "projected_revenue": m.money_value(paid.projected_revenue),
            "cpl": m.cpl(spend, c.get("leads", 0)),
            "roas": m.roas(paid.projected_revenue, spend),
            "roas_cash": m.roas(paid.cash_collected, spend),
        })
    rows.sort(key=lambda r: (-float(r["spend"] or 0), -float(r["projected_revenue"] or 0), str(r["ad_id"])))
    return rows[:TOP_ADS]


def _quality(conn: Connection, tenant: Tenant, window: Window) -> dict[str, Any]:
    contacts = m.contact_quality(conn, tenant, window)
    orphans = m.orphan_rate(conn, tenant, window)
    hooks = m.webhook_error_rates(conn, tenant, window)
    received = sum(h.received for h in hooks.values())
    errors = sum(h.errors for h in hooks.values())
    rates: dict[str, m.Ratio] = {
        "mc_ghl_linkage": contacts.mc_ghl_linkage,
        "attribution_coverage": contacts.attribution_coverage,
        "orphan_rate": orphans.by_count,
        "duplicate_email_rate": contacts.duplicate_email_rate,
        "webhook_error_rate": m.Ratio(errors, received),
    }
    warnings: list[dict[str, Any]] = []
    warned: set[str] = set()
    for name, label, threshold, direction, level in QUALITY_TARGETS:
        rate = rates[name].rate
        if rate is None or name in warned:
            continue
        if (rate < threshold) if direction == "below" else (rate > threshold):
            warned.add(name)
            warnings.append({"metric": name, "level": level, "rate": rate, "threshold": threshold,
                             "count": rates[name].count, "of": rates[name].of,
                             "message": f"{label} {rate:.0%} ({rates[name].count} of {rates[name].of}); "
                                        f"target {'at least' if direction == 'below' else 'at most'} "
                                        f"{threshold:.0%}."})
    for source, health in sorted(hooks.items()):
        rate = health.error_rate.rate
        if health.errors and rate is not None:
            warnings.append({"metric": "webhook_error_rate", "level": "info", "rate": rate, "threshold": None,
                             "count": health.errors, "of": health.received, "source": source,
                             "message": f"{source}: {health.errors} of {health.received} webhooks failed."})
    return {"rates": {k: v.to_dict() for k, v in rates.items()}, "warnings": warnings}


def dashboard_data(conn: Connection, tenant: Tenant, window: Window) -> dict[str, Any]:
    """Everything the dashboard page shows. ``conn`` is the tenant's session (RLS), ``window`` in the
    tenant's time zone."""
    current = m.summary(conn, tenant, window)
    previous_window = window.previous()
    previous = m.summary(conn, tenant, previous_window)
    revenue = []
    for period in _periods(window):
        paid = m.money(conn, tenant, period)
        revenue.append({"period": _period_label(period), "start": period.start.isoformat(),
                        "cash_collected": m.money_value(paid.cash_collected),
                        "projected_revenue": m.money_value(paid.projected_revenue)})
    trend = []
    for week in trend_window(window).weeks():
        counts = m.stage_counts(conn, tenant, week)
        paid = m.money(conn, tenant, week)
        trend.append({"week": week.iso_week or week.start.isoformat(), "start": week.start.isoformat(),
                      "label": _period_label(week), "leads": counts["leads"], "buyers": counts["buyers"],
                      "meetings_held": counts["meetings_held"],
                      "cash_collected": m.money_value(paid.cash_collected),
                      "projected_revenue": m.money_value(paid.projected_revenue)})
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
        "revenue": revenue,
        "trend": trend,
        "ads": _ads(conn, tenant, window),
        "data_quality": _quality(conn, tenant, window),
        "activity": recent_activity(conn, tenant.id),
    }

