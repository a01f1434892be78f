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
from typing import Any, cast
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from mcb.config import Settings
from mcb.db.engine import libpq_url
from mcb.db.session import app_session, tenant_session
from mcb.ingest.auth import Rejected, authenticate
from mcb.ingest.inbox import InboxRefused, InboxRow, InboxUnavailable, InboxWriter
from mcb.ingest.worker import inbox_lag
from mcb.tenancy.integrations import Integration, get_integration
from mcb.tenancy.secrets import SecretBox, secret_box
from mcb.tenancy.tenants import SOURCES

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
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


DEFAULT_TENANT = ("default tenant",)  # the cache key of the legacy URLs' tenant (no slug is a tuple)


class _Cache:
    """Recent answers of the database, kept ``seconds``: a cached "not found" is an answer too (None).
    Read on the event loop without any I/O, so a hit costs no thread-pool hop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._items: dict[Any, tuple[float, Any]] = {}

    def lookup(self, key: Any) -> tuple[bool, Any]:
        """(True, value) while the entry is fresh, else (False, None)."""
        item = self._items.get(key)
        if item is not None and time.monotonic() - item[0] < self.seconds:
            return True, item[1]
        return False, None

    def put(self, key: Any, value: Any) -> None:
        self._items[key] = (time.monotonic(), value)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _received(row_id: int) -> Response:
    # The same bytes JSONResponse({"received": True, "id": row_id}) renders, without a json.dumps per request.
    return Response(b'{"received":true,"id":%d}' % row_id, media_type="application/json")


def create_app(settings: Settings, admin_engine: Engine, app_engine: Engine, url: str) -> FastAPI:
    tenants = _Cache(settings.webhook_cache_seconds)
    integrations = _Cache(settings.webhook_cache_seconds)
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
        with app_session(app_engine) as conn:
            row = conn.execute(text("SELECT id, slug, name FROM tenants WHERE slug = :s AND is_active"),
                               {"s": slug}).first()
        found = TenantRef(*row) if row else None
        tenants.put(slug, found)
        return found

    def default_tenant() -> TenantRef | None:
        with app_session(app_engine) as conn:
            row = conn.execute(text("SELECT id, slug, name FROM tenants WHERE is_default AND is_active")).first()
        found = TenantRef(*row) if row else None
        tenants.put(DEFAULT_TENANT, found)
        return found

    async def resolve_tenant(slug: str | None) -> TenantRef | None:
        hit, tenant = tenants.lookup(slug if slug is not None else DEFAULT_TENANT)
        if hit:
            return cast(TenantRef | None, tenant)
        return await run_in_threadpool(lookup_tenant, slug) if slug else await run_in_threadpool(default_tenant)

    def load_integration(tenant: TenantRef, source: str) -> Integration | None:
        if "box" not in box_holder:
            box_holder["box"] = secret_box(settings)
        box = box_holder["box"]
        found = None
        if box is not None:
            with tenant_session(app_engine, tenant.id) as conn:
                found = get_integration(conn, box, tenant.id, source, slug=tenant.slug)
        integrations.put((tenant.id, source), found)
        return found

    async def resolve_integration(tenant: TenantRef, source: str) -> Integration | None:
        hit, integration = integrations.lookup((tenant.id, source))
        if hit:
            return cast(Integration | None, integration)
        return await run_in_threadpool(load_integration, tenant, source)

    def record_rejection(tenant: TenantRef, source: str, reason: str, remote: str | None) -> None:
        with tenant_session(app_engine, tenant.id) as conn:
            conn.execute(text("INSERT INTO webhook_rejections (tenant_id, source, reason, remote_addr) "
                              "VALUES (:t, :s, :r, :a)"), {"t": tenant.id, "s": source, "r": reason, "a": remote})

    async def receive(request: Request, slug: str | None, source: str) -> Response:
        if source not in SOURCES:
            return _error(404, f"Unknown source {source!r}; sources: {', '.join(SOURCES)}.")
        tenant = await resolve_tenant(slug)
        if tenant is None:
            return _error(404, "Unknown tenant")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return _error(413, "Body larger than 1 MiB.")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, "Body larger than 1 MiB.")
        integration = await resolve_integration(tenant, source)
        try:
            how = authenticate(source, integration, body, request.headers, request.query_params.get("token"))
        except Rejected as exc:
            log.info("rejected %s webhook for %s: %s", source, tenant.slug, exc)
            remote = request.client.host if request.client else None
            try:
                await run_in_threadpool(record_rejection, tenant, source, str(exc), remote)
            except Exception:  # recording the rejection must not turn a 401 into a 500
                log.warning("could not record a rejection for %s", tenant.slug)
            return _error(401, "Authentication failed.")
        stored = stored_payload(body, request.headers.get("content-type", ""), source)
        if stored is None:
            return _error(400, "The body is not JSON (or form data).")
        payload, payload_json = stored
        headers = {k: v for k, v in request.headers.items() if k in KEPT_HEADERS}
        headers["x-mcb-auth"] = how
        row = InboxRow(tenant.id, source, _event_type(payload), payload_json, json.dumps(headers))
        try:
            row_id = await writer.store(row)
        except InboxRefused:
            return _error(400, "The body's JSON cannot be stored (PostgreSQL's jsonb refuses it, e.g. a \\u0000 "
                               "in a string).")
        except InboxUnavailable:
            return _error(503, "Could not store the webhook; retry.")
        return _received(row_id)

    async def describe(slug: str, source: str) -> JSONResponse:
        if source not in SOURCES:
            return _error(404, f"Unknown source {source!r}; sources: {', '.join(SOURCES)}.")
        tenant = await resolve_tenant(slug)
        if tenant is None:
            return _error(404, "Unknown tenant")
        return JSONResponse({"status": "ok", "tenant": tenant.slug, "name": tenant.name, "source": source,
                             "accepted_event_types": accepted_events(source)})

    # The webhook POSTs are plain Starlette routes: the hot path needs no dependency injection, validation
    # or response-model machinery, only the request (path parameters arrive as strings either way).
    async def webhook(request: Request) -> Response:
        return await receive(request, request.path_params["slug"], request.path_params["source"])

    for path in ("/webhooks/{slug}/{source}", "/api/webhooks/{slug}/{source}"):
        app.router.routes.append(Route(path, webhook, methods=["POST"]))

    @app.get("/webhooks/{slug}/{source}")
    async def webhook_health(slug: str, source: str) -> JSONResponse:
        return await describe(slug, source)

    @app.get("/api/webhooks/{slug}/{source}")
    async def webhook_health_original_path(slug: str, source: str) -> JSONResponse:
        return await describe(slug, source)

    for path, legacy_source in LEGACY_ROUTES.items():
        def make(src: str) -> Any:
            async def legacy(request: Request) -> Response:
                return await receive(request, None, src)
            return legacy
        app.router.routes.append(Route(path, make(legacy_source), methods=["POST"], name=f"legacy_{legacy_source}"))

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


def _reject_constant(name: str) -> Any:
    # NaN and ±Infinity are Python's JSON extensions; PostgreSQL's jsonb refuses them, so they are not JSON here.
    raise ValueError(f"{name} is not JSON")


def stored_payload(body: bytes, content_type: str, source: str) -> tuple[Any, str] | None:
    """(the parsed payload, the JSON text to store) of a request body, or None when it is neither JSON nor
    form data. A UTF-8 JSON body is stored as the sender's own text; a form body becomes a JSON object; a
    Denefits body is stored without its ``secret_key`` (at any depth)."""
    if source != "denefits":
        try:
            text_body = body.decode("utf-8")
            if text_body.strip():
                return json.loads(text_body, parse_constant=_reject_constant), text_body
        except ValueError:  # UnicodeDecodeError is a ValueError too
            pass
    payload = _read_body(body, content_type)
    if payload is None:
        return None
    if source == "denefits":
        payload = _without_secret(payload)
    return payload, json.dumps(payload)


def _read_body(body: bytes, content_type: str) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body, parse_constant=_reject_constant)
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
