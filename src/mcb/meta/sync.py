"""One tenant's Meta Ads sync: its ads, their creatives and their daily insights, written under RLS.

Everything a sync writes goes through ``tenant_session(app_engine, tenant)``, as the runtime role with
the tenant set: a sync of one tenant cannot read or write another's rows, whatever its code does.

What a sync does (spec 4.1, R-34, R-38, R-39, decision 1):

1. **Ads**: every ad of the tenant's account whatever its status (the ads edge filtered on every
   ``effective_status``), with campaign and ad set ids and names, and the creative expanded in the same
   call. ``is_active`` is ``effective_status = 'ACTIVE'``; a stored ad Meta no longer lists is marked
   inactive. Creatives are upserted with their derived fields (:mod:`mcb.meta.creative`).
2. **Insights**: ``level=ad``, ``time_increment=1`` over the window, one row per (tenant, ad, day)
   upserted on ``(tenant_id, ad_id, snapshot_date)``: the latest sync of a day wins. Once every page is
   written, the window's rows this sync did not return are deleted (Meta revised them away, or they are
   the original's rolling 7-day snapshots, which are not daily figures), so the window holds exactly what
   Meta says today. Windows longer than ``ASYNC_AFTER_DAYS`` run as an asynchronous report job.
3. The window: ``--since``/``--until``; by default the first sync backfills 90 days up to today (in the
   tenant's time zone) and later syncs start with the last 3 days of the last successful one's window,
   because Meta revises recent days.

Every run is a ``sync_runs`` row: ``running`` when it starts, then ``succeeded`` or ``failed`` with one
sentence and a kind (``token_expired``, ``api_error``, ``unreachable``, ``internal``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, text

from mcb.config import Settings
from mcb.db.session import admin_session, app_session, tenant_session
from mcb.errors import UserError
from mcb.meta.client import GraphClient, GraphError, TokenRejected, TransientGraphError
from mcb.meta.creative import KeywordLists, creative_row, keyword_lists
from mcb.tenancy.integrations import get_integration
from mcb.tenancy.secrets import secret_box
from mcb.tenancy.tenants import Tenant, get_tenant, list_tenants

log = logging.getLogger(__name__)

PROVIDER = "meta"
BACKFILL_DAYS = 90
REFETCH_DAYS = 3
ASYNC_AFTER_DAYS = 31
PAGE_SIZE = 500
COMMIT_ROWS = 5000
STALE_RUN = timedelta(hours=2)  # a 'running' row older than this is a crashed run, not a live one

EFFECTIVE_STATUSES = (
    "ACTIVE", "PAUSED", "DELETED", "PENDING_REVIEW", "DISAPPROVED", "PREAPPROVED", "PENDING_BILLING_INFO",
    "CAMPAIGN_PAUSED", "ARCHIVED", "ADSET_PAUSED", "IN_PROCESS", "WITH_ISSUES",
)
CREATIVE_FIELDS = ("id,name,title,body,thumbnail_url,video_id,object_story_spec,effective_object_story_id,"
                   "object_story_id,asset_feed_spec")
AD_FIELDS = (f"id,name,status,effective_status,created_time,updated_time,campaign_id,adset_id,campaign{{name}},"
             f"adset{{name}},preview_shareable_link,creative{{{CREATIVE_FIELDS}}}")
INSIGHT_FIELDS = "ad_id,ad_name,adset_id,campaign_id,date_start,date_stop,spend,impressions,clicks,reach,actions"
# Meta's action types -> meta_ad_insights columns.
ACTIONS = {"link_click": "link_clicks", "landing_page_view": "landing_page_views", "lead": "leads"}


class MetaTokenExpired(UserError):
    """The tenant's access token was refused (code 190): one sentence naming the tenant and the fix."""


class MetaSyncFailed(UserError):
    """Meta answered with an error retries could not fix, or could not be reached."""


class Progress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int | None = None) -> None:
        log.info("meta sync: %s", name)

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class SyncSummary:
    tenant: str
    since: date
    until: date
    ads: int = 0
    active_ads: int = 0
    creatives: int = 0
    insight_rows: int = 0
    removed_rows: int = 0
    api_calls: int = 0
    retries: int = 0
    throttle_pauses: int = 0
    seconds: float = 0.0
    http_seconds: float = 0.0
    used_report_job: bool = False
    run_id: int | None = None
    status: str = "succeeded"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}


ClientFactory = Callable[[str, str, str], GraphClient]  # (base_url, version, token) -> client


def default_client(base_url: str, version: str, token: str) -> GraphClient:
    return GraphClient(base_url=base_url, version=version, access_token=token)


@dataclass
class _Account:
    tenant: Tenant
    account: str
    token: str
    version: str
    keywords: KeywordLists


@dataclass
class _Run:
    id: int
    started_at: datetime
    seen_ads: set[str] = field(default_factory=set)


def account_path(ad_account_id: str) -> str:
    """``act_<id>`` whether the operator stored ``123`` or ``act_123``."""
    value = ad_account_id.strip()
    digits = value.removeprefix("act_")
    if not digits.isdigit():
        raise UserError(f"The meta ad_account_id {value!r} is not an ad account id (digits, optionally act_...).")
    return f"act_{digits}"


def _load_account(app_engine: Engine, settings: Settings, slug: str) -> _Account:
    with app_session(app_engine) as conn:
        tenant = get_tenant(conn, slug, active_only=True)
    box = secret_box(settings)
    with tenant_session(app_engine, tenant.id) as conn:
        integration = get_integration(conn, box, tenant.id, PROVIDER, slug=slug) if box else None
    fix = f"`mcb integrations set {slug} meta access_token=... ad_account_id=...`"
    if integration is None or not integration.is_active:
        raise UserError(f"Tenant {slug} has no meta integration; store its Ads credentials with {fix}.")
    missing = [k for k in ("access_token", "ad_account_id") if not integration.credentials.get(k)]
    if missing:
        raise UserError(f"Tenant {slug}'s meta integration lacks {' and '.join(missing)}; set it with {fix}.")
    return _Account(
        tenant=tenant,
        account=account_path(integration.credentials["ad_account_id"]),
        token=integration.credentials["access_token"],
        version=integration.credentials.get("api_version") or settings.meta_api_version,
        keywords=keyword_lists(slug, tenant.config),
    )


def tenant_today(tenant: Tenant, now: datetime | None = None) -> date:
    return (now or datetime.now(ZoneInfo("UTC"))).astimezone(ZoneInfo(tenant.timezone)).date()


def sync_window(conn: Connection, tenant: Tenant, since: date | None, until: date | None,
                today: date | None = None) -> tuple[date, date]:
    """The days to fetch: as given, or 90 days back on the first sync, or from the last 3 days of the last
    successful sync's window on (Meta revises recent days)."""
    until = until or today or tenant_today(tenant)
    if since is None:
        last = conn.execute(text(
            "SELECT max(until) FROM sync_runs WHERE tenant_id = :t AND provider = :p AND status = 'succeeded'"
        ), {"t": tenant.id, "p": PROVIDER}).scalar()
        since = (min(last, until) - timedelta(days=REFETCH_DAYS - 1) if last
                 else until - timedelta(days=BACKFILL_DAYS - 1))
    if since > until:
        raise UserError(f"--since {since} is after --until {until}.")
    return since, until


def _start_run(app_engine: Engine, tenant: Tenant, trigger: str, since: date, until: date) -> _Run:
    with tenant_session(app_engine, tenant.id) as conn:
        running = conn.execute(text(
            "SELECT id, started_at FROM sync_runs WHERE tenant_id = :t AND provider = :p AND status = 'running' "
            "AND started_at > now() - make_interval(secs => :stale) ORDER BY id DESC LIMIT 1"
        ), {"t": tenant.id, "p": PROVIDER, "stale": STALE_RUN.total_seconds()}).first()
        if running is not None:
            raise UserError(f"A Meta sync of tenant {tenant.slug} is already running (run {running.id}, started "
                            f"{running.started_at:%Y-%m-%d %H:%M} UTC); wait for it to finish.")
        row = conn.execute(text(
            "INSERT INTO sync_runs (tenant_id, provider, trigger, since, until) VALUES (:t, :p, :trigger, :s, :u) "
            "RETURNING id, started_at"
        ), {"t": tenant.id, "p": PROVIDER, "trigger": trigger, "s": since, "u": until}).one()
    return _Run(row.id, row.started_at)


def _finish_run(app_engine: Engine, tenant: Tenant, run: _Run, summary: SyncSummary,
                error_kind: str | None = None) -> None:
    with tenant_session(app_engine, tenant.id) as conn:
        conn.execute(text(
            "UPDATE sync_runs SET status = :status, finished_at = clock_timestamp(), ads = :ads, "
            "creatives = :creatives, insight_rows = :rows, api_calls = :calls, error_kind = :kind, error = :error "
            "WHERE id = :id"
        ), {"status": summary.status, "ads": summary.ads, "creatives": summary.creatives,
            "rows": summary.insight_rows, "calls": summary.api_calls, "kind": error_kind, "error": summary.error,
            "id": run.id})


def sync_tenant(
    app_engine: Engine,
    settings: Settings,
    slug: str,
    *,
    since: date | None = None,
    until: date | None = None,
    trigger: str = "cli",
    progress: Progress | None = None,
    client_factory: ClientFactory = default_client,
) -> SyncSummary:
    """Sync one tenant's ads, creatives and daily insights; record the run; return its summary.

    Raises :class:`MetaTokenExpired` or :class:`MetaSyncFailed` (both UserErrors) after recording them."""
    progress = progress or NoProgress()
    account = _load_account(app_engine, settings, slug)
    tenant = account.tenant
    with tenant_session(app_engine, tenant.id) as conn:
        since, until = sync_window(conn, tenant, since, until)
    run = _start_run(app_engine, tenant, trigger, since, until)
    summary = SyncSummary(tenant=slug, since=since, until=until, run_id=run.id)
    clock = time.monotonic()
    client = client_factory(settings.meta_graph_url, account.version, account.token)
    error_kind: str | None = None
    try:
        _sync_ads(app_engine, client, account, run, summary, progress)
        _sync_insights(app_engine, client, account, run, summary, progress)
    except TokenRejected:
        summary.status, error_kind = "failed", "token_expired"
        summary.error = (f"Meta refused tenant {slug}'s access token (expired or revoked, code 190): generate a "
                         f"new system-user token in Business Manager and store it with "
                         f"`mcb integrations set {slug} meta access_token=...`.")
    except TransientGraphError as exc:
        summary.status, error_kind = "failed", "unreachable"
        summary.error = f"The Meta sync of tenant {slug} gave up after {client.retries} retries: {exc}."
    except GraphError as exc:
        summary.status, error_kind = "failed", "api_error"
        summary.error = f"The Meta sync of tenant {slug} stopped: {exc}."
    except BaseException as exc:
        summary.status, error_kind = "failed", "internal"
        summary.error = f"The Meta sync of tenant {slug} stopped on an internal error ({type(exc).__name__})."
        raise
    finally:
        progress.finish()
        client.close()
        summary.api_calls, summary.retries = client.calls, client.retries
        summary.throttle_pauses = len(client.budget.pauses)
        summary.http_seconds = round(client.http_seconds, 3)
        summary.seconds = round(time.monotonic() - clock, 3)
        _finish_run(app_engine, tenant, run, summary, error_kind)
    if error_kind == "token_expired":
        raise MetaTokenExpired(str(summary.error))
    if error_kind is not None:
        raise MetaSyncFailed(str(summary.error))
    return summary


# ------------------------------------------------------------------------------------------- ads


def _ts(value: Any) -> str | None:
    """Meta's ``2025-08-01T09:30:00+0000`` as ISO 8601 text (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").isoformat()
    except ValueError:
        try:
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            return None


def _name(value: Any) -> str | None:
    return str(value["name"]) if isinstance(value, dict) and value.get("name") is not None else None


def _ad_row(ad: dict[str, Any]) -> dict[str, Any]:
    effective = ad.get("effective_status")
    return {
        "ad_id": str(ad["id"]),
        "ad_name": ad.get("name"),
        "campaign_id": ad.get("campaign_id") or (ad.get("campaign") or {}).get("id"),
        "campaign_name": _name(ad.get("campaign")),
        "adset_id": ad.get("adset_id") or (ad.get("adset") or {}).get("id"),
        "adset_name": _name(ad.get("adset")),
        "status": ad.get("status"),
        "effective_status": effective,
        "is_active": effective == "ACTIVE",
        "created_time": _ts(ad.get("created_time")),  # ISO text: the statement casts it
        "updated_time": _ts(ad.get("updated_time")),
    }


# One statement per page: the page travels as one JSON array, unpacked by jsonb_to_recordset.
UPSERT_ADS = text(
    "INSERT INTO meta_ads (tenant_id, ad_id, ad_name, campaign_id, campaign_name, adset_id, adset_name, status, "
    "effective_status, is_active, created_time, updated_time, last_synced) "
    "SELECT :t, r.ad_id, r.ad_name, r.campaign_id, r.campaign_name, r.adset_id, r.adset_name, r.status, "
    "r.effective_status, r.is_active, r.created_time, r.updated_time, :synced "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(ad_id text, ad_name text, campaign_id text, "
    "campaign_name text, adset_id text, adset_name text, status text, effective_status text, is_active boolean, "
    "created_time timestamptz, updated_time timestamptz) "
    "ON CONFLICT (tenant_id, ad_id) DO UPDATE SET ad_name = EXCLUDED.ad_name, "
    "campaign_id = EXCLUDED.campaign_id, campaign_name = EXCLUDED.campaign_name, adset_id = EXCLUDED.adset_id, "
    "adset_name = EXCLUDED.adset_name, status = EXCLUDED.status, effective_status = EXCLUDED.effective_status, "
    "is_active = EXCLUDED.is_active, created_time = EXCLUDED.created_time, updated_time = EXCLUDED.updated_time, "
    "last_synced = EXCLUDED.last_synced, updated_at = now()"
)
UPSERT_CREATIVES = text(
    "INSERT INTO meta_ad_creatives (tenant_id, ad_id, primary_text, headline, alternative_copy, video_id, "
    "thumbnail_url, preview_url, post_id, transformation_theme, symptom_focus, copy_length, media_type) "
    "SELECT :t, r.* FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(ad_id text, primary_text text, "
    "headline text, alternative_copy text, video_id text, thumbnail_url text, preview_url text, post_id text, "
    "transformation_theme text, symptom_focus text[], copy_length text, media_type text) "
    "ON CONFLICT (tenant_id, ad_id) DO UPDATE SET primary_text = EXCLUDED.primary_text, "
    "headline = EXCLUDED.headline, alternative_copy = EXCLUDED.alternative_copy, video_id = EXCLUDED.video_id, "
    "thumbnail_url = EXCLUDED.thumbnail_url, preview_url = EXCLUDED.preview_url, post_id = EXCLUDED.post_id, "
    "transformation_theme = EXCLUDED.transformation_theme, symptom_focus = EXCLUDED.symptom_focus, "
    "copy_length = EXCLUDED.copy_length, media_type = EXCLUDED.media_type, updated_at = now()"
)


def _sync_ads(app_engine: Engine, client: GraphClient, account: _Account, run: _Run, summary: SyncSummary,
              progress: Progress) -> None:
    progress.phase("ads and creatives")
    tenant_id = account.tenant.id
    params = {"fields": AD_FIELDS, "limit": PAGE_SIZE,
              "filtering": [{"field": "effective_status", "operator": "IN", "value": list(EFFECTIVE_STATUSES)}]}
    for page in client.pages(f"{account.account}/ads", params):
        # One row per ad id within a statement (ON CONFLICT cannot touch a row twice).
        ads = list({str(a["id"]): a for a in page if a.get("id")}.values())
        rows = [_ad_row(a) for a in ads]
        creatives = [c for c in (creative_row(a, account.keywords) for a in ads) if c is not None]
        with tenant_session(app_engine, tenant_id) as conn:
            if rows:
                conn.execute(UPSERT_ADS, {"t": tenant_id, "synced": run.started_at,
                                          "rows": json.dumps(rows)})
            if creatives:
                conn.execute(UPSERT_CREATIVES, {"t": tenant_id, "rows": json.dumps(creatives)})
        run.seen_ads.update(r["ad_id"] for r in rows)
        summary.ads += len(rows)
        summary.active_ads += sum(1 for r in rows if r["is_active"])
        summary.creatives += len(creatives)
        progress.advance(len(rows))
    with tenant_session(app_engine, tenant_id) as conn:
        # an ad Meta no longer lists at all does not deliver either.
        conn.execute(text(
            "UPDATE meta_ads SET is_active = false, updated_at = now() WHERE tenant_id = :t AND is_active "
            "AND NOT (ad_id = ANY(CAST(:seen AS text[])))"
        ), {"t": tenant_id, "seen": sorted(run.seen_ads)})


# -------------------------------------------------------------------------------------- insights


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)  # Meta sends counts as strings of digits
    except (TypeError, ValueError):
        pass
    try:
        return int(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def insight_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """The meta_ad_insights columns of one daily insights row (None when it names no ad or day)."""
    ad_id, day = row.get("ad_id"), row.get("date_start")
    if not ad_id or not isinstance(day, str):
        return None
    actions: dict[str, int | None] = dict.fromkeys(ACTIONS.values())
    for action in row.get("actions") or []:
        if isinstance(action, dict) and action.get("action_type") in ACTIONS:
            actions[ACTIONS[action["action_type"]]] = _int(action.get("value"))
    return {
        "ad_id": str(ad_id),
        "snapshot_date": date.fromisoformat(day[:10]),
        "spend": _money(row.get("spend")),
        "impressions": _int(row.get("impressions")),
        "clicks": _int(row.get("clicks")),
        "reach": _int(row.get("reach")),
        **actions,
        "ad_name": row.get("ad_name"),
        "adset_id": row.get("adset_id"),
        "campaign_id": row.get("campaign_id"),
    }


# One statement per page: arrays unnested into rows, so a 500-row page is one round trip.
UPSERT_INSIGHTS = text(
    "INSERT INTO meta_ad_insights (tenant_id, ad_id, snapshot_date, spend, impressions, clicks, reach, "
    "link_clicks, landing_page_views, leads, synced_at) "
    "SELECT :t, r.* , :synced FROM unnest(CAST(:ad AS text[]), CAST(:day AS date[]), CAST(:spend AS numeric[]), "
    "CAST(:impressions AS integer[]), CAST(:clicks AS integer[]), CAST(:reach AS integer[]), "
    "CAST(:link_clicks AS integer[]), CAST(:lpv AS integer[]), CAST(:leads AS integer[])) AS r "
    "ON CONFLICT (tenant_id, ad_id, snapshot_date) DO UPDATE SET spend = EXCLUDED.spend, "
    "impressions = EXCLUDED.impressions, clicks = EXCLUDED.clicks, reach = EXCLUDED.reach, "
    "link_clicks = EXCLUDED.link_clicks, landing_page_views = EXCLUDED.landing_page_views, "
    "leads = EXCLUDED.leads, synced_at = EXCLUDED.synced_at, ctr = NULL, cpc = NULL, spend_28d = NULL"
)
# An insight can name an ad the ads edge did not list (deleted between the two calls): keep the row.
MISSING_ADS = text(
    "INSERT INTO meta_ads (tenant_id, ad_id, ad_name, adset_id, campaign_id, is_active, last_synced) "
    "SELECT :t, a.ad_id, a.ad_name, a.adset_id, a.campaign_id, false, :synced "
    "FROM unnest(CAST(:ad AS text[]), CAST(:name AS text[]), CAST(:adset AS text[]), CAST(:campaign AS text[])) "
    "AS a(ad_id, ad_name, adset_id, campaign_id) ON CONFLICT (tenant_id, ad_id) DO NOTHING"
)


def _insight_pages(client: GraphClient, account: _Account, since: date, until: date,
                   summary: SyncSummary) -> Iterator[list[dict[str, Any]]]:
    params = {"level": "ad", "time_increment": 1, "fields": INSIGHT_FIELDS, "limit": PAGE_SIZE,
              "time_range": {"since": since.isoformat(), "until": until.isoformat()}}
    if (until - since).days + 1 > ASYNC_AFTER_DAYS:
        summary.used_report_job = True
        return client.report_pages(account.account, params)
    return client.pages(f"{account.account}/insights", params)


def _sync_insights(app_engine: Engine, client: GraphClient, account: _Account, run: _Run,
                   summary: SyncSummary, progress: Progress) -> None:
    # Meta gives no row count in advance (least of all for a report job): the bar counts rows.
    progress.phase(f"daily insights {summary.since} to {summary.until}")
    buffer: dict[tuple[str, date], dict[str, Any]] = {}
    for page in _insight_pages(client, account, summary.since, summary.until, summary):
        for raw in page:
            row = insight_row(raw)
            if row is not None:
                buffer[(row["ad_id"], row["snapshot_date"])] = row  # one row per key within a statement
        # Pages are gathered into transactions of COMMIT_ROWS rows: a commit per 500-row page cost more
        # than the rows themselves on a durable server. No transaction stays open across an HTTP call.
        if len(buffer) >= COMMIT_ROWS:
            _write_insights(app_engine, account, run, summary, list(buffer.values()), progress)
            buffer.clear()
    if buffer:
        _write_insights(app_engine, account, run, summary, list(buffer.values()), progress)
    with tenant_session(app_engine, account.tenant.id) as conn:
        summary.removed_rows = conn.execute(text(
            "DELETE FROM meta_ad_insights WHERE tenant_id = :t AND snapshot_date BETWEEN :s AND :u "
            "AND (synced_at IS NULL OR synced_at < :synced)"
        ), {"t": account.tenant.id, "s": summary.since, "u": summary.until, "synced": run.started_at}).rowcount


def _write_insights(app_engine: Engine, account: _Account, run: _Run, summary: SyncSummary,
                    values: list[dict[str, Any]], progress: Progress) -> None:
    tenant_id = account.tenant.id
    unknown = [r for r in {r["ad_id"]: r for r in values}.values() if r["ad_id"] not in run.seen_ads]
    with tenant_session(app_engine, tenant_id) as conn:
        if unknown:
            conn.execute(MISSING_ADS, {
                "t": tenant_id, "synced": run.started_at, "ad": [r["ad_id"] for r in unknown],
                "name": [r["ad_name"] for r in unknown], "adset": [r["adset_id"] for r in unknown],
                "campaign": [r["campaign_id"] for r in unknown]})
        conn.execute(UPSERT_INSIGHTS, {
            "t": tenant_id, "synced": run.started_at,
            "ad": [r["ad_id"] for r in values], "day": [r["snapshot_date"] for r in values],
            "spend": [r["spend"] for r in values], "impressions": [r["impressions"] for r in values],
            "clicks": [r["clicks"] for r in values], "reach": [r["reach"] for r in values],
            "link_clicks": [r["link_clicks"] for r in values],
            "lpv": [r["landing_page_views"] for r in values], "leads": [r["leads"] for r in values]})
    run.seen_ads.update(r["ad_id"] for r in unknown)
    summary.insight_rows += len(values)
    progress.advance(len(values))


# ------------------------------------------------------------------------------- all tenants / runs


def tenants_with_meta(admin_engine: Engine) -> list[Tenant]:
    """Active tenants that have an active meta integration (read as the owner: it spans tenants)."""
    with admin_session(admin_engine) as conn:
        with_meta = {r[0] for r in conn.execute(text(
            "SELECT tenant_id FROM tenant_integrations WHERE provider = :p AND is_active"), {"p": PROVIDER})}
        return [t for t in list_tenants(conn, include_inactive=False) if t.id in with_meta]


@dataclass
class TenantOutcome:
    tenant: str
    summary: SyncSummary | None
    error: str | None


def sync_all_tenants(
    admin_engine: Engine,
    app_engine: Engine,
    settings: Settings,
    *,
    trigger: str = "cli",
    progress_for: Callable[[str], Progress] | None = None,
    client_factory: ClientFactory = default_client,
) -> list[TenantOutcome]:
    """Sync every active tenant with a meta integration, one after the other; one tenant's failure is
    recorded and reported, and the others still run."""
    outcomes = []
    for tenant in tenants_with_meta(admin_engine):
        try:
            summary = sync_tenant(app_engine, settings, tenant.slug, trigger=trigger,
                                  progress=progress_for(tenant.slug) if progress_for else None,
                                  client_factory=client_factory)
            outcomes.append(TenantOutcome(tenant.slug, summary, None))
        except UserError as exc:
            log.warning("%s", exc)
            outcomes.append(TenantOutcome(tenant.slug, None, str(exc)))
    return outcomes


@dataclass
class RunRecord:
    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    since: date | None
    until: date | None
    ads: int
    creatives: int
    insight_rows: int
    api_calls: int
    error_kind: str | None
    error: str | None


def recent_runs(conn: Connection, tenant_id: UUID, *, limit: int = 5) -> list[RunRecord]:
    rows = conn.execute(text(
        "SELECT id, trigger, status, started_at, finished_at, since, until, ads, creatives, insight_rows, api_calls, "
        "error_kind, error FROM sync_runs WHERE tenant_id = :t AND provider = :p ORDER BY started_at DESC, id DESC "
        "LIMIT :n"), {"t": tenant_id, "p": PROVIDER, "n": limit}).all()
    return [RunRecord(*r) for r in rows]


def token_warning(slug: str, runs: list[RunRecord]) -> str | None:
    """A warning when the tenant's latest finished Meta sync failed on its token."""
    finished = [r for r in runs if r.status != "running"]
    if finished and finished[0].error_kind == "token_expired":
        return (f"the Meta access token was refused at {finished[0].started_at:%Y-%m-%d %H:%M} UTC (expired or "
                f"revoked): store a new one with `mcb integrations set {slug} meta access_token=...`")
    return None
