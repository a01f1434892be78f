"""``mcb integrations``: per-tenant credentials, encrypted at rest, always shown masked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mcb.cli.common import admin, out, print_json
from mcb.config import get_settings
from mcb.errors import UserError
from mcb.tenancy import integrations as integ
from mcb.tenancy import tenants as ten
from mcb.tenancy.secrets import (
    SecretBox,
    SecretKeyError,
    generate_key,
    load_keys,
    mask,
    require_box,
    secret_box,
    write_key_file,
)

app = typer.Typer(help="Store, list and rotate tenants' integration credentials.", no_args_is_help=True)


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for position, pair in enumerate(pairs, start=1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            # Never echo it: a bare argument is often a secret pasted without its key.
            raise UserError(f"Argument {position} after the provider is not KEY=VALUE (use KEY= to remove a key).")
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            try:
                value = path.read_text().strip()
            except OSError:
                raise UserError(f"Cannot read {path} (given as @file for {key}).") from None
        values[key.strip()] = value
    return values


@app.command("set")
def set_(
    tenant: Annotated[str, typer.Argument(help="Tenant slug.")],
    provider: Annotated[str, typer.Argument(help=f"One of: {', '.join(integ.PROVIDERS)}.")],
    pairs: Annotated[list[str] | None, typer.Argument(
        help="KEY=VALUE pairs; KEY=@path reads the value from a file (PEM keys); KEY= removes a key. "
        "webhook_secret=… sets what authenticates the provider's webhooks.")] = None,
    generate_token: Annotated[bool, typer.Option(
        "--generate-token", help="Create a strong webhook token, store it, and print it once.")] = False,
    allow_unauthenticated: Annotated[bool | None, typer.Option(
        "--allow-unauthenticated/--require-auth",
        help="Accept this provider's webhooks without authentication (flagged by `mcb tenants show`).")] = None,
) -> None:
    """Store (merge) credentials for one provider of one tenant."""
    spec = integ.provider(provider)
    values = _parse_pairs(pairs or [])
    integ.check_keys(spec, list(values))
    token = None
    if generate_token:
        if provider == "stripe":
            raise UserError("Stripe signs webhooks with its own secret: copy it from Stripe and pass "
                            "webhook_secret=whsec_… instead of --generate-token.")
        if integ.WEBHOOK_SECRET in values:
            raise UserError("Give either webhook_secret=… or --generate-token, not both.")
        token = integ.generate_webhook_token()
        values[integ.WEBHOOK_SECRET] = token
    if not values and allow_unauthenticated is None:
        raise UserError("Nothing to store: give KEY=VALUE pairs, --generate-token or --allow-unauthenticated.")
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
        box = integ.box_for_writing(conn, get_settings())
        stored = integ.set_integration(conn, box, t.id, provider, values,
                                       allow_unauthenticated=allow_unauthenticated, slug=tenant)
    out.print(f"[green]Stored {provider} for {tenant}[/green]: "
              + escape(", ".join(f"{k}={v}" for k, v in stored.masked().items()) or "no keys"))
    if token is not None:
        url = t.webhook_urls(get_settings().public_url).get(provider, "")
        out.print(f"\nWebhook token (shown once, store it in {provider} now):\n  {token}")
        out.print(f"Send it as the header  {spec.token_header}: {token}")
        if url:
            out.print(f"or call  {url}?token={token}")
    if stored.allow_unauthenticated:
        out.print(f"[yellow]warning:[/yellow] {provider} webhooks of {tenant} are accepted without authentication.")


@app.command("list")
def list_(
    tenant: Annotated[str, typer.Argument(help="Tenant slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A tenant's integrations, with every secret masked."""
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
        items = integ.list_integrations(conn, secret_box(get_settings()), t.id, slug=tenant)
    if as_json:
        print_json({i.provider: {"keys": i.masked(), "options": i.options, "active": i.is_active} for i in items})
        return
    if not items:
        out.print(f"{tenant} has no integrations.")
        return
    table = Table(title=f"Integrations of {tenant} (masked)")
    for col in ("provider", "key", "value", "options"):
        table.add_column(col)
    for i in items:
        first = True
        for key, value in i.masked().items():
            table.add_row(i.provider if first else "", Text(key), Text(value),
                          Text(", ".join(f"{k}={v}" for k, v in i.options.items()) if first else ""))
            first = False
        if first:
            table.add_row(i.provider, "-", "-", ", ".join(f"{k}={v}" for k, v in i.options.items()))
    out.print(table)


@app.command()
def remove(
    tenant: Annotated[str, typer.Argument(help="Tenant slug.")],
    provider: Annotated[str, typer.Argument(help="Provider.")],
) -> None:
    """Delete one provider's credentials of one tenant."""
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
        integ.remove_integration(conn, t.id, provider, slug=tenant)
    out.print(f"Removed {provider} from {tenant}.")


@app.command("generate-key")
def generate_key_() -> None:
    """Print a fresh encryption key (for MCB_SECRET_KEY). Nothing is stored."""
    print(generate_key())


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored secret with a new key.

    With the key file ($MCB_HOME/secret.key) MCB makes the new key itself and keeps the old one readable
    until every value is re-encrypted. With MCB_SECRET_KEY, put the new key first
    (MCB_SECRET_KEY=new,old; `mcb integrations generate-key` makes one), run this, then drop the old key.
    """
    settings = get_settings()
    source = load_keys(settings)
    if source is None:
        with admin() as conn:
            stored = integ.count_integrations(conn)
        if stored:
            raise SecretKeyError(f"No secret key, but {stored} integration(s) are stored: set MCB_SECRET_KEY or "
                                 f"restore the key file {settings.key_file}.")
        raise UserError("No key to rotate: nothing has been encrypted yet.")
    if source.key_file is None:
        if len(source.keys) < 2:
            raise UserError("MCB_SECRET_KEY holds one key: put the new key first (MCB_SECRET_KEY=new,old; "
                            "`mcb integrations generate-key` makes one), then run rotate-key again.")
        with admin() as conn:
            n = integ.reencrypt_all(conn, SecretBox(source))
        out.print(f"Re-encrypted {n} integration(s) with the first key of MCB_SECRET_KEY; "
                  "you can now remove the old key(s) from it.")
        return
    new = generate_key().encode()
    write_key_file(source.key_file, [new, *source.keys])
    with admin() as conn:
        n = integ.reencrypt_all(conn, require_box(settings))
    write_key_file(source.key_file, [new])
    out.print(f"Re-encrypted {n} integration(s) with a new key; {source.key_file} now holds only the new key.")


@app.command("import-env")
def import_env(
    path: Annotated[Path, typer.Argument(help="A .env or .env.local file of the original application.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug to store the credentials for.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be stored; store nothing.")] = False,
) -> None:
    """Move the original's credentials from environment files into encrypted integrations."""
    parsed = integ.read_env_file(path)
    table = Table(title=f"{'Would store' if dry_run else 'Storing'} for {tenant} (masked)")
    for col in ("provider", "key", "from", "value"):
        table.add_column(col)
    for provider, values in sorted(parsed.values.items()):
        for key, value in sorted(values.items()):
            table.add_row(provider, key, parsed.sources[(provider, key)], Text(mask(value)))
    with admin() as conn:
        t = ten.get_tenant(conn, tenant)
        if parsed.values:
            out.print(table)
        else:
            out.print("No recognised variables.")
        if not dry_run and parsed.values:
            box = integ.box_for_writing(conn, get_settings())
            for provider, values in parsed.values.items():
                integ.set_integration(conn, box, t.id, provider, values, slug=tenant)
    if parsed.unrecognised:
        out.print(f"Not recognised (not stored): {', '.join(parsed.unrecognised)}")
    if parsed.empty:
        out.print(f"Empty (not stored): {', '.join(parsed.empty)}")
    out.print("Dry run: nothing was stored." if dry_run else
              f"[green]Stored {sum(len(v) for v in parsed.values.values())} value(s) for {tenant}.[/green]")
