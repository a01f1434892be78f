"""``mcb tokens``: API tokens for the HTTP API and dashboard (shown once, stored hashed)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mcb.cli.common import admin, out, print_json
from mcb.errors import UserError
from mcb.tenancy import tenants as ten
from mcb.tenancy import tokens as tok

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command()
def create(
    tenant: Annotated[str | None, typer.Option("--tenant", help="The one tenant this token can reach.")] = None,
    admin_token: Annotated[bool, typer.Option("--admin", help="A token that reaches every tenant.")] = False,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "api",
) -> None:
    """Create a token and print it once."""
    if (tenant is None) == (not admin_token):
        raise UserError("Give exactly one of --tenant SLUG or --admin.")
    with admin() as conn:
        tenant_id = ten.get_tenant(conn, tenant).id if tenant else None
        token, record = tok.create_token(conn, tenant_id, name)
    scope = f"tenant {tenant}" if tenant else "every tenant (admin)"
    out.print(f"Token {record.token_prefix}… for {scope} (shown once, keep it safe):")
    print(token)
    out.print("Use it as the header  Authorization: Bearer <token>")


@app.command("list")
def list_(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's tokens.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tokens (never their values): prefix, scope, name, last use."""
    with admin() as conn:
        tenant_id = ten.get_tenant(conn, tenant).id if tenant else None
        tokens = tok.list_tokens(conn, tenant_id, include_revoked=include_revoked)
    if as_json:
        print_json([{"id": t.id, "prefix": t.token_prefix, "tenant": t.tenant_slug, "admin": t.is_admin,
                     "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at,
                     "revoked_at": t.revoked_at} for t in tokens])
        return
    table = Table(title="API tokens")
    for col in ("id", "prefix", "scope", "name", "created", "last used", "revoked"):
        table.add_column(col)
    for t in tokens:
        table.add_row(*(Text(v) for v in (
            str(t.id), t.token_prefix + "…", t.tenant_slug or "admin", t.name,
            t.created_at.strftime("%Y-%m-%d %H:%M"),
            t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "",
            t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "")))
    out.print(table)


@app.command()
def revoke(ref: Annotated[str, typer.Argument(help="The token's id or its prefix as listed.")]) -> None:
    """Revoke a token; it stops working at once."""
    with admin() as conn:
        record = tok.revoke_token(conn, ref)
    out.print(f"Revoked {record.token_prefix}… ({record.tenant_slug or 'admin'}).", markup=False)
