"""The worker's own mechanics: a claimed batch on one connection, non-durable commits that stay local to
the worker's transactions, and the worker thread's lower scheduling priority."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, text

from mcb.db.engine import make_engine
from mcb.db.session import tenant_transaction
from mcb.ingest.worker import WorkerThread, drain

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")


@pytest.fixture
def engines(head_url: str) -> Iterator[tuple[Engine, Engine]]:
    admin, app = make_engine(head_url), make_engine(head_url, admin=False)
    yield admin, app
    admin.dispose()
    app.dispose()


def store(url: str, source: str, payload: Any) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO webhook_logs (tenant_id, source, payload, headers, status, inbox) "
            "VALUES (%s, %s, %s, '{}', 'received', true) RETURNING id", (PPCU, source, Jsonb(payload))).fetchone()
        assert row is not None
        return int(row[0])


def manychat(sub: str, event: str = "contact_created") -> dict[str, Any]:
    return {"subscriber": {"id": sub, "first_name": "Ann", "email": f"{sub}@example.com", "custom_fields": {}},
            "event_type": event}


def statuses(url: str, ids: list[int]) -> list[str]:
    with psycopg.connect(url) as conn:
        found = dict(conn.execute("SELECT id, status FROM webhook_logs WHERE id = ANY(%s)", (ids,)).fetchall())
    return [found[i] for i in ids]


def test_one_batch_on_one_connection_survives_a_failed_row(head_url: str, engines: tuple[Engine, Engine]) -> None:
    ids = [store(head_url, "manychat", manychat("w1")),
           store(head_url, "manychat", {"nothing": "here"}),  # unreadable: its transaction ends in error
           store(head_url, "manychat", manychat("w2")),
           store(head_url, "manychat", manychat("w1", "dm_qualified"))]
    counts = drain(*engines)
    assert counts == {"processed": 3, "error": 1}
    assert statuses(head_url, ids) == ["processed", "error", "processed", "processed"]
    with psycopg.connect(head_url) as conn:
        contacts = conn.execute("SELECT mc_id, stage FROM contacts WHERE mc_id IN ('w1', 'w2') ORDER BY mc_id").fetchall()
        pending = conn.execute("SELECT count(*) FROM webhook_logs WHERE inbox AND status IN "
                               "('received', 'processing', 'retry')").fetchone()
        # The batch's event counts were folded into event_counts (revision 0016): two leads, one qualified.
        deltas = conn.execute("SELECT count(*) FROM event_count_deltas").fetchone()
        counted = dict(conn.execute("SELECT kind, sum(n)::int FROM event_counts GROUP BY 1").fetchall())
    assert contacts == [("w1", "dm_qualified"), ("w2", "new_lead")]
    assert pending == (0,)
    assert deltas == (0,) and counted == {"lead": 2, "dm_qualified": 1}


def test_non_durable_commits_are_local_to_the_worker_transaction(engines: tuple[Engine, Engine]) -> None:
    _, app = engines
    with app.connect() as conn:
        # A stricter setting than on (as with synchronous replicas): durable transactions keep it.
        conn.execute(text("SET synchronous_commit = remote_apply"))
        conn.commit()
        with tenant_transaction(conn, PPCU, durable=False) as tx:
            assert tx.execute(text("SELECT current_setting('synchronous_commit'), current_user, "
                                   "current_setting('app.tenant_id')")).one() == ("off", "mcb_app", str(PPCU))
        with conn.begin():  # the next transaction on the same connection is back to the session's setting
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "remote_apply"
            assert conn.execute(text("SELECT current_user")).scalar() != "mcb_app"
        with tenant_transaction(conn, PPCU) as tx:
            assert tx.execute(text("SHOW synchronous_commit")).scalar() == "remote_apply"
        conn.execute(text("RESET synchronous_commit"))
        conn.commit()


def test_worker_thread_runs_below_the_process_and_still_processes(
        head_url: str, engines: tuple[Engine, Engine]) -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    row = store(head_url, "manychat", manychat("nice1"))
    thread = WorkerThread(*engines, poll_seconds=0.05, nice=3)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while statuses(head_url, [row]) != ["processed"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(head_url, [row]) == ["processed"]
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, base + 3)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the process (the HTTP side) is untouched
    finally:
        thread.stop()
        thread.join(timeout=10)
