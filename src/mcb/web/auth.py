"""Dashboard login: an API token typed into a form becomes a signed, HttpOnly, SameSite=Strict cookie.

The cookie never holds the token. It holds the token's id and the first characters of its stored hash,
signed with the session key (itsdangerous) and dated; every request checks the signature, the age
(``MCB_SESSION_HOURS``) and that the token is still active, so revoking a token (`mcb tokens revoke`)
ends its sessions at once. Programs may skip the form and send ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import secrets
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine

from mcb.config import Settings
from mcb.db.session import app_session
from mcb.tenancy import tokens as tok
from mcb.tenancy.secrets import write_key_file

COOKIE = "mcb_session"
SALT = "mcb-dashboard-session"
HASH_PREFIX = 16


def session_key(settings: Settings) -> str:
    """``MCB_SESSION_KEY``, else the key file under MCB_HOME (created once, mode 0600)."""
    if settings.session_key:
        return settings.session_key
    path = settings.session_key_file
    if not path.exists():
        write_key_file(path, [secrets.token_urlsafe(48).encode()])
    return path.read_text().strip()


class Sessions:
    """Issues and reads session cookies for one app."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self._signer = URLSafeTimedSerializer(session_key(settings), salt=SALT)
        self._engine = engine
        self.max_age = settings.session_hours * 3600
        self.secure = settings.public_url.startswith("https://")

    def login(self, token: str) -> tuple[str, tok.ApiToken] | None:
        """(cookie value, token record) for a valid token typed into the form, else None."""
        with app_session(self._engine) as conn:
            record = tok.authenticate(conn, token.strip())
        if record is None:
            return None
        value = self._signer.dumps({"id": str(record.id), "h": tok.hash_token(token.strip())[:HASH_PREFIX]})
        return value, record

    def from_cookie(self, value: str | None) -> tok.ApiToken | None:
        if not value:
            return None
        try:
            data = self._signer.loads(value, max_age=self.max_age)
            token_id = UUID(str(data["id"]))
            prefix = str(data["h"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        with app_session(self._engine) as conn:
            return tok.active_token(conn, token_id, prefix)

    def from_bearer(self, header: str | None) -> tok.ApiToken | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        with app_session(self._engine) as conn:
            return tok.authenticate(conn, header[7:].strip())
