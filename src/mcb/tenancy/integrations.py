"""Per-tenant integrations: which credentials each provider takes, stored encrypted, shown masked.

``credentials`` (a JSON object) and ``webhook_secret`` (what authenticates the provider's inbound
webhooks) are stored as Fernet tokens; ``options`` holds non-secret settings such as
``allow_unauthenticated``. Unknown providers and keys are refused with the list of valid ones.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, text

from mcb.config import Settings
from mcb.errors import UserError
from mcb.tenancy.secrets import SecretBox, SecretKeyError, mask, secret_box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    name: str
    keys: tuple[str, ...]
    webhook_secret: str  # what the webhook_secret holds for this provider
    token_header: str | None = None  # how a shared token is sent, for the instructions printed once


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("manychat", ("api_key", "bot_id", "verify_token", "page_id"),
                 "a shared token ManyChat sends with each request", "X-MCB-Token"),
        Provider("ghl", ("api_key", "location_id"),
                 "the public key(s) of GoHighLevel's signed webhooks (PEM) and/or a shared token for "
                 "workflow Custom Webhook actions", "X-MCB-Token"),
        Provider("stripe", ("secret_key", "publishable_key"), "the endpoint's signing secret (whsec_…)"),
        Provider("meta", ("access_token", "ad_account_id", "pixel_id", "capi_access_token", "test_event_code",
                          "api_version"), "unused (Meta is only called, it posts nothing)"),
        Provider("denefits", ("api_key",), "a shared token (Make.com sends it as a header or as secret_key)",
                 "X-MCB-Token"),
        Provider("perspective", ("api_key",), "a shared token Perspective sends with each request", "X-MCB-Token"),
    )
}

WEBHOOK_SECRET = "webhook_secret"


def provider(name: str) -> Provider:
    if name not in PROVIDERS:
        raise UserError(f"Unknown provider {name!r}; valid providers: {', '.join(PROVIDERS)}.")
    return PROVIDERS[name]


def check_keys(spec: Provider, keys: list[str]) -> None:
    unknown = [k for k in keys if k not in spec.keys and k != WEBHOOK_SECRET]
    if unknown:
        raise UserError(
            f"Unknown key(s) {', '.join(unknown)} for {spec.name}; valid keys: "
            f"{', '.join((*spec.keys, WEBHOOK_SECRET))}."
        )


@dataclass
class Integration:
    tenant_id: UUID
    provider: str
    credentials: dict[str, str]
    webhook_secret: str | None
    options: dict[str, Any] = field(default_factory=dict)
    is_active: bool = True

    def masked(self) -> dict[str, str]:
        shown = {k: mask(v) for k, v in sorted(self.credentials.items())}
        if self.webhook_secret:
            shown[WEBHOOK_SECRET] = mask(self.webhook_secret)
        return shown

    @property
    def allow_unauthenticated(self) -> bool:
        return bool(self.options.get("allow_unauthenticated"))


def _load_row(box: SecretBox, row: Any, slug: str) -> Integration:
    what = f"the {row.provider} credentials of tenant {slug}"
    credentials = box.decrypt(row.credentials, what=what) if row.credentials else {}
    secret = box.decrypt(row.webhook_secret, what=what) if row.webhook_secret else None
    return Integration(row.tenant_id, row.provider, credentials, secret, dict(row.options or {}), row.is_active)


def get_integration(conn: Connection, box: SecretBox, tenant_id: UUID, name: str, *, slug: str = "") -> Integration | None:
    row = conn.execute(
        text("SELECT tenant_id, provider, credentials, webhook_secret, options, is_active FROM tenant_integrations "
             "WHERE tenant_id = :t AND provider = :p"),
        {"t": tenant_id, "p": name},
    ).first()
    return _load_row(box, row, slug or str(tenant_id)) if row else None


def list_integrations(conn: Connection, box: SecretBox | None, tenant_id: UUID, *, slug: str = "") -> list[Integration]:
    rows = conn.execute(
        text("SELECT tenant_id, provider, credentials, webhook_secret, options, is_active FROM tenant_integrations "
             "WHERE tenant_id = :t ORDER BY provider"),
        {"t": tenant_id},
    ).all()
    if not rows:
        return []
    if box is None:
        raise UserError("Integrations are stored but no secret key is configured; set MCB_SECRET_KEY or restore "
                        "the key file.")
    return [_load_row(box, r, slug or str(tenant_id)) for r in rows]


def set_integration(
    conn: Connection,
    box: SecretBox,
    tenant_id: UUID,
    name: str,
    values: dict[str, str],
    *,
    allow_unauthenticated: bool | None = None,
    slug: str = "",
) -> Integration:
    """Merge ``values`` into the provider's credentials (an empty value removes a key)."""
    spec = provider(name)
    check_keys(spec, list(values))
    current = get_integration(conn, box, tenant_id, name, slug=slug)
    credentials = dict(current.credentials) if current else {}
    secret = current.webhook_secret if current else None
    options = dict(current.options) if current else {}
    for key, value in values.items():
        if key == WEBHOOK_SECRET:
            secret = value or None
        elif value:
            credentials[key] = value
        else:
            credentials.pop(key, None)
    if allow_unauthenticated is not None:
        options["allow_unauthenticated"] = allow_unauthenticated
    conn.execute(
        text(
            "INSERT INTO tenant_integrations (tenant_id, provider, credentials, webhook_secret, options) "
            "VALUES (:t, :p, :c, :s, CAST(:o AS jsonb)) ON CONFLICT (tenant_id, provider) DO UPDATE SET "
            "credentials = EXCLUDED.credentials, webhook_secret = EXCLUDED.webhook_secret, "
            "options = EXCLUDED.options, is_active = true"
        ),
        {
            "t": tenant_id,
            "p": name,
            "c": box.encrypt(credentials),
            "s": box.encrypt(secret) if secret else None,
            "o": json.dumps(options),
        },
    )
    log.info("integration %s stored for tenant %s (keys: %s)", name, slug or tenant_id,
             ", ".join(sorted({*credentials, *([WEBHOOK_SECRET] if secret else [])})))
    return Integration(tenant_id, name, credentials, secret, options)


def remove_integration(conn: Connection, tenant_id: UUID, name: str, *, slug: str = "") -> None:
    provider(name)
    deleted = conn.execute(
        text("DELETE FROM tenant_integrations WHERE tenant_id = :t AND provider = :p"), {"t": tenant_id, "p": name}
    ).rowcount
    if not deleted:
        raise UserError(f"Tenant {slug or tenant_id} has no {name} integration.")
    log.info("integration %s removed from tenant %s", name, slug or tenant_id)


def count_integrations(conn: Connection) -> int:
    return int(conn.execute(text("SELECT count(*) FROM tenant_integrations")).scalar() or 0)


def box_for_writing(conn: Connection, settings: Settings) -> SecretBox:
    """The box to encrypt new secrets with, refusing a key that cannot read what is already stored.

    A key file is created only while nothing is stored: a lost key file is never silently replaced (the
    old secrets would become unreadable, and restoring the old file would lose the new ones)."""
    stored = conn.execute(text(
        "SELECT i.provider, t.slug, i.credentials FROM tenant_integrations i JOIN tenants t ON t.id = i.tenant_id "
        "WHERE i.credentials IS NOT NULL LIMIT 1")).first()
    if stored is None:
        box = secret_box(settings, create=True)
        assert box is not None
        return box
    box = secret_box(settings)
    if box is None:
        raise SecretKeyError(f"No secret key, but integrations are stored: set MCB_SECRET_KEY or restore the key "
                             f"file {settings.key_file}.")
    box.decrypt(stored.credentials, what=f"the {stored.provider} credentials of tenant {stored.slug}")
    return box


def generate_webhook_token() -> str:
    """A strong shared token for a provider's webhooks (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def reencrypt_all(conn: Connection, box: SecretBox) -> int:
    """Re-encrypt every stored secret with the box's newest key; returns the number of rows."""
    rows = conn.execute(text(
        "SELECT i.id, i.credentials, i.webhook_secret, i.provider, t.slug FROM tenant_integrations i "
        "JOIN tenants t ON t.id = i.tenant_id ORDER BY t.slug, i.provider FOR UPDATE OF i"
    )).all()
    for row in rows:
        what = f"the {row.provider} credentials of tenant {row.slug}"
        conn.execute(
            text("UPDATE tenant_integrations SET credentials = :c, webhook_secret = :s WHERE id = :id"),
            {
                "id": row.id,
                "c": box.rotate(row.credentials, what=what) if row.credentials else None,
                "s": box.rotate(row.webhook_secret, what=what) if row.webhook_secret else None,
            },
        )
    return len(rows)


# ------------------------------------------------------------------------------------- .env import

# The original application's variable names (spec 2.4, 4.1) and where each goes.
ENV_MAP: dict[str, tuple[str, str]] = {
    "STRIPE_SECRET_KEY": ("stripe", "secret_key"),
    "STRIPE_PUBLISHABLE_KEY": ("stripe", "publishable_key"),
    "NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY": ("stripe", "publishable_key"),
    "STRIPE_WEBHOOK_SECRET": ("stripe", WEBHOOK_SECRET),
    "MANYCHAT_API_KEY": ("manychat", "api_key"),
    "MANYCHAT_BOT_ID": ("manychat", "bot_id"),
    "MANYCHAT_PAGE_ID": ("manychat", "page_id"),
    "MANYCHAT_VERIFY_TOKEN": ("manychat", "verify_token"),
    "GHL_API_KEY": ("ghl", "api_key"),
    "GHL_LOCATION_ID": ("ghl", "location_id"),
    "META_ACCESS_TOKEN": ("meta", "access_token"),
    "META_AD_ACCOUNT_ID": ("meta", "ad_account_id"),
    "META_API_VERSION": ("meta", "api_version"),
    "META_PIXEL_ID": ("meta", "pixel_id"),
    "META_CAPI_ACCESS_TOKEN": ("meta", "capi_access_token"),
    "META_TEST_EVENT_CODE": ("meta", "test_event_code"),
    "DENEFITS_API_KEY": ("denefits", "api_key"),
    "DENEFITS_WEBHOOK_SECRET": ("denefits", WEBHOOK_SECRET),
    "MAKE_WEBHOOK_SECRET": ("denefits", WEBHOOK_SECRET),
    "PERSPECTIVE_API_KEY": ("perspective", "api_key"),
    "PERSPECTIVE_WEBHOOK_SECRET": ("perspective", WEBHOOK_SECRET),
}


@dataclass
class EnvImport:
    values: dict[str, dict[str, str]]  # provider -> key -> value
    sources: dict[tuple[str, str], str]  # (provider, key) -> variable name
    unrecognised: list[str]
    empty: list[str]


def read_env_file(path: Path) -> EnvImport:
    """Parse a .env file with python-dotenv's parser; malformed lines are an error naming their numbers."""
    from dotenv.parser import parse_stream

    try:
        content = path.read_text()
    except FileNotFoundError:
        raise UserError(f"No file at {path}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Cannot read {path}: {exc.__class__.__name__}.") from None
    bindings = list(parse_stream(io.StringIO(content)))
    bad = [str(b.original.line) for b in bindings if b.error]
    if bad:
        raise UserError(f"{path} has malformed line(s) {', '.join(bad)}: expected NAME=value; nothing was stored.")
    values: dict[str, dict[str, str]] = {}
    sources: dict[tuple[str, str], str] = {}
    unrecognised: list[str] = []
    empty: list[str] = []
    for binding in bindings:
        if binding.key is None:
            continue
        target = ENV_MAP.get(binding.key)
        if target is None:
            unrecognised.append(binding.key)
            continue
        if not binding.value:
            empty.append(binding.key)
            continue
        name, key = target
        values.setdefault(name, {})[key] = binding.value
        sources[(name, key)] = binding.key
    return EnvImport(values, sources, sorted(set(unrecognised)), empty)
