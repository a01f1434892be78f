"""``mcb report weekly --send [--test]`` through a real SMTP server on localhost (aiosmtpd)."""

from __future__ import annotations

import csv
import email
import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from tests.analytics_data import CENTNER
from tests.test_metrics import build_history

MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def url(pg: Any, head_template: str) -> Iterator[str]:
    with pg.database(template=head_template) as db_url:
        engine = make_engine(db_url)
        with admin_session(engine) as conn:
            conn.execute(text(
                "UPDATE tenants SET report_email = 'fallback@centner.example', config = config || "
                "'{\"timezone\": \"America/New_York\", \"historical_filter\": true}'::jsonb WHERE slug = 'centner'"))
        build_history(engine, CENTNER)
        engine.dispose()
        yield db_url


def send(env: dict[str, str], url: str, port: int, *args: str, smtp_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**env, "DATABASE_URL": url, "MCB_SMTP_URL": smtp_url or f"smtp://127.0.0.1:{port}",
           "MCB_OPERATOR_EMAIL": "ops@mcb.example", "MCB_REPORT_FROM": "reports@mcb.example"}
    return subprocess.run([*MCB, "report", "weekly", "--tenant", "centner", "--week", "2025-W45", "--send", *args],
                          env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def sent_rows(url: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    with admin_session(engine) as conn:
        rows = conn.execute(text("SELECT t.slug, r.week_ending::text, r.sent_to, r.subject, r.report_html IS NOT NULL "
                                 "FROM reports_sent r JOIN tenants t ON t.id = r.tenant_id ORDER BY r.id")).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_send_goes_to_the_recipients_with_html_and_csv(url: str, cli_env: dict[str, str], smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    # No report_recipients: the fallback report_email gets it.
    done = send(cli_env, url, port)
    assert done.returncode == 0, done.stderr
    [(rcpt, message)] = inbox.messages
    assert rcpt == ["fallback@centner.example"]
    assert message["Subject"] == "Centner Wellness weekly report: Mon Nov 3 – Sun Nov 9, 2025"
    assert message["From"] == "reports@mcb.example"
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    assert "$5,473.00" in html and "$7,997.00" in html  # cash collected, projected revenue
    assert "Ad one" in html  # the top ad
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "CENTNER_Weekly_Data_2025-11-03_to_2025-11-09.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert len(rows) == 7  # A, B, D, E, F, G, I (see tests/test_reports.py)
    assert sent_rows(url)[-1] == ("centner", "2025-11-09", ["fallback@centner.example"], message["Subject"], True)

    # With a recipient list in the tenant's config, the list wins over report_email.
    engine = make_engine(url)
    with admin_session(engine) as conn:
        conn.execute(text("UPDATE tenants SET config = config || "
                          "'{\"report_recipients\": [\"a@centner.example\", \"b@centner.example\"]}'::jsonb "
                          "WHERE slug = 'centner'"))
    engine.dispose()
    assert send(cli_env, url, port).returncode == 0
    assert inbox.messages[-1][0] == ["a@centner.example", "b@centner.example"]


def test_test_mode_sends_only_to_the_operator(url: str, cli_env: dict[str, str], smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    done = send(cli_env, url, port, "--test")
    assert done.returncode == 0, done.stderr
    [(rcpt, message)] = inbox.messages
    assert rcpt == ["ops@mcb.example"]
    assert message["To"] == "ops@mcb.example"
    assert message["Subject"].startswith("[TEST] Centner Wellness weekly report")


def test_delivery_failures_are_one_sentence_without_secrets(url: str, cli_env: dict[str, str],
                                                            smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    # The local server offers no TLS: MCB refuses to send the password in the clear.
    done = send(cli_env, url, port, smtp_url=f"smtp://mailer:s3cr3t-test-pw@127.0.0.1:{port}")
    assert done.returncode == 1 and "offers no TLS" in done.stderr
    assert "s3cr3t-test-pw" not in done.stderr + done.stdout
    closed = free_port()
    done = send(cli_env, url, port, smtp_url=f"smtp://mailer:s3cr3t-test-pw@127.0.0.1:{closed}")
    assert done.returncode == 1 and f"Could not send the report through 127.0.0.1:{closed}" in done.stderr
    assert "s3cr3t-test-pw" not in done.stderr and "Traceback" not in done.stderr
    bad = send(cli_env, url, port, smtp_url="http://example.com")
    assert bad.returncode == 1 and "MCB_SMTP_URL must look like" in bad.stderr
    assert inbox.messages == []
