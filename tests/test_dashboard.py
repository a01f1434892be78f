"""The dashboard in a real browser (Playwright driving Debian's chromium) against a running ``mcb serve``.

One database and one server for the module: PPCU (America/New_York) holds a hand-built fortnight,
2026-11-02 … 2026-11-15, written through the one write path; Centner holds one lead. Expected numbers
are worked out by hand below.

PPCU in the window:
- A (ad_1): subscribed Nov 3, qualified, booked Nov 4, held Nov 6, Stripe $1,997 full purchase Nov 7.
- B (ad_1): subscribed Nov 5, qualified; $100 deposit Nov 9.
- C (ad_2): subscribed Nov 10.
- D (ad_2): subscribed Nov 11, held Nov 12; Denefits plan $4,500 and down payment $500 Nov 13.
- an orphan Stripe payment of $300 on Nov 14 (no contact).
- spend: ad_1 $50 a day Nov 2–8 ($350), ad_2 $100 a day Nov 9–15 ($700).
Previous fortnight (Oct 19 – Nov 1): one lead P (Oct 20), ad_1 $20 on Oct 25.

So: leads 4, qualified 2, meetings booked 1, held 2, deposits 1, buyers 2 (A's purchase, D's plan);
cash = 100 + 1,997 + 300 + 500 = 2,897; projected = 1,997 + 300 + 4,500 + 500 = 7,297; spend 1,050;
ROAS 7,297 / 1,050 = 6.95; cash ROAS 2,897 / 1,050 = 2.76; CPL 262.50; CPA 525.00.
First week alone (Nov 2–8): leads 2 (A, B), held 1, buyers 1, cash 1,997, spend 350.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import text

from mcb.db.engine import make_engine
from mcb.db.session import admin_session, tenant_session
from mcb.tenancy import tokens as tok
from tests.analytics_data import CENTNER, PPCU, insight, payment, subscriber, utc
from tests.pg import PgServer

MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
DOCS = Path(__file__).parent.parent / "docs"
RANGE = "from=2026-11-02&to=2026-11-15"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Site:
    url: str
    db: str
    tokens: dict[str, str]

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, follow_redirects=False, **kw)


def _seed(url: str) -> dict[str, str]:
    engine = make_engine(url)
    with tenant_session(engine, PPCU) as conn:
        subscriber(conn, PPCU, "a1", utc(2026, 11, 3, 15), ("dm_qualified", utc(2026, 11, 3, 16)),
                   ("appointment_scheduled", utc(2026, 11, 4, 15)), ("appointment_held", utc(2026, 11, 6, 15)),
                   email="ann@example.com", ad_id="ad_1")
        subscriber(conn, PPCU, "b1", utc(2026, 11, 5, 15), ("dm_qualified", utc(2026, 11, 5, 16)),
                   email="bo@example.com", ad_id="ad_1")
        subscriber(conn, PPCU, "c1", utc(2026, 11, 10, 15), email="cy@example.com", ad_id="ad_2")
        subscriber(conn, PPCU, "d1", utc(2026, 11, 11, 15), ("appointment_held", utc(2026, 11, 12, 15)),
                   email="di@example.com", ad_id="ad_2")
        subscriber(conn, PPCU, "p1", utc(2026, 10, 20, 15), email="pa@example.com", ad_id="ad_1")
        payment(conn, PPCU, "evt_a_full", "ann@example.com", "full_purchase", "1997", utc(2026, 11, 7, 18))
        payment(conn, PPCU, "evt_b_dep", "bo@example.com", "deposit", "100", utc(2026, 11, 9, 18))
        payment(conn, PPCU, "DEN1_plan", "di@example.com", "payment_plan", "4500", utc(2026, 11, 13, 18),
                source="denefits", status="active")
        payment(conn, PPCU, "DEN1_downpayment", "di@example.com", "downpayment", "500", utc(2026, 11, 13, 18),
                source="denefits")
        payment(conn, PPCU, "evt_orphan", "nobody@example.com", "full_purchase", "300", utc(2026, 11, 14, 18))
        for i in range(7):
            insight(conn, PPCU, "ad_1", date(2026, 11, 2) + timedelta(days=i), "50", name="Ad one")
            insight(conn, PPCU, "ad_2", date(2026, 11, 9) + timedelta(days=i), "100", name="Ad two")
        insight(conn, PPCU, "ad_1", date(2026, 10, 25), "20")
    with tenant_session(engine, CENTNER) as conn:
        subscriber(conn, CENTNER, "z1", utc(2026, 11, 4, 12), email="zoe@example.com")
    with admin_session(engine) as conn:
        tokens = {name: tok.create_token(conn, tenant, name)[0]
                  for name, tenant in (("ppcu", PPCU), ("centner", CENTNER), ("admin", None),
                                       ("ppcu-revoke", PPCU))}
    engine.dispose()
    return tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(pg: PgServer, head_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pg.database(template=head_template) as url:
        tokens = _seed(url)
        home = tmp_path_factory.mktemp("home")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCB_") and k != "DATABASE_URL"}
        env.update(DATABASE_URL=url, MCB_HOME=str(home))
        port = _free_port()
        proc = subprocess.Popen([*MCB, "serve", "--port", str(port), "--no-upgrade", "--workers", "0"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve failed") from None
                time.sleep(0.1)
        yield Site(base, url, tokens)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def login(page: Page, site: Site, token: str, path: str) -> None:
    page.goto(site.url + path)
    assert page.url.startswith(site.url + "/login?next=")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def tiles(page: Page) -> dict[str, str]:
    return {t.get_attribute("data-metric") or "": t.locator(".value").inner_text()
            for t in page.locator(".tile").all()}


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """Into tmp_path always (checked to be a PNG); into docs/ when MCB_DOCS_SCREENSHOTS=1."""
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("MCB_DOCS_SCREENSHOTS") == "1":
        shutil.copy(target, DOCS / name)


def test_login_shows_tiles_charts_and_a_new_date_range(site: Site, page: Page, tmp_path: Path) -> None:
    page.goto(site.url + "/login")
    screenshot(page, tmp_path, "dashboard-login.png")
    login(page, site, site.tokens["ppcu"], f"/t/ppcu/?{RANGE}")
    assert page.url == f"{site.url}/t/ppcu/?{RANGE}"
    assert site.tokens["ppcu"] not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "mcb_session")
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert site.tokens["ppcu"] not in cookie["value"]

    assert page.locator("h1.tenant").inner_text() == "Postpartum Care USA"
    assert page.locator("#window-label").inner_text().startswith("Mon Nov 2 – Sun Nov 15, 2026 (14 days")
    assert tiles(page) == {
        "leads": "4", "meetings_held": "2", "buyers": "2", "cash_collected": "$2,897",
        "projected_revenue": "$7,297", "ad_spend": "$1,050", "roas": "6.95×", "roas_cash": "2.76×",
        "cpl": "$262.50", "cpa": "$525.00",
    }
    # previous fortnight: 1 lead, $20 spend, no buyers; leads went 1 → 4 (+300%)
    assert page.locator(".tile[data-metric=leads] .change").inner_text() == "+300% vs previous"
    funnel = [(g.get_attribute("data-stage"), g.get_attribute("data-value"))
              for g in page.locator("svg.funnel g.stage").all()]
    assert funnel == [("Leads", "4"), ("Qualified", "2"), ("Link sent", "0"), ("Link clicked", "0"),
                      ("Forms", "0"), ("Meetings booked", "1"), ("Meetings held", "2"), ("Packages sent", "0"),
                      ("Buyers", "2")]
    bars = {(b.get_attribute("data-period"), b.get_attribute("class")): b.get_attribute("data-value")
            for b in page.locator("svg.revenue rect[data-period]").all()}
    assert len(bars) == 28  # 14 days × (cash, projected)
    assert bars[("Nov 7", "bar cash")] == "1997" and bars[("Nov 13", "bar projected")] == "5000"
    assert bars[("Nov 13", "bar cash")] == "500" and bars[("Nov 14", "bar cash")] == "300"
    assert bars[("Nov 2", "bar cash")] == "0"
    leads_trend = page.locator("svg.trend g[data-series=Leads] circle")
    assert leads_trend.count() == 13
    assert [leads_trend.nth(i).get_attribute("data-value") for i in (9, 10, 11, 12)] == ["1", "0", "2", "2"]
    ads = [[c.inner_text() for c in r.locator("td").all()] for r in page.locator("#ads tbody tr").all()]
    assert ads == [
        ["Ad two ad_2", "", "$700.00", "2", "1", "1", "$500.00", "$5,000.00", "$350.00", "7.14×", "0.71×"],
        ["Ad one ad_1", "", "$350.00", "2", "1", "1", "$2,097.00", "$1,997.00", "$175.00", "5.71×", "5.99×"],
    ]
    # the data-quality report's checks that miss their targets (silence warnings depend on today's date)
    warnings = page.locator("#quality li[data-kind=check]")
    assert warnings.all_inner_texts() == ["MC→GHL linkage 0% (0 of 4); target at least 90%.",
                                          "Orphan payments 20% (1 of 5); target at most 10%.",
                                          "Leads → Qualified 50% (2 of 4); target at least 60%."]
    assert [w.get_attribute("class") for w in warnings.all()] == ["critical", "warning", "warning"]
    # the latest event is D's plan (Nov 13, 13:00 EST); the latest payment the orphan (Nov 14)
    assert page.locator("#activity tbody tr").first.inner_text().split("\t") == [
        "Nov 13 13:00", "payment plan created", "di@example.com", "denefits"]
    assert page.locator("#activity table").nth(1).locator("tbody tr").first.inner_text().split("\t") == [
        "Nov 14 13:00", "$300.00", "full purchase (stripe)", "nobody@example.com orphan"]
    screenshot(page, tmp_path, "dashboard.png")

    page.fill("input[name=from]", "2026-11-02")
    page.fill("input[name=to]", "2026-11-08")
    page.click(".range button[type=submit]")
    page.wait_for_load_state()
    assert page.url == f"{site.url}/t/ppcu/?from=2026-11-02&to=2026-11-08"
    assert page.locator("#window-label").inner_text().startswith("Mon Nov 2 – Sun Nov 8, 2026 (7 days")
    first_week = tiles(page)
    assert {k: first_week[k] for k in ("leads", "meetings_held", "buyers", "cash_collected", "ad_spend")} == {
        "leads": "2", "meetings_held": "1", "buyers": "1", "cash_collected": "$1,997", "ad_spend": "$350.00"}
    assert page.locator("svg.revenue rect[data-period]").count() == 14

    page.click("text=Last 7 days")
    page.wait_for_load_state()
    assert page.url == f"{site.url}/t/ppcu/?last=7d"
    assert "(7 days" in page.locator("#window-label").inner_text()


def test_a_tenant_token_cannot_open_another_tenants_page(site: Site, page: Page) -> None:
    login(page, site, site.tokens["centner"], f"/t/centner/?{RANGE}")
    assert page.locator("h1.tenant").inner_text() == "Centner Wellness"
    assert tiles(page)["leads"] == "1"
    assert page.locator("details.switcher").count() == 0  # no switcher for a tenant token
    for path in ("/t/ppcu/", f"/t/ppcu/?{RANGE}", "/t/ppcu/data.json", "/t/no-such-tenant/"):
        response = page.goto(site.url + path)
        assert response is not None and response.status == 404, path
        assert "Postpartum" not in page.content()
    # the same answer for "not yours" and "does not exist"
    assert site.get("/t/ppcu/", headers={"Authorization": f"Bearer {site.tokens['centner']}"}).text == \
        site.get("/t/no-such-tenant/", headers={"Authorization": f"Bearer {site.tokens['centner']}"}).text


def test_an_admin_token_switches_tenants(site: Site, page: Page, tmp_path: Path) -> None:
    login(page, site, site.tokens["admin"], f"/t/ppcu/?{RANGE}")
    assert tiles(page)["leads"] == "4"
    page.click("details.switcher summary")
    links = page.locator("details.switcher a")
    assert links.all_inner_texts() == ["Centner Wellness centner", "Columnline AI columnline",
                                       "Postpartum Care USA ppcu"]
    screenshot(page, tmp_path, "dashboard-admin.png")
    page.click("details.switcher a:has-text('Centner Wellness')")
    page.wait_for_load_state()
    assert page.url == f"{site.url}/t/centner/?{RANGE}"  # the range is kept
    assert page.locator("h1.tenant").inner_text() == "Centner Wellness"
    assert tiles(page)["leads"] == "1"


def test_json_view_numbers_by_bearer_token(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.tokens['ppcu']}"}
    data = site.get(f"/t/ppcu/data.json?{RANGE}", headers=auth).json()
    s = data["summary"]
    assert {k: s[k] for k in ("leads", "qualified", "meetings_booked", "meetings_held", "deposits", "buyers",
                              "cash_collected", "projected_revenue", "ad_spend", "roas", "roas_cash", "cpl",
                              "cpa")} == {
        "leads": 4, "qualified": 2, "meetings_booked": 1, "meetings_held": 2, "deposits": 1, "buyers": 2,
        "cash_collected": 2897.0, "projected_revenue": 7297.0, "ad_spend": 1050.0, "roas": 6.95,
        "roas_cash": 2.76, "cpl": 262.5, "cpa": 525.0}
    assert data["window"]["start"] == "2026-11-02" and data["window"]["timezone"] == "America/New_York"
    assert data["previous_window"]["start"] == "2026-10-19"
    assert [w["start"] for w in data["trend"]][-1] == "2026-11-09" and len(data["trend"]) == 13
    assert [(w["leads"], w["buyers"], w["cash_collected"]) for w in data["trend"][-2:]] == [
        (2, 1, 1997.0), (2, 1, 900.0)]  # week 2: deposit 100 + down payment 500 + orphan 300
    centner = site.get(f"/t/centner/data.json?{RANGE}",
                       headers={"Authorization": f"Bearer {site.tokens['centner']}"}).json()
    assert (centner["summary"]["leads"], centner["summary"]["cash_collected"]) == (1, 0.0)
    assert centner["activity"]["payments"] == []


def test_login_failures_sessions_and_headers(site: Site) -> None:
    anonymous = site.get("/t/ppcu/?last=7d")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Ft%2Fppcu%2F%3Flast%3D7d"
    assert site.get("/t/ppcu/data.json").status_code == 401

    bad = httpx.post(site.url + "/login", data={"token": "mcb_not-a-real-token", "next": "/t/ppcu/"})
    assert bad.status_code == 401 and "That token is not valid" in bad.text and "set-cookie" not in bad.headers

    # an off-site "next" is ignored: the login lands on the token's own tenant
    good = httpx.post(site.url + "/login", data={"token": site.tokens["ppcu-revoke"], "next": "//evil.example/"})
    assert good.status_code == 303 and good.headers["location"] == "/t/ppcu/"
    set_cookie = good.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "max-age=43200" in set_cookie
    session = good.cookies["mcb_session"]
    page = site.get(f"/t/ppcu/?{RANGE}", cookies={"mcb_session": session})
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store" and "<script" not in page.text

    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    assert site.get("/t/ppcu/", cookies={"mcb_session": tampered}).status_code == 303

    bad_range = site.get("/t/ppcu/?from=2026-11-15&to=2026-11-02", cookies={"mcb_session": session})
    assert bad_range.status_code == 400
    assert "The window ends (2026-11-02) before it starts (2026-11-15)." in bad_range.text
    bad_date = site.get("/t/ppcu/?from=yesterday", cookies={"mcb_session": session})
    assert bad_date.status_code == 400 and "is not a date; write it as YYYY-MM-DD." in bad_date.text

    # a deactivated tenant's sessions stop at once, and work again when it is reactivated
    for active, status in ((False, 303), (True, 200)):
        with admin_session(make_engine(site.db)) as conn:
            conn.execute(text("UPDATE tenants SET is_active = :a WHERE id = :t"), {"a": active, "t": PPCU})
        assert site.get(f"/t/ppcu/?{RANGE}", cookies={"mcb_session": session}).status_code == status

    with admin_session(make_engine(site.db)) as conn:
        tok.revoke_token(conn, site.tokens["ppcu-revoke"][:10])
    revoked = site.get("/t/ppcu/", cookies={"mcb_session": session})
    assert revoked.status_code == 303 and revoked.headers["location"].startswith("/login")

    out = httpx.post(site.url + "/logout", cookies={"mcb_session": session})
    assert out.status_code == 303 and 'mcb_session=""' in out.headers["set-cookie"]


def test_the_two_connection_page_reads_one_snapshot_and_matches_the_one_connection_page(site: Site) -> None:
    from mcb.analytics.run import report_session, report_sessions
    from mcb.analytics.window import Window
    from mcb.tenancy.tenants import get_tenant
    from mcb.web.view import dashboard_data

    engine = make_engine(site.db)
    try:
        with admin_session(engine) as conn:
            tenant = get_tenant(conn, "ppcu")
        window = Window(date(2026, 11, 2), date(2026, 11, 15), tenant.timezone)
        with report_session(engine, tenant.id) as conn:
            alone = dashboard_data(conn, tenant, window)
        with report_sessions(engine, tenant.id, 2) as (conn, side):
            # A lead that arrives after the snapshot is seen by neither connection.
            with tenant_session(engine, PPCU) as other:
                subscriber(other, PPCU, "late1", utc(2026, 11, 12, 15))
            assert side.execute(text("SELECT count(*) FROM contacts WHERE mc_id = 'late1'")).scalar() == 0
            together = dashboard_data(conn, tenant, window, side=side)
        assert together == alone
        assert alone["summary"]["leads"] == 4
        with report_session(engine, tenant.id) as conn:
            assert dashboard_data(conn, tenant, window)["summary"]["leads"] == 5
    finally:
        with admin_session(engine) as conn:
            conn.execute(text("DELETE FROM contacts WHERE mc_id = 'late1'"))
        engine.dispose()
