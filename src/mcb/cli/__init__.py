"""The ``mcb`` command. Typer parses and dispatches; the work is done by functions in the domain packages."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from mcb.cli import db as db_commands
from mcb.cli import imports as import_commands
from mcb.cli import integrations as integration_commands
from mcb.cli import meta as meta_commands
from mcb.cli import report as report_commands
from mcb.cli import serve as serve_commands
from mcb.cli import tenants as tenant_commands
from mcb.cli import tokens as token_commands
from mcb.cli import webhooks as webhook_commands
from mcb.config import get_settings
from mcb.errors import UserError

app = typer.Typer(
    name="mcb",
    help="MCB: multi-tenant funnel tracking on PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(tenant_commands.app, name="tenants")
app.add_typer(integration_commands.app, name="integrations")
app.add_typer(token_commands.app, name="tokens")
app.add_typer(webhook_commands.app, name="webhooks")
app.add_typer(webhook_commands.payments_app, name="payments")
app.add_typer(meta_commands.app, name="meta")
app.add_typer(import_commands.app, name="import")
app.add_typer(report_commands.app, name="report")
app.command()(serve_commands.serve)
app.command()(serve_commands.worker)

err = Console(stderr=True)


def main() -> None:
    """Entry point: expected failures print one sentence and exit non-zero, never a traceback."""
    logging.basicConfig(
        level=get_settings().log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        app()
    except UserError as exc:
        err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("Interrupted; every step that finished is recorded, run the command again to continue.")
        sys.exit(130)
