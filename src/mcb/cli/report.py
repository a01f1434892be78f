"""``mcb report NAME --tenant T [--from D --to D | --week YYYY-Www | --last 30d] [--format F] [--output P]``.

Every report is built under the tenant's Row Level Security session, in the tenant's time zone; see
docs/reports.md for each report's JSON keys and the metric definitions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from mcb.analytics import run
from mcb.analytics.render import FORMATS
from mcb.analytics.reports import REPORTS
from mcb.cli.common import admin, out
from mcb.config import get_settings
from mcb.db.engine import runtime_engine
from mcb.errors import UserError
from mcb.tenancy import tenants as ten

app = typer.Typer(help="Reports per tenant: funnel, revenue, ads, sources, funnel-compare, chatbot-ab, contact, "
                       "data-quality, weekly, monthly (see docs/reports.md).", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug.")]
From = Annotated[str | None, typer.Option("--from", help="First local date (YYYY-MM-DD) in the tenant's time zone.")]
To = Annotated[str | None, typer.Option("--to", help="Last local date (YYYY-MM-DD), included.")]
Week = Annotated[str | None, typer.Option("--week", help="An ISO week, Monday to Sunday: YYYY-Www.")]
Last = Annotated[str | None, typer.Option("--last", help="The last N days up to today: 30d, 4w.")]
Format = Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")]
Output = Annotated[Path | None, typer.Option("--output", help="Write to this file instead of the terminal.")]
Historical = Annotated[bool | None, typer.Option(
    "--include-historical/--exclude-historical",
    help="Override the tenant's historical_filter setting for this report.")]


def _run(name: str, tenant: str, *, from_date: str | None, to_date: str | None, week: str | None,
         last: str | None, fmt: str, output: Path | None, include_historical: bool | None,
         send: bool = False, test: bool = False, **options: Any) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if test and not send:
        raise UserError("--test goes with --send (it sends the report only to the operator).")
    report = run.report_named(name)
    settings = get_settings()
    with admin() as conn:
        t = ten.get_tenant(conn, tenant, active_only=True)
    window = run.resolve_window(report, t, from_date=from_date, to_date=to_date, week=week, last=last) \
        if report.default_window else None
    if send or (name in run.SENDABLE and fmt == "csv"):
        options["include_contacts"] = True
    engine = runtime_engine(settings)
    try:
        produced = run.produce(engine, report, t, window, include_historical=include_historical, **options)
        if send:
            sent = run.deliver(engine, settings, report, t, produced, test=test)
            out.print(f"Sent “{sent.subject}” with {sent.attachment} to {', '.join(sent.recipients)}.")
            if output is None:
                return
        text = run.rendered(produced, fmt, width=max(120, shutil.get_terminal_size((160, 24)).columns))
    finally:
        engine.dispose()
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"Cannot write {output}: {exc.strerror or exc}.") from None
        out.print(f"Wrote {output}.")
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def _window_command(name: str, doc: str) -> None:
    def command(tenant: Tenant, from_date: From = None, to_date: To = None, week: Week = None, last: Last = None,
                fmt: Format = "table", output: Output = None, include_historical: Historical = None) -> None:
        _run(name, tenant, from_date=from_date, to_date=to_date, week=week, last=last, fmt=fmt, output=output,
             include_historical=include_historical)

    command.__doc__ = doc
    app.command(name)(command)


for _name in ("revenue", "ads", "sources", "funnel-compare", "chatbot-ab", "data-quality"):
    _window_command(_name, REPORTS[_name].summary)


@app.command("funnel")
def funnel(tenant: Tenant, from_date: From = None, to_date: To = None, week: Week = None, last: Last = None,
           fmt: Format = "table", output: Output = None, include_historical: Historical = None,
           mode: Annotated[str, typer.Option("--mode", help="activity (contacts with the stage's event in the "
                                             "window) or cohort (the window's leads, however far they got).")]
           = "activity") -> None:
    """Stages, stage-to-stage conversion and the biggest drop-off (default: last 30 days)."""
    if mode not in ("activity", "cohort"):
        raise UserError("--mode is activity or cohort.")
    _run("funnel", tenant, from_date=from_date, to_date=to_date, week=week, last=last, fmt=fmt, output=output,
         include_historical=include_historical, mode=mode)


@app.command("contact")
def contact(term: Annotated[str, typer.Argument(help="E-mail, name, ManyChat id, GHL id or contact id.")],
            tenant: Tenant, fmt: Format = "table", output: Output = None) -> None:
    """One contact's timeline: events with the time between them, payments, tags."""
    _run("contact", tenant, from_date=None, to_date=None, week=None, last=None, fmt=fmt, output=output,
         include_historical=None, term=term)


def _periodic(name: str, doc: str) -> None:
    def command(tenant: Tenant, from_date: From = None, to_date: To = None, week: Week = None, last: Last = None,
                fmt: Format = "table", output: Output = None, include_historical: Historical = None,
                send: Annotated[bool, typer.Option("--send", help="E-mail the HTML report with its CSV to the "
                                                   "tenant's report recipients (MCB_SMTP_URL).")] = False,
                test: Annotated[bool, typer.Option("--test", help="With --send: only to MCB_OPERATOR_EMAIL, "
                                                   "subject prefixed [TEST].")] = False) -> None:
        _run(name, tenant, from_date=from_date, to_date=to_date, week=week, last=last, fmt=fmt, output=output,
             include_historical=include_historical, send=send, test=test)

    command.__doc__ = doc
    app.command(name)(command)


_periodic("weekly", "The weekly report: tiles, funnel, cash vs projected, spend/CPL/CPA/ROAS, top 3 ads, week over "
                    "week; CSV = contacts active in the week (default: the last complete Monday–Sunday week).")
_periodic("monthly", "Four weeks side by side with totals counted distinct over the period (R-36), cohorts, top "
                     "ads; CSV = contacts active in the period (default: the last four complete weeks).")
