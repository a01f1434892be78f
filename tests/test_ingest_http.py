"""Webhooks over real HTTP to a running ``mcb serve`` on a real PostgreSQL: store, authenticate, process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mcb.config import Settings
from mcb.db.engine import make_engine
from mcb.db.session import admin_session
from mcb.tenancy.integrations import set_integration
from mcb.tenancy.secrets import secret_box

PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
TOKENS = {"ppcu": "ppcu-manychat-token-0123456789abcdef", "centner": "centner-manychat-token-0123456789abc"}
STRIPE_SECRET = "whsec_test_0123456789abcdefghijklmnop"
DENEFITS_TOKEN = "denefits-shared-token-0123456789abcd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    db: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    ghl_key: ed25519.Ed25519PrivateKey

    def post(self, path: str, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0) -> httpx.Response:
        content = raw if raw is not None else json.dumps(body).encode()
        return httpx.post(self.url + path, content=content,
                          headers={"content-type": "application/json", **(headers or {})}, timeout=timeout)

    def idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = httpx.get(self.url + "/readyz", timeout=5).json()
            if ready["inbox"]["pending"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the worker did not drain the inbox")

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(sql, params).fetchall()


def _start(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*MCB, "serve", "--port", str(port), "--no-upgrade"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve exited") from None
            time.sleep(0.1)
    raise AssertionError("mcb serve did not start")


def _configure(url: str, settings: Settings, ghl_public_pem: str) -> None:
    engine = make_engine(url)
    box = secret_box(settings, create=True)
    assert box is not None
    with admin_session(engine) as conn:
        for tenant, slug in ((PPCU, "ppcu"), (CENTNER, "centner")):
            set_integration(conn, box, tenant, "manychat", {"webhook_secret": TOKENS[slug]})
        set_integration(conn, box, PPCU, "stripe", {"webhook_secret": STRIPE_SECRET})
        set_integration(conn, box, PPCU, "ghl", {"webhook_secret": ghl_public_pem})
        set_integration(conn, box, PPCU, "denefits", {"webhook_secret": DENEFITS_TOKEN})
    engine.dispose()


@pytest.fixture
def server(head_url: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    env = {**cli_env, "DATABASE_URL": head_url, "MCB_HOME": str(tmp_path / "home")}
    settings = Settings(MCB_HOME=tmp_path / "home")  # type: ignore[call-arg]
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    _configure(head_url, settings, pem)
    port = _free_port()
    proc = _start(env, port)
    srv = Server(f"http://127.0.0.1:{port}", head_url, env, proc, key)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            srv.proc.kill()


def manychat(subscriber_id: str, event: str, **fields: Any) -> dict[str, Any]:
    custom = fields.pop("custom_fields", {})
    return {"subscriber": {"id": subscriber_id, "first_name": "Ann", "custom_fields": custom, **fields},
            "event_type": event}


def token(slug: str = "ppcu") -> dict[str, str]:
    return {"X-MCB-Token": TOKENS[slug]}


def stripe_signature(body: bytes, *, secret: str = STRIPE_SECRET, at: int | None = None) -> str:
    stamp = at if at is not None else int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def test_manychat_delivery_becomes_a_contact_with_events(server: Server) -> None:
    created = manychat("sub_1", "contact_created", email=" Ann@Example.COM ", subscribed="2025-11-01T10:00:00+00:00",
                       custom_fields={"chatbot_AB": "A-OCT30", "AD_ID": "ad_77"})
    qualified = manychat("sub_1", "dm_qualified", custom_fields={
        "Symptoms": "Diastasis", "Months Postpartum": "3 months", "DATE_DM_QUALIFIED": "2025-11-01T10:05:00+00:00"})
    for body in (created, qualified, created):  # the third is a redelivery
        response = server.post("/webhooks/ppcu/manychat", body, headers=token())
        assert response.status_code == 200, response.text
        assert response.json()["received"] is True
    server.idle()
    contacts = server.rows("SELECT mc_id, email_primary, first_name, ad_id, stage, source, tags FROM contacts "
                           "WHERE tenant_id = %s", (PPCU,))
    assert contacts == [("sub_1", "ann@example.com", "Ann", "ad_77", "dm_qualified", "instagram",
                         {"chatbot": "A-OCT30"})]
    events = server.rows("SELECT event_type, source_event_id, event_timestamp::text, event_data FROM funnel_events "
                         "WHERE tenant_id = %s ORDER BY event_timestamp", (PPCU,))
    assert [(e[0], e[1], e[2]) for e in events] == [
        ("contact_subscribed", "mc_sub_1_contact_subscribed", "2025-11-01 10:00:00+00"),
        ("dm_qualified", "mc_sub_1_dm_qualified", "2025-11-01 10:05:00+00"),
    ]
    assert events[1][3]["symptoms"] == "Diastasis" and events[1][3]["months_postpartum"] == "3 months"
    logs = server.rows("SELECT status, event_type, inbox, headers->>'x-mcb-auth' FROM webhook_logs "
                       "WHERE tenant_id = %s ORDER BY id", (PPCU,))
    assert logs == [("processed", "contact_created", True, "shared token"),
                    ("processed", "dm_qualified", True, "shared token"),
                    ("processed", "contact_created", True, "shared token")]


def test_same_ids_in_two_tenants_never_touch_each_other(server: Server) -> None:
    body = manychat("sub_same", "contact_created", email="same@example.com")
    assert server.post("/webhooks/ppcu/manychat", body, headers=token("ppcu")).status_code == 200
    assert server.post("/webhooks/centner/manychat", body, headers=token("centner")).status_code == 200
    server.idle()
    rows = server.rows("SELECT tenant_id, mc_id FROM contacts WHERE mc_id = 'sub_same' ORDER BY tenant_id")
    assert sorted(r[0] for r in rows) == sorted([PPCU, CENTNER])
    # Another tenant's token is not this tenant's token.
    wrong = server.post("/webhooks/centner/manychat", body, headers=token("ppcu"))
    assert wrong.status_code == 401


def test_authentication_failures_are_401_logged_and_not_stored(server: Server) -> None:
    body = manychat("sub_2", "contact_created")
    before = server.rows("SELECT count(*) FROM webhook_logs")[0][0]
    assert server.post("/webhooks/ppcu/manychat", body).status_code == 401
    assert server.post("/webhooks/ppcu/manychat", body, headers={"X-MCB-Token": "nope"}).status_code == 401
    assert server.post("/webhooks/ppcu/perspective", {"a": 1}, headers=token()).status_code == 401  # no secret
    assert server.rows("SELECT count(*) FROM webhook_logs")[0][0] == before
    reasons = server.rows("SELECT source, reason FROM webhook_rejections WHERE tenant_id = %s ORDER BY id", (PPCU,))
    assert reasons == [("manychat", "missing or wrong manychat token"),
                       ("manychat", "missing or wrong manychat token"),
                       ("perspective", "no perspective webhook secret is configured for this tenant")]
    # The token is also accepted as ?token=.
    assert server.post(f"/webhooks/ppcu/manychat?token={TOKENS['ppcu']}", body).status_code == 200


def test_stripe_signatures_valid_expired_tampered(server: Server) -> None:
    event = {"id": "evt_sig_1", "object": "event", "type": "customer.created", "created": 1763000000,
             "data": {"object": {"id": "cus_1", "object": "customer"}}}
    body = json.dumps(event).encode()
    ok = server.post("/webhooks/ppcu/stripe", raw=body, headers={"Stripe-Signature": stripe_signature(body)})
    assert ok.status_code == 200, ok.text
    expired = server.post("/webhooks/ppcu/stripe", raw=body,
                          headers={"Stripe-Signature": stripe_signature(body, at=int(time.time()) - 3600)})
    tampered = server.post("/webhooks/ppcu/stripe", raw=body.replace(b"cus_1", b"cus_2"),
                           headers={"Stripe-Signature": stripe_signature(body)})
    other_secret = server.post("/webhooks/ppcu/stripe", raw=body,
                               headers={"Stripe-Signature": stripe_signature(body, secret="whsec_other_secret_xx")})
    missing = server.post("/webhooks/ppcu/stripe", raw=body)
    assert [r.status_code for r in (expired, tampered, other_secret, missing)] == [401, 401, 401, 401]
    reasons = [r[0] for r in server.rows("SELECT reason FROM webhook_rejections WHERE source = 'stripe' ORDER BY id")]
    assert reasons == ["expired Stripe signature", "invalid Stripe signature", "invalid Stripe signature",
                       "missing Stripe-Signature header"]


def test_ghl_ed25519_signature(server: Server) -> None:
    body = json.dumps({"contact_id": "ghl_1", "email": "g@example.com", "customData": {}}).encode()
    good = base64.b64encode(server.ghl_key.sign(body)).decode()
    assert server.post("/webhooks/ppcu/ghl", raw=body, headers={"X-GHL-Signature": good}).status_code == 200
    forged = base64.b64encode(ed25519.Ed25519PrivateKey.generate().sign(body)).decode()
    assert server.post("/webhooks/ppcu/ghl", raw=body, headers={"X-GHL-Signature": forged}).status_code == 401
    assert server.post("/webhooks/ppcu/ghl", raw=body).status_code == 401


def test_denefits_payload_secret_is_accepted_and_never_stored(server: Server) -> None:
    body = [{"webhook_type": "contract.status", "secret_key": DENEFITS_TOKEN,
             "data": {"contract": {"contract_code": "BRKSX", "contract_id": 1}}}]
    response = server.post("/webhooks/ppcu/denefits", body)
    assert response.status_code == 200, response.text
    stored = server.rows("SELECT payload::text FROM webhook_logs WHERE id = %s", (response.json()["id"],))[0][0]
    assert DENEFITS_TOKEN not in stored and "BRKSX" in stored


def test_bad_input_is_a_clear_4xx_and_stores_nothing(server: Server) -> None:
    before = server.rows("SELECT count(*) FROM webhook_logs")[0][0]
    malformed = server.post("/webhooks/ppcu/manychat", raw=b'{"subscriber": ', headers=token())
    assert (malformed.status_code, malformed.json()) == (400, {"error": "The body is not JSON (or form data)."})
    big = server.post("/webhooks/ppcu/manychat", raw=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}', headers=token())
    assert (big.status_code, big.json()) == (413, {"error": "Body larger than 1 MiB."})
    unknown_source = server.post("/webhooks/ppcu/hubspot", {}, headers=token())
    assert unknown_source.status_code == 404 and "Unknown source 'hubspot'" in unknown_source.json()["error"]
    unknown_tenant = server.post("/webhooks/nobody/manychat", {}, headers=token())
    assert (unknown_tenant.status_code, unknown_tenant.json()) == (404, {"error": "Unknown tenant"})
    assert server.rows("SELECT count(*) FROM webhook_logs")[0][0] == before
    # A wrong type inside valid JSON is stored (nothing is lost) and ends as an error with the reason.
    wrong = server.post("/webhooks/ppcu/manychat", {"subscriber": "not an object"}, headers=token())
    assert wrong.status_code == 200
    server.idle()
    status = server.rows("SELECT status, error_message FROM webhook_logs WHERE id = %s", (wrong.json()["id"],))
    assert status == [("error", "unreadable manychat payload: ManyChat payload has no subscriber")]


def test_legacy_urls_route_to_the_default_tenant(server: Server) -> None:
    body = manychat("sub_legacy", "contact_created")
    response = server.post("/api/manychat", body, headers=token("ppcu"))
    assert response.status_code == 200, response.text
    via_original_path = server.post("/api/webhooks/centner/manychat", manychat("sub_c", "contact_created"),
                                    headers=token("centner"))
    assert via_original_path.status_code == 200
    server.idle()
    assert server.rows("SELECT tenant_id FROM contacts WHERE mc_id = 'sub_legacy'") == [(PPCU,)]
    assert server.rows("SELECT tenant_id FROM contacts WHERE mc_id = 'sub_c'") == [(CENTNER,)]
    health = httpx.get(server.url + "/webhooks/ppcu/stripe", timeout=5).json()
    assert health["tenant"] == "ppcu" and "checkout.session.completed" in health["accepted_event_types"]


def test_kill_9_during_a_burst_loses_nothing_acknowledged(server: Server) -> None:
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(n: int) -> None:
        for i in range(400):
            if stop.is_set():
                return
            try:
                response = server.post("/webhooks/ppcu/manychat", manychat(f"burst_{n}_{i}", "contact_created"),
                                       headers=token(), timeout=5)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                with lock:
                    acked.append(response.json()["id"])

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    while len(acked) < 150:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    stored = {r[0] for r in server.rows("SELECT id FROM webhook_logs WHERE inbox")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged webhooks were lost"

    port = _free_port()
    server.proc = _start(server.env, port)
    server.url = f"http://127.0.0.1:{port}"
    server.idle(60)
    statuses = dict(server.rows("SELECT status, count(*) FROM webhook_logs WHERE inbox GROUP BY 1"))
    assert set(statuses) == {"processed"}, statuses
    contacts = server.rows("SELECT count(*) FROM contacts WHERE mc_id LIKE 'burst\\_%%'")[0][0]
    assert contacts == len(stored)


def test_stored_payloads_json_form_array_and_denefits(server: Server) -> None:
    """What the inbox keeps of each kind of body (compared as jsonb, so key order and spacing do not matter)."""
    cases = [
        # A JSON object: kept as sent, big integers and exponents included.
        (("/webhooks/ppcu/manychat", "application/json",
          '{"subscriber": {"id": "pl_1", "first_name": "Zo\\u00eb", "city": "Köln", "custom_fields": {"n": 12345678901234567890, '
          '"x": 1.5, "e": 1e2}}, "event_type": "contact_created", "tags": ["a", null, true]}'.encode()),
         '{"subscriber": {"id": "pl_1", "first_name": "Zoë", "city": "Köln", "custom_fields": {"n": 12345678901234567890, '
         '"x": 1.5, "e": 100}}, "event_type": "contact_created", "tags": ["a", null, true]}', "contact_created"),
        # A form body: a JSON object of strings.
        (("/webhooks/ppcu/manychat", "application/x-www-form-urlencoded",
          b"first_name=Ann&email=ann%40example.com&note=a+b&empty="),
         '{"first_name": "Ann", "email": "ann@example.com", "note": "a b", "empty": ""}', None),
        # An array: kept as an array, the event type read from its first element.
        (("/webhooks/ppcu/manychat", "application/json",
          b'[{"event_type": "dm_qualified", "subscriber": {"id": "pl_2"}}, 2, "x"]'),
         '[{"event_type": "dm_qualified", "subscriber": {"id": "pl_2"}}, 2, "x"]', "dm_qualified"),
        # JSON with a UTF-8 byte order mark.
        (("/webhooks/ppcu/manychat", "application/json", b'\xef\xbb\xbf{"event_type": "link_sent", "k": "v"}'),
         '{"event_type": "link_sent", "k": "v"}', "link_sent"),
        # Denefits: the shared secret authenticates and is removed at any depth.
        (("/webhooks/ppcu/denefits", "application/json",
          ('[{"webhook_type": "contract.created", "secret_key": "' + DENEFITS_TOKEN + '", '
           '"data": {"secret_key": "nested", "contract": {"contract_code": "PL3"}}}]').encode()),
         '[{"webhook_type": "contract.created", "data": {"contract": {"contract_code": "PL3"}}}]', "contract.created"),
    ]
    for (path, content_type, raw), expected, event_type in cases:
        auth = {} if "denefits" in path else token()
        response = server.post(path, raw=raw, headers={"content-type": content_type, **auth})
        assert response.status_code == 200, (raw, response.text)
        row = server.rows("SELECT payload = %s::jsonb, payload::text, event_type, headers->>'x-mcb-auth', "
                          "headers ? 'x-mcb-token', headers->>'content-type' FROM webhook_logs WHERE id = %s",
                          (expected, response.json()["id"]))[0]
        how = "payload secret_key" if "denefits" in path else "shared token"
        assert row[0] is True, (expected, row[1])
        assert row[2:] == (event_type, how, False, content_type), row
    # NaN is Python's extension of JSON, not JSON: PostgreSQL could not store it.
    nan = server.post("/webhooks/ppcu/manychat", raw=b'{"a": NaN}', headers=token())
    assert (nan.status_code, nan.json()) == (400, {"error": "The body is not JSON (or form data)."})


def test_a_body_jsonb_refuses_is_a_400_and_never_fails_the_requests_committed_with_it(server: Server) -> None:
    # Valid JSON that PostgreSQL's jsonb cannot hold (a NUL character in a string). The inbox commits
    # concurrent requests together: the bad one must not turn the others into 503s.
    bad_body = b'{"event_type": "contact_created", "subscriber": {"id": "nul", "first_name": "A\\u0000B"}}'
    results: dict[str, list[httpx.Response]] = {"good": [], "bad": []}
    lock = threading.Lock()

    def send(kind: str, n: int) -> None:
        if kind == "bad":
            response = server.post("/webhooks/ppcu/manychat", raw=bad_body,
                                   headers={"content-type": "application/json", **token()})
        else:
            response = server.post("/webhooks/ppcu/manychat", manychat(f"nul_ok_{n}", "contact_created"),
                                   headers=token())
        with lock:
            results[kind].append(response)

    threads = [threading.Thread(target=send, args=("bad" if n % 10 == 0 else "good", n)) for n in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results["bad"]) == 6 and len(results["good"]) == 54
    for response in results["bad"]:
        assert response.status_code == 400, response.text
        assert "cannot be stored" in response.json()["error"]
    assert all(r.status_code == 200 for r in results["good"]), [r.status_code for r in results["good"]]
    ids = [r.json()["id"] for r in results["good"]]
    stored = server.rows("SELECT count(*) FROM webhook_logs WHERE id = ANY(%s)", (ids,))[0][0]
    assert stored == 54
    assert server.rows("SELECT count(*) FROM webhook_logs WHERE payload->'subscriber'->>'id' = 'nul'") == [(0,)]


def test_a_commit_that_fails_is_a_503_stores_nothing_and_the_next_request_is_stored(server: Server) -> None:
    first = server.post("/webhooks/ppcu/manychat", manychat("commit_ok_1", "contact_created"), headers=token())
    assert first.status_code == 200, first.text
    # The inbox writer's database session ends under it (a server restart, a failover): the batch in
    # flight cannot commit, so its sender must be told to retry, and the writer must reconnect.
    ended = server.rows("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name LIKE 'mcb inbox writer %%'")
    assert ended == [(1,)]
    failed = server.post("/webhooks/ppcu/manychat", manychat("commit_lost", "contact_created"), headers=token())
    assert failed.status_code == 503, failed.text
    assert failed.json()["error"] == "Could not store the webhook; retry."
    again = server.post("/webhooks/ppcu/manychat", manychat("commit_ok_2", "contact_created"), headers=token())
    assert again.status_code == 200, again.text
    stored = server.rows("SELECT payload->'subscriber'->>'id' FROM webhook_logs "
                         "WHERE payload->'subscriber'->>'id' LIKE 'commit_%%' ORDER BY id")
    assert stored == [("commit_ok_1",), ("commit_ok_2",)]
    assert {first.json()["id"], again.json()["id"]} == set(
        r[0] for r in server.rows("SELECT id FROM webhook_logs WHERE payload->'subscriber'->>'id' LIKE 'commit_ok_%%'"))


def test_a_disabled_tenant_and_a_changed_secret_take_effect_within_the_cache_time(server: Server) -> None:
    port = _free_port()
    proc = _start({**server.env, "MCB_WEBHOOK_CACHE_SECONDS": "1"}, port)
    url = f"http://127.0.0.1:{port}"

    def post(path: str, slug: str, secret: str) -> int:
        return httpx.post(url + path, json=manychat(f"cache_{slug}", "contact_created"),
                          headers={"X-MCB-Token": secret}, timeout=10).status_code

    def eventually(what: str, check: Any) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"{what} did not take effect")

    try:
        # Fill the caches: a tenant, the default tenant of the legacy URLs, their integrations.
        assert post("/webhooks/centner/manychat", "centner", TOKENS["centner"]) == 200
        assert post("/api/manychat", "ppcu", TOKENS["ppcu"]) == 200
        with psycopg.connect(server.db) as conn:
            conn.execute("UPDATE tenants SET is_active = false WHERE slug = 'centner'")
        eventually("disabling centner", lambda: post("/webhooks/centner/manychat", "centner", TOKENS["centner"]) == 404)

        engine = make_engine(server.db)
        box = secret_box(Settings(MCB_HOME=Path(server.env["MCB_HOME"])))  # type: ignore[call-arg]
        assert box is not None
        with admin_session(engine) as conn:
            set_integration(conn, box, PPCU, "manychat", {"webhook_secret": "ppcu-rotated-token-0123456789abcdef"})
        engine.dispose()
        eventually("rotating ppcu's token", lambda: post("/api/manychat", "ppcu", TOKENS["ppcu"]) == 401)
        assert post("/api/manychat", "ppcu", "ppcu-rotated-token-0123456789abcdef") == 200
        assert post("/webhooks/ppcu/manychat", "ppcu", "ppcu-rotated-token-0123456789abcdef") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
