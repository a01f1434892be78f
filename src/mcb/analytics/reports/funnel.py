"""``funnel``: the stages of the window, stage-to-stage conversion and the biggest drop-off."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics
from mcb.analytics.render import Layout
from mcb.analytics.reports.common import header, stage_table, subtitle
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant


def build(conn: Connection, tenant: Tenant, window: Window, *, mode: metrics.Mode = "activity",
          include_historical: bool | None = None) -> dict[str, Any]:
    counts = metrics.stage_counts(conn, tenant, window, mode=mode, include_historical=include_historical)
    return {
        **header("funnel", tenant, window, include_historical=include_historical, mode=mode),
        **counts,
        "conversion_rate": metrics.ratio(counts["buyers"], counts["leads"]),
        "conversions": metrics.conversions(counts),
        "biggest_drop_off": metrics.biggest_drop_off(counts),
    }


def layout(data: dict[str, Any]) -> Layout:
    mode = data["options"]["mode"]
    drop = data["biggest_drop_off"]
    notes = []
    if drop:
        notes.append(f"Biggest drop-off: {metrics.STAGE_LABELS[drop['from']]} → {metrics.STAGE_LABELS[drop['to']]}, "
                     f"{drop['lost']:,} of {drop['from_count']:,} contacts ({drop['lost_rate'] * 100:.1f}%) did not go on.")
    if mode == "cohort":
        notes.append("Cohort mode: the contacts acquired in this window, and how far each of them has got.")
    return Layout(
        title=f"Funnel ({mode})",
        subtitle=subtitle(data),
        tiles=[("Leads", data["leads"], "count"), ("Meetings held", data["meetings_held"], "count"),
               ("Buyers", data["buyers"], "count"), ("Deposits", data["deposits"], "count"),
               ("Lead → buyer", data["conversion_rate"], "rate")],
        bars_title="Funnel",
        bars=[(metrics.STAGE_LABELS[s], data[s]) for s in metrics.FUNNEL],
        tables=[stage_table("Stages", data)],
        notes=notes,
    )
