"""``mcb serve --processes N``: several HTTP processes on one port, over real HTTP on a real PostgreSQL.

What must hold: every webhook any process acknowledges is stored exactly once and processed by the one set of
workers in the parent; a child that dies is replaced; SIGTERM stops everything; a killed parent takes its
children down with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from mcb.tenancy import tokens as tok
from tests.test_ingest_http import MCB, PPCU, TOKENS, _configure, _free_port, manychat

STORING_PROCESSES_SQL = ("SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND application_name LIKE 'mcb inbox writer %%'")


def _children(pid: int) -> set[int]:
    """The HTTP processes of ``mcb serve`` ``pid``: its children that multiprocessing spawned."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


class Served:
    def __init__(self, head_url: str, env: dict[str, str], processes: int) -> None:
        self.db = head_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([*MCB, "serve", "--port", str(self.port), "--no-upgrade",
                                      "--processes", str(processes)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for(lambda: len(_children(self.proc.pid)) == processes, f"{processes} HTTP processes", 60)
        _wait_for(self.healthy, "an answer on /healthz", 60)

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read().decode() if self.proc.stderr else "exited") from None
            return False

    def post(self, subscriber: str) -> httpx.Response:
        # A new connection per request, so the kernel hands connections to either process.
        return httpx.post(self.url + "/webhooks/ppcu/manychat", json=manychat(subscriber, "contact_created"),
                          headers={"X-MCB-Token": TOKENS["ppcu"]}, timeout=10)

    def scalar(self, sql: str, params: tuple[object, ...] = ()) -> object:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in _children(self.proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def served(head_url: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    env = {**cli_env, "DATABASE_URL": head_url, "MCB_HOME": str(tmp_path / "home")}
    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _configure(head_url, Settings(MCB_HOME=tmp_path / "home"), pem)  # type: ignore[call-arg]
    server = Served(head_url, env, processes=2)
    yield server
    server.stop()


def test_two_processes_store_every_webhook_once_and_stop_cleanly(served: Served) -> None:
    acked: dict[str, int] = {}
    lock = threading.Lock()

    def send(thread: int) -> None:
        for i in range(25):
            subscriber = f"multi_{thread}_{i}"
            response = served.post(subscriber)
            assert response.status_code == 200, response.text
            with lock:
                acked[subscriber] = response.json()["id"]

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) == 200 and len(set(acked.values())) == 200
    # Both processes store webhooks: each opens its inbox connection (named with its pid) at its first one.
    extra = 0
    while served.scalar(STORING_PROCESSES_SQL) != 2 and extra < 2000:
        assert served.post(f"more_{extra}").status_code == 200
        extra += 1
    assert served.scalar(STORING_PROCESSES_SQL) == 2, "only one HTTP process stored webhooks"

    # Every acknowledged id is one row of the request it acknowledged, and the parent's worker processes it.
    _wait_for(lambda: served.scalar("SELECT count(*) FROM webhook_logs WHERE status IN ('received', 'processing')") == 0,
              "the worker draining the inbox", 60)
    with psycopg.connect(served.db) as conn:
        rows = conn.execute("SELECT id, payload->'subscriber'->>'id', status FROM webhook_logs "
                            "WHERE tenant_id = %s AND payload->'subscriber'->>'id' LIKE 'multi\\_%%'",
                            (PPCU,)).fetchall()
    assert sorted((sub, row_id) for row_id, sub, _ in rows) == sorted((s, i) for s, i in acked.items())
    assert {status for _, _, status in rows} == {"processed"}
    contacts = served.scalar("SELECT count(*) FROM contacts WHERE tenant_id = %s AND mc_id LIKE 'multi\\_%%'",
                             (PPCU,))
    assert contacts == 200

    # The dashboard: a session cookie issued by one process is good in every process (one session key).
    engine = make_engine(served.db)
    with admin_session(engine) as conn:
        secret = tok.create_token(conn, PPCU, "multi-process")[0]
    engine.dispose()
    login = httpx.post(served.url + "/login", data={"token": secret, "next": "/t/ppcu/"}, timeout=10)
    assert login.status_code == 303, login.text
    cookie = {"mcb_session": login.cookies["mcb_session"]}
    for _ in range(20):  # new connections: either process may answer
        assert httpx.get(served.url + "/t/ppcu/data.json", cookies=cookie, timeout=10).status_code == 200

    children = _children(served.proc.pid)
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(20) == 0
    _wait_for(lambda: not any(_alive(pid) for pid in children), "every HTTP process exiting", 10)


def test_a_dead_http_process_is_replaced_and_a_dead_parent_stops_the_rest(served: Served) -> None:
    first, second = sorted(_children(served.proc.pid))
    os.kill(first, signal.SIGKILL)
    # The other process goes on answering while the parent replaces the dead one.
    for i in range(20):
        assert served.post(f"during_{i}").status_code == 200
    _wait_for(lambda: len(_children(served.proc.pid)) == 2 and first not in _children(served.proc.pid),
              "a replacement HTTP process")
    replacement = (_children(served.proc.pid) - {second}).pop()
    assert served.post("after_replacement").status_code == 200

    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait()
    # Without the parent there are no workers: the HTTP processes stop instead of acknowledging alone.
    _wait_for(lambda: not _alive(second) and not _alive(replacement), "the orphaned HTTP processes exiting", 20)
    with pytest.raises(httpx.TransportError):
        httpx.get(served.url + "/healthz", timeout=2)
