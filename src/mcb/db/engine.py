"""Engines and URLs. One place turns settings into a connectable database."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from mcb.config import Settings, get_settings
from mcb.errors import DatabaseUnavailable, UserError


def database_url(settings: Settings | None = None) -> str:
    """The URL MCB connects to: DATABASE_URL, or the embedded server (started on demand)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    from mcb.db.embedded import start_embedded_server

    return start_embedded_server(settings.home_dir)


def sqlalchemy_url(url: str) -> str:
    """Force the psycopg 3 driver whatever scheme the operator wrote."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise UserError("DATABASE_URL must start with postgresql:// (MCB runs on PostgreSQL only).")


def libpq_url(url: str) -> str:
    """The same URL in the form libpq tools (pg_dump, psql) and psycopg understand."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def redact_url(url: str) -> str:
    """Host, port and database of a URL, without user or password: safe to print."""
    try:
        parsed = make_url(sqlalchemy_url(url))
    except (ArgumentError, UserError):
        return "<unparseable URL>"
    host = parsed.host or parsed.query.get("host") or "local socket"
    if isinstance(host, tuple):
        host = host[0]
    port = f":{parsed.port}" if parsed.port else ""
    return f"{host}{port}/{parsed.database or ''}"


def make_engine(url: str | None = None, *, admin: bool = True, **kwargs: object) -> Engine:
    """An engine on ``url``. ``admin``: its sessions are the owner's and may see every tenant's rows
    (``mcb.admin = on``, see ``mcb.db.session``); code that serves a tenant uses ``tenant_session``."""
    url = url or database_url()
    try:
        engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True, **kwargs)
    except ArgumentError as exc:
        raise UserError(f"DATABASE_URL is not a valid database URL ({exc.__class__.__name__}).") from exc
    if admin:
        event.listen(engine, "connect", _mark_admin)
    return engine


def _mark_admin(dbapi_connection: Any, connection_record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    dbapi_connection.execute("SET mcb.admin = 'on'")
    dbapi_connection.autocommit = autocommit


def runtime_engine(settings: Settings | None = None) -> Engine:
    """The engine for serving tenants: MCB_APP_DATABASE_URL (logging in as mcb_app) when set, else the
    owner's URL; either way every tenant transaction runs as mcb_app (see ``mcb.db.session``)."""
    settings = settings or get_settings()
    return make_engine(settings.app_database_url or database_url(settings), admin=False)


def connect_engine(url: str | None = None) -> Engine:
    """An engine whose database answered a ``SELECT 1``; otherwise one clear sentence."""
    url = url or database_url()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        raise DatabaseUnavailable(
            f"Cannot connect to the database at {redact_url(url)}: {describe_connect_error(exc)}."
        ) from exc
    return engine


def describe_connect_error(exc: OperationalError) -> str:
    """The first line of libpq's reason, without anything that could hold a password."""
    reason = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else "no answer"
    reason = reason.removeprefix("connection failed: ")
    reason = re.sub(r"^connection to server (at|on) .*? failed: ", "", reason)
    reason = re.sub(r"^(FATAL|ERROR):\s+", "", reason)
    if "password authentication failed" in reason:
        return "the user name or password was refused"
    if "Connection refused" in reason:
        return "nothing is listening there (connection refused)"
    if "does not exist" in reason and "database" in reason:
        return "that database does not exist"
    return reason.rstrip(".")
