"""``mcb serve`` and ``mcb worker``: receive webhooks for every tenant and process them."""

from __future__ import annotations

import signal
import time
from typing import Annotated

import typer

from mcb.cli.common import out
from mcb.config import get_settings
from mcb.db.engine import connect_engine, database_url, redact_url, runtime_engine
from mcb.errors import UserError
from mcb.ingest.worker import WorkerThread, drain
from mcb.meta.schedule import MetaSyncScheduler, parse_time_of_day
from mcb.meta.sync import tenants_with_meta
from mcb.migrate import runner
from mcb.migrate.progress import RichReporter
from mcb.tenancy.tenants import list_tenants


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=0, help="In-process worker threads (0: none; run `mcb worker`).")] = 1,
    no_upgrade: Annotated[bool, typer.Option("--no-upgrade", help="Do not upgrade the schema first.")] = False,
    schedule: Annotated[bool, typer.Option(
        "--schedule", help="Also sync Meta Ads daily for every active tenant with a meta integration "
        "(recorded in sync_runs; the cron alternative is `mcb meta sync --all-tenants`).")] = False,
    sync_at: Annotated[str, typer.Option(
        "--sync-at", help="With --schedule: the time of day of the Meta sync, HH:MM in UTC.")] = "06:00",
) -> None:
    """Receive every platform's webhooks for every tenant, store them durably, and process them; serve the
    dashboard at /t/<tenant>/ (token login)."""
    import uvicorn

    from mcb.db.session import admin_session
    from mcb.ingest.app import create_app
    from mcb.web.routes import dashboard_router

    settings = get_settings()
    url = database_url(settings)
    admin_engine = connect_engine(url)
    if not no_upgrade:
        if settings.database_url is None or runner.current_revision(admin_engine) != runner.head_revision():
            runner.upgrade(admin_engine, url, reporter=RichReporter(out), settings=settings)
    elif runner.current_revision(admin_engine) != runner.head_revision():
        raise UserError("The database is not at the head revision; run `mcb db upgrade` (or drop --no-upgrade).")
    at = parse_time_of_day(sync_at) if schedule else None
    app_engine = runtime_engine(settings)
    with admin_session(admin_engine) as conn:
        tenants = [t for t in list_tenants(conn) if t.is_active]
    out.print(f"MCB on http://{host}:{port}  (database {redact_url(url)})")
    for tenant in tenants:
        out.print(f"[bold]{tenant.slug}[/bold]")
        for source, hook in tenant.webhook_urls(settings.public_url).items():
            out.print(f"  {source:<12} {hook}")
    threads: list[WorkerThread | MetaSyncScheduler] = [WorkerThread(admin_engine, app_engine) for _ in range(workers)]
    if at is not None:
        threads.append(MetaSyncScheduler(admin_engine, app_engine, settings, at=at))
        synced = ", ".join(t.slug for t in tenants_with_meta(admin_engine)) or "none yet"
        out.print(f"Meta Ads sync daily at {at:%H:%M} UTC (tenants with a meta integration: {synced})")
    for thread in threads:
        thread.start()
    app = create_app(settings, admin_engine, app_engine, url)
    app.include_router(dashboard_router(settings, app_engine))
    out.print(f"Dashboard: http://{host}:{port}/t/<tenant>/  (log in with a token from `mcb tokens create`)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        for thread in threads:
            thread.stop()
        for thread in threads:
            thread.join(timeout=10)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Process what is waiting, then exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls when idle.")] = 0.5,
) -> None:
    """Process the inbox (run more of these to process in parallel; rows are never taken twice)."""
    settings = get_settings()
    admin_engine = connect_engine(database_url(settings))
    app_engine = runtime_engine(settings)
    if once:
        counts = drain(admin_engine, app_engine)
        out.print("Processed: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing waiting"))
        return
    thread = WorkerThread(admin_engine, app_engine, poll_seconds=poll)
    signal.signal(signal.SIGTERM, lambda *_: thread.stop())
    thread.start()
    out.print("Worker running; Ctrl-C to stop.")
    try:
        while thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        thread.stop()
    thread.join(timeout=30)
