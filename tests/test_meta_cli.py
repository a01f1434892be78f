"""``mcb meta`` and what ``mcb tenants show`` says about Meta syncs, run as the operator runs them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import Engine

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from mcb.meta.client import GraphClient, RetryPolicy
from mcb.meta.creative import PPCU_KEYWORDS, copy_length, keyword_lists, parse_keyword_lists
from mcb.meta.schedule import MetaSyncScheduler, next_run
from mcb.tenancy.integrations import set_integration
from mcb.tenancy.secrets import secret_box
from tests.fake_graph import FakeAccount, FakeGraph, generated_ad

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
TOKEN = "EAAtest-cli-token-000000000000000000"


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        account = server.add(FakeAccount("555", TOKEN, [generated_ad("555", 1), generated_ad("555", 2, status="PAUSED")]))
        account.insights = {("555000001", date(2025, 11, 3)): {"spend": "4.20", "impressions": "42", "clicks": "2",
                                                              "reach": "40"}}
        yield server


def _store(url: str, home: Path, tenant: UUID, values: dict[str, str]) -> None:
    engine = make_engine(url)
    box = secret_box(Settings(MCB_HOME=home), create=True)  # type: ignore[call-arg]
    assert box is not None
    with admin_session(engine) as conn:
        set_integration(conn, box, tenant, "meta", values)
    engine.dispose()


def _mcb(url: str, env: dict[str, str], fake: FakeGraph, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MCB, *args], env={**env, "DATABASE_URL": url, "MCB_META_GRAPH_URL": fake.url},
                          capture_output=True, text=True, timeout=120)


def test_sync_prints_a_summary_and_tenants_show_lists_the_run(
    head_url: str, cli_env: dict[str, str], fake: FakeGraph
) -> None:
    _store(head_url, Path(cli_env["MCB_HOME"]), PPCU, {"access_token": TOKEN, "ad_account_id": "act_555"})
    done = _mcb(head_url, cli_env, fake, "meta", "sync", "--tenant", "ppcu", "--since", "2025-11-03",
                "--until", "2025-11-04", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failed"] == []
    [summary] = result["synced"]
    assert {k: summary[k] for k in ("tenant", "since", "until", "ads", "active_ads", "creatives", "insight_rows",
                                    "api_calls", "status")} == {
        "tenant": "ppcu", "since": "2025-11-03", "until": "2025-11-04", "ads": 2, "active_ads": 1, "creatives": 2,
        "insight_rows": 1, "api_calls": 2, "status": "succeeded"}

    table = _mcb(head_url, cli_env, fake, "meta", "sync", "--tenant", "ppcu", "--since", "2025-11-03",
                 "--until", "2025-11-04")
    assert table.returncode == 0, table.stderr
    assert "ppcu: ads and creatives" in table.stdout and "ppcu: daily insights 2025-11-03 to 2025-11-04" in table.stdout
    assert "Meta sync" in table.stdout and "2025-11-03 to 2025-11-04" in table.stdout

    shown = _mcb(head_url, cli_env, fake, "tenants", "show", "ppcu")
    assert shown.returncode == 0, shown.stderr
    assert "Recent Meta syncs" in shown.stdout and "succeeded" in shown.stdout
    assert TOKEN not in shown.stdout
    as_json = json.loads(_mcb(head_url, cli_env, fake, "tenants", "show", "ppcu", "--json").stdout)
    assert [(r["status"], r["trigger"], r["insight_rows"]) for r in as_json["meta_sync_runs"]] == [
        ("succeeded", "cli", 1), ("succeeded", "cli", 1)]
    runs = json.loads(_mcb(head_url, cli_env, fake, "meta", "runs", "ppcu", "--json").stdout)
    assert [(r["status"], r["ads"], r["api_calls"]) for r in runs] == [("succeeded", 2, 2), ("succeeded", 2, 2)]


def test_an_expired_token_is_one_sentence_and_flagged_by_tenants_show(
    head_url: str, cli_env: dict[str, str], fake: FakeGraph
) -> None:
    _store(head_url, Path(cli_env["MCB_HOME"]), PPCU, {"access_token": TOKEN, "ad_account_id": "555"})
    fake.expired.add(TOKEN)
    done = _mcb(head_url, cli_env, fake, "meta", "sync", "--tenant", "ppcu", "--since", "2025-11-03")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr + done.stdout
    assert " ".join(done.stderr.split()) == (
        "Error: Meta refused tenant ppcu's access token (expired or revoked, code 190): generate a new system-user "
        "token in Business Manager and store it with `mcb integrations set ppcu meta access_token=...`.")
    shown = _mcb(head_url, cli_env, fake, "tenants", "show", "ppcu")
    assert "warning: the Meta access token was refused at" in shown.stdout
    assert "store a new one with `mcb integrations set ppcu meta access_token=...`" in shown.stdout
    warnings = json.loads(_mcb(head_url, cli_env, fake, "tenants", "show", "ppcu", "--json").stdout)["warnings"]
    assert any("Meta access token was refused" in w for w in warnings)

    # A new token clears the flag with the next successful sync.
    fake.expired.clear()
    assert _mcb(head_url, cli_env, fake, "meta", "sync", "--tenant", "ppcu", "--since", "2025-11-03",
                "--until", "2025-11-03").returncode == 0
    assert "Meta access token was refused" not in _mcb(head_url, cli_env, fake, "tenants", "show", "ppcu").stdout


def test_all_tenants_syncs_each_and_reports_failures_with_exit_1(
    head_url: str, cli_env: dict[str, str], fake: FakeGraph
) -> None:
    home = Path(cli_env["MCB_HOME"])
    _store(head_url, home, PPCU, {"access_token": TOKEN, "ad_account_id": "act_555"})
    _store(head_url, home, CENTNER, {"access_token": "EAAtest-unknown-token-999999999", "ad_account_id": "act_666"})
    done = _mcb(head_url, cli_env, fake, "meta", "sync", "--all-tenants", "--json")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert [s["tenant"] for s in result["synced"]] == ["ppcu"]
    assert [f["tenant"] for f in result["failed"]] == ["centner"]
    assert result["failed"][0]["error"].startswith("Meta refused tenant centner's access token")
    with psycopg.connect(head_url) as conn:
        runs = conn.execute("SELECT t.slug, r.status, r.error_kind FROM sync_runs r JOIN tenants t ON t.id = r.tenant_id "
                            "ORDER BY t.slug").fetchall()
    assert runs == [("centner", "failed", "token_expired"), ("ppcu", "succeeded", None)]


@pytest.mark.parametrize(("args", "message"), [
    ((), "Give either --tenant SLUG or --all-tenants."),
    (("--tenant", "ppcu", "--all-tenants"), "Give either --tenant SLUG or --all-tenants."),
    (("--all-tenants", "--since", "2025-11-01"), "--since and --until apply to one tenant; use them with --tenant."),
    (("--tenant", "ppcu", "--since", "11/03/2025"), "--since '11/03/2025' is not a date; write YYYY-MM-DD."),
    (("--tenant", "ppcu", "--since", "2025-11-05", "--until", "2025-11-04"),
     "--since 2025-11-05 is after --until 2025-11-04."),
    (("--tenant", "nosuch"), "No tenant 'nosuch'; `mcb tenants list` shows the tenants."),
    (("--tenant", "centner"), "Tenant centner has no meta integration; store its Ads credentials with "
                              "`mcb integrations set centner meta access_token=... ad_account_id=...`."),
])
def test_bad_input_is_one_sentence(
    head_url: str, cli_env: dict[str, str], fake: FakeGraph, args: tuple[str, ...], message: str
) -> None:
    _store(head_url, Path(cli_env["MCB_HOME"]), PPCU, {"access_token": TOKEN, "ad_account_id": "act_555"})
    done = _mcb(head_url, cli_env, fake, "meta", "sync", *args)
    assert done.returncode == 1
    assert " ".join(done.stderr.split()) == f"Error: {message}"
    assert fake.calls() == []


def test_keyword_lists_per_tenant(head_url: str, cli_env: dict[str, str], fake: FakeGraph, tmp_path: Path) -> None:
    lists = tmp_path / "keywords.json"
    lists.write_text(json.dumps({"themes": [{"name": "glow_up", "keywords": ["Glow"]}],
                                 "symptoms": [{"name": "stress", "keywords": ["stress", "anxious"]}]}))
    stored = _mcb(head_url, cli_env, fake, "meta", "keywords", "set", "centner", str(lists))
    assert stored.returncode == 0, stored.stderr
    shown = _mcb(head_url, cli_env, fake, "meta", "keywords", "show", "centner")
    assert "Keyword lists of centner (tenants.config):" in shown.stdout
    with psycopg.connect(head_url) as conn:
        config = conn.execute("SELECT config->'meta_keywords' FROM tenants WHERE id = %s", (CENTNER,)).fetchone()
    assert config == ({"themes": [{"name": "glow_up", "keywords": ["glow"]}],
                       "symptoms": [{"name": "stress", "keywords": ["stress", "anxious"]}]},)

    _store(head_url, Path(cli_env["MCB_HOME"]), CENTNER, {"access_token": TOKEN, "ad_account_id": "act_555"})
    fake.accounts["555"].ads[0]["creative"]["object_story_spec"]["link_data"]["message"] = "Glow again, less stress"
    assert _mcb(head_url, cli_env, fake, "meta", "sync", "--tenant", "centner", "--since", "2025-11-03",
                "--until", "2025-11-03").returncode == 0
    with psycopg.connect(head_url) as conn:
        derived = conn.execute("SELECT ad_id, transformation_theme, symptom_focus FROM meta_ad_creatives "
                               "WHERE tenant_id = %s ORDER BY ad_id", (CENTNER,)).fetchall()
    assert derived == [("555000001", "glow_up", ["stress"]), ("555000002", "general", ["general"])]

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"themes": [{"name": "x"}]}))
    refused = _mcb(head_url, cli_env, fake, "meta", "keywords", "set", "centner", str(bad))
    assert refused.returncode == 1 and "needs a non-empty \"name\" and a \"keywords\" list" in refused.stderr
    reset = _mcb(head_url, cli_env, fake, "meta", "keywords", "set", "centner", "--reset")
    assert reset.returncode == 0
    assert "none: every creative is 'general'" in _mcb(head_url, cli_env, fake, "meta", "keywords", "show",
                                                       "centner").stdout
    assert "PPCU's defaults" in _mcb(head_url, cli_env, fake, "meta", "keywords", "show", "ppcu").stdout


def test_derived_field_rules() -> None:
    assert [copy_length("x" * n) for n in (0, 149, 150, 399, 400)] == ["short", "short", "medium", "medium", "long"]
    assert keyword_lists("ppcu", {}) is PPCU_KEYWORDS
    assert keyword_lists("centner", {}).themes == ()
    custom = keyword_lists("ppcu", {"meta_keywords": {"themes": [], "symptoms": []}})
    assert custom.themes == () and custom.symptoms == ()
    with pytest.raises(Exception, match="unknown key"):
        parse_keyword_lists({"topics": []})


def test_next_run_is_the_next_occurrence_of_the_time_of_day() -> None:
    at = time(6, 0, tzinfo=UTC)
    assert next_run(datetime(2025, 11, 3, 5, 59, tzinfo=UTC), at) == datetime(2025, 11, 3, 6, 0, tzinfo=UTC)
    assert next_run(datetime(2025, 11, 3, 6, 0, tzinfo=UTC), at) == datetime(2025, 11, 4, 6, 0, tzinfo=UTC)
    assert next_run(datetime(2025, 11, 3, 23, 0, tzinfo=UTC), at) == datetime(2025, 11, 4, 6, 0, tzinfo=UTC)


def test_the_scheduler_pass_syncs_each_tenant_with_meta(head_url: str, tmp_path: Path, fake: FakeGraph) -> None:
    settings = Settings(MCB_HOME=tmp_path / "home", MCB_META_GRAPH_URL=fake.url)  # type: ignore[call-arg]
    _store(head_url, tmp_path / "home", PPCU, {"access_token": TOKEN, "ad_account_id": "act_555"})
    admin: Engine = make_engine(head_url)
    app: Engine = make_engine(head_url, admin=False)
    try:
        def fast(base_url: str, version: str, token: str) -> GraphClient:
            return GraphClient(base_url=base_url, version=version, access_token=token, sleep=lambda s: None,
                               retry=RetryPolicy(attempts=2, initial=0.01, max_wait=0.01, throttle_wait=0.01))
        scheduler = MetaSyncScheduler(admin, app, settings, at=time(6, 0, tzinfo=UTC), client_factory=fast)
        scheduler.run_once()
        assert scheduler.passes == 1
    finally:
        admin.dispose()
        app.dispose()
    with psycopg.connect(head_url) as conn:
        runs = conn.execute("SELECT t.slug, r.trigger, r.status FROM sync_runs r JOIN tenants t ON t.id = r.tenant_id"
                            ).fetchall()
    assert runs == [("ppcu", "schedule", "succeeded")]


def test_serve_schedule_starts_the_daily_sync_and_refuses_a_bad_time(
    head_url: str, cli_env: dict[str, str], fake: FakeGraph
) -> None:
    _store(head_url, Path(cli_env["MCB_HOME"]), PPCU, {"access_token": TOKEN, "ad_account_id": "act_555"})
    bad = _mcb(head_url, cli_env, fake, "serve", "--no-upgrade", "--schedule", "--sync-at", "25:00")
    assert bad.returncode == 1
    assert " ".join(bad.stderr.split()) == "Error: '25:00' is not a time of day; write HH:MM in UTC, for example 06:00."

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*MCB, "serve", "--no-upgrade", "--port", str(port), "--workers", "0", "--schedule", "--sync-at", "04:30"],
        env={**cli_env, "DATABASE_URL": head_url, "MCB_META_GRAPH_URL": fake.url, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchdog = threading.Timer(90, proc.kill)  # never wait forever for a line that does not come
    watchdog.start()
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Meta Ads sync daily" in line:
                break
        assert "Meta Ads sync daily at 04:30 UTC (tenants with a meta integration: ppcu)" in "".join(lines)
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=30)
    assert fake.calls() == []  # nothing is synced before the time of day comes
