"""``mcb db``: upgrade, verify, downgrade, backup, restore, status, rebuild-rollups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.syntax import Syntax
from rich.table import Table

from mcb.cli.common import out
from mcb.config import get_settings
from mcb.db.engine import connect_engine, database_url, redact_url
from mcb.errors import UserError, VerificationFailed
from mcb.migrate import backup as backups
from mcb.migrate import runner
from mcb.migrate.progress import RichReporter
from mcb.migrate.verify import VerifyReport, run_checks

app = typer.Typer(help="Create, migrate, verify, back up and restore the database.", no_args_is_help=True)


def _connect() -> tuple[str, object]:
    url = database_url()
    return url, connect_engine(url)


@app.command()
def upgrade(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and its SQL; change nothing.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Skip the pg_dump taken before changing a database that holds rows.")] = False,
    backup_path: Annotated[Path | None, typer.Option("--backup-path", help="Where to write that backup (default: $MCB_HOME/backups/).")] = None,
    backfill_jobs: Annotated[int | None, typer.Option(
        "--backfill-jobs", min=1, max=16,
        help="Connections the migration uses at once: each backfill on its own parts of the table, and "
             "the tenant keys' index builds (0004) on different tables side by side "
             "(default: MCB_BACKFILL_JOBS, 2). An interrupted backfill resumes with the parts it had.")] = None,
) -> None:
    """Bring the database to the head revision, online.

    Works on an empty database, on the original single-tenant database (recognised by its shape and
    adopted), and on one whose previous upgrade was interrupted at any point. Backs up a database that
    holds rows first; afterwards analyzes the tables it filled or rewrote and runs the checks of verify.
    """
    url, engine = _connect()
    out.print(f"Database: {redact_url(url)}")
    reporter = RichReporter(out)
    settings = get_settings()
    if backfill_jobs is not None:
        settings = settings.model_copy(update={"backfill_jobs": backfill_jobs})
    result = runner.upgrade(engine, url, make_backup=not no_backup, backup_path=backup_path,  # type: ignore[arg-type]
                            dry_run=dry_run, reporter=reporter, settings=settings)
    for note in result.shape.notes:
        out.print(f"[dim]note: {note}[/dim]")
    if dry_run:
        if result.shape.kind == "legacy":
            out.print("Would adopt the original single-tenant schema (stamp revision 0001).")
        if not result.plan:
            out.print("Nothing to apply: the database is at head.")
        else:
            out.print("Would apply:")
            for p in result.plan:
                out.print(f"  {p.revision}  {p.title}")
            if out.is_terminal:
                out.print(Syntax(result.sql or "", "sql", word_wrap=True), soft_wrap=False)
            else:  # to a file or a pipe: the SQL exactly, each line whole, whatever the width
                out.print(result.sql or "", markup=False, highlight=False, soft_wrap=True)
        out.print("Dry run: nothing was changed.")
        return
    if result.noop:
        out.print(f"Already at head ({runner.head_revision()}); nothing to do.")
    else:
        out.print(f"[green]Upgraded to {runner.head_revision()}[/green] ({len(result.applied)} revision(s)).")
    if result.verification is not None:
        _print_verify(result.verification)
        if not result.verification.passed:
            raise VerificationFailed("The upgrade finished but verification failed; see the failing checks above.")


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check that the multi-tenant migration is complete and correct (exit 0 only if all checks pass)."""
    _url, engine = _connect()
    report = run_checks(engine)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_verify(report)
    if not report.passed:
        raise VerificationFailed(f"{sum(not c.passed for c in report.checks)} check(s) failed.")


def _print_verify(report: VerifyReport) -> None:
    table = Table(title=f"Verification at revision {report.revision}")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]", c.detail)
    out.print(table)
    if report.row_counts:
        counts = Table(title="Rows per tenant (exact)")
        tables = sorted({t for v in report.row_counts.values() for t in v})
        counts.add_column("table")
        for slug in report.row_counts:
            counts.add_column(slug, justify="right")
        for t in tables:
            counts.add_row(t, *(str(report.row_counts[s].get(t, 0)) for s in report.row_counts))
        out.print(counts)


@app.command()
def downgrade(
    target: Annotated[str, typer.Argument(help="The only target: single-tenant (revision 0001).")],
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Skip the backup taken first.")] = False,
) -> None:
    """Return to the original single-tenant schema, refusing (and changing nothing) if data would be lost."""
    if target != "single-tenant":
        raise UserError(f"Unknown downgrade target {target!r}; the only target is single-tenant.")
    url, engine = _connect()
    result = runner.downgrade_single_tenant(engine, url, make_backup=not no_backup,  # type: ignore[arg-type]
                                            reporter=RichReporter(out))
    if not result.reverted:
        out.print("Already at the single-tenant schema (revision 0001); nothing to do.")
    else:
        out.print(f"[green]Downgraded to 0001[/green] (reverted {', '.join(result.reverted)}).")


@app.command()
def backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (pg_dump custom format).")],
) -> None:
    """Write a backup of the whole database with pg_dump."""
    url, _engine = _connect()
    path = backups.backup(url, output)
    out.print(f"Backup written to {path}")


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="A backup written by `mcb db backup` or `mcb db upgrade`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    no_safety_backup: Annotated[bool, typer.Option("--no-safety-backup", help="Do not back up the current state first.")] = False,
) -> None:
    """Replace the database's contents with a backup, in one transaction (all or nothing)."""
    url, _engine = _connect()
    if not path.expanduser().is_file():
        raise UserError(f"No backup file at {path}.")
    if not yes:
        if not typer.get_text_stream("stdin").isatty():
            raise UserError("Restoring replaces everything in the database; pass --yes to confirm.")
        typer.confirm(f"Replace everything in {redact_url(url)} with {path}?", abort=True)
    if not no_safety_backup:
        safety = backups.backup(url, backups.default_backup_path(url, "before-restore"))
        out.print(f"Current state backed up to {safety}")
    backups.restore(url, path)
    out.print(f"[green]Restored[/green] {path} into {redact_url(url)}.")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the revision, the pending steps, schema drift and the recent migration log."""
    url, engine = _connect()
    st = runner.status(engine, url)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps({
            "database": redact_url(url), "kind": st.kind, "revision": st.revision, "head": st.head,
            "pending": [p.revision for p in st.pending], "drift": st.drift, "differences": st.differences,
            "notes": st.notes,
            "log": [{"at": e.at.isoformat(), "action": e.action, "revision": e.revision, "status": e.status,
                     "duration_ms": e.duration_ms} for e in st.log],
        }, indent=2))
        return
    kinds = {"empty": "empty (no tables yet)", "versioned": "managed by MCB",
             "legacy": "the original single-tenant schema, not yet adopted", "unknown": "unknown shape"}
    out.print(f"Database: {redact_url(url)} — {kinds[st.kind]}")
    out.print(f"Revision: {st.revision or '-'} (head {st.head})")
    if st.differences:
        out.print("[red]Differences from the original schema:[/red]")
        for d in st.differences:
            out.print(f"  {d}")
    if st.pending:
        out.print("Pending:")
        for p in st.pending:
            out.print(f"  {p.revision}  {p.title}")
    else:
        out.print("Pending: none")
    if st.kind == "versioned" and not st.pending:
        out.print("Schema drift: none" if not st.drift else "[yellow]Schema drift:[/yellow]")
        for d in st.drift:
            out.print(f"  {d}", markup=False, highlight=False)
    if st.log:
        log = Table(title="Recent migration log")
        for col in ("at", "action", "revision", "status", "ms"):
            log.add_column(col)
        for e in st.log:
            log.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.action, e.revision or "", e.status,
                        "" if e.duration_ms is None else str(e.duration_ms))
        out.print(log)


def settings_summary() -> str:
    s = get_settings()
    return f"MCB_HOME={s.home_dir}"


@app.command("rebuild-rollups")
def rebuild_rollups(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant (slug); default: every tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Recompute the report rollups (contact_leads, funnel_event_repeats, shared_emails, event_counts) from
    the rows they summarise. Triggers keep them exact; this is for after a bulk load that bypassed triggers,
    or to check them: a rollup that was exact changes no row."""
    from mcb.analytics.rollups import ROLLUPS, rebuild_all
    from mcb.db.session import admin_session
    from mcb.tenancy.tenants import get_tenant, list_tenants

    _url, engine = _connect()
    revision = runner.current_revision(engine)  # type: ignore[arg-type]
    if revision != runner.head_revision():
        raise UserError(f"The database is at revision {revision or 'none'}, not {runner.head_revision()}; "
                        "run `mcb db upgrade` first.")
    with admin_session(engine) as conn:  # type: ignore[arg-type]
        tenants = [get_tenant(conn, tenant)] if tenant else list_tenants(conn)
    changed: dict[str, dict[str, int]] = {}
    with out.status("rebuilding the rollups …") as spinner:
        for t in tenants:
            spinner.update(f"rebuilding the rollups of {t.slug} …")
            with admin_session(engine) as conn:  # type: ignore[arg-type]
                changed[t.slug] = rebuild_all(conn, t.id)
    if as_json:
        print(json.dumps({"tenants": changed}, indent=2))
        return
    table = Table(title="Rows changed by the rebuild")
    table.add_column("tenant")
    for name in ROLLUPS:
        table.add_column(name, justify="right")
    for slug, counts in changed.items():
        table.add_row(slug, *(str(counts[name]) for name in ROLLUPS))
    out.print(table)
    total = sum(sum(c.values()) for c in changed.values())
    out.print("The rollups were exact: nothing changed." if total == 0 else f"{total} row(s) put right.")
