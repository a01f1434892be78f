"""What every report shares: the header of its JSON, the stage table, labels."""

from __future__ import annotations

from typing import Any

from mcb.analytics import metrics
from mcb.analytics.render import Column, Table
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant

SCHEMA_VERSION = 1
"""Bumped when a report's JSON keys change incompatibly (docs/reports.md lists the keys)."""

MIN_SAMPLE = 30
"""Below this many leads a variant's rates are flagged as too small to compare (spec 5.2)."""


def header(report: str, tenant: Tenant, window: Window | None, *, include_historical: bool | None = None,
           **options: Any) -> dict[str, Any]:
    """The keys every report's JSON starts with: report, schema_version, tenant, window, options."""
    excluded = metrics.historical_filter(tenant) if include_historical is None else not include_historical
    return {
        "report": report,
        "schema_version": SCHEMA_VERSION,
        "tenant": {"slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone},
        "window": window.to_dict() if window else None,
        "options": {"historical_excluded": excluded, **options},
    }


def subtitle(data: dict[str, Any]) -> str:
    window = data.get("window")
    tenant = data["tenant"]
    if not window:
        return f"{tenant['name']} ({tenant['slug']})"
    hist = " · historical contacts excluded" if data["options"].get("historical_excluded") else ""
    return f"{tenant['name']} · {window['label']} ({window['timezone']}){hist}"


def stage_table(title: str, counts: dict[str, Any], stages: tuple[str, ...] = metrics.FUNNEL) -> Table:
    """Each stage with its count and its conversion from the previous stage."""
    rows: list[list[Any]] = []
    previous: int | None = None
    for name in stages:
        count = int(counts.get(name, 0) or 0)
        rows.append([metrics.STAGE_LABELS[name], count, metrics.ratio(count, previous) if previous is not None else None,
                     metrics.ratio(count, counts.get("leads"))])
        previous = count
    return Table(title, [Column("Stage", key="stage"), Column("Contacts", "count", "contacts"),
                         Column("From previous", "rate", "from_previous"), Column("Of leads", "rate", "of_leads")],
                 rows)


def variant_label(value: str | None, none: str = "(none)") -> str:
    return none if value is None else str(value)
