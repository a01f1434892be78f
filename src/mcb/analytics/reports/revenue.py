"""``revenue``: cash collected vs projected revenue by category, payment source, traffic source and funnel
tag, and the orphan payments (no contact yet)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from mcb.analytics import metrics
from mcb.analytics.render import Column, Layout, Table
from mcb.analytics.reports.common import header, subtitle, variant_label
from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant


def _groups(by: dict[str | None, metrics.Money], key: str) -> list[dict[str, Any]]:
    rows = [{key: k, "cash_collected": metrics.money_value(m.cash_collected),
             "projected_revenue": metrics.money_value(m.projected_revenue),
             "refunds": metrics.money_value(m.refunds),
             "payments": sum(c.count for c in m.by_category.values())} for k, m in by.items()]
    return sorted(rows, key=lambda r: (-(r["projected_revenue"] or 0), str(r[key])))


def orphan_payments(conn: Connection, tenant: Tenant, window: Window, limit: int = 200) -> list[dict[str, Any]]:
    """The window's payments without a contact, newest first (for an operator to reconcile)."""
    rows = conn.execute(text(
        "SELECT payment_event_id, payment_date, payment_source, payment_category, amount, customer_email, "
        "customer_name FROM payments WHERE tenant_id = :t AND contact_id IS NULL AND payment_date >= :s "
        "AND payment_date < :e AND lower(status) <> ALL(:bad) ORDER BY payment_date DESC, payment_event_id LIMIT :n"),
        {"t": tenant.id, "s": window.start_utc, "e": window.end_utc, "n": limit,
         "bad": list(metrics.NOT_COLLECTED_STATUSES)}).mappings()
    return [{**dict(r), "payment_date": r["payment_date"].isoformat(), "amount": metrics.money_value(r["amount"])}
            for r in rows]


def build(conn: Connection, tenant: Tenant, window: Window, *,
          include_historical: bool | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {"include_historical": include_historical}
    m = metrics.money(conn, tenant, window, **kw)
    return {
        **header("revenue", tenant, window, include_historical=include_historical),
        **m.to_dict(),
        "by_payment_source": _groups(metrics.money_by(conn, tenant, window, "payment_source", **kw), "payment_source"),
        "by_source": _groups(metrics.money_by(conn, tenant, window, "source", **kw), "source"),
        "by_funnel": _groups(metrics.money_by(conn, tenant, window, "funnel", **kw), "funnel"),
        "orphan_rate": metrics.orphan_rate(conn, tenant, window, **kw).to_dict(),
        "orphan_payments": orphan_payments(conn, tenant, window),
    }


_MONEY_COLS = [Column("Payments", "count", "payments"), Column("Cash collected", "money", "cash_collected"),
               Column("Projected revenue", "money", "projected_revenue"), Column("Refunds", "money", "refunds")]


def _group_table(title: str, rows: list[dict[str, Any]], key: str, none: str) -> Table:
    return Table(title, [Column(title.split(" by ")[-1].capitalize(), key=key), *_MONEY_COLS],
                 [[variant_label(r[key], none), r["payments"], r["cash_collected"], r["projected_revenue"],
                   r["refunds"]] for r in rows])


def layout(data: dict[str, Any]) -> Layout:
    categories = Table("By category", [Column("Category", key="category"), Column("Payments", "count", "payments"),
                                       Column("Amount", "money", "amount")],
                       [[c, v["count"], v["amount"]] for c, v in data["by_category"].items() if v["count"]],
                       note="Cash = deposit + full_purchase + downpayment + recurring − refunds; projected = "
                            "full_purchase + payment_plan + downpayment − refunds.")
    orphans = Table("Orphan payments (no contact yet)",
                    [Column("Payment", key="payment_event_id"), Column("Date", "date", "payment_date"),
                     Column("Source", key="payment_source"), Column("Category", key="payment_category"),
                     Column("Amount", "money", "amount"), Column("E-mail", key="customer_email")],
                    [[o["payment_event_id"], o["payment_date"][:10], o["payment_source"], o["payment_category"],
                      o["amount"], o["customer_email"]] for o in data["orphan_payments"]])
    orphan = data["orphan_rate"]
    return Layout(
        title="Revenue",
        subtitle=subtitle(data),
        tiles=[("Cash collected", data["cash_collected"], "money"),
               ("Projected revenue", data["projected_revenue"], "money"),
               ("Refunds", data["refunds"], "money"), ("Orphan rate", orphan["rate"], "rate")],
        tables=[categories,
                _group_table("Revenue by payment source", data["by_payment_source"], "payment_source", "(none)"),
                _group_table("Revenue by source", data["by_source"], "source", "(orphan)"),
                _group_table("Revenue by funnel", data["by_funnel"], "funnel", "(untagged or orphan)"),
                orphans],
        csv=categories,
    )
