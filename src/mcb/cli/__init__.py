"""The ``mcb`` command. Typer parses and dispatches; the work is done by functions in the domain packages."""

from __future__ import annotations

import importlib
import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from mcb.config import get_settings
from mcb.errors import UserError

# Command groups and commands, by name: (module, attribute). A command imports only its own module (the
# report commands need neither Alembic nor uvicorn); `mcb --help` and unknown names load all of them.
GROUPS: dict[str, tuple[str, str]] = {
    "db": ("mcb.cli.db", "app"),
    "tenants": ("mcb.cli.tenants", "app"),
    "integrations": ("mcb.cli.integrations", "app"),
    "tokens": ("mcb.cli.tokens", "app"),
    "webhooks": ("mcb.cli.webhooks", "app"),
    "payments": ("mcb.cli.webhooks", "payments_app"),
    "meta": ("mcb.cli.meta", "app"),
    "import": ("mcb.cli.imports", "app"),
    "report": ("mcb.cli.report", "app"),
}
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("mcb.cli.serve", "serve"),
    "worker": ("mcb.cli.serve", "worker"),
}


def _root() -> None:
    """MCB: multi-tenant funnel tracking on PostgreSQL."""


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """The ``mcb`` Typer app with the command named in ``argv`` (all of them when none is named)."""
    named = next((a for a in (argv or []) if not a.startswith("-")), None)
    only = {named} if named in GROUPS or named in COMMANDS else set(GROUPS) | set(COMMANDS)
    app = typer.Typer(
        name="mcb",
        help="MCB: multi-tenant funnel tracking on PostgreSQL.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    # A callback keeps `mcb` a group even when only one command is loaded (Typer would otherwise run a
    # lone command as the program itself, and `mcb serve` would read "serve" as an extra argument).
    app.callback()(_root)
    for name, (module, attribute) in GROUPS.items():
        if name in only:
            app.add_typer(getattr(importlib.import_module(module), attribute), name=name)
    for name, (module, attribute) in COMMANDS.items():
        if name in only:
            app.command(name=name)(getattr(importlib.import_module(module), attribute))
    return app


err = Console(stderr=True)


def main() -> None:
    """Entry point: expected failures print one sentence and exit non-zero, never a traceback."""
    logging.basicConfig(
        level=get_settings().log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        build_app(sys.argv[1:])()
    except UserError as exc:
        err.print(f"[bold red]Error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130:  # Typer turns Ctrl-C in a command into a silent exit with status 130
            _interrupted()
        raise


def _interrupted() -> None:
    err.print("Interrupted; every step that finished is recorded, run the command again to continue.")
    sys.exit(130)
