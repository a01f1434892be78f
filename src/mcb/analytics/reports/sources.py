"""``sources``: per traffic source (contacts.source), the funnel and the money it brought."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics
from mcb.analytics.render import Column, Layout, Table
from mcb.analytics.reports.common import header, subtitle, variant_label
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant


def build(conn: Connection, tenant: Tenant, window: Window, *,
          include_historical: bool | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {"include_historical": include_historical}
    counts = metrics.stage_counts_by(conn, tenant, window, "source", **kw)
    money = metrics.money_by(conn, tenant, window, "source", **kw)
    rows: list[dict[str, Any]] = []
    for source in {*counts, *(k for k in money if k is not None)}:
        c = counts.get(source) or dict.fromkeys(metrics.STAGE_NAMES, 0)
        m = money.get(source, metrics.Money())
        rows.append({"source": source, **c, "conversion_rate": metrics.ratio(c["buyers"], c["leads"]),
                     "cash_collected": metrics.money_value(m.cash_collected),
                     "projected_revenue": metrics.money_value(m.projected_revenue)})
    rows.sort(key=lambda r: (-r["leads"], -r["buyers"], str(r["source"])))
    orphan = money.get(None, metrics.Money())
    return {**header("sources", tenant, window, include_historical=include_historical), "sources": rows,
            "orphan_cash_collected": metrics.money_value(orphan.cash_collected)}


def layout(data: dict[str, Any]) -> Layout:
    table = Table("By source", [
        Column("Source", key="source"), Column("Leads", "count", "leads"), Column("Qualified", "count", "qualified"),
        Column("Forms", "count", "forms"), Column("Meetings held", "count", "meetings_held"),
        Column("Buyers", "count", "buyers"), Column("Lead → buyer", "rate", "conversion_rate"),
        Column("Cash collected", "money", "cash_collected"), Column("Projected revenue", "money", "projected_revenue"),
    ], [[variant_label(r["source"]), r["leads"], r["qualified"], r["forms"], r["meetings_held"], r["buyers"],
         r["conversion_rate"], r["cash_collected"], r["projected_revenue"]] for r in data["sources"]],
        note="Activity counts: distinct contacts with the stage's event in the window; leads at their first lead event.")
    return Layout(title="Sources", subtitle=subtitle(data), tables=[table])
