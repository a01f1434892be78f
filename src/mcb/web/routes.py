"""The dashboard's routes: log in with a token, then ``/t/{tenant}/`` for the tenants the token reaches.

Thin routes (STYLE.md): authenticate, resolve the tenant through the token, compute the page's data in
the tenant's session, render. "No such tenant" and "not yours" give the same 404, so a tenant token learns
nothing about other tenants.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from mcb.analytics import window as windows
from mcb.analytics.run import report_sessions
from mcb.config import Settings
from mcb.db.session import app_session
from mcb.errors import UserError
from mcb.tenancy import tokens as tok
from mcb.tenancy.tenants import Tenant, UnknownTenant, get_tenant, list_tenants
from mcb.web import charts
from mcb.web.auth import COOKIE, Sessions
from mcb.web.view import dashboard_data

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
RANGE_PARAMS = ("from", "to", "week", "last")
PRESETS = (("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("mcb.web", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)

    def money(value: float | None, cents: bool = False) -> str:
        if value is None:
            return "–"
        return f"-${abs(value):,.{2 if cents else 0}f}" if value < 0 else f"${value:,.{2 if cents else 0}f}"

    def tile(value: float | int | None, fmt: str) -> str:
        if value is None:
            return "–"
        if fmt == "money":
            return money(float(value), cents=abs(float(value)) < 1000)
        if fmt == "ratio":
            return f"{float(value):.2f}×"
        return f"{int(value):,}"

    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value:+.0%}" if value else "±0%"

    def rate(value: float | None) -> str:
        return "–" if value is None else f"{value:.0%}"

    env.filters.update(money=money, tile=tile, pct=pct, rate=rate, label=lambda s: s.replace("_", " "))
    return env


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _safe_next(value: str | None) -> str | None:
    """Only a dashboard path of this site may be the place to go after login (no open redirect)."""
    if value and value.startswith("/t/") and "//" not in value and "\\" not in value:
        return value
    return None


def dashboard_router(settings: Settings, engine: Engine) -> APIRouter:
    """The dashboard's routes over the runtime engine (``engine``)."""
    router = APIRouter()
    env = _environment()
    sessions = Sessions(settings, engine)

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return _page(env.get_template(name).render(**context), status)

    def who(request: Request) -> tok.ApiToken | None:
        return (sessions.from_bearer(request.headers.get("authorization"))
                or sessions.from_cookie(request.cookies.get(COOKIE)))

    def reachable(token: tok.ApiToken) -> list[Tenant]:
        with app_session(engine) as conn:
            return [t for t in list_tenants(conn, include_inactive=False) if tok.can_access(token, t.id)]

    def resolve(token: tok.ApiToken, slug: str) -> Tenant | None:
        """The tenant, if it is active and the token reaches it; None otherwise (the same answer)."""
        with app_session(engine) as conn:
            try:
                tenant = get_tenant(conn, slug, active_only=True)
            except UnknownTenant:
                return None
        return tenant if tok.can_access(token, tenant.id) else None

    def landing(token: tok.ApiToken) -> str:
        tenants = reachable(token)
        default = next((t for t in tenants if t.is_default), tenants[0] if tenants else None)
        return f"/t/{default.slug}/" if default else "/login"

    @router.get("/static/mcb.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response((STATIC / "mcb.css").read_text(), media_type="text/css",
                        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

    @router.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> HTMLResponse:
        return render("login.html", next=_safe_next(request.query_params.get("next")) or "", error=None)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        target = _safe_next(form.get("next"))
        found = await run_in_threadpool(sessions.login, form.get("token", ""))
        if found is None:
            return render("login.html", 401, next=target or "",
                          error="That token is not valid (it may have been revoked).")
        value, token = found
        if target is None or await run_in_threadpool(resolve, token, target.split("/")[2]) is None:
            target = await run_in_threadpool(landing, token)
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, value, max_age=sessions.max_age, httponly=True, samesite="strict",
                            secure=sessions.secure, path="/")
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=sessions.secure)
        return response

    @router.get("/t/", include_in_schema=False)
    async def home(request: Request) -> Response:
        token = await run_in_threadpool(who, request)
        if token is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(await run_in_threadpool(landing, token), status_code=303)

    def page_data(token: tok.ApiToken, slug: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        tenant = resolve(token, slug)
        if tenant is None:
            return 404, {"error": "No such dashboard."}
        try:
            window = windows.resolve(tenant.timezone, from_date=params.get("from"), to_date=params.get("to"),
                                     week=params.get("week"), last=params.get("last"))
        except UserError as exc:
            return 400, {"error": str(exc), "tenant": tenant}
        # Two connections of the tenant's RLS session on one snapshot: the page's queries run on both at once.
        with report_sessions(engine, tenant.id, 2) as (conn, side):
            data = dashboard_data(conn, tenant, window, side=side)
        return 200, {"data": data, "tenant": tenant, "window": window}

    @router.get("/t/{slug}/data.json", include_in_schema=False)
    async def dashboard_json(slug: str, request: Request) -> JSONResponse:
        token = await run_in_threadpool(who, request)
        if token is None:
            return JSONResponse({"error": "Log in first (a token as Authorization: Bearer)."}, status_code=401)
        status, result = await run_in_threadpool(page_data, token, slug, dict(request.query_params))
        body = result["data"] if status == 200 else {"error": result["error"]}
        return JSONResponse(json.loads(json.dumps(body, default=str)), status_code=status, headers=SECURITY_HEADERS)

    @router.get("/t/{slug}/", include_in_schema=False)
    async def dashboard(slug: str, request: Request) -> Response:
        token = await run_in_threadpool(who, request)
        if token is None:
            here = f"/t/{slug}/" + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)
        params = {k: v for k, v in request.query_params.items() if k in RANGE_PARAMS and v}
        status, result = await run_in_threadpool(page_data, token, slug, params)
        tenants = await run_in_threadpool(reachable, token) if token.is_admin else []
        if status == 404:
            return render("error.html", 404, message="No such dashboard.", token=token)
        if status == 400:
            return render("error.html", 400, message=result["error"], token=token, back=f"/t/{slug}/")
        data = result["data"]
        zone = ZoneInfo(result["tenant"].timezone)
        return render("dashboard.html", d=data, token=token, tenants=tenants, presets=PRESETS,
                      query=urlencode(params), params=params, charts=_charts(data),
                      local=lambda iso: datetime.fromisoformat(iso).astimezone(zone).strftime("%b %-d %H:%M"),
                      generated=datetime.now(UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"))

    return router


def _charts(data: dict[str, Any]) -> dict[str, Markup]:
    trend = data["trend"]
    return {
        "funnel": Markup(charts.funnel_chart([(s["label"], s["count"]) for s in data["funnel"]])),
        "revenue": Markup(charts.revenue_chart(
            [(r["period"], r["cash_collected"] or 0, r["projected_revenue"] or 0) for r in data["revenue"]])),
        "trend_counts": Markup(charts.trend_chart(
            [w["label"] for w in trend],
            [("Leads", [w["leads"] for w in trend]), ("Meetings held", [w["meetings_held"] for w in trend]),
             ("Buyers", [w["buyers"] for w in trend])])),
        "trend_money": Markup(charts.trend_chart(
            [w["label"] for w in trend],
            [("Cash collected", [w["cash_collected"] or 0 for w in trend]),
             ("Projected revenue", [w["projected_revenue"] or 0 for w in trend])], money=True)),
    }
