"""API tokens for the HTTP API and the dashboard: shown once, stored as a SHA-256 hash.

A tenant token reaches only its own tenant; an admin token (no tenant) reaches every tenant. Tokens are
256-bit random strings, so a plain SHA-256 is the right hash (no password-style stretching needed), and
the lookup is a unique-index probe on the hash.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, text

from mcb.errors import UserError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "mcb_"


@dataclass
class ApiToken:
    id: UUID
    tenant_id: UUID | None
    tenant_slug: str | None
    name: str
    token_prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_SELECT = (
    "SELECT k.id, k.tenant_id, t.slug, k.name, k.token_prefix, k.created_at, k.last_used_at, k.revoked_at "
    "FROM api_tokens k LEFT JOIN tenants t ON t.id = k.tenant_id"
)
# A token that can be used: not revoked, and (a tenant token) its tenant not disabled.
_USABLE = "k.revoked_at IS NULL AND (k.tenant_id IS NULL OR t.is_active)"


def create_token(conn: Connection, tenant_id: UUID | None, name: str) -> tuple[str, ApiToken]:
    """A new token: (the token itself, to show once; its stored record)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        text(
            "INSERT INTO api_tokens (tenant_id, name, token_prefix, token_hash) VALUES (:t, :n, :p, :h) "
            "RETURNING id"
        ),
        {"t": tenant_id, "n": name, "p": token[: len(TOKEN_PREFIX) + 6], "h": hash_token(token)},
    ).one()
    record = conn.execute(text(f"{_SELECT} WHERE k.id = :id"), {"id": row.id}).one()
    log.info("api token %s created (%s)", record.token_prefix, "admin" if tenant_id is None else record.slug)
    return token, ApiToken(*record)


def list_tokens(conn: Connection, tenant_id: UUID | None = None, *, include_revoked: bool = False) -> list[ApiToken]:
    clauses = []
    params: dict[str, object] = {}
    if tenant_id is not None:
        clauses.append("k.tenant_id = :t")
        params["t"] = tenant_id
    if not include_revoked:
        clauses.append("k.revoked_at IS NULL")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return [ApiToken(*r) for r in conn.execute(text(f"{_SELECT}{where} ORDER BY k.created_at"), params)]


def revoke_token(conn: Connection, ref: str) -> ApiToken:
    """Revoke by id or by the prefix shown in ``mcb tokens list``."""
    try:
        key: dict[str, object] = {"id": UUID(ref)}
        where = "k.id = :id"
    except ValueError:
        key = {"p": ref}
        where = "k.token_prefix = :p"
    rows = conn.execute(text(f"{_SELECT} WHERE {where} AND k.revoked_at IS NULL"), key).all()
    if not rows:
        raise UserError(f"No active token {ref!r}; `mcb tokens list` shows them.")
    if len(rows) > 1:
        raise UserError(f"{ref!r} matches {len(rows)} tokens; revoke by id instead.")
    conn.execute(text("UPDATE api_tokens SET revoked_at = now() WHERE id = :id"), {"id": rows[0].id})
    log.info("api token %s revoked", rows[0].token_prefix)
    return ApiToken(*rows[0])


def authenticate(conn: Connection, token: str) -> ApiToken | None:
    """The active token with this value, or None (never says which part was wrong).

    A tenant token stops working while its tenant is deactivated (and works again when it is reactivated).
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(
        text(f"{_SELECT} WHERE k.token_hash = :h AND {_USABLE}"),
        {"h": hash_token(token)},
    ).first()
    if row is None:
        return None
    conn.execute(text("UPDATE api_tokens SET last_used_at = now() WHERE id = :id"), {"id": row.id})
    return ApiToken(*row)


def active_token(conn: Connection, token_id: UUID, token_hash_prefix: str) -> ApiToken | None:
    """The active token with this id whose hash starts with ``token_hash_prefix`` (a dashboard session
    names its token this way, never by the token itself), or None once it is revoked or its tenant is
    deactivated."""
    row = conn.execute(
        text(f"{_SELECT} WHERE k.id = :id AND left(k.token_hash, :n) = :p AND {_USABLE}"),
        {"id": token_id, "n": len(token_hash_prefix), "p": token_hash_prefix},
    ).first()
    return ApiToken(*row) if row is not None and token_hash_prefix else None


def can_access(token: ApiToken, tenant_id: UUID) -> bool:
    return token.is_admin or token.tenant_id == tenant_id
