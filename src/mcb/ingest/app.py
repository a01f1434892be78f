"""The HTTP side: resolve the tenant, authenticate, store, answer. No business logic in the routes.

``POST /webhooks/{tenant}/{source}`` and the original's URLs (R-29): ``/api/webhooks/{tenant}/{source}``
and the legacy single-tenant ones (``/api/manychat``, ``/api/ghl-webhook``, ``/api/stripe-webhook``,
``/api/denefits-webhook``, ``/api/perspective-webhook``), which belong to the default tenant.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from mcb.config import Settings
from mcb.db.engine import libpq_url
from mcb.db.session import app_session, tenant_session
from mcb.ingest.auth import Rejected, authenticate
from mcb.ingest.inbox import InboxRow, InboxUnavailable, InboxWriter
from mcb.ingest.worker import inbox_lag
from mcb.tenancy.integrations import Integration, get_integration
from mcb.tenancy.secrets import SecretBox, secret_box
from mcb.tenancy.tenants import SOURCES

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
CACHE_SECONDS = 10.0
LEGACY_ROUTES = {
    "/api/manychat": "manychat",
    "/api/ghl-webhook": "ghl",
    "/api/stripe-webhook": "stripe",
    "/api/denefits-webhook": "denefits",
    "/api/perspective-webhook": "perspective",
}
# Headers worth keeping with the stored request (never the shared token).
KEPT_HEADERS = ("content-type", "user-agent", "stripe-signature", "x-ghl-signature", "x-wh-signature",
                "x-forwarded-for", "x-request-id")
def accepted_events(source: str) -> list[str]:
    """What the provider module says it handles (its ACCEPTED_EVENTS), for the GET health document."""
    module = __import__(f"mcb.ingest.sources.{source}", fromlist=["ACCEPTED_EVENTS"])
    return list(getattr(module, "ACCEPTED_EVENTS", ()))


@dataclass
class TenantRef:
    id: UUID
    slug: str
    name: str


class _Cache:
    def __init__(self) -> None:
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        item = self._items.get(key)
        if item and time.monotonic() - item[0] < CACHE_SECONDS:
            return item[1]
        return None

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = (time.monotonic(), value)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(settings: Settings, admin_engine: Engine, app_engine: Engine, url: str) -> FastAPI:
    tenants = _Cache()
    integrations = _Cache()
    writer = InboxWriter(libpq_url(settings.app_database_url or url))
    box_holder: dict[str, SecretBox | None] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        yield
        await writer.stop()

    app = FastAPI(title="MCB", version="0.1.0", lifespan=lifespan)
    app.state.writer = writer

    def lookup_tenant(slug: str) -> TenantRef | None:
        cached = tenants.get(slug)
        if cached is not None:
            return cached if cached != "missing" else None
        with app_session(app_engine) as conn:
            row = conn.execute(text("SELECT id, slug, name FROM tenants WHERE slug = :s AND is_active"),
                               {"s": slug}).first()
        tenants.put(slug, TenantRef(*row) if row else "missing")
        return TenantRef(*row) if row else None

    def default_tenant() -> TenantRef | None:
        with app_session(app_engine) as conn:
            row = conn.execute(text("SELECT slug FROM tenants WHERE is_default AND is_active")).first()
        return lookup_tenant(row[0]) if row else None

    def load_integration(tenant: TenantRef, source: str) -> Integration | None:
        key = (tenant.id, source)
        cached = integrations.get(key)
        if cached is not None:
            return cached if cached != "missing" else None
        if "box" not in box_holder:
            box_holder["box"] = secret_box(settings)
        box = box_holder["box"]
        found = None
        if box is not None:
            with tenant_session(app_engine, tenant.id) as conn:
                found = get_integration(conn, box, tenant.id, source, slug=tenant.slug)
        integrations.put(key, found if found is not None else "missing")
        return found

    def record_rejection(tenant: TenantRef, source: str, reason: str, remote: str | None) -> None:
        with tenant_session(app_engine, tenant.id) as conn:
            conn.execute(text("INSERT INTO webhook_rejections (tenant_id, source, reason, remote_addr) "
                              "VALUES (:t, :s, :r, :a)"), {"t": tenant.id, "s": source, "r": reason, "a": remote})

    async def receive(request: Request, slug: str | None, source: str) -> JSONResponse:
        if source not in SOURCES:
            return _error(404, f"Unknown source {source!r}; sources: {', '.join(SOURCES)}.")
        tenant = await run_in_threadpool(lookup_tenant, slug) if slug else await run_in_threadpool(default_tenant)
        if tenant is None:
            return _error(404, "Unknown tenant")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return _error(413, "Body larger than 1 MiB.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, "Body larger than 1 MiB.")
        integration = await run_in_threadpool(load_integration, tenant, source)
        remote = request.client.host if request.client else None
        try:
            how = authenticate(source, integration, bytes(body), request.headers, request.query_params.get("token"))
        except Rejected as exc:
            log.info("rejected %s webhook for %s: %s", source, tenant.slug, exc)
            try:
                await run_in_threadpool(record_rejection, tenant, source, str(exc), remote)
            except Exception:  # recording the rejection must not turn a 401 into a 500
                log.warning("could not record a rejection for %s", tenant.slug)
            return _error(401, "Authentication failed.")
        payload = _read_body(bytes(body), request.headers.get("content-type", ""))
        if payload is None:
            return _error(400, "The body is not JSON (or form data).")
        if source == "denefits":
            payload = _without_secret(payload)
        headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS}
        headers["x-mcb-auth"] = how
        row = InboxRow(tenant.id, source, _event_type(payload), payload, headers)
        try:
            row_id = await writer.store(row)
        except InboxUnavailable:
            return _error(503, "Could not store the webhook; retry.")
        return JSONResponse({"received": True, "id": row_id})

    async def describe(slug: str, source: str) -> JSONResponse:
        if source not in SOURCES:
            return _error(404, f"Unknown source {source!r}; sources: {', '.join(SOURCES)}.")
        tenant = await run_in_threadpool(lookup_tenant, slug)
        if tenant is None:
            return _error(404, "Unknown tenant")
        return JSONResponse({"status": "ok", "tenant": tenant.slug, "name": tenant.name, "source": source,
                             "accepted_event_types": accepted_events(source)})

    @app.post("/webhooks/{slug}/{source}")
    async def webhook(slug: str, source: str, request: Request) -> JSONResponse:
        return await receive(request, slug, source)

    @app.post("/api/webhooks/{slug}/{source}")
    async def webhook_original_path(slug: str, source: str, request: Request) -> JSONResponse:
        return await receive(request, slug, source)

    @app.get("/webhooks/{slug}/{source}")
    async def webhook_health(slug: str, source: str) -> JSONResponse:
        return await describe(slug, source)

    @app.get("/api/webhooks/{slug}/{source}")
    async def webhook_health_original_path(slug: str, source: str) -> JSONResponse:
        return await describe(slug, source)

    for path, legacy_source in LEGACY_ROUTES.items():
        def make(src: str) -> Any:
            async def legacy(request: Request) -> JSONResponse:
                return await receive(request, None, src)
            return legacy
        app.add_api_route(path, make(legacy_source), methods=["POST"], include_in_schema=True,
                          name=f"legacy_{legacy_source}")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            lag = await run_in_threadpool(inbox_lag, admin_engine)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok", "inbox": lag})

    return app


def _read_body(body: bytes, content_type: str) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        pass
    if "application/x-www-form-urlencoded" in content_type:
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _without_secret(payload: Any) -> Any:
    """Denefits/Make send their shared secret inside the payload: it authenticates, it is never stored
    (at any depth)."""
    if isinstance(payload, list):
        return [_without_secret(p) for p in payload]
    if isinstance(payload, dict):
        return {k: _without_secret(v) for k, v in payload.items() if k != "secret_key"}
    return payload


def _event_type(payload: Any) -> str | None:
    first = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(first, dict):
        return None
    for key in ("webhook_type", "event_type", "type"):
        value = first.get(key)
        if isinstance(value, str):
            return value[:100]
    custom = first.get("customData")
    if isinstance(custom, dict) and isinstance(custom.get("event_type"), str):
        return str(custom["event_type"])[:100]
    return None
