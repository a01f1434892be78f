"""Tenant-scoped and admin sessions: the only two ways MCB code talks to tenant data.

``tenant_session(engine, tenant_id)`` opens a transaction, switches to the runtime role ``mcb_app``
(``SET LOCAL ROLE``: it owns nothing and cannot bypass Row Level Security) and sets ``app.tenant_id`` for
that transaction only. Every tenant table's policy compares its ``tenant_id`` with that setting, so a
query that forgets its WHERE still sees only this tenant, and a write for another tenant fails.

In production the runtime connects as ``mcb_app`` itself (``MCB_APP_DATABASE_URL``): then it cannot
switch to any other role. Connected as the owner, ``SET ROLE`` is a convenience for a single-user machine
(the embedded default), not a security boundary, since the session user could switch back.

``admin_session(engine)`` is for migrations and explicit admin commands: it stays the connecting
(owner) role and says ``mcb.admin = on``, which the owner's policy requires before it sees all tenants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from sqlalchemy import Connection, Engine, text

APP_ROLE = "mcb_app"
_ENTER = f"SELECT set_config('role', '{APP_ROLE}', true), set_config('app.tenant_id', :t, true)"
_DURABLE = text(_ENTER)
_NOT_DURABLE = text(_ENTER + ", set_config('synchronous_commit', 'off', true)")
# What tenant_transaction runs first (durable, or not): for callers that open the transaction themselves.
DURABLE_ENTER = _DURABLE
NOT_DURABLE_ENTER = _NOT_DURABLE


@contextmanager
def tenant_session(engine: Engine, tenant_id: UUID | str, *, durable: bool = True) -> Iterator[Connection]:
    """A transaction in which only ``tenant_id``'s rows exist. Commits on success, rolls back on error.
    ``durable=False``: see ``tenant_transaction``."""
    with engine.connect() as conn, tenant_transaction(conn, tenant_id, durable=durable):
        yield conn


@contextmanager
def tenant_transaction(conn: Connection, tenant_id: UUID | str, *, durable: bool = True) -> Iterator[Connection]:
    """``tenant_session`` on a connection the caller holds (the worker keeps one for a batch of rows).

    ``durable=False`` commits without waiting for the WAL flush (``synchronous_commit = off``), for work
    that is derived from rows already committed durably and is redone if lost: the worker's processing of
    an inbox row, whose status is written in the same transaction, so a commit lost in a crash leaves the
    row to be claimed and processed again (idempotently). Never for accepting data.
    """
    with conn.begin():
        # One round trip: set_config('role', …, true) is SET LOCAL ROLE.
        # Durable transactions keep the server's synchronous_commit (which may be stricter than on).
        conn.execute(_DURABLE if durable else _NOT_DURABLE, {"t": str(UUID(str(tenant_id)))})
        yield conn


@contextmanager
def app_session(engine: Engine) -> Iterator[Connection]:
    """A transaction as the runtime role with no tenant: sees tenants and token hashes, no tenant rows."""
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        yield conn


@contextmanager
def admin_session(engine: Engine) -> Iterator[Connection]:
    """A transaction as the owner that sees every tenant (for migrations and admin commands)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('mcb.admin', 'on', true)"))
        yield conn
