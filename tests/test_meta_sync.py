"""The Meta Ads sync against a local fake Graph API (tests/fake_graph.py) and a real PostgreSQL.

Expected rows are written out by hand from the fake's data; the sync writes through tenant sessions
(mcb_app under RLS), and the tests read back with plain SQL as the owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import Engine

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from mcb.meta.client import GraphClient, RetryPolicy, UsageBudget
from mcb.meta.sync import MetaSyncFailed, MetaTokenExpired, sync_all_tenants, sync_tenant
from mcb.tenancy.integrations import set_integration
from mcb.tenancy.secrets import secret_box
from tests.fake_graph import FakeAccount, FakeGraph, error_body, generated_ad

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
PPCU_TOKEN = "EAAtest-ppcu-token-0000000000000000"
CENTNER_TOKEN = "EAAtest-centner-token-11111111111111"
D1, D2, D3 = date(2025, 11, 3), date(2025, 11, 4), date(2025, 11, 5)


@pytest.fixture
def fake() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


@pytest.fixture
def env(head_url: str, tmp_path: Path, fake: FakeGraph) -> Iterator[tuple[Engine, Engine, Settings]]:
    settings = Settings(MCB_HOME=tmp_path / "home", MCB_META_GRAPH_URL=fake.url)  # type: ignore[call-arg]
    admin = make_engine(head_url)
    app = make_engine(head_url, admin=False)
    yield admin, app, settings
    admin.dispose()
    app.dispose()


def connect(admin: Engine, settings: Settings, tenant: UUID, token: str, account: str) -> None:
    box = secret_box(settings, create=True)
    assert box is not None
    with admin_session(admin) as conn:
        set_integration(conn, box, tenant, "meta", {"access_token": token, "ad_account_id": account})


class Sleeps:
    """Stands in for time.sleep: records every wait the client asks for, waits for none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fast_client(sleeps: Sleeps, **budget: Any) -> Any:
    def factory(base_url: str, version: str, token: str) -> GraphClient:
        return GraphClient(base_url=base_url, version=version, access_token=token, sleep=sleeps, poll_interval=0.5,
                           retry=RetryPolicy(attempts=4, initial=0.25, max_wait=2.0, throttle_wait=30.0),
                           budget=UsageBudget(**budget))
    return factory


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def insight(spend: str, impressions: int, clicks: int, reach: int, link: int, lpv: int, leads: int) -> dict[str, Any]:
    return {"spend": spend, "impressions": str(impressions), "clicks": str(clicks), "reach": str(reach),
            "actions": [{"action_type": "link_click", "value": str(link)},
                        {"action_type": "landing_page_view", "value": str(lpv)},
                        {"action_type": "lead", "value": str(leads)},
                        {"action_type": "post_engagement", "value": "99"}]}


def small_account() -> FakeAccount:
    active = generated_ad("111", 1, video=True)
    active["creative"]["object_story_spec"]["video_data"]["message"] = (
        "Feeling overwhelmed by pelvic floor leaks after your c-section? You are not alone.")
    paused = generated_ad("111", 2, status="PAUSED")
    deleted = generated_ad("111", 3, status="DELETED")
    deleted["creative"] = {"id": "cr3", "name": "Creative 3", "body": "Back pain " + "x" * 160,
                           "asset_feed_spec": {"bodies": [{"text": "Back pain " + "x" * 160}, {"text": "Variant B"},
                                                          {"text": "Variant C"}]}}
    account = FakeAccount("111", PPCU_TOKEN, [active, paused, deleted])
    account.insights = {
        ("111000001", D1): insight("12.34", 1000, 25, 800, 20, 15, 3),
        ("111000001", D2): insight("10.00", 900, 20, 700, 18, 12, 2),
        ("111000002", D1): insight("5.50", 300, 4, 250, 3, 2, 0),
        ("111000003", D1): {"spend": "1.01", "impressions": "50", "clicks": "1", "reach": "40"},
    }
    return account


def test_first_sync_stores_every_ad_its_creative_and_daily_rows(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    sleeps = Sleeps()
    summary = sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))

    assert (summary.ads, summary.active_ads, summary.creatives, summary.insight_rows) == (3, 1, 3, 4)
    assert summary.api_calls == 2 and sleeps.waits == []  # one page of ads, one of insights
    assert rows(head_url, "SELECT ad_id, ad_name, effective_status, is_active, campaign_id, campaign_name, adset_id, "
                "adset_name FROM meta_ads WHERE tenant_id = %s ORDER BY ad_id", PPCU) == [
        ("111000001", "Ad 1", "ACTIVE", True, "c1111", "Campaign 1", "s1111", "Ad set 1"),
        ("111000002", "Ad 2", "PAUSED", False, "c1112", "Campaign 2", "s1112", "Ad set 2"),
        ("111000003", "Ad 3", "DELETED", False, "c1113", "Campaign 3", "s1113", "Ad set 3"),
    ]
    assert rows(head_url, "SELECT ad_id, primary_text, headline, alternative_copy, video_id, thumbnail_url, "
                "preview_url, post_id, transformation_theme, symptom_focus, copy_length, media_type "
                "FROM meta_ad_creatives WHERE tenant_id = %s ORDER BY ad_id", PPCU) == [
        ("111000001", "Feeling overwhelmed by pelvic floor leaks after your c-section? You are not alone.",
         "Video headline 1", None, "v111000001", "https://thumb/1.jpg", "https://fb.me/preview111000001",
         "111_111000001", "overwhelm_to_relief", ["pelvic_floor", "c_section"], "short", "video"),
        ("111000002", "Ad 2 copy", "Headline 2", None, None, "https://thumb/2.jpg", "https://fb.me/preview111000002",
         "111_111000002", "general", ["general"], "short", "image"),
        ("111000003", "Back pain " + "x" * 160, "Creative 3", "Variant B ||| Variant C", None, None,
         "https://fb.me/preview111000003", None, "pain_to_comfort", ["pain", "back_pain"], "medium", "image"),
    ]
    assert rows(head_url, "SELECT ad_id, snapshot_date, spend, impressions, clicks, reach, link_clicks, "
                "landing_page_views, leads FROM meta_ad_insights WHERE tenant_id = %s ORDER BY ad_id, snapshot_date",
                PPCU) == [
        ("111000001", D1, Decimal("12.34"), 1000, 25, 800, 20, 15, 3),
        ("111000001", D2, Decimal("10.00"), 900, 20, 700, 18, 12, 2),
        ("111000002", D1, Decimal("5.50"), 300, 4, 250, 3, 2, 0),
        ("111000003", D1, Decimal("1.01"), 50, 1, 40, None, None, None),
    ]
    # Spend for the window is a plain sum of daily rows: 12.34 + 10.00 + 5.50 + 1.01.
    assert rows(head_url, "SELECT sum(spend) FROM meta_ad_insights WHERE tenant_id = %s", PPCU) == [(Decimal("28.85"),)]
    ads_call, insights_call = fake.calls("ads")[0], fake.calls("insights")[0]
    assert ads_call["version"] == "v21.0" and ads_call["token"] == PPCU_TOKEN
    assert "DELETED" in ads_call["params"]["filtering"] and "ARCHIVED" in ads_call["params"]["filtering"]
    assert (insights_call["params"]["level"], insights_call["params"]["time_increment"]) == ("ad", "1")
    assert rows(head_url, "SELECT trigger, status, since, until, ads, creatives, insight_rows, api_calls, error "
                "FROM sync_runs WHERE tenant_id = %s", PPCU) == [("cli", "succeeded", D1, D2, 3, 3, 4, 2, None)]


def test_pagination_follows_every_page(head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph) -> None:
    admin, app, settings = env
    account = fake.add(FakeAccount("111", PPCU_TOKEN, [generated_ad("111", n) for n in range(1203)]))
    for n in range(1203):
        for day in (D1, D2):
            account.insights[(f"111{n:06d}", day)] = {"spend": "0.10", "impressions": "7", "clicks": "1", "reach": "5"}
    connect(admin, settings, PPCU, PPCU_TOKEN, "111")
    summary = sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    # 1203 ads: pages of 500, 500, 203; 2406 daily rows: 500 × 4 + 406.
    assert len(fake.calls("ads")) == 3 and len(fake.calls("insights")) == 5
    assert [c["params"].get("after") is None for c in fake.calls("ads")] == [True, False, False]
    assert (summary.ads, summary.insight_rows, summary.api_calls) == (1203, 2406, 8)
    assert rows(head_url, "SELECT count(*), count(DISTINCT ad_id), sum(spend), sum(impressions) FROM meta_ad_insights "
                "WHERE tenant_id = %s", PPCU) == [(2406, 1203, Decimal("240.60"), 16842)]
    assert rows(head_url, "SELECT count(*) FROM meta_ads WHERE tenant_id = %s", PPCU) == [(1203,)]


def test_throttling_and_server_errors_are_retried_with_backoff(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    fake.fail_next = [
        (500, {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException", "code": 2,
                         "is_transient": True}}),
        (400, error_body(17, "(#17) User request limit reached", subcode=2446079)),
        (503, {}),
    ]
    sleeps = Sleeps()
    summary = sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))
    assert (summary.retries, summary.api_calls, summary.insight_rows) == (3, 5, 4)
    assert len(sleeps.waits) == 3
    # Full jitter below the cap for the 5xx, Meta's throttling waits at least throttle_wait (30 s).
    assert 0 <= sleeps.waits[0] <= 0.25 and sleeps.waits[1] >= 30.0 and 0 <= sleeps.waits[2] <= 1.0

    fake.fail_next = [(400, error_body(613, "(#613) Calls to this api have exceeded the rate limit."))]
    sleeps.waits.clear()
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))
    assert sleeps.waits and sleeps.waits[0] >= 30.0


def test_usage_headers_make_the_client_pause_before_meta_throttles(
    env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    fake.usage = {"business": 90.0, "account": 20.0}
    sleeps = Sleeps()
    summary = sync_tenant(app, settings, "ppcu", since=D1, until=D2,
                          client_factory=fast_client(sleeps, threshold=75.0, seconds_per_point=2.0))
    # After the first answer (90 %: 15 points over 75, 2 s each) the second call waits 30 s.
    assert sleeps.waits == [30.0] and summary.throttle_pauses == 1 and summary.retries == 0

    fake.usage = {"business": 10.0, "account": 99.0, "regain_minutes": 2}
    sleeps.waits.clear()
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))
    assert sleeps.waits == [120.0]  # Meta's estimated_time_to_regain_access, in minutes

    fake.usage = {"business": 40.0, "account": 50.0}
    sleeps.waits.clear()
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))
    assert sleeps.waits == []


def test_retries_run_out_and_the_run_is_recorded_as_failed(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    fake.fail_next = [(502, {})] * 4
    with pytest.raises(MetaSyncFailed) as failed:
        sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    assert str(failed.value) == ("The Meta sync of tenant ppcu gave up after 3 retries: Meta answered HTTP 502.")
    assert rows(head_url, "SELECT status, error_kind, api_calls FROM sync_runs WHERE tenant_id = %s", PPCU) == [
        ("failed", "unreachable", 4)]

    fake.fail_next = [(400, error_body(100, "(#100) Tried accessing nonexisting field (foo)",
                                       kind="GraphMethodException"))]
    with pytest.raises(MetaSyncFailed) as refused:
        sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    assert "Meta error 100 (HTTP 400): (#100) Tried accessing nonexisting field (foo)" in str(refused.value)
    assert rows(head_url, "SELECT status, error_kind, api_calls FROM sync_runs WHERE tenant_id = %s ORDER BY id",
                PPCU)[-1] == ("failed", "api_error", 1)


def test_an_expired_token_stops_the_sync_with_one_sentence(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    fake.expired.add(PPCU_TOKEN)
    sleeps = Sleeps()
    with pytest.raises(MetaTokenExpired) as expired:
        sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(sleeps))
    message = str(expired.value)
    assert message == ("Meta refused tenant ppcu's access token (expired or revoked, code 190): generate a new "
                       "system-user token in Business Manager and store it with "
                       "`mcb integrations set ppcu meta access_token=...`.")
    assert PPCU_TOKEN not in message
    assert len(fake.calls()) == 1 and sleeps.waits == []  # never retried
    assert rows(head_url, "SELECT status, error_kind, error FROM sync_runs WHERE tenant_id = %s", PPCU) == [
        ("failed", "token_expired", message)]


def test_a_long_window_runs_as_an_async_report_job(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    account = fake.add(small_account())
    start = date(2025, 9, 1)
    for d in range(40):
        account.insights[("111000002", start + timedelta(days=d))] = {"spend": "2.00", "impressions": "10",
                                                                      "clicks": "1", "reach": "9"}
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    sleeps = Sleeps()
    summary = sync_tenant(app, settings, "ppcu", since=start, until=start + timedelta(days=39),
                          client_factory=fast_client(sleeps))
    assert summary.used_report_job and summary.insight_rows == 40
    posts = [c for c in fake.calls() if c["method"] == "POST"]
    assert len(posts) == 1 and posts[0]["path"] == "act_111/insights"
    assert posts[0]["params"]["time_range"] == '{"since": "2025-09-01", "until": "2025-10-10"}'
    # Not started, running, completed: three polls, two waits between them; then one result page.
    assert len(fake.calls("job")) == 3 and sleeps.waits == [0.5, 0.5]
    assert len([c for c in fake.calls() if c["path"].endswith("/insights") and c["method"] == "GET"]) == 1
    assert rows(head_url, "SELECT count(*), sum(spend), min(snapshot_date), max(snapshot_date) FROM meta_ad_insights "
                "WHERE tenant_id = %s", PPCU) == [(40, Decimal("80.00"), start, date(2025, 10, 10))]


def test_two_tenants_with_different_accounts_never_mix(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    # sync_all_tenants uses the default window (the last 90 days), so the data sits a few days back.
    day1, day2 = date.today() - timedelta(days=6), date.today() - timedelta(days=5)
    ppcu = fake.add(small_account())
    ppcu.insights = {(ad, day1 if day == D1 else day2): v for (ad, day), v in ppcu.insights.items()}
    centner = fake.add(FakeAccount("222", CENTNER_TOKEN, [generated_ad("222", 9), generated_ad("111", 1)]))
    # The same ad id in both accounts, with different numbers: each tenant keeps its own.
    centner.ads[1]["name"] = "Centner's copy of ad 1"
    centner.insights = {("111000001", day1): insight("99.99", 5, 1, 5, 1, 1, 1),
                        ("222000009", day2): insight("7.00", 70, 7, 60, 6, 5, 4)}
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    connect(admin, settings, CENTNER, CENTNER_TOKEN, "act_222")
    sleeps = Sleeps()
    # centner and ppcu are active with a meta integration; columnline has none and is skipped.
    outcomes = sync_all_tenants(admin, app, settings, trigger="schedule", client_factory=fast_client(sleeps))
    assert [(o.tenant, o.error) for o in outcomes] == [("centner", None), ("ppcu", None)]
    for call in fake.calls():
        account = call["path"].split("/")[0]
        if account.startswith("act_"):
            assert call["token"] == {"act_111": PPCU_TOKEN, "act_222": CENTNER_TOKEN}[account]

    by_tenant = "SELECT ad_id, snapshot_date, spend FROM meta_ad_insights WHERE tenant_id = %s ORDER BY 1, 2"
    assert rows(head_url, by_tenant, CENTNER) == [("111000001", day1, Decimal("99.99")),
                                                  ("222000009", day2, Decimal("7.00"))]
    assert rows(head_url, by_tenant, PPCU) == [
        ("111000001", day1, Decimal("12.34")), ("111000001", day2, Decimal("10.00")),
        ("111000002", day1, Decimal("5.50")), ("111000003", day1, Decimal("1.01"))]
    assert rows(head_url, "SELECT ad_name FROM meta_ads WHERE tenant_id = %s AND ad_id = '111000001'", CENTNER) == [
        ("Centner's copy of ad 1",)]
    assert rows(head_url, "SELECT ad_name FROM meta_ads WHERE tenant_id = %s AND ad_id = '111000001'", PPCU) == [
        ("Ad 1",)]
    # Centner has no keyword lists of its own and is not ppcu: no PPCU themes leak into its creatives.
    assert rows(head_url, "SELECT DISTINCT transformation_theme FROM meta_ad_creatives WHERE tenant_id = %s",
                CENTNER) == [("general",)]
    assert rows(head_url, "SELECT t.slug, r.trigger, r.status FROM sync_runs r JOIN tenants t ON t.id = r.tenant_id "
                "ORDER BY t.slug") == [("centner", "schedule", "succeeded"), ("ppcu", "schedule", "succeeded")]

    # One tenant's dead token fails that tenant only.
    fake.expired.add(CENTNER_TOKEN)
    outcomes = sync_all_tenants(admin, app, settings, client_factory=fast_client(sleeps))
    assert [(o.tenant, o.summary is not None) for o in outcomes] == [("centner", False), ("ppcu", True)]
    assert "tenant centner's access token" in str(outcomes[0].error)
    assert rows(head_url, by_tenant, CENTNER)[0] == ("111000001", day1, Decimal("99.99"))


def test_rerun_keeps_one_row_per_ad_and_day_with_the_latest_values(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    account = fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    query = ("SELECT id, ad_id, snapshot_date, spend, leads FROM meta_ad_insights WHERE tenant_id = %s "
             "ORDER BY ad_id, snapshot_date")
    before = rows(head_url, query, PPCU)

    # Meta revises ad 1's second day, drops ad 2's row (no delivery after all) and stops ad 1.
    account.insights[("111000001", D2)] = insight("11.50", 950, 21, 720, 19, 13, 4)
    del account.insights[("111000002", D1)]
    account.ads[0]["effective_status"] = "PAUSED"
    summary = sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    after = rows(head_url, query, PPCU)
    assert summary.removed_rows == 1
    assert [r[1:] for r in after] == [
        ("111000001", D1, Decimal("12.34"), 3),
        ("111000001", D2, Decimal("11.50"), 4),
        ("111000003", D1, Decimal("1.01"), None),
    ]
    assert after[1][0] == before[1][0]  # updated in place, not deleted and inserted
    assert rows(head_url, "SELECT count(*) FROM meta_ads WHERE tenant_id = %s AND is_active", PPCU) == [(0,)]

    # The same sync again changes nothing.
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    assert rows(head_url, query, PPCU) == after


def test_default_windows_backfill_90_days_then_refetch_3(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    first = sync_tenant(app, settings, "ppcu", until=D3, client_factory=fast_client(Sleeps()))
    assert (first.since, first.until) == (date(2025, 8, 8), D3)  # 90 days: Aug 8 .. Nov 5 inclusive
    second = sync_tenant(app, settings, "ppcu", until=date(2025, 11, 6), client_factory=fast_client(Sleeps()))
    assert (second.since, second.until) == (D1, date(2025, 11, 6))  # from 3 days before Nov 5
    assert rows(head_url, "SELECT since, until, status FROM sync_runs WHERE tenant_id = %s ORDER BY id", PPCU) == [
        (date(2025, 8, 8), D3, "succeeded"), (D1, date(2025, 11, 6), "succeeded")]


def test_an_ad_meta_no_longer_lists_is_marked_inactive(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    admin, app, settings = env
    account = fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    account.ads = account.ads[1:]  # ad 1 vanished from the account altogether
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    assert rows(head_url, "SELECT ad_id, is_active, effective_status FROM meta_ads WHERE tenant_id = %s "
                "ORDER BY ad_id", PPCU) == [("111000001", False, "ACTIVE"), ("111000002", False, "PAUSED"),
                                            ("111000003", False, "DELETED")]


def test_downgrade_refuses_to_drop_synced_data(
    head_url: str, env: tuple[Engine, Engine, Settings], fake: FakeGraph
) -> None:
    from mcb.errors import DowngradeRefused
    from mcb.migrate import runner

    admin, app, settings = env
    fake.add(small_account())
    connect(admin, settings, PPCU, PPCU_TOKEN, "act_111")
    sync_tenant(app, settings, "ppcu", since=D1, until=D2, client_factory=fast_client(Sleeps()))
    with pytest.raises(DowngradeRefused) as refused:
        runner.downgrade_single_tenant(admin, head_url, settings=settings, make_backup=False)
    message = str(refused.value)
    assert "sync_runs holds 1 row(s)" in message
    assert "meta_ad_insights.synced_at holds 4 value(s)" in message
    assert "meta_ads.campaign_name holds 3 value(s)" in message
    assert rows(head_url, "SELECT count(*) FROM sync_runs") == [(1,)]
