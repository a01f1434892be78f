"""``funnel-compare`` (by the contact's ``funnel`` tag) and ``chatbot-ab`` (by its ``chatbot`` A/B tag):
variants side by side, each rate over the variant's own leads, with the small-sample warning (n < 30)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics
from mcb.analytics.render import Column, Layout, Table
from mcb.analytics.reports.common import MIN_SAMPLE, header, subtitle, variant_label
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant

FUNNEL_STAGES = ("leads", "forms", "meetings_held", "buyers")
CHATBOT_STAGES = ("leads", "qualified", "link_clicked", "forms", "meetings_held", "buyers")


def variants(conn: Connection, tenant: Tenant, window: Window, dimension: str, stages: tuple[str, ...], *,
             include_historical: bool | None = None) -> list[dict[str, Any]]:
    kw: dict[str, Any] = {"include_historical": include_historical}
    counts = metrics.stage_counts_by(conn, tenant, window, dimension, only=stages, **kw)
    money = metrics.money_by(conn, tenant, window, dimension, **kw)
    rows = []
    for key, c in counts.items():
        m = money.get(key, metrics.Money())
        buyers = c["buyers"]
        row: dict[str, Any] = {"variant": key, **{s: c[s] for s in stages}}
        row.update({f"{s}_rate": metrics.ratio(c[s], c["leads"]) for s in stages if s != "leads"})
        row.update({
            "cash_collected": metrics.money_value(m.cash_collected),
            "projected_revenue": metrics.money_value(m.projected_revenue),
            "revenue_per_lead": metrics.ratio(m.projected_revenue, c["leads"], 2),
            "average_order": metrics.ratio(m.projected_revenue, buyers, 2),
            "small_sample": c["leads"] < MIN_SAMPLE,
        })
        rows.append(row)
    rows.sort(key=lambda r: (r["variant"] is None, -r["leads"], str(r["variant"])))
    return rows


def winners(rows: list[dict[str, Any]], stages: tuple[str, ...]) -> dict[str, str | None]:
    """Per stage, the tagged variant with the highest rate over its leads (None on a tie or no data)."""
    out: dict[str, str | None] = {}
    for s in [*(s for s in stages if s != "leads"), "revenue_per_lead"]:
        key = s if s == "revenue_per_lead" else f"{s}_rate"
        scored = [(r[key], r["variant"]) for r in rows if r["variant"] is not None and r[key] is not None]
        scored.sort(reverse=True)
        out[s] = scored[0][1] if scored and (len(scored) == 1 or scored[0][0] > scored[1][0]) else None
    return out


def _build(report: str, dimension: str, stages: tuple[str, ...], conn: Connection, tenant: Tenant,
           window: Window, include_historical: bool | None) -> dict[str, Any]:
    rows = variants(conn, tenant, window, dimension, stages, include_historical=include_historical)
    small = [variant_label(r["variant"]) for r in rows if r["small_sample"] and r["variant"] is not None]
    warnings = []
    if small:
        warnings.append(f"Fewer than {MIN_SAMPLE} leads in {', '.join(small)}: too few to call a winner "
                        "(run the test for 60 to 90 days).")
    return {**header(report, tenant, window, include_historical=include_historical, dimension=dimension),
            "min_sample": MIN_SAMPLE, "variants": rows, "winners": winners(rows, stages), "warnings": warnings}


def build_funnel_compare(conn: Connection, tenant: Tenant, window: Window, *,
                         include_historical: bool | None = None) -> dict[str, Any]:
    return _build("funnel-compare", "funnel", FUNNEL_STAGES, conn, tenant, window, include_historical)


def build_chatbot_ab(conn: Connection, tenant: Tenant, window: Window, *,
                     include_historical: bool | None = None) -> dict[str, Any]:
    return _build("chatbot-ab", "chatbot", CHATBOT_STAGES, conn, tenant, window, include_historical)


def layout(data: dict[str, Any]) -> Layout:
    stages = FUNNEL_STAGES if data["report"] == "funnel-compare" else CHATBOT_STAGES
    names = [variant_label(r["variant"], "(untagged)") for r in data["variants"]]
    counts = Table("Variants", [
        Column("Variant", key="variant"), *(Column(metrics.STAGE_LABELS[s], "count", s) for s in stages),
        Column("Revenue", "money", "projected_revenue"), Column("Revenue / lead", "money", "revenue_per_lead"),
        Column("Avg order", "money", "average_order"), Column("n < 30", key="small_sample")],
        [[n, *(r[s] for s in stages), r["projected_revenue"], r["revenue_per_lead"], r["average_order"],
          "yes" if r["small_sample"] else ""] for n, r in zip(names, data["variants"], strict=True)])
    rates = Table("Rates over each variant's leads", [
        Column("Variant", key="variant"),
        *(Column(metrics.STAGE_LABELS[s], "rate", f"{s}_rate") for s in stages if s != "leads")],
        [[n, *(r[f"{s}_rate"] for s in stages if s != "leads")] for n, r in zip(names, data["variants"], strict=True)])
    win = Table("Winner per stage", [Column("Stage", key="stage"), Column("Winner", key="winner")],
                [[metrics.STAGE_LABELS.get(s, "Revenue per lead"), w or "(none)"] for s, w in data["winners"].items()])
    title = "Funnel variants" if data["report"] == "funnel-compare" else "Chatbot A/B"
    return Layout(title=title, subtitle=subtitle(data), tables=[counts, rates, win], notes=list(data["warnings"]),
                  csv=counts)
