"""``mcb import contacts|payments FILE.csv``: the original's CSV exports, through the one write path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mcb.cli.common import admin, out, print_json
from mcb.config import get_settings
from mcb.db.engine import runtime_engine
from mcb.funnel.historical import ImportSummary, Kind, import_file
from mcb.tenancy import tenants as ten

app = typer.Typer(
    help="Import the original's historical CSV exports (contacts, payments); see docs/import.md.",
    no_args_is_help=True,
)

FileArg = Annotated[Path, typer.Argument(help="The CSV export.", show_default=False)]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


@app.command()
def contacts(
    file: FileArg,
    tenant: TenantOpt,
    source_label: Annotated[str | None, typer.Option(
        "--source-label", help="Where the list came from (e.g. instagram); contacts get <label>_historical. "
        "Default: each row's source column, else unknown.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import contacts (e-mail, names, phone, source, reached_stage, first_seen ...) as historical."""
    _run("contacts", file, tenant, source_label, as_json)


@app.command()
def payments(
    file: FileArg,
    tenant: TenantOpt,
    source_label: Annotated[str | None, typer.Option(
        "--source-label", help="A note on where the export came from, kept in the import log.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import payments (Stripe or Denefits exports, or hist_payments columns), linked to contacts by e-mail."""
    _run("payments", file, tenant, source_label, as_json)


def _run(kind: Kind, file: Path, slug: str, label: str | None, as_json: bool) -> None:
    with admin() as conn:
        tenant = ten.get_tenant(conn, slug)
    engine = runtime_engine(get_settings())
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=out, transient=as_json, disable=as_json) as progress:
            task = progress.add_task(f"importing {kind} from {file.name}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = import_file(engine, tenant.id, tenant.slug, tenant.timezone, kind, file,
                                  source_label=label, on_progress=advance)
    finally:
        engine.dispose()
    if as_json:
        print_json(summary.as_json())
        return
    _print_summary(summary)


def _print_summary(s: ImportSummary) -> None:
    table = Table(title=f"Import of {s.kind} from {s.file} into {s.tenant}")
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_column("reasons")
    table.add_row("read", str(s.rows), "")
    table.add_row("imported", str(s.imported),
                  f"{s.contacts_created} new contacts, {s.contacts_updated} existing ones updated, {s.events_created} events"
                  if s.kind == "contacts"
                  else f"{s.payments_created} payments ({s.orphan_payments} without a contact yet)")
    table.add_row("already imported", str(s.already_imported), "nothing to change")
    for bucket in ("skipped", "suspicious"):
        reasons = "; ".join(f"{reason}: {n}" for reason, n in sorted(s.reasons[bucket].items()))
        table.add_row(bucket, str(getattr(s, bucket)), reasons)
    out.print(table)
    if s.problems:
        lines = ", ".join(f"{p['line']} ({p['reason']})" for p in s.problems[:10])
        more = f" and {len(s.problems) - 10} more" if len(s.problems) > 10 else ""
        out.print(f"Lines to look at: {lines}{more}. Logged as hist_import_logs #{s.log_id}.", markup=False)
    else:
        out.print(f"Logged as hist_import_logs #{s.log_id}.")
