"""``mcb webhooks`` (replay, tail, stats) and ``mcb payments link-orphans``."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import text

from mcb.cli.common import admin, admin_engine, out, print_json
from mcb.config import get_settings
from mcb.db.engine import runtime_engine
from mcb.db.session import admin_session, tenant_session
from mcb.funnel.apply import link_all_orphans
from mcb.ingest.worker import Claimed, process_row
from mcb.tenancy import tenants as ten

app = typer.Typer(help="Inspect and replay stored webhooks.", no_args_is_help=True)
payments_app = typer.Typer(help="Payments: link orphans to their contacts.", no_args_is_help=True)


@app.command()
def replay(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    status: Annotated[str | None, typer.Option("--status", help="Only rows with this status (e.g. error).")] = None,
    since: Annotated[datetime | None, typer.Option("--since", help="Only rows received at or after this time.")] = None,
    ids: Annotated[list[int] | None, typer.Option("--id", help="Only this row (repeatable).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source.")] = None,
) -> None:
    """Process stored webhooks again (idempotent: what was already applied is not applied twice)."""
    settings = get_settings()
    engine = admin_engine()
    app_engine = runtime_engine(settings)
    clauses = ["w.inbox", "w.tenant_id = :t"]
    with admin_session(engine) as conn:
        t = ten.get_tenant(conn, tenant)
        params: dict[str, object] = {"t": t.id}
        if status:
            clauses.append("w.status = :status")
            params["status"] = status
        if since:
            clauses.append("w.created_at >= :since")
            params["since"] = since
        if ids:
            clauses.append("w.id = ANY(:ids)")
            params["ids"] = ids
        if source:
            clauses.append("w.source = :source")
            params["source"] = source
        rows = conn.execute(text(
            f"SELECT w.id, w.tenant_id, w.source, w.payload, w.created_at, w.attempts FROM webhook_logs w "
            f"WHERE {' AND '.join(clauses)} ORDER BY w.id"), params).all()
    if not rows:
        out.print("No stored webhooks match.")
        return
    counts: dict[str, int] = {}
    with Progress(console=out) as progress:
        task = progress.add_task(f"replaying {len(rows)} webhook(s)", total=len(rows))
        for row in rows:
            row_id, tenant_id, row_source, payload, received_at, _attempts = row
            result = process_row(engine, app_engine, Claimed(row_id, tenant_id, row_source, payload, received_at, 0))
            counts[result] = counts.get(result, 0) + 1
            progress.advance(task)
    out.print("Replayed: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@app.command()
def stats(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Window in days.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Webhooks per source and status, unknown payload keys, and rejections."""
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
        p = {"t": t.id, "d": days}
        window = "created_at >= now() - make_interval(days => :d)"
        by_status = conn.execute(text(
            f"SELECT source, status, count(*) FROM webhook_logs WHERE tenant_id = :t AND inbox AND {window} "
            "GROUP BY 1, 2 ORDER BY 1, 2"), p).all()
        unknown = conn.execute(text(
            f"SELECT source, k, count(*) FROM webhook_logs, unnest(unknown_keys) k WHERE tenant_id = :t AND inbox "
            f"AND {window} GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50"), p).all()
        rejected = conn.execute(text(
            f"SELECT source, reason, count(*) FROM webhook_rejections WHERE tenant_id = :t AND {window} "
            "GROUP BY 1, 2 ORDER BY 3 DESC"), p).all()
    if as_json:
        print_json({"tenant": tenant, "days": days,
                    "by_status": [{"source": s, "status": st, "count": n} for s, st, n in by_status],
                    "unknown_keys": [{"source": s, "key": k, "count": n} for s, k, n in unknown],
                    "rejections": [{"source": s, "reason": r, "count": n} for s, r, n in rejected]})
        return
    for title, cols, rows in (("Webhooks", ("source", "status", "count"), by_status),
                              ("Unknown payload keys (recorded, not used)", ("source", "key", "count"), unknown),
                              ("Rejected (authentication)", ("source", "reason", "count"), rejected)):
        table = Table(title=f"{title}, {tenant}, last {days} days")
        for col in cols:
            table.add_column(col)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        out.print(table if rows else f"{title}: none.")


TAIL_SELECT = (
    "SELECT id, created_at, source, coalesce(event_type, ''), status, "
    "coalesce(status_detail, error_message, '') FROM webhook_logs"
)
WAITING = ("received", "processing", "retry")


@app.command()
def tail(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")],
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls.")] = 1.0,
    last: Annotated[int, typer.Option("--last", help="Show this many recent rows first.")] = 10,
) -> None:
    """Follow the tenant's webhooks as they arrive and are processed (Ctrl-C to stop)."""
    settings = get_settings()
    app_engine = runtime_engine(settings)
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
    seen: dict[int, str] = {}  # row id → the status last printed for it
    pending: set[int] = set()  # rows printed while still waiting to be processed: their next status is shown
    since_id: int | None = None
    # Ctrl-C only asks the loop to stop: raised at an arbitrary point (inside a query, or while the session
    # returns its connection to the pool) KeyboardInterrupt could leave the process hanging on its way out.
    # The handler only flips a flag: it runs in this same thread, between any two bytecodes, so it must take
    # no lock (a threading.Event's set() deadlocks when the signal lands while wait() holds that lock).
    stop: list[bool] = []
    previous = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    try:
        while not stop:
            with tenant_session(app_engine, t.id) as conn:
                if since_id is None:  # the first poll: the last few rows, and where "new" starts
                    rows = conn.execute(text(f"{TAIL_SELECT} WHERE inbox ORDER BY id DESC LIMIT :n"),
                                        {"n": max(last, 0)}).all()
                    since_id = int(conn.execute(text("SELECT coalesce(max(id), 0) FROM webhook_logs")).scalar_one())
                else:
                    rows = conn.execute(text(f"{TAIL_SELECT} WHERE inbox AND (id > :since OR id = ANY(:pending)) "
                                             "ORDER BY id DESC LIMIT 1000"),
                                        {"since": since_id, "pending": sorted(pending)}).all()
            for row in reversed(rows):
                if seen.get(row[0]) != row[4]:
                    seen[row[0]] = row[4]
                    out.print(f"{row[1]:%H:%M:%S} #{row[0]} {row[2]:<11} {row[3]:<28} {row[4]:<10} {row[5]}",
                              markup=False, highlight=False)
                (pending.add if row[4] in WAITING else pending.discard)(row[0])
            since_id = max([since_id or 0, *(r[0] for r in rows)])
            deadline = time.monotonic() + interval
            while not stop and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
    finally:
        signal.signal(signal.SIGINT, previous)


@payments_app.command("link-orphans")
def link_orphans(tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug.")]) -> None:
    """Attach orphan payments to the contact that now has their e-mail (with their funnel events)."""
    settings = get_settings()
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
    with tenant_session(runtime_engine(settings), t.id) as conn:
        linked = link_all_orphans(conn, t.id)
        left = conn.execute(text("SELECT count(*) FROM payments WHERE contact_id IS NULL")).scalar()
    if not linked:
        out.print(f"No orphan payment could be linked; {left} remain without a contact.")
        return
    for payment_id, contact_id in linked:
        out.print(f"  {payment_id} → contact {contact_id}")
    out.print(f"Linked {len(linked)} payment(s); {left} remain without a contact.")
