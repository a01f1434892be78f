"""Running a report for a tenant: resolve the window in the tenant's zone, build inside the tenant's
session, render, and (weekly, monthly) deliver by e-mail. ``mcb report`` only parses and calls these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, text

from mcb.analytics import delivery
from mcb.analytics import window as windows
from mcb.analytics.render import Layout, render, to_csv, to_html, to_text
from mcb.analytics.reports import REPORTS, Report
from mcb.config import Settings
from mcb.db.session import DURABLE_ENTER, tenant_session
from mcb.errors import UserError
from mcb.tenancy.tenants import Tenant, validate_email_address

SENDABLE = ("weekly", "monthly")


def report_named(name: str) -> Report:
    try:
        return REPORTS[name]
    except KeyError:
        raise UserError(f"No report {name!r}; the reports are {', '.join(REPORTS)}.") from None


def resolve_window(report: Report, tenant: Tenant, *, from_date: str | None = None, to_date: str | None = None,
                   week: str | None = None, last: str | None = None, today: date | None = None) -> windows.Window:
    default = report.default_window(tenant.timezone, today) if report.default_window else None
    return windows.resolve(tenant.timezone, from_date=from_date, to_date=to_date, week=week, last=last,
                           default=default, today=today)


@dataclass
class Produced:
    data: dict[str, Any]
    layout: Layout


REPORT_WORK_MEM = "64MB"
"""Memory for one sort or hash of a report query. PostgreSQL's default (4 MB) sends the distinct counts of a
busy week (tens of thousands of contact ids) to disk; set per transaction, so other sessions keep theirs."""


@contextmanager
def report_session(engine: Engine, tenant_id: UUID) -> Iterator[Connection]:
    """The tenant's RLS session (``tenant_session``) with the memory the report queries need."""
    with tenant_session(engine, tenant_id) as conn:
        conn.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
        yield conn


@contextmanager
def report_sessions(engine: Engine, tenant_id: UUID, count: int = 2) -> Iterator[list[Connection]]:
    """``count`` connections in the tenant's RLS session (as ``report_session``) that read one snapshot of
    the database, so work split between them sees the same rows: the first connection's transaction exports
    its snapshot and the others start theirs with it (``SET TRANSACTION SNAPSHOT``). Read-only."""
    with ExitStack() as stack:
        conns = [stack.enter_context(engine.connect().execution_options(isolation_level="REPEATABLE READ"))
                 for _ in range(count)]
        for conn in conns:
            stack.enter_context(conn.begin())
        snapshot = conns[0].execute(text("SELECT pg_export_snapshot()")).scalar_one()
        for conn in conns[1:]:
            conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        for conn in conns:
            conn.execute(text(f"SET TRANSACTION READ ONLY; SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
            conn.execute(DURABLE_ENTER, {"t": str(tenant_id)})  # role and tenant, as tenant_transaction
        yield conns


def produce(engine: Engine, report: Report, tenant: Tenant, window: windows.Window | None,
            **options: Any) -> Produced:
    """Build the report under the tenant's RLS session and lay it out (on two connections of one snapshot
    when the report can use them)."""
    if report.two_connections:
        with report_sessions(engine, tenant.id, 2) as (conn, side):
            data = report.build(conn, tenant, window, side=side, **options)
    else:
        with report_session(engine, tenant.id) as conn:
            data = report.build(conn, tenant, window, **options)
    return Produced(data, report.layout(data))


def rendered(produced: Produced, fmt: str, *, width: int = 120) -> str:
    return render(produced.data, produced.layout, fmt, width=width)


@dataclass
class Sent:
    recipients: list[str]
    subject: str
    attachment: str


def recipients_for(tenant: Tenant, settings: Settings, *, test: bool) -> list[str]:
    """Test mode: only the operator (MCB_OPERATOR_EMAIL). Otherwise the tenant's report_recipients, else its
    report_email (R-37)."""
    if test:
        if not settings.operator_email:
            raise UserError("--test sends only to the operator, but MCB_OPERATOR_EMAIL is not set.")
        return [validate_email_address(settings.operator_email)]
    listed = tenant.report_recipients
    if not listed:
        raise UserError(f"{tenant.slug} has no report recipients; add them with "
                        f"`mcb tenants update {tenant.slug} --report-recipient ADDRESS`.")
    return listed


def deliver(engine: Engine, settings: Settings, report: Report, tenant: Tenant, produced: Produced, *,
            test: bool) -> Sent:
    """E-mail the report (HTML with a plain-text part) and its contacts CSV, then record the send in
    reports_sent."""
    if report.name not in SENDABLE:
        raise UserError(f"Only the {' and '.join(SENDABLE)} reports can be sent by e-mail.")
    target = delivery.parse_smtp_url(settings.smtp_url)
    recipients = recipients_for(tenant, settings, test=test)
    sender = settings.report_from or settings.operator_email
    if not sender:
        raise UserError("Set MCB_REPORT_FROM (or MCB_OPERATOR_EMAIL) to the address report e-mails come from.")
    data, layout = produced.data, produced.layout
    subject = f"{'[TEST] ' if test else ''}{tenant.name} {report.name} report: {data['window']['label']}"
    filename = str(data["csv_filename"])
    html = to_html(layout)
    message = delivery.build_message(
        sender=validate_email_address(sender), recipients=recipients, subject=subject,
        text=to_text(layout, 100), html=html,
        attachments=(delivery.Attachment(filename, to_csv(layout).encode("utf-8")),))
    delivery.send(target, message)
    with tenant_session(engine, tenant.id) as conn:
        conn.execute(text(
            "INSERT INTO reports_sent (tenant_id, week_ending, sent_to, subject, sections, report_html, "
            "report_markdown) VALUES (:t, :end, :to, :subject, :sections, :html, :md)"),
            {"t": tenant.id, "end": date.fromisoformat(data["window"]["end"]), "to": recipients, "subject": subject,
             "sections": [t.title for t in layout.tables], "html": html, "md": render(data, layout, "markdown")})
    return Sent(recipients, subject, filename)
