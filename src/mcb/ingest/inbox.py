"""The durable inbox: every accepted webhook is a committed webhook_logs row before it is acknowledged.

Requests share commits: one writer task takes every row that arrived while the previous commit was in
flight and writes them with one multi-row INSERT per tenant and one COMMIT, all sent in one round trip
(pipeline mode), then resolves each request's future with its row id. A request is answered 2xx only after its row is committed; if the commit fails,
every request of that batch gets the error and is answered 503, so the sender retries and nothing
acknowledged is ever lost.

The writer runs as the runtime role with each tenant's rows inserted under that tenant's setting, so Row
Level Security checks every row it writes.

Payload and headers arrive as JSON text and are cast to ``jsonb`` by the server: a JSON body the sender
posted is stored from its own text, never decoded and encoded again in Python on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass
class InboxRow:
    """One request to store. ``payload_json`` and ``headers_json`` are JSON texts (PostgreSQL parses them
    into ``jsonb``)."""
    tenant_id: UUID
    source: str
    event_type: str | None
    payload_json: str
    headers_json: str
    future: asyncio.Future[int] | None = field(repr=False, default=None)


class InboxUnavailable(Exception):
    """The row could not be committed; the request must be answered 503."""


class InboxRefused(Exception):
    """PostgreSQL refused this row's content (e.g. a ``\\u0000`` in a JSON string, which jsonb cannot hold):
    the request must be answered 400, since retrying it can never succeed."""


class InboxWriter:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._queue: asyncio.Queue[InboxRow] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.batches = 0
        self.rows = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mcb-inbox-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def store(self, row: InboxRow) -> int:
        """Queue the row and wait until it is committed; returns its webhook_logs id."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        row.future = future
        self._queue.put_nowait(row)  # the queue is unbounded: no await, no extra task switch
        return await future

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            # Named per process, so pg_stat_activity shows which `mcb serve` processes hold inbox connections.
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=False, application_name=f"mcb inbox writer {os.getpid()}")
        return self._conn

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[InboxRow]) -> None:
        try:
            ids = await self._write(batch)
        except psycopg.DataError as exc:
            # One request's content was refused, and with it the whole batch: commit the others one by
            # one, so a single bad body is a 400 for its sender instead of a 503 for everyone.
            if len(batch) == 1:
                log.info("inbox refused a row: %s", type(exc).__name__)
                self._resolve(batch[0], InboxRefused(type(exc).__name__))
                return
            for row in batch:
                await self._commit([row])
            return
        except Exception as exc:  # the database is down or refused the batch: every request gets 503
            log.warning("inbox commit of %d row(s) failed: %s", len(batch), type(exc).__name__)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
            self._conn = None
            for row in batch:
                self._resolve(row, InboxUnavailable(type(exc).__name__))
            return
        self.batches += 1
        self.rows += len(batch)
        for row, row_id in zip(batch, ids, strict=True):
            self._resolve(row, row_id)

    @staticmethod
    def _resolve(row: InboxRow, outcome: int | Exception) -> None:
        if row.future is None or row.future.done():
            return
        if isinstance(outcome, Exception):
            row.future.set_exception(outcome)
        else:
            row.future.set_result(outcome)

    async def _write(self, batch: list[InboxRow]) -> list[int]:
        conn = await self._connection()
        by_tenant: dict[UUID, list[int]] = {}
        for i, row in enumerate(batch):
            by_tenant.setdefault(row.tenant_id, []).append(i)
        inserted: list[tuple[list[int], psycopg.AsyncCursor[Any]]] = []
        # Pipeline mode: BEGIN, the role, each tenant's setting and INSERT, and COMMIT go out together and
        # the answers are read at the end, one round trip for the batch instead of one per statement (on a
        # busy machine each round trip waited for this process and then the server to be scheduled).
        async with conn.pipeline(), conn.transaction():
            await conn.execute("SET LOCAL ROLE mcb_app")
            for tenant_id, members in by_tenant.items():
                await conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id),))
                values = ", ".join(["(%s, %s, %s, %s::jsonb, %s::jsonb, 'received', true)"] * len(members))
                params: list[Any] = []
                for i in members:
                    r = batch[i]
                    params += [r.tenant_id, r.source, r.event_type, r.payload_json, r.headers_json]
                cur = await conn.execute(
                    "INSERT INTO webhook_logs (tenant_id, source, event_type, payload, headers, status, inbox) "
                    f"VALUES {values} RETURNING id",
                    params,
                )
                inserted.append((members, cur))
        ids: dict[int, int] = {}
        for members, cur in inserted:
            returned = [r[0] for r in await cur.fetchall()]
            for i, row_id in zip(members, returned, strict=True):
                ids[i] = row_id
        return [ids[i] for i in range(len(batch))]
