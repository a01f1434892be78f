"""The report catalogue: each report is a builder (``build(conn, tenant, window, ...) -> dict``, JSON-able,
reusable by the dashboard) and a layout (the dict as tiles, bars and tables for the renderers).

Builders run inside the tenant's session (``mcb.db.session.tenant_session``), so a report over one tenant
never reads another tenant's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from mcb.analytics import window as windows
from mcb.analytics.render import Layout
from mcb.analytics.reports import ads, compare, contact, funnel, periodic, quality, revenue, sources


@dataclass(frozen=True)
class Report:
    name: str
    summary: str
    build: Callable[..., dict[str, Any]]
    layout: Callable[[dict[str, Any]], Layout]
    default_window: Callable[[str, date | None], windows.Window] | None
    """The window when the command names none, from the tenant's time zone (and "today")."""
    two_connections: bool = False
    """``build`` takes ``side=``, a second connection on the same snapshot, for a part it can compute
    at the same time (``mcb.analytics.parallel``)."""


def _last(days: int) -> Callable[[str, date | None], windows.Window]:
    return lambda tz, today: windows.last_days(days, tz, today=today)


REPORTS: dict[str, Report] = {r.name: r for r in (
    Report("funnel", "Stages, stage-to-stage conversion and the biggest drop-off (default: last 30 days).",
           funnel.build, funnel.layout, _last(30)),
    Report("revenue", "Cash collected vs projected revenue by category, source and funnel; orphan payments "
                      "(default: last 30 days).", revenue.build, revenue.layout, _last(30)),
    Report("ads", "Per ad: spend, leads, meetings, buyers, revenue, CPL, ROAS, theme; top ads (default: last 30 days).",
           ads.build, ads.layout, _last(30)),
    Report("sources", "Funnel and money per traffic source (default: last 30 days).", sources.build, sources.layout,
           _last(30)),
    Report("funnel-compare", "Funnel variants (funnel tag) side by side (default: last 60 days).",
           compare.build_funnel_compare, compare.layout, _last(60)),
    Report("chatbot-ab", "Chatbot A/B variants side by side (default: last 60 days).", compare.build_chatbot_ab,
           compare.layout, _last(60)),
    Report("contact", "One contact's timeline: events, payments, tags.", contact.build, contact.layout, None),
    Report("data-quality", "Linkage, AD_ID capture, orphans, duplicates, webhook errors, silent sources "
                           "(default: last 30 days).", quality.build, quality.layout, _last(30)),
    Report("weekly", "The weekly report (default: the last complete Monday–Sunday week).", periodic.build_weekly,
           periodic.weekly_layout, lambda tz, today: windows.last_complete_week(tz, today=today), True),
    Report("monthly", "Four weeks side by side, totals distinct over the period (default: the last four complete "
                      "weeks).", periodic.build_monthly, periodic.monthly_layout,
           lambda tz, today: windows.last_complete_weeks(4, tz, today=today), True),
)}
