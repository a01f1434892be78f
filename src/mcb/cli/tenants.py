"""``mcb tenants``: list, show, add, update, disable."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mcb.cli.common import admin, out, print_json
from mcb.cli.meta import runs_table
from mcb.config import get_settings
from mcb.meta.sync import recent_runs, token_warning
from mcb.tenancy import integrations as integ
from mcb.tenancy import tenants as ten
from mcb.tenancy.secrets import secret_box

app = typer.Typer(help="Onboard and manage tenants (client businesses).", no_args_is_help=True)

Recipients = Annotated[
    list[str] | None,
    typer.Option("--report-recipient", help="A report recipient (repeat the option for several)."),
]


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """All tenants, active or not."""
    with admin() as conn:
        tenants = ten.list_tenants(conn)
    if as_json:
        print_json([{"slug": t.slug, "name": t.name, "id": t.id, "active": t.is_active, "default": t.is_default,
                     "timezone": t.timezone} for t in tenants])
        return
    table = Table(title="Tenants")
    for col in ("slug", "name", "owner", "time zone", "active", "default"):
        table.add_column(col)
    for t in tenants:
        table.add_row(*(Text(v) for v in (t.slug, t.name, t.owner_name or "", t.timezone,
                                         "yes" if t.is_active else "no", "yes" if t.is_default else "")))
    out.print(table)


@app.command()
def show(
    slug: Annotated[str, typer.Argument(help="The tenant's slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A tenant's settings, webhook URLs, integrations (masked), warnings, recent webhooks and Meta syncs."""
    settings = get_settings()
    with admin() as conn:
        tenant = ten.get_tenant(conn, slug)
        configured = integ.list_integrations(conn, secret_box(settings), tenant.id, slug=slug)
        activity = ten.recent_webhook_activity(conn, tenant.id)
        meta_runs = recent_runs(conn, tenant.id, limit=5)
    urls = tenant.webhook_urls(settings.public_url)
    warnings = _warnings(tenant, configured)
    token_problem = token_warning(tenant.slug, meta_runs)
    if token_problem:
        warnings.append(token_problem)
    if as_json:
        print_json({
            "slug": tenant.slug, "id": tenant.id, "name": tenant.name, "owner_name": tenant.owner_name,
            "active": tenant.is_active, "default": tenant.is_default, "timezone": tenant.timezone,
            "report_recipients": tenant.report_recipients, "config": tenant.config, "webhook_urls": urls,
            "integrations": {i.provider: {"keys": i.masked(), "options": i.options} for i in configured},
            "warnings": warnings,
            "webhook_activity_7d": [a.__dict__ for a in activity],
            "meta_sync_runs": [r.__dict__ for r in meta_runs],
        })
        return
    out.print(f"[bold]{escape(tenant.name)}[/bold] ({tenant.slug}) id {tenant.id}")
    out.print(f"  owner: {tenant.owner_name or '-'}   time zone: {tenant.timezone}   "
              f"active: {'yes' if tenant.is_active else 'no'}{'   default tenant' if tenant.is_default else ''}",
              markup=False)
    out.print(f"  report recipients: {', '.join(tenant.report_recipients) or '-'}", markup=False)
    urls_table = Table(title="Webhook URLs")
    urls_table.add_column("source")
    urls_table.add_column("URL")
    for source, url in urls.items():
        urls_table.add_row(source, url)
    out.print(urls_table)
    integ_table = Table(title="Integrations (masked)")
    for col in ("provider", "keys", "options"):
        integ_table.add_column(col)
    for i in configured:
        integ_table.add_row(i.provider, Text(", ".join(f"{k}={v}" for k, v in i.masked().items()) or "-"),
                            Text(", ".join(f"{k}={v}" for k, v in i.options.items()) or ""))
    out.print(integ_table if configured else "No integrations configured.")
    for warning in warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if activity:
        act = Table(title="Webhooks in the last 7 days")
        for col in ("source", "status", "count", "last"):
            act.add_column(col)
        for a in activity:
            act.add_row(*(Text(v) for v in (a.source, a.status, str(a.count),
                                            a.last_at.strftime("%Y-%m-%d %H:%M") if a.last_at else "")))
        out.print(act)
    else:
        out.print("No webhooks in the last 7 days.")
    if meta_runs:
        out.print(runs_table(meta_runs, title="Recent Meta syncs"))
    elif "meta" in {i.provider for i in configured}:
        out.print("No Meta sync has run yet (`mcb meta sync --tenant " + tenant.slug + "`).", markup=False)


def _warnings(tenant: ten.Tenant, configured: list[integ.Integration]) -> list[str]:
    found = []
    by_provider = {i.provider: i for i in configured}
    for source in ten.SOURCES:
        i = by_provider.get(source)
        if i is not None and i.allow_unauthenticated:
            found.append(f"{source} webhooks are accepted WITHOUT authentication (allow_unauthenticated)")
        elif i is None or not i.webhook_secret:
            found.append(f"{source} webhooks will be rejected: no webhook secret is configured")
    if not tenant.is_active:
        found.append("the tenant is disabled: its webhooks are refused")
    return found


@app.command()
def add(
    slug: Annotated[str, typer.Argument(help="Routing key used in URLs: lower-case letters, digits, hyphens.")],
    name: Annotated[str, typer.Option("--name", help="The business's name.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Owner's name (used in report greetings).")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone for report windows.")] = "UTC",
    report_email: Annotated[str | None, typer.Option("--report-email", help="Fallback report recipient.")] = None,
    report_recipient: Recipients = None,
) -> None:
    """Onboard a new client in one command; prints its webhook URLs."""
    with admin() as conn:
        tenant = ten.add_tenant(conn, slug, name=name, owner_name=owner, timezone=timezone,
                                report_email=report_email, report_recipients=report_recipient)
    out.print(f"[green]Added tenant {tenant.slug}[/green] ({tenant.id}).")
    for source, url in tenant.webhook_urls(get_settings().public_url).items():
        out.print(f"  {source:<12} {url}")
    out.print(f"Next: `mcb integrations set {slug} PROVIDER --generate-token` for each platform.")


@app.command()
def update(
    slug: Annotated[str, typer.Argument(help="The tenant's slug.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="IANA time zone.")] = None,
    report_email: Annotated[str | None, typer.Option("--report-email")] = None,
    report_recipient: Recipients = None,
    historical_filter: Annotated[bool | None, typer.Option(
        "--historical-filter/--no-historical-filter", help="Exclude imported historical contacts from reports.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Enable or disable the tenant.")] = None,
) -> None:
    """Change a tenant's settings."""
    with admin() as conn:
        tenant = ten.update_tenant(conn, slug, name=name, owner_name=owner, timezone=timezone,
                                   report_email=report_email, report_recipients=report_recipient,
                                   historical_filter=historical_filter, active=active)
    out.print(f"[green]Updated tenant {tenant.slug}[/green].")


@app.command()
def disable(slug: Annotated[str, typer.Argument(help="The tenant's slug.")]) -> None:
    """Stop accepting the tenant's webhooks and serving its reports; its data stays."""
    with admin() as conn:
        ten.disable_tenant(conn, slug)
    out.print(f"Tenant {slug} disabled (re-enable with `mcb tenants update {slug} --active`).")
