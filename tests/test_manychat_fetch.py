"""ManyChat's subscriber_id-only webhooks: the worker fetches the subscriber from a local server that
speaks ManyChat's getInfo protocol, with a timeout, and retries when ManyChat fails."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from mcb.tenancy.integrations import set_integration
from mcb.tenancy.secrets import secret_box

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
API_KEY = "mc-api-key-0123456789abcdef0123"


class FakeManyChat:
    """GET /fb/subscriber/getInfo?subscriber_id=… with Bearer auth, as ManyChat's API answers it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"
        app = FastAPI()

        @app.get("/fb/subscriber/getInfo")
        async def get_info(request: Request, subscriber_id: str) -> JSONResponse:
            self.requests.append({"id": subscriber_id, "auth": request.headers.get("authorization")})
            if self.mode == "down":
                return JSONResponse({"status": "error"}, status_code=502)
            if self.mode == "slow":
                import asyncio

                await asyncio.sleep(7)
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                return JSONResponse({"status": "error", "message": "Unauthorized"}, status_code=401)
            return JSONResponse({"status": "success", "data": {
                "id": subscriber_id, "first_name": "Fetched", "last_name": "Person", "email": "fetched@example.com",
                "custom_fields": {"Symptoms": "Back pain", "DATE_DM_QUALIFIED": "2025-11-02T09:00:00Z"}}})

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeManyChat:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def fake() -> Iterator[FakeManyChat]:
    with FakeManyChat() as server:
        yield server


def _setup(url: str, home: Path, api_key: str) -> None:
    engine = make_engine(url)
    box = secret_box(Settings(MCB_HOME=home), create=True)  # type: ignore[call-arg]
    assert box is not None
    with admin_session(engine) as conn:
        set_integration(conn, box, PPCU, "manychat", {"api_key": api_key, "webhook_secret": "t" * 32})
    engine.dispose()


def _store(url: str, payload: Any) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO webhook_logs (tenant_id, source, payload, status, inbox) "
                           "VALUES (%s, 'manychat', %s, 'received', true) RETURNING id", (PPCU, Jsonb(payload))).fetchone()
        assert row is not None
        return int(row[0])


def _work(url: str, env: dict[str, str], fake: FakeManyChat) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCB, "worker", "--once"], env={**env, "DATABASE_URL": url,
                          "MCB_MANYCHAT_API_URL": f"http://127.0.0.1:{fake.port}"},
                          capture_output=True, text=True, timeout=120)


def _row(url: str, row_id: int) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status, error_message FROM webhook_logs WHERE id = %s", (row_id,)).fetchone()
        assert row is not None
        return tuple(row)


def test_subscriber_is_fetched_then_applied(head_url: str, cli_env: dict[str, str], fake: FakeManyChat) -> None:
    _setup(head_url, Path(cli_env["MCB_HOME"]), API_KEY)
    row_id = _store(head_url, {"subscriber_id": "777", "event_type": "dm_qualified"})
    done = _work(head_url, cli_env, fake)
    assert done.returncode == 0, done.stderr
    assert _row(head_url, row_id) == ("processed", None)
    assert fake.requests == [{"id": "777", "auth": f"Bearer {API_KEY}"}]
    with psycopg.connect(head_url) as conn:
        contact = conn.execute("SELECT first_name, email_primary, stage FROM contacts WHERE mc_id = '777'").fetchall()
        event = conn.execute("SELECT event_timestamp::text, event_data->>'symptoms' FROM funnel_events "
                             "WHERE source_event_id = 'mc_777_dm_qualified'").fetchall()
    assert contact == [("Fetched", "fetched@example.com", "dm_qualified")]
    assert event == [("2025-11-02 09:00:00+00", "Back pain")]


def test_manychat_down_is_retried_and_a_refused_key_is_an_error(
    head_url: str, cli_env: dict[str, str], fake: FakeManyChat
) -> None:
    _setup(head_url, Path(cli_env["MCB_HOME"]), API_KEY)
    down = _store(head_url, {"subscriber_id": "801", "event_type": "link_sent"})
    fake.mode = "down"
    _work(head_url, cli_env, fake)
    assert _row(head_url, down) == ("retry", "ManyChat getInfo answered HTTP 502")

    _setup(head_url, Path(cli_env["MCB_HOME"]), "a-wrong-key-0123456789")
    fake.mode = "ok"
    refused = _store(head_url, {"subscriber_id": "802", "event_type": "link_sent"})
    _work(head_url, cli_env, fake)
    status, message = _row(head_url, refused)
    assert status == "error" and "ManyChat refused the tenant's api_key (HTTP 401)" in message
    assert "a-wrong-key" not in message


def test_a_slow_manychat_times_out_and_is_retried(head_url: str, cli_env: dict[str, str], fake: FakeManyChat) -> None:
    _setup(head_url, Path(cli_env["MCB_HOME"]), API_KEY)
    fake.mode = "slow"
    row_id = _store(head_url, {"subscriber_id": "901", "event_type": "link_clicked"})
    _work(head_url, cli_env, fake)
    assert _row(head_url, row_id) == ("retry", "ManyChat getInfo failed: ReadTimeout")
