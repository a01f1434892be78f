"""Tenants: onboarding, changes, lookup. Plain functions over a connection; the CLI only dispatches.

Lookups give the same error for "no such tenant" and "not visible to you", so nothing leaks.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, text

from mcb.errors import UserError

log = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
SOURCES: tuple[str, ...] = ("manychat", "ghl", "stripe", "denefits", "perspective")


class UnknownTenant(UserError):
    pass


@dataclass
class Tenant:
    id: UUID
    slug: str
    name: str
    owner_name: str | None
    report_email: str | None
    is_active: bool
    is_default: bool
    config: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def timezone(self) -> str:
        return str(self.config.get("timezone") or "UTC")

    @property
    def report_recipients(self) -> list[str]:
        listed = [str(a) for a in self.config.get("report_recipients") or []]
        if listed:
            return listed
        return [self.report_email] if self.report_email else []

    def webhook_urls(self, public_url: str) -> dict[str, str]:
        base = public_url.rstrip("/")
        return {source: f"{base}/webhooks/{self.slug}/{source}" for source in SOURCES}


_COLUMNS = "id, slug, name, owner_name, report_email, is_active, is_default, config, created_at"


def _row(row: Any) -> Tenant:
    return Tenant(*row)


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise UserError(
            f"{slug!r} is not a valid tenant slug: use 2 to 63 lower-case letters, digits and hyphens, "
            "starting with a letter or digit."
        )
    return slug


def validate_timezone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"{zone!r} is not an IANA time zone (for example America/New_York or Europe/Berlin).") from None
    return zone


def validate_email_address(address: str) -> str:
    try:
        return str(validate_email(address, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise UserError(f"{address!r} is not a valid e-mail address: {exc}") from None


def list_tenants(conn: Connection, *, include_inactive: bool = True) -> list[Tenant]:
    where = "" if include_inactive else "WHERE is_active"
    return [_row(r) for r in conn.execute(text(f"SELECT {_COLUMNS} FROM tenants {where} ORDER BY slug"))]


def get_tenant(conn: Connection, slug: str, *, active_only: bool = False) -> Tenant:
    row = conn.execute(text(f"SELECT {_COLUMNS} FROM tenants WHERE slug = :s"), {"s": slug}).first()
    if row is None or (active_only and not row.is_active):
        raise UnknownTenant(f"No tenant {slug!r}; `mcb tenants list` shows the tenants.")
    return _row(row)


def add_tenant(
    conn: Connection,
    slug: str,
    *,
    name: str,
    owner_name: str | None = None,
    timezone: str = "UTC",
    report_email: str | None = None,
    report_recipients: list[str] | None = None,
    historical_filter: bool = True,
) -> Tenant:
    validate_slug(slug)
    if not name.strip():
        raise UserError("A tenant needs a name (--name).")
    config: dict[str, Any] = {
        "timezone": validate_timezone(timezone),
        "historical_filter": historical_filter,
    }
    if report_recipients:
        config["report_recipients"] = [validate_email_address(a) for a in report_recipients]
    email = validate_email_address(report_email) if report_email else None
    exists = conn.execute(text("SELECT 1 FROM tenants WHERE slug = :s"), {"s": slug}).first()
    if exists:
        raise UserError(f"A tenant {slug!r} already exists; use `mcb tenants update {slug}` to change it.")
    row = conn.execute(
        text(
            f"INSERT INTO tenants (slug, name, owner_name, report_email, config) "
            f"VALUES (:slug, :name, :owner, :email, CAST(:config AS jsonb)) RETURNING {_COLUMNS}"
        ),
        {"slug": slug, "name": name.strip(), "owner": owner_name, "email": email, "config": json.dumps(config)},
    ).one()
    log.info("tenant %s added", slug)
    return _row(row)


def update_tenant(
    conn: Connection,
    slug: str,
    *,
    name: str | None = None,
    owner_name: str | None = None,
    timezone: str | None = None,
    report_email: str | None = None,
    report_recipients: list[str] | None = None,
    historical_filter: bool | None = None,
    active: bool | None = None,
) -> Tenant:
    tenant = get_tenant(conn, slug)
    config = dict(tenant.config)
    if timezone is not None:
        config["timezone"] = validate_timezone(timezone)
    if report_recipients is not None:
        config["report_recipients"] = [validate_email_address(a) for a in report_recipients]
    if historical_filter is not None:
        config["historical_filter"] = historical_filter
    if active is False and tenant.is_default:
        raise UserError(f"{slug} is the default tenant (it owns the original's data); it cannot be disabled.")
    row = conn.execute(
        text(
            f"UPDATE tenants SET name = :name, owner_name = :owner, report_email = :email, "
            f"config = CAST(:config AS jsonb), is_active = :active WHERE id = :id RETURNING {_COLUMNS}"
        ),
        {
            "id": tenant.id,
            "name": name.strip() if name else tenant.name,
            "owner": owner_name if owner_name is not None else tenant.owner_name,
            "email": validate_email_address(report_email) if report_email else tenant.report_email,
            "config": json.dumps(config),
            "active": tenant.is_active if active is None else active,
        },
    ).one()
    log.info("tenant %s updated", slug)
    return _row(row)


def set_config_entry(conn: Connection, slug: str, key: str, value: Any) -> Tenant:
    """Set (or, with ``None``, remove) one entry of ``tenants.config``; the caller validated the value."""
    tenant = get_tenant(conn, slug)
    config = dict(tenant.config)
    if value is None:
        config.pop(key, None)
    else:
        config[key] = value
    row = conn.execute(
        text(f"UPDATE tenants SET config = CAST(:config AS jsonb) WHERE id = :id RETURNING {_COLUMNS}"),
        {"id": tenant.id, "config": json.dumps(config)},
    ).one()
    log.info("tenant %s: config %s %s", slug, key, "removed" if value is None else "set")
    return _row(row)


def disable_tenant(conn: Connection, slug: str) -> Tenant:
    """Stop accepting webhooks and serving reports for a tenant; its data stays."""
    return update_tenant(conn, slug, active=False)


@dataclass
class WebhookActivity:
    source: str
    status: str
    count: int
    last_at: datetime | None


def recent_webhook_activity(conn: Connection, tenant_id: UUID, days: int = 7) -> list[WebhookActivity]:
    rows = conn.execute(
        text(
            "SELECT source, coalesce(status, 'received'), count(*), max(created_at) FROM webhook_logs "
            "WHERE tenant_id = :t AND created_at >= now() - make_interval(days => :d) "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"t": tenant_id, "d": days},
    )
    return [WebhookActivity(*r) for r in rows]
