"""``weekly`` and ``monthly``: the reports the tenant's team receives by e-mail.

weekly: headline tiles, the funnel, cash vs projected with its breakdown, spend / CPL / CPA / ROAS, the
top 3 ads by meetings held, the change from the previous week, and (for the CSV and the e-mail) the
contacts active in the week with their milestone dates.

monthly: four consecutive weeks side by side, the totals over the whole period counted distinct over it
(R-36: a contact active in two weeks is one contact, not two), the acquisition-week cohorts, the top ads
and the period's contacts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from mcb.analytics import metrics
from mcb.analytics.parallel import beside
from mcb.analytics.render import Column, Layout, Table, fmt
from mcb.analytics.reports.ads import ad_table, top_ads_of_window
from mcb.analytics.reports.common import header, stage_table, subtitle
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant

WEEK_OVER_WEEK: tuple[str, ...] = (
    "leads", "qualified", "forms", "meetings_held", "deposits", "buyers", "cash_collected", "projected_revenue",
    "ad_spend", "cpl", "cpa", "roas",
)
WEEKLY_FUNNEL: tuple[str, ...] = ("leads", "qualified", "link_sent", "link_clicked", "forms", "meetings_held",
                                  "buyers")


def contacts_rows(conn: Connection, tenant: Tenant, window: Window, *,
                  include_historical: bool | None = None) -> list[dict[str, Any]]:
    """The contacts active in the window with their milestone dates (local dates of the tenant)."""
    tz = window.tz
    out = []
    for r in metrics.contact_milestones(conn, tenant, window, include_historical=include_historical):
        row = {k: (str(v) if k == "contact_id" else v) for k, v in r.items() if not k.endswith("_at")}
        row["name"] = " ".join(p for p in (r["first_name"], r["last_name"]) if p) or None
        del row["first_name"], row["last_name"]
        for name, _ in metrics.MILESTONES:
            row[name.removesuffix("_at") + "_date"] = r[name].astimezone(tz).date().isoformat() if r[name] else None
        out.append(row)
    return out


def csv_filename(kind: str, tenant: Tenant, window: Window) -> str:
    return f"{tenant.slug.upper()}_{kind}_Data_{window.start.isoformat()}_to_{window.end.isoformat()}.csv"


def build_weekly(conn: Connection, tenant: Tenant, window: Window, *, include_contacts: bool = False,
                 include_historical: bool | None = None, side: Connection | None = None) -> dict[str, Any]:
    """``side``: a second connection on the same snapshot (``run.report_sessions``) for the top ads."""
    kw: dict[str, Any] = {"include_historical": include_historical}
    previous_window = window.previous()
    with beside(conn, side, top_ads_of_window, tenant, window, **kw) as top_ads:
        previous, current = metrics.summaries(conn, tenant, [previous_window, window], **kw)  # one read of both
        ranked = top_ads()
    breakdown = current.pop("payments")
    previous.pop("payments")
    data = {
        **header("weekly", tenant, window, include_historical=include_historical),
        **current,
        "payments": breakdown,
        "conversions": metrics.conversions(current),
        "top_ads": ranked,
        "previous_window": previous_window.to_dict(),
        "previous": {k: previous[k] for k in WEEK_OVER_WEEK},
        "week_over_week": {k: metrics.change(current[k], previous[k]) for k in WEEK_OVER_WEEK},
        "csv_filename": csv_filename("Weekly", tenant, window),
    }
    if include_contacts:
        data["contacts"] = contacts_rows(conn, tenant, window, **kw)
    return data


def build_monthly(conn: Connection, tenant: Tenant, window: Window, *, include_contacts: bool = False,
                  include_historical: bool | None = None, side: Connection | None = None) -> dict[str, Any]:
    """``side``: a second connection on the same snapshot (``run.report_sessions``) for the top ads."""
    kw: dict[str, Any] = {"include_historical": include_historical}
    with beside(conn, side, top_ads_of_window, tenant, window, **kw) as top_ads:
        total = metrics.summary(conn, tenant, window, **kw)
        weeks = []
        periods = window.weeks()
        cohorts = metrics.stage_counts_per(conn, tenant, periods, mode="cohort", **kw)
        for week, s, cohort in zip(periods, metrics.summaries(conn, tenant, periods, **kw), cohorts, strict=True):
            s.pop("payments")
            weeks.append({"window": week.to_dict(), **s, "cohort": cohort})
        ranked = top_ads()
    breakdown = total.pop("payments")
    data = {
        **header("monthly", tenant, window, include_historical=include_historical),
        **total,
        "payments": breakdown,
        "conversions": metrics.conversions(total),
        "weeks": weeks,
        "top_ads": ranked,
        "csv_filename": csv_filename("Monthly", tenant, window),
    }
    if include_contacts:
        data["contacts"] = contacts_rows(conn, tenant, window, **kw)
    return data


CONTACT_COLUMNS = [Column("Name", key="name"), Column("E-mail", key="email"), Column("Phone", key="phone"),
                   Column("Stage", key="stage"), Column("Source", key="source"), Column("Ad ID", key="ad_id"),
                   Column("Funnel", key="funnel"), Column("Chatbot", key="chatbot"),
                   Column("Lead", "date", "lead_date"), Column("Qualified", "date", "qualified_date"),
                   Column("Link clicked", "date", "link_clicked_date"), Column("Form", "date", "form_date"),
                   Column("Meeting held", "date", "meeting_held_date"), Column("Purchased", "date", "purchased_date"),
                   Column("Contact id", key="contact_id")]


def contacts_table(title: str, data: dict[str, Any]) -> Table:
    return Table(title, CONTACT_COLUMNS, [[r[c.key or c.label] for c in CONTACT_COLUMNS]
                                          for r in data.get("contacts") or []])


def _money_table(data: dict[str, Any]) -> Table:
    p = data["payments"]
    rows = [["Stripe full purchases", p["full_purchase"]["count"], p["full_purchase"]["amount"]],
            ["$100 deposits", p["deposit"]["count"], p["deposit"]["amount"]],
            ["Denefits plans (contract value)", p["payment_plan"]["count"], p["payment_plan"]["amount"]],
            ["Denefits down payments", p["downpayment"]["count"], p["downpayment"]["amount"]],
            ["Denefits instalments (recurring)", p["recurring"]["count"], p["recurring"]["amount"]],
            ["Refunds", p["refund"]["count"], p["refund"]["amount"]],
            ["Cash collected", None, data["cash_collected"]],
            ["Projected revenue", None, data["projected_revenue"]]]
    return Table("Cash collected vs projected revenue",
                 [Column("Line", key="line"), Column("Payments", "count", "payments"), Column("Amount", "money", "amount")],
                 rows, note="Instalments are cash, never new buyers; refunds reduce both totals.")


def _ads_money_table(data: dict[str, Any]) -> Table:
    return Table("Ad spend", [Column("Ad spend", "money", "ad_spend"), Column("CPL", "money", "cpl"),
                              Column("CPA", "money", "cpa"), Column("ROAS", "ratio", "roas"),
                              Column("Cash ROAS", "ratio", "roas_cash")],
                 [[data["ad_spend"], data["cpl"], data["cpa"], data["roas"], data["roas_cash"]]],
                 note="Spend is the sum of the ads' daily spend on the window's dates; ROAS = projected revenue / "
                      "spend, cash ROAS = cash collected / spend.")


def _tiles(data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [("Leads", data["leads"], "count"), ("Meetings held", data["meetings_held"], "count"),
            ("Buyers", data["buyers"], "count"), ("Cash collected", data["cash_collected"], "money"),
            ("Projected revenue", data["projected_revenue"], "money"), ("ROAS", data["roas"], "ratio")]


_LABELS = {**metrics.STAGE_LABELS, "cash_collected": "Cash collected", "projected_revenue": "Projected revenue",
           "ad_spend": "Ad spend", "cpl": "CPL", "cpa": "CPA", "roas": "ROAS"}
_KINDS: dict[str, Any] = {"cash_collected": "money", "projected_revenue": "money", "ad_spend": "money",
                          "cpl": "money", "cpa": "money", "roas": "ratio"}


def weekly_layout(data: dict[str, Any]) -> Layout:
    wow = Table("Week over week", [Column("Metric", key="metric"), Column("This week", key="current"),
                                   Column("Previous week", key="previous"), Column("Change", "change", "pct")],
                [[_LABELS[k], _fmt_kind(v["current"], k), _fmt_kind(v["previous"], k), v["pct"]]
                 for k, v in data["week_over_week"].items()])
    contacts = contacts_table("Contacts active in the week", data)
    tables = [stage_table("Funnel", data, WEEKLY_FUNNEL), _money_table(data), _ads_money_table(data),
              ad_table("Top 3 ads by meetings held", data["top_ads"]), wow]
    if data.get("contacts") is not None:
        tables.append(Table(contacts.title, contacts.columns, [], note=f"{len(contacts.rows):,} contacts: see the "
                            f"attached {data['csv_filename']}."))
    return Layout(title=f"Weekly report: {data['tenant']['name']}", subtitle=subtitle(data), tiles=_tiles(data),
                  bars_title="Funnel", bars=[(metrics.STAGE_LABELS[s], data[s]) for s in WEEKLY_FUNNEL],
                  tables=tables, csv=contacts)


def _fmt_kind(value: Any, key: str) -> str:
    return fmt(value, _KINDS.get(key, "count"))


def monthly_layout(data: dict[str, Any]) -> Layout:
    week_cols = [Column("Week", key="week"), Column("Leads", "count", "leads"), Column("Qualified", "count", "qualified"),
                 Column("Forms", "count", "forms"), Column("Meetings held", "count", "meetings_held"),
                 Column("Buyers", "count", "buyers"), Column("Cash collected", "money", "cash_collected"),
                 Column("Projected revenue", "money", "projected_revenue"), Column("Ad spend", "money", "ad_spend"),
                 Column("CPL", "money", "cpl"), Column("ROAS", "ratio", "roas")]
    keys = [c.key for c in week_cols[1:]]
    rows = [[w["window"]["label"], *(w[str(k)] for k in keys)] for w in data["weeks"]]
    rows.append(["Whole period (distinct)", *(data[str(k)] for k in keys)])
    weeks = Table("Weeks", week_cols, rows, note="The last row counts each contact once over the whole period, so "
                                                 "it can be less than the sum of the weeks.")
    cohort_stages = ("leads", "qualified", "forms", "meetings_held", "buyers")
    cohorts = Table("Cohorts by acquisition week (how far each week's leads have got)",
                    [Column("Acquired", key="week"), *(Column(metrics.STAGE_LABELS[s], "count", s) for s in cohort_stages)],
                    [[w["window"]["label"], *(w["cohort"][s] for s in cohort_stages)] for w in data["weeks"]])
    contacts = contacts_table("Contacts active in the period", data)
    return Layout(title=f"Monthly report: {data['tenant']['name']}", subtitle=subtitle(data), tiles=_tiles(data),
                  bars_title="Projected revenue by week", bars_kind="money",
                  bars=[(w["window"]["start"], w["projected_revenue"] or 0) for w in data["weeks"]],
                  tables=[weeks, stage_table("Funnel over the period", data), _money_table(data),
                          _ads_money_table(data), cohorts, ad_table("Top 3 ads by meetings held", data["top_ads"])],
                  csv=contacts)
