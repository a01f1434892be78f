"""``mcb meta``: sync tenants' Meta Ads (ads, creatives, daily insights), see past runs, set keyword lists."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from mcb.cli.common import admin, admin_engine, out, print_json
from mcb.config import get_settings
from mcb.db.engine import runtime_engine
from mcb.errors import UserError
from mcb.meta import creative
from mcb.meta.sync import RunRecord, SyncSummary, recent_runs, sync_all_tenants, sync_tenant
from mcb.tenancy import tenants as ten

app = typer.Typer(help="Sync tenants' Meta Ads: ads, creatives and daily insights from the Graph API.",
                  no_args_is_help=True)
keywords_app = typer.Typer(help="The keyword lists that derive a creative's theme and symptom focus.",
                           no_args_is_help=True)
app.add_typer(keywords_app, name="keywords")


class RichPhases:
    """One progress bar per phase of a sync (ads and insight rows counted as they arrive)."""

    def __init__(self, progress: Progress, slug: str) -> None:
        self.progress, self.slug = progress, slug
        self.task: TaskID | None = None
        self.done = 0

    def phase(self, name: str, total: int | None = None) -> None:
        self._close()
        self.task, self.done = self.progress.add_task(f"{self.slug}: {name}", total=total), 0

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.done += n
            self.progress.advance(self.task, n)

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        task = next((t for t in self.progress.tasks if t.id == self.task), None)
        if task is not None and task.total is None:
            self.progress.update(task.id, total=self.done)  # a phase of unknown size ends full


def _progress(as_json: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=out, disable=as_json, transient=False)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date; write YYYY-MM-DD.") from None


def _summary_table(summaries: list[SyncSummary]) -> Table:
    table = Table(title="Meta sync")
    for col in ("tenant", "window", "ads (active)", "creatives", "insight rows", "removed", "API calls",
                "retries", "pauses", "report job", "time"):
        table.add_column(col)
    for s in summaries:
        table.add_row(s.tenant, f"{s.since} to {s.until}", f"{s.ads} ({s.active_ads})", str(s.creatives),
                      str(s.insight_rows), str(s.removed_rows), str(s.api_calls), str(s.retries),
                      str(s.throttle_pauses), "yes" if s.used_report_job else "no", f"{s.seconds:.1f} s")
    return table


@app.command()
def sync(
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant's slug.")] = None,
    all_tenants: Annotated[bool, typer.Option(
        "--all-tenants", help="Every active tenant with a meta integration (the cron form).")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="First day (YYYY-MM-DD). Default: 90 days back on the first sync, else the last 3 days "
        "of the last successful sync's window again (Meta revises them).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Last day (YYYY-MM-DD). Default: today in the tenant's time zone.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Fetch ads, creatives and daily insights from Meta for one tenant (or all) and store them."""
    if (tenant is None) == (not all_tenants):
        raise UserError("Give either --tenant SLUG or --all-tenants.")
    if all_tenants and (since or until):
        raise UserError("--since and --until apply to one tenant; use them with --tenant.")
    first, last = _day(since, "--since"), _day(until, "--until")
    settings = get_settings()
    app_engine = runtime_engine(settings)
    try:
        with _progress(as_json) as progress:
            if tenant is not None:
                summaries = [sync_tenant(app_engine, settings, tenant, since=first, until=last,
                                         progress=RichPhases(progress, tenant))]
                failures: list[tuple[str, str]] = []
            else:
                engine = admin_engine()
                try:
                    outcomes = sync_all_tenants(engine, app_engine, settings,
                                                progress_for=lambda slug: RichPhases(progress, slug))
                finally:
                    engine.dispose()
                summaries = [o.summary for o in outcomes if o.summary is not None]
                failures = [(o.tenant, o.error or "") for o in outcomes if o.summary is None]
    finally:
        app_engine.dispose()
    if as_json:
        print_json({"synced": [s.as_dict() for s in summaries],
                    "failed": [{"tenant": t, "error": e} for t, e in failures]})
    else:
        if summaries:
            out.print(_summary_table(summaries))
        elif all_tenants and not failures:
            out.print("No active tenant has a meta integration; nothing to sync.")
        for slug, error in failures:
            out.print(f"[bold red]{escape(slug)} failed:[/bold red] {escape(error)}")
    if failures:
        raise typer.Exit(1)


@app.command()
def runs(
    tenant: Annotated[str, typer.Argument(help="The tenant's slug.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The tenant's recent Meta syncs (sync_runs): when, how, outcome, counts, error."""
    with admin() as conn:
        found = ten.get_tenant(conn, tenant)
        records = recent_runs(conn, found.id, limit=limit)
    if as_json:
        print_json([r.__dict__ for r in records])
        return
    if not records:
        out.print(f"No Meta syncs recorded for {tenant}.")
        return
    out.print(runs_table(records, title=f"Meta syncs of {tenant}"))


def runs_table(records: list[RunRecord], title: str) -> Table:
    table = Table(title=title)
    for col in ("run", "started (UTC)", "trigger", "status", "window", "ads", "insight rows", "API calls", "error"):
        table.add_column(col)
    for r in records:
        started: datetime = r.started_at.astimezone(UTC)
        style = {"succeeded": "green", "failed": "red"}.get(r.status, "yellow")
        table.add_row(str(r.id), f"{started:%Y-%m-%d %H:%M}", r.trigger, Text(r.status, style=style),
                      f"{r.since} to {r.until}", str(r.ads), str(r.insight_rows), str(r.api_calls),
                      Text(r.error or ""))
    return table


@keywords_app.command("show")
def keywords_show(
    tenant: Annotated[str, typer.Argument(help="The tenant's slug.")],
) -> None:
    """The lists in use for the tenant, as JSON (the format `set` reads)."""
    with admin() as conn:
        found = ten.get_tenant(conn, tenant)
    lists = creative.keyword_lists(found.slug, found.config)
    source = ("tenants.config" if creative.CONFIG_KEY in found.config
              else "PPCU's defaults" if lists is creative.PPCU_KEYWORDS else "none: every creative is 'general'")
    out.print(f"Keyword lists of {tenant} ({source}):", markup=False)
    print(json.dumps(lists.as_config(), indent=2))


@keywords_app.command("set")
def keywords_set(
    tenant: Annotated[str, typer.Argument(help="The tenant's slug.")],
    path: Annotated[Path | None, typer.Argument(
        help="A JSON file: {\"themes\": [{\"name\": ..., \"keywords\": [...]}], \"symptoms\": [...]}; themes "
        "in priority order.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Remove the tenant's own lists (back to the default).")]
    = False,
) -> None:
    """Store the tenant's keyword lists in tenants.config (used from the next sync on)."""
    if (path is None) == (not reset):
        raise UserError("Give a JSON file, or --reset.")
    value = None
    if path is not None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError):
            raise UserError(f"Cannot read {path}.") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}).") from None
        value = creative.parse_keyword_lists(raw).as_config()
    with admin() as conn:
        ten.set_config_entry(conn, tenant, creative.CONFIG_KEY, value)
    out.print(f"Keyword lists of {tenant} {'reset to the default' if reset else 'stored'}; the next sync uses them.")
