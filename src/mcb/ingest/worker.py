"""The worker: claims inbox rows with one statement and writes each outcome on the row itself.

``claim_inbox_batch`` marks up to N claimable rows ``processing`` with a lease (``FOR UPDATE SKIP LOCKED``,
so several workers never take the same row). Each row is then parsed by its provider module and applied
by ``funnel.apply_event`` inside that tenant's session; the final status (``processed``, ``skipped`` with
the reason, ``orphan``, ``error`` with the message) is written in the same transaction as the changes,
so a crash leaves either both or neither, and an expired lease makes the row claimable again.

``drain`` applies a claimed batch in chunks of CHUNK rows, each chunk one transaction: per tenant one
``app.tenant_id`` switch, one INSERT of all its rows' funnel events (``funnel.apply.EventBatch``, so the
rollups' statement triggers run once per chunk), and one UPDATE that writes the final status of all its
rows from one JSON array, instead of a transaction, a tenant switch, an INSERT and an UPDATE per row. When anything in a chunk fails,
the chunk is rolled back whole and its rows are processed again one per transaction (``process_row``),
so a failing delivery never undoes or blocks the others and every row ends as it would alone.

Unreadable payloads end ``error`` at once (a parser fix plus ``mcb webhooks replay`` processes them);
other failures (the database going away) are retried with exponential backoff up to MAX_ATTEMPTS.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text

from mcb.analytics.rollups import compact_event_counts
from mcb.config import get_settings
from mcb.db import raw
from mcb.db.session import NOT_DURABLE_ENTER, admin_session, tenant_session, tenant_transaction
from mcb.funnel.apply import ApplyResult, EventBatch, IdentityConflict, apply_event
from mcb.funnel.events import Normalized, PayloadError
from mcb.ingest.enrich import FetchFailed, fetch_manychat_subscriber, needs_manychat_fetch
from mcb.ingest.sources import parse
from mcb.tenancy.integrations import get_integration
from mcb.tenancy.secrets import secret_box

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
LEASE = "5 minutes"
# Rows per transaction in drain. A chunk holds its deliveries' locks until it commits, so a larger chunk
# makes a second worker wait longer for a person both are processing (and a chunk that gives up waiting,
# see CHUNK_LOCK_TIMEOUT, redoes more rows one by one), while the saving per row (a transaction, a tenant
# switch and a status UPDATE) shrinks as 1/CHUNK. 16 is a judgement, not tuned.
CHUNK = 16
# How long a chunk waits for a lock before it gives up and its rows are processed one by one. Two workers'
# chunks that take two people's locks in opposite orders deadlock, and PostgreSQL only notices after
# deadlock_timeout (1 s by default; only a superuser can lower it), while both chunks wait. Measured with
# two workers draining one inbox: a deadlock every 2.5 s, so both workers spent much of their time waiting.
# A chunk that waits longer than this is almost always in such a cycle: another chunk holds a lock for
# its own length (16 deliveries, 100 ms or so), not longer. Rows processed one by one wait normally.
CHUNK_LOCK_TIMEOUT = "200ms"
_CHUNK_LOCK_TIMEOUT = f"SELECT set_config('lock_timeout', '{CHUNK_LOCK_TIMEOUT}', true)"

# A row is claimable when it is new or due for a retry, or when the worker that claimed it is gone: its
# lease ran out, or its database session (claimed_by) no longer exists because the process died.
# The two kinds are looked up apart so that each uses its index: waiting rows by the partial index
# idx_webhook_logs_inbox_pending (in id order), claimed ones by idx_webhook_logs_status. One scan in id
# order with both conditions as a filter walked past every processed row of the inbox on each claim.
CLAIM_SQL = f"""
WITH due AS (
    SELECT id FROM webhook_logs
    WHERE inbox AND status IN ('received', 'retry') AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    ORDER BY id
    FOR UPDATE SKIP LOCKED
    LIMIT :n
), abandoned AS (
    SELECT id FROM webhook_logs
    WHERE inbox AND status = 'processing'
      AND (next_attempt_at <= now()
           OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = webhook_logs.claimed_by))
    ORDER BY id
    FOR UPDATE SKIP LOCKED
    LIMIT :n
)
UPDATE webhook_logs SET status = 'processing', attempts = attempts + 1,
       next_attempt_at = now() + interval '{LEASE}', claimed_by = pg_backend_pid()
WHERE id IN (SELECT id FROM (SELECT id FROM due UNION ALL SELECT id FROM abandoned) AS claimable
             ORDER BY id LIMIT :n)
RETURNING id, tenant_id, source, payload, created_at, attempts
"""


@dataclass
class Claimed:
    id: int
    tenant_id: Any
    source: str
    payload: Any
    received_at: datetime
    attempts: int


def claim_inbox_batch(engine: Engine, limit: int = 50) -> list[Claimed]:
    with admin_session(engine) as conn:
        rows = conn.execute(text(CLAIM_SQL), {"n": limit}).all()
    return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)


def _finish(conn: Any, row_id: int, status: str, *, detail: str | None = None, error: str | None = None,
            outcome: dict[str, Any] | None = None, unknown: tuple[str, ...] = (), event_type: str | None = None,
            contact_id: Any = None) -> None:
    raw.execute(
        conn,
        (
            "UPDATE webhook_logs SET status = :s, status_detail = :d, error_message = :e, outcome = :o, "
            "unknown_keys = :u, processed_at = now(), next_attempt_at = NULL, claimed_by = NULL, "
            "event_type = COALESCE(:et, event_type), contact_id = COALESCE(:c, contact_id) WHERE id = :id"
        ),
        {"s": status, "d": detail, "e": error, "o": Jsonb(outcome) if outcome is not None else None,
         "u": list(unknown) or None, "et": event_type, "c": contact_id, "id": row_id},
    )


def _enrich(app_engine: Engine, row: Claimed) -> Any:
    """The payload with what the provider left out fetched (ManyChat's subscriber_id-only form)."""
    if row.source != "manychat" or not needs_manychat_fetch(row.payload):
        return row.payload
    settings = get_settings()
    box = secret_box(settings)
    integration = None
    if box is not None:
        with tenant_session(app_engine, row.tenant_id) as conn:
            integration = get_integration(conn, box, row.tenant_id, "manychat")
    return fetch_manychat_subscriber(row.payload, integration, settings)


def process_row(admin_engine: Engine, app_engine: Engine, row: Claimed, *, conn: Connection | None = None) -> str:
    """Process one claimed row; returns its final (or retry) status. ``conn``: a connection of
    ``app_engine`` to reuse (the worker holds one per batch), else one is checked out."""

    @contextmanager
    def session() -> Iterator[Connection]:
        # Not durable: the row's outcome and its status commit together, and a commit lost in a crash
        # leaves the row claimable, to be processed again (see tenant_transaction).
        if conn is None:
            with tenant_session(app_engine, row.tenant_id, durable=False) as fresh:
                yield fresh
        else:
            with tenant_transaction(conn, row.tenant_id, durable=False) as held:
                yield held

    try:
        payload = _enrich(app_engine, row)
        normalized = parse(row.source, payload, received_at=row.received_at)
    except PayloadError as exc:
        with session() as tx:
            _finish(tx, row.id, "error", error=f"unreadable {row.source} payload: {exc}")
        return "error"
    except FetchFailed as exc:
        return _retry_later(admin_engine, row, str(exc))
    try:
        with session() as tx:
            result = apply_event(tx, row.tenant_id, normalized, received_at=row.received_at)
            _finish(tx, row.id, result.status, detail=result.detail, outcome=result.as_outcome(),
                    unknown=normalized.unknown_keys, event_type=normalized.event_type, contact_id=result.contact_id)
        return result.status
    except IdentityConflict as exc:
        with session() as tx:
            _finish(tx, row.id, "error", error=str(exc), event_type=normalized.event_type)
        return "error"
    except Exception as exc:  # a failure of this attempt (database, bug): retried with backoff, then error
        return _retry_later(admin_engine, row, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _retry_later(admin_engine: Engine, row: Claimed, message: str) -> str:
    """Record a failed attempt: retried with exponential backoff, an error after MAX_ATTEMPTS."""
    message = message[:500]
    final = row.attempts >= MAX_ATTEMPTS
    delay = min(3600, 5 * 2 ** row.attempts)
    log.warning("webhook %s attempt %d failed: %s", row.id, row.attempts, message)
    with admin_session(admin_engine) as conn:
        conn.execute(
            text("UPDATE webhook_logs SET status = :s, error_message = :e, claimed_by = NULL, "
                 "next_attempt_at = CASE WHEN :final THEN NULL ELSE now() + make_interval(secs => :d) END "
                 "WHERE id = :id"),
            {"s": "error" if final else "retry", "e": message, "final": final, "d": delay, "id": row.id},
        )
    return "error" if final else "retry"


# The final status of several rows of one tenant in one statement (one JSON array of outcomes). The
# columns are those _finish writes, with the same rules (event_type and contact_id keep a known value).
# The ids are given apart as well: with only the join, the planner scans the whole inbox for them.
# processed_at is this statement's time, when all of them are done (now() is the chunk's start).
_FINISH_MANY = """
UPDATE webhook_logs AS w SET status = f.status, status_detail = f.detail, error_message = f.error,
       outcome = f.outcome, unknown_keys = f.unknown, processed_at = statement_timestamp(), next_attempt_at = NULL,
       claimed_by = NULL, event_type = COALESCE(f.event_type, w.event_type),
       contact_id = COALESCE(f.contact_id, w.contact_id)
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS f(id bigint, status text, detail text, error text,
                                                  outcome jsonb, unknown text[], event_type text, contact_id uuid)
WHERE w.id = ANY(CAST(:ids AS bigint[])) AND w.id = f.id
"""
_SWITCH_TENANT = "SELECT set_config('app.tenant_id', :t, true)"


def _parsed(app_engine: Engine, row: Claimed) -> Normalized | str | None:
    """The delivery's normalized form; a str: the error message of an unreadable payload; None: the row
    must go the one-by-one way (its payload needs a fetch from the provider, which can fail and retry)."""
    if row.source == "manychat" and needs_manychat_fetch(row.payload):
        return None
    try:
        return parse(row.source, row.payload, received_at=row.received_at)
    except PayloadError as exc:
        return f"unreadable {row.source} payload: {exc}"


def process_chunk(admin_engine: Engine, app_engine: Engine, conn: Connection, rows: Sequence[Claimed]) -> list[str]:
    """Process claimed rows in one transaction on ``conn``; returns their final (or retry) statuses, in
    the order of ``rows``. Outcomes are exactly those of ``process_row`` for each row: on any failure the
    transaction is rolled back and every row is processed by ``process_row``, one transaction each."""
    parsed = [(row, _parsed(app_engine, row)) for row in rows]
    together = [(row, n) for row, n in parsed if n is not None]
    alone = {row.id for row, n in parsed if n is None}
    statuses: dict[int, str] = {}
    if together:
        # Grouped by tenant (in id order within each): one tenant switch and one status UPDATE per tenant.
        # Deliveries of different tenants never touch the same rows, so their order does not matter.
        by_tenant: dict[Any, list[tuple[Claimed, Normalized | str]]] = {}
        for row, n in together:
            by_tenant.setdefault(row.tenant_id, []).append((row, n))
        try:
            with conn.begin():
                for i, (tenant_id, group) in enumerate(by_tenant.items()):
                    if i == 0:  # role and tenant, as tenant_transaction(durable=False) sets them
                        conn.execute(NOT_DURABLE_ENTER, {"t": str(tenant_id)})
                        raw.execute(conn, _CHUNK_LOCK_TIMEOUT, {})
                    else:
                        raw.execute(conn, _SWITCH_TENANT, {"t": str(tenant_id)})
                    # The group's funnel events are written by one INSERT after its last delivery (EventBatch).
                    events = EventBatch(tenant_id)
                    applied = [(row, n, _apply(conn, row, n, events)) for row, n in group]
                    events.flush(conn)
                    finished = [_finished(row, n, result, statuses) for row, n, result in applied]
                    raw.execute(conn, _FINISH_MANY, {"ids": [row.id for row, _ in group],
                                                     "rows": json.dumps(finished)})
        except Exception as exc:  # any failure: redo each row alone, so that only the failing one fails
            log.debug("a chunk of %d rows was rolled back (%s); processing its rows one by one",
                      len(rows), type(exc).__name__)
            statuses.clear()
            if conn.invalidated or conn.closed:
                return []  # the connection broke: the rows are claimed again after their lease
            alone = {row.id for row in rows}
    out = []
    for row in rows:
        if row.id in alone:
            if conn.invalidated or conn.closed:
                break  # the connection broke: the rest are claimed again after their lease
            statuses[row.id] = process_row(admin_engine, app_engine, row, conn=conn)
        out.append(statuses[row.id])
    return out


def _apply(conn: Connection, row: Claimed, n: Normalized | str, events: EventBatch) -> ApplyResult | None:
    """Apply one parsed delivery in the chunk's transaction (None: its payload was unreadable)."""
    if isinstance(n, str):
        return None
    return apply_event(conn, row.tenant_id, n, received_at=row.received_at, events_into=events)


def _finished(row: Claimed, n: Normalized | str, result: ApplyResult | None, statuses: dict[int, str]) -> dict[str, Any]:
    """One applied delivery's final status as _FINISH_MANY reads it."""
    if isinstance(n, str) or result is None:
        statuses[row.id] = "error"
        return {"id": row.id, "status": "error", "error": n}
    statuses[row.id] = result.status
    return {"id": row.id, "status": result.status, "detail": result.detail, "outcome": result.as_outcome(),
            "unknown": list(n.unknown_keys) or None, "event_type": n.event_type,
            "contact_id": str(result.contact_id) if result.contact_id else None}


def drain(admin_engine: Engine, app_engine: Engine, *, batch: int = 50, chunk: int = CHUNK) -> dict[str, int]:
    """Process claimable rows until none is left; returns counts per final status."""
    counts: dict[str, int] = {}
    while True:
        rows = claim_inbox_batch(admin_engine, batch)
        if not rows:
            return counts
        with app_engine.connect() as conn:  # one connection for the batch
            for start in range(0, len(rows), chunk):
                for status in process_chunk(admin_engine, app_engine, conn, rows[start:start + chunk]):
                    counts[status] = counts.get(status, 0) + 1
                if conn.invalidated or conn.closed:
                    break  # the connection broke; the rest of the batch is claimed again after its lease
        compact_counts(admin_engine)


def compact_counts(admin_engine: Engine) -> None:
    """Fold the event counts the batch's triggers recorded into event_counts (revision 0016). The reports
    read both tables, so this only keeps the deltas few; it is skipped when another worker is doing it."""
    with admin_session(admin_engine) as conn:
        compact_event_counts(conn)


class WorkerThread(threading.Thread):
    """The in-process worker of ``mcb serve``: polls the inbox (polling is what guarantees progress).

    ``nice``: how much lower than the process this thread runs in the OS scheduler (Linux schedules
    threads individually). Acknowledging a webhook is latency-bound and processing it is throughput
    work, so when the HTTP side runs in other processes, the worker yields the CPU to it under load.
    """

    def __init__(self, admin_engine: Engine, app_engine: Engine, *, poll_seconds: float = 0.2,
                 nice: int = 0) -> None:
        super().__init__(name="mcb-worker", daemon=True)
        self.admin_engine = admin_engine
        self.app_engine = app_engine
        self.poll_seconds = poll_seconds
        self.nice = nice
        self.stopping = threading.Event()
        self.processed = 0
        self.last_error: str | None = None

    def run(self) -> None:
        if self.nice:
            lower_priority(self.nice, thread=True)
        while not self.stopping.is_set():
            try:
                counts = drain(self.admin_engine, self.app_engine)
                self.processed += sum(counts.values())
                self.last_error = None
            except Exception as exc:  # the database is unreachable: keep polling, say so once per change
                message = f"{type(exc).__name__}"
                if message != self.last_error:
                    log.warning("worker cannot reach the inbox: %s", message)
                self.last_error = message
            self.stopping.wait(self.poll_seconds)

    def stop(self) -> None:
        self.stopping.set()


def lower_priority(steps: int, *, thread: bool = False) -> int:
    """Lower the scheduling priority of this process (or of the calling thread only) by ``steps``;
    returns the new nice value. Raising it back needs privileges, so this is one-way."""
    who = threading.get_native_id() if thread else 0
    current = os.getpriority(os.PRIO_PROCESS, who)
    target = min(19, current + max(0, steps))
    os.setpriority(os.PRIO_PROCESS, who, target)
    return target


def inbox_lag(engine: Engine) -> dict[str, Any]:
    with admin_session(engine) as conn:
        row = conn.execute(text(
            "SELECT count(*), min(created_at) FROM webhook_logs WHERE inbox AND status IN ('received', 'retry', "
            "'processing')"
        )).one()
    oldest = row[1]
    return {
        "pending": int(row[0]),
        "oldest_pending_seconds": round((datetime.now(UTC) - oldest).total_seconds(), 3) if oldest else 0.0,
    }


def wait_until_idle(engine: Engine, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inbox_lag(engine)["pending"] == 0:
            return True
        time.sleep(0.05)
    return False
