"""``mcb serve`` and ``mcb worker``: receive webhooks for every tenant and process them."""

from __future__ import annotations

import logging
import signal
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from mcb.cli.common import out
from mcb.config import Settings, get_settings
from mcb.db.engine import connect_engine, database_url, make_engine, redact_url, runtime_engine
from mcb.errors import UserError
from mcb.ingest.worker import WorkerThread, drain, lower_priority
from mcb.meta.schedule import MetaSyncScheduler, parse_time_of_day
from mcb.meta.sync import tenants_with_meta
from mcb.migrate import runner
from mcb.migrate.progress import RichReporter
from mcb.tenancy.tenants import list_tenants

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

# uvloop and httptools (dependencies) when importable: about half the CPU per request of asyncio and h11.
LOOP = "auto"
HTTP = "auto"


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=0, help="In-process worker threads (0: none; run `mcb worker`).")] = 1,
    processes: Annotated[int, typer.Option(
        "--processes", min=1, help="HTTP processes sharing the port (webhooks and dashboard). The workers and "
        "the Meta schedule still run once, in the parent process.")] = 1,
    worker_nice: Annotated[int | None, typer.Option(
        "--worker-nice", min=0, max=19, help="How much lower the worker threads run in the OS scheduler than "
        "the HTTP processes, so acknowledging keeps its latency under load. Default: 10 with --processes "
        "above 1, else 0 (with one process they share it).")] = None,
    no_upgrade: Annotated[bool, typer.Option("--no-upgrade", help="Do not upgrade the schema first.")] = False,
    schedule: Annotated[bool, typer.Option(
        "--schedule", help="Also sync Meta Ads daily for every active tenant with a meta integration "
        "(recorded in sync_runs; the cron alternative is `mcb meta sync --all-tenants`).")] = False,
    sync_at: Annotated[str, typer.Option(
        "--sync-at", help="With --schedule: the time of day of the Meta sync, HH:MM in UTC.")] = "06:00",
) -> None:
    """Receive every platform's webhooks for every tenant, store them durably, and process them; serve the
    dashboard at /t/<tenant>/ (token login)."""
    from mcb.db.session import admin_session
    from mcb.web.auth import session_key

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
    out.print(f"MCB on http://{host}:{port}  (database {redact_url(url)}"
              + (f", {processes} HTTP processes" if processes > 1 else "") + ")")
    for tenant in tenants:
        out.print(f"[bold]{tenant.slug}[/bold]")
        for source, hook in tenant.webhook_urls(settings.public_url).items():
            out.print(f"  {source:<12} {hook}")
    nice = worker_nice if worker_nice is not None else (10 if processes > 1 else 0)
    threads: list[WorkerThread | MetaSyncScheduler] = [WorkerThread(admin_engine, app_engine, nice=nice)
                                                       for _ in range(workers)]
    if at is not None:
        threads.append(MetaSyncScheduler(admin_engine, app_engine, settings, at=at))
        synced = ", ".join(t.slug for t in tenants_with_meta(admin_engine)) or "none yet"
        out.print(f"Meta Ads sync daily at {at:%H:%M} UTC (tenants with a meta integration: {synced})")
    session_key(settings)  # create the key file once, before any HTTP process could race to create it
    for thread in threads:
        thread.start()
    out.print(f"Dashboard: http://{host}:{port}/t/<tenant>/  (log in with a token from `mcb tokens create`)")
    try:
        if processes == 1:
            run_one_process(build_app(settings, admin_engine, app_engine, url), host, port)
        else:
            run_processes(url, host, port, processes)
    finally:
        for thread in threads:
            thread.stop()
        for thread in threads:
            thread.join(timeout=10)


def build_app(settings: Settings, admin_engine: Engine, app_engine: Engine, url: str) -> FastAPI:
    """The HTTP app of `mcb serve`: the webhook routes and the dashboard."""
    from mcb.ingest.app import create_app
    from mcb.web.routes import dashboard_router

    app = create_app(settings, admin_engine, app_engine, url)
    app.include_router(dashboard_router(settings, app_engine))
    return app


def freeze_startup_heap() -> None:
    """Leave what startup allocated (the modules, the app, SQLAlchemy's and pydantic's metadata: most of
    the heap, and none of it ever garbage) out of the garbage collector's full collections. Without this a
    full collection of `mcb serve` walked all of it and paused every request in flight for 80-90 ms, about
    every 0.6 s during a burst of webhooks (docs/benchmarks.md, session 7)."""
    import gc

    gc.collect()
    gc.freeze()


def run_one_process(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    freeze_startup_heap()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, loop=LOOP, http=HTTP)


def run_processes(url: str, host: str, port: int, processes: int) -> None:
    """``processes`` uvicorn children accept on one listening socket bound here; each builds its app with
    ``http_process_app``. uvicorn's supervisor replaces a child that dies (and says so), stops them all on
    Ctrl-C or SIGTERM, and stops everything when a child fails to start."""
    import os

    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    # The children read their settings from the environment like any mcb command; they need the URL this
    # process resolved (the embedded server's, when DATABASE_URL is unset). The environment, not argv: a
    # URL may hold a password, and argv is visible to every user of the machine.
    os.environ["DATABASE_URL"] = url
    # INFO: the supervisor's notes (a child died and was replaced, a child failed to start) must be seen.
    config = uvicorn.Config("mcb.cli.serve:http_process_app", factory=True, host=host, port=port,
                            workers=processes, log_level="info", access_log=False, loop=LOOP, http=HTTP)
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn logged why (e.g. the address is in use)
        raise UserError(f"Cannot listen on {host}:{port}; see the message above.") from None
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise UserError("An HTTP process failed to start; see the messages above. Every process was stopped.")


def http_process_app() -> FastAPI:
    """The app of one HTTP process of `mcb serve --processes N` (uvicorn calls this in each child). It serves
    webhooks and the dashboard only: the workers and the Meta schedule run in the parent."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    url = database_url(settings)  # the parent's, through DATABASE_URL
    app = build_app(settings, make_engine(url), runtime_engine(settings), url)
    _exit_with_parent()
    freeze_startup_heap()
    return app


def _exit_with_parent() -> None:
    """Stop this HTTP process (gracefully, as on SIGTERM) when the parent is gone, e.g. after a kill -9 of
    `mcb serve`: a server whose workers died with the parent must not go on acknowledging alone."""
    import multiprocessing
    import os
    import threading

    # The parent's sentinel pipe closes when it dies, so this works even if it died before we got here.
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        log.warning("the mcb serve parent process is gone; stopping this HTTP process")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mcb-parent-watch", daemon=True).start()


def worker(
    once: Annotated[bool, typer.Option("--once", help="Process what is waiting, then exit.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between polls when idle.")] = 0.5,
    nice: Annotated[int, typer.Option(
        "--nice", min=0, max=19, help="Run this many steps lower in the OS scheduler (like `nice -n`), so "
        "that on a shared machine `mcb serve`'s acknowledgements come first.")] = 0,
) -> None:
    """Process the inbox (run more of these to process in parallel; rows are never taken twice)."""
    if nice:
        lower_priority(nice)
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
