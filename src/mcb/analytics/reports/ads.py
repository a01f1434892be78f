"""``ads``: per ad, its spend (sum of daily insights) beside the contacts it brought (first-touch ad id):
leads, meetings held, buyers, revenue, CPL, ROAS, and its creative theme; the top ads."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, text

from mcb.analytics import metrics
from mcb.analytics.render import Column, Layout, Table
from mcb.analytics.reports.common import header, subtitle
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant

NAME_LIMIT = 40  # Gmail and narrow tables: longer names are cut (spec 5.3)
TOP = 3


def is_real_ad(ad_id: str) -> bool:
    """Placeholders the platforms pass instead of an ad id (template braces, link in bio, organic) are
    not ads (spec 5.3: the weekly report leaves them out of its top ads)."""
    low = ad_id.lower()
    return not ("{" in ad_id or "}" in ad_id or "link_in_bio" in low or "organic" in low)


def display_name(ad_id: str, name: str | None) -> str:
    """The ad's name cut to 40 characters, or "Ad #<last 6 of the id>" (never "…"/"...": Gmail collapses it)."""
    if name and name.strip():
        clean = name.strip()
        return clean if len(clean) <= NAME_LIMIT else clean[: NAME_LIMIT - 1].rstrip() + "–"
    return f"Ad #{ad_id[-6:]}"


def catalog(conn: Connection, tenant: Tenant, ad_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Name, status and creative theme of the given ads (ads unknown to the Meta sync are absent)."""
    ids = sorted(set(ad_ids))
    if not ids:
        return {}
    rows = conn.execute(text(
        "SELECT a.ad_id, a.ad_name, a.effective_status, a.is_active, c.transformation_theme "
        "FROM meta_ads a LEFT JOIN meta_ad_creatives c ON c.tenant_id = a.tenant_id AND c.ad_id = a.ad_id "
        "WHERE a.tenant_id = :t AND a.ad_id = ANY(:ids)"), {"t": tenant.id, "ids": ids}).mappings()
    return {r["ad_id"]: dict(r) for r in rows}


def ad_rows(conn: Connection, tenant: Tenant, window: Window, *, include_historical: bool | None = None,
            ad_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per ad that spent in the window or brought a lead, meeting, buyer or payment in it
    (``ad_ids``: just these ads)."""
    kw: dict[str, Any] = {"include_historical": include_historical}
    delivery = metrics.ad_delivery_by_ad(conn, tenant, window, ad_ids=ad_ids)
    counts = metrics.stage_counts_by(conn, tenant, window, "ad_id", only=("leads", "meetings_held", "buyers"),
                                     values=ad_ids, **kw)
    money = metrics.money_by(conn, tenant, window, "ad_id", values=ad_ids, **kw)
    ids = {k for k in (*delivery, *counts, *money) if k is not None}
    info = catalog(conn, tenant, ids)
    rows: list[dict[str, Any]] = []
    for ad_id in ids:
        d = delivery.get(ad_id, metrics.AdDelivery())
        c = counts.get(ad_id) or dict.fromkeys(metrics.STAGE_NAMES, 0)
        m = money.get(ad_id, metrics.Money())
        meta = info.get(ad_id, {})
        rows.append({
            "ad_id": ad_id,
            "ad_name": display_name(ad_id, meta.get("ad_name")),
            "creative_theme": meta.get("transformation_theme"),
            "known_to_meta": bool(meta),
            "ad_spend": metrics.money_value(d.spend),
            "impressions": d.impressions,
            "clicks": d.clicks,
            "leads": c["leads"],
            "meetings_held": c["meetings_held"],
            "buyers": c["buyers"],
            "cash_collected": metrics.money_value(m.cash_collected),
            "projected_revenue": metrics.money_value(m.projected_revenue),
            "cpl": metrics.cpl(d.spend, c["leads"]),
            "roas": metrics.roas(m.projected_revenue, d.spend),
            "roas_cash": metrics.roas(m.cash_collected, d.spend),
        })
    rows.sort(key=lambda r: (-(r["ad_spend"] or 0), -r["leads"], r["ad_id"]))
    return rows


def top_ad_rows(conn: Connection, tenant: Tenant, window: Window, n: int, *,
                include_historical: bool | None = None) -> list[dict[str, Any]]:
    """``ad_rows(...)[:n]`` without computing every ad's row: the rows are ordered by spend first, and the
    spend of every ad is one cheap sum, so when ``n`` ads spent only those with at least the ``n``-th
    largest spend (ties included) can be among the first ``n``; just they get their full row."""
    delivery = metrics.ad_delivery_by_ad(conn, tenant, window)
    spend = sorted((d.spend for d in delivery.values() if d.spend > 0), reverse=True)
    if len(spend) < n:
        return ad_rows(conn, tenant, window, include_historical=include_historical)[:n]
    cutoff = spend[n - 1]
    candidates = [ad for ad, d in delivery.items() if d.spend >= cutoff]
    return ad_rows(conn, tenant, window, include_historical=include_historical, ad_ids=candidates)[:n]


def top_ads(rows: list[dict[str, Any]], n: int = TOP) -> list[dict[str, Any]]:
    """The ``n`` real ads with the most meetings held (then buyers, then leads), as the weekly report shows."""
    real = [r for r in rows if is_real_ad(r["ad_id"]) and (r["meetings_held"] or r["buyers"] or r["leads"])]
    return sorted(real, key=lambda r: (-r["meetings_held"], -r["buyers"], -r["leads"], r["ad_id"]))[:n]


def top_ads_of_window(conn: Connection, tenant: Tenant, window: Window, *, n: int = TOP,
                      include_historical: bool | None = None) -> list[dict[str, Any]]:
    """``top_ads(ad_rows(...))`` without computing every ad's row: the ranking's first keys (meetings held,
    buyers) come from the few contacts with those events; only the candidates that can still make the top
    ``n`` get their full row. Falls back to every ad when fewer than ``n`` ads have a meeting or a buyer."""
    kw: dict[str, Any] = {"include_historical": include_historical}
    ranked = metrics.stage_counts_by(conn, tenant, window, "ad_id", only=("meetings_held", "buyers"), **kw)
    scored = sorted(((c["meetings_held"], c["buyers"]), ad) for ad, c in ranked.items()
                    if ad is not None and is_real_ad(ad) and (c["meetings_held"] or c["buyers"]))
    if len(scored) < n:
        return top_ads(ad_rows(conn, tenant, window, **kw), n)
    cutoff = scored[-n][0]
    candidates = [ad for score, ad in scored if score >= cutoff]
    return top_ads(ad_rows(conn, tenant, window, ad_ids=candidates, **kw), n)


def build(conn: Connection, tenant: Tenant, window: Window, *,
          include_historical: bool | None = None) -> dict[str, Any]:
    rows = ad_rows(conn, tenant, window, include_historical=include_historical)
    unattributed = metrics.stage_counts_by(conn, tenant, window, "ad_id", only=("leads", "buyers"),
                                           include_historical=include_historical).get(None)
    spend = sum((Decimal(str(r["ad_spend"])) for r in rows), Decimal("0"))
    return {
        **header("ads", tenant, window, include_historical=include_historical),
        "ad_spend": metrics.money_value(spend),
        "ads": rows,
        "top_ads": top_ads(rows),
        "unattributed": {"leads": unattributed["leads"] if unattributed else 0,
                         "buyers": unattributed["buyers"] if unattributed else 0},
    }


AD_COLUMNS = [Column("Ad", key="ad_name"), Column("Ad id", key="ad_id"), Column("Spend", "money", "ad_spend"),
              Column("Leads", "count", "leads"), Column("Meetings", "count", "meetings_held"),
              Column("Buyers", "count", "buyers"), Column("Revenue", "money", "projected_revenue"),
              Column("CPL", "money", "cpl"), Column("ROAS", "ratio", "roas"),
              Column("Theme", key="creative_theme")]


def ad_table(title: str, rows: list[dict[str, Any]], note: str | None = None) -> Table:
    return Table(title, AD_COLUMNS, [[r["ad_name"], r["ad_id"], r["ad_spend"], r["leads"], r["meetings_held"],
                                      r["buyers"], r["projected_revenue"], r["cpl"], r["roas"], r["creative_theme"]]
                                     for r in rows], note)


def layout(data: dict[str, Any]) -> Layout:
    ads = ad_table("All ads", data["ads"], "Revenue is projected revenue (ROAS = revenue / spend); contacts "
                                         "count under their first-touch ad.")
    return Layout(
        title="Ads",
        subtitle=subtitle(data),
        tiles=[("Ad spend", data["ad_spend"], "money"), ("Ads", len(data["ads"]), "count"),
               ("Leads without an ad", data["unattributed"]["leads"], "count")],
        tables=[ad_table(f"Top {TOP} ads by meetings held", data["top_ads"]), ads],
        csv=ads,
    )
