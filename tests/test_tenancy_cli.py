"""``mcb tenants|integrations|tokens`` as an operator runs them: real processes on a real database.

Outcomes are checked where they land: the tenants / tenant_integrations / api_tokens rows (read with
psycopg), the key file, and ciphertext decrypted with plain ``cryptography.fernet``. Independent commands
run concurrently to keep the file fast.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from mcb.db.engine import make_engine
from mcb.db.session import admin_session, app_session
from mcb.tenancy import tokens as tok

MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]
SOURCES = ("manychat", "ghl", "stripe", "denefits", "perspective")
PROVIDERS = ("manychat", "ghl", "stripe", "meta", "denefits", "perspective")
SEEDS = ("ppcu", "centner", "columnline")
PPCU = UUID("2cb58664-a84a-4d74-844a-4ccd49fcef5a")
CENTNER = UUID("4b8c38aa-969f-4fb6-846e-f59436bda9d4")
COLUMNLINE = UUID("35e77fae-2a37-5f5e-a6c0-ecc3275f346f")

Proc = subprocess.CompletedProcess[str]


# ---------------------------------------------------------------------------------------------- helpers


def _env(env: dict[str, str], overrides: dict[str, str | None]) -> dict[str, str]:
    full = dict(env)
    for name, value in overrides.items():
        if value is None:
            full.pop(name, None)
        else:
            full[name] = value
    return full


def mcb(env: dict[str, str], *args: str, **overrides: str | None) -> Proc:
    """Run ``mcb ARGS`` with ``env`` (plus overrides; None removes a variable)."""
    return subprocess.run([*MCB, *args], env=_env(env, overrides), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def mcb_all(env: dict[str, str], *commands: tuple[str, ...] | tuple[tuple[str, ...], dict[str, str | None]]
            ) -> list[Proc]:
    """Run independent commands concurrently; each is ARGS or (ARGS, overrides)."""
    started = []
    for command in commands:
        if command and isinstance(command[0], tuple):
            args, overrides = command  # type: ignore[misc]
        else:
            args, overrides = command, {}
        started.append((args, subprocess.Popen(
            [*MCB, *args], env=_env(env, overrides), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True)))
    done = []
    for args, proc in started:
        stdout, stderr = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess([*MCB, *args], proc.returncode, stdout, stderr))
    return done


def ok(proc: Proc) -> Proc:
    assert proc.returncode == 0, f"{proc.args[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def refused(proc: Proc, *needles: str, code: int = 1) -> str:
    """The command failed with one sentence on stderr containing every needle; returns that sentence."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"{proc.args[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def rows(url: str, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
    """Rows read as the owner with the admin flag (RLS lets it see every tenant)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET mcb.admin = 'on'")
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def tenant_row(url: str, slug: str) -> dict[str, Any] | None:
    found = rows(url, "SELECT slug, name, owner_name, report_email, is_active, is_default, config "
                      "FROM tenants WHERE slug = %s", (slug,))
    if not found:
        return None
    keys = ("slug", "name", "owner_name", "report_email", "is_active", "is_default", "config")
    return dict(zip(keys, found[0], strict=True))


def tenants_snapshot(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT slug, name, owner_name, report_email, is_active, config::text FROM tenants ORDER BY slug")


def integration_rows(url: str) -> dict[tuple[str, str], tuple[str | None, str | None, dict[str, Any]]]:
    """(tenant slug, provider) -> (credentials ciphertext, webhook_secret ciphertext, options)."""
    found = rows(url, "SELECT t.slug, i.provider, i.credentials, i.webhook_secret, i.options "
                      "FROM tenant_integrations i JOIN tenants t ON t.id = i.tenant_id")
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in found}


def decrypt(keys: list[bytes] | bytes, token: str | None) -> Any:
    """Independent of MCB: plain Fernet over JSON."""
    assert token is not None
    fernet = MultiFernet([Fernet(k) for k in ([keys] if isinstance(keys, bytes) else keys)])
    return json.loads(fernet.decrypt(token.encode()))


def key_file(env: dict[str, str]) -> Path:
    return Path(env["MCB_HOME"]) / "secret.key"


def file_keys(env: dict[str, str]) -> list[bytes]:
    return [k.encode() for k in key_file(env).read_text().split()]


def rand(prefix: str, n: int = 16) -> str:
    return prefix + secrets.token_hex(n)


def pem_public_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pem_body(pem: str) -> list[str]:
    return [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]


def assert_absent(secrets_: list[str], *procs: Proc) -> None:
    for proc in procs:
        for secret in secrets_:
            for stream in (proc.stdout, proc.stderr):
                assert secret not in stream, (proc.args[3:], secret)


def generated_token(proc: Proc) -> str:
    match = re.search(r"Webhook token \(shown once[^\n]*\n\s+(\S+)\s*\n", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


def new_fernet_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def env(cli_env: dict[str, str], head_url: str) -> dict[str, str]:
    return {**cli_env, "DATABASE_URL": head_url}


# ---------------------------------------------------------------------------------------------- tenants


def test_tenant_lifecycle_add_list_show_update_disable(env: dict[str, str], head_url: str) -> None:
    added = ok(mcb(env, "tenants", "add", "acme", "--name", "Acme Co", "--owner", "Ann",
                   "--timezone", "Europe/Berlin", "--report-email", "ann@acme.example",
                   "--report-recipient", "ops@acme.example", "--report-recipient", "ceo@acme.example"))
    for source in SOURCES:
        assert f"http://127.0.0.1:8000/webhooks/acme/{source}" in added.stdout
    row = tenant_row(head_url, "acme")
    assert row is not None
    assert (row["name"], row["owner_name"], row["report_email"], row["is_active"], row["is_default"]) == (
        "Acme Co", "Ann", "ann@acme.example", True, False)
    assert row["config"]["timezone"] == "Europe/Berlin"
    assert row["config"]["report_recipients"] == ["ops@acme.example", "ceo@acme.example"]

    table, as_json, shown = mcb_all(env, ("tenants", "list"), ("tenants", "list", "--json"),
                                    ("tenants", "show", "acme", "--json"))
    ok(table)
    listed_slugs = {ln.split()[1] for ln in table.stdout.splitlines() if ln.startswith("│")}
    assert {*SEEDS, "acme"} <= listed_slugs
    assert re.search(r"│ acme\s+│ Acme Co\s+│ Ann\s+│ Europe/Berlin\s+│ yes", table.stdout), table.stdout
    listed = {t["slug"]: t for t in json.loads(ok(as_json).stdout)}
    assert set(listed) == {*SEEDS, "acme"}
    assert [s for s, t in listed.items() if t["default"]] == ["ppcu"]
    assert (listed["acme"]["name"], listed["acme"]["active"], listed["acme"]["timezone"]) == (
        "Acme Co", True, "Europe/Berlin")
    assert listed["ppcu"]["id"] == str(PPCU) and listed["ppcu"]["timezone"] == "America/New_York"

    show = json.loads(ok(shown).stdout)
    assert show["slug"] == "acme" and show["owner_name"] == "Ann" and show["default"] is False
    assert show["webhook_urls"] == {s: f"http://127.0.0.1:8000/webhooks/acme/{s}" for s in SOURCES}
    assert show["report_recipients"] == ["ops@acme.example", "ceo@acme.example"]
    assert show["integrations"] == {} and show["webhook_activity_7d"] == []
    for source in SOURCES:  # nothing configured: every source will be rejected, and says so
        assert any(source in w and "no webhook secret" in w for w in show["warnings"]), show["warnings"]

    ppcu_before = tenant_row(head_url, "ppcu")
    updated, inactive = mcb_all(
        env,
        ("tenants", "update", "acme", "--timezone", "America/Chicago", "--report-recipient", "new@acme.example",
         "--owner", "Bo"),
        ("tenants", "update", "centner", "--inactive"),
    )
    ok(updated)
    ok(inactive)
    row = tenant_row(head_url, "acme")
    assert row is not None
    assert (row["config"]["timezone"], row["config"]["report_recipients"], row["owner_name"]) == (
        "America/Chicago", ["new@acme.example"], "Bo")
    assert (row["name"], row["report_email"], row["is_active"]) == ("Acme Co", "ann@acme.example", True)
    assert tenant_row(head_url, "centner")["is_active"] is False  # type: ignore[index]

    # re-enable, disable; the default tenant owns the original's data: it cannot be disabled either way
    reactivated, disabled, by_update, by_disable = mcb_all(
        env,
        ("tenants", "update", "centner", "--active"),
        ("tenants", "disable", "columnline"),
        ("tenants", "update", "ppcu", "--inactive", "--timezone", "UTC"),
        ("tenants", "disable", "ppcu"),
    )
    ok(reactivated)
    assert "columnline disabled" in ok(disabled).stdout
    refused(by_update, "ppcu", "default tenant", "cannot be disabled")
    refused(by_disable, "ppcu", "default tenant", "cannot be disabled")
    assert tenant_row(head_url, "centner")["is_active"] is True  # type: ignore[index]
    assert tenant_row(head_url, "columnline")["is_active"] is False  # type: ignore[index]
    assert tenant_row(head_url, "ppcu") == ppcu_before
    shown = json.loads(ok(mcb(env, "tenants", "show", "columnline", "--json")).stdout)
    assert shown["active"] is False
    assert any("disabled" in w for w in shown["warnings"]), shown["warnings"]


def test_tenant_bad_input_is_one_sentence_and_writes_nothing(env: dict[str, str], head_url: str) -> None:
    before = tenants_snapshot(head_url)
    good = ("--name", "Acme Co", "--timezone", "Europe/Berlin")
    duplicate, upper, short, dash, zone, email, recipient, blank = mcb_all(
        env,
        ("tenants", "add", "ppcu", "--name", "Another PPCU"),
        ("tenants", "add", "Acme", *good),
        ("tenants", "add", "a", *good),
        ("tenants", "add", "acme_co", *good),
        ("tenants", "add", "acme", "--name", "Acme Co", "--timezone", "Mars/Olympus_Mons"),
        ("tenants", "add", "acme", *good, "--report-email", "ann.at.acme.example"),
        ("tenants", "add", "acme", *good, "--report-recipient", "ok@acme.example", "--report-recipient", "bad@"),
        ("tenants", "add", "acme", "--name", "   "),
    )
    refused(duplicate, "'ppcu'", "already exists")
    for proc, slug in ((upper, "'Acme'"), (short, "'a'"), (dash, "'acme_co'")):
        refused(proc, slug, "is not a valid tenant slug")
    refused(zone, "'Mars/Olympus_Mons'", "is not an IANA time zone")
    refused(email, "'ann.at.acme.example'", "is not a valid e-mail address")
    refused(recipient, "'bad@'", "is not a valid e-mail address")
    refused(blank, "needs a name")
    assert tenants_snapshot(head_url) == before

    bad_zone, bad_recipient = mcb_all(
        env,
        ("tenants", "update", "centner", "--timezone", "Nowhere/City", "--owner", "Changed"),
        ("tenants", "update", "centner", "--report-recipient", "not-an-address", "--owner", "Changed"),
    )
    refused(bad_zone, "'Nowhere/City'", "IANA")
    refused(bad_recipient, "'not-an-address'", "e-mail")
    assert tenants_snapshot(head_url) == before


def test_user_text_in_an_error_is_printed_literally(env: dict[str, str]) -> None:
    refused(mcb(env, "tenants", "add", "a[/b]", "--name", "X"), "'a[/b]'", "is not a valid tenant slug")


def test_names_with_brackets_are_listed_and_shown_literally(env: dict[str, str]) -> None:
    name = "Acme [/] [bold]Co[/bold]"
    ok(mcb(env, "tenants", "add", "acme", "--name", name, "--owner", "[i]Ann"))
    ok(mcb(env, "tokens", "create", "--admin", "--name", "ops [/]"))
    listed, shown, tokens = mcb_all(env, ("tenants", "list"), ("tenants", "show", "acme"), ("tokens", "list"))
    assert name in ok(listed).stdout and "[i]Ann" in listed.stdout
    assert name in ok(shown).stdout and "[i]Ann" in shown.stdout
    assert "ops [/]" in ok(tokens).stdout


def test_unknown_tenant_is_named_by_every_command(env: dict[str, str], head_url: str, tmp_path: Path) -> None:
    dotenv = tmp_path / "x.env"
    dotenv.write_text("MANYCHAT_API_KEY=mc_unknown_tenant_key_123456\n")
    procs = mcb_all(
        env,
        ("tenants", "show", "nope"),
        ("tenants", "update", "nope", "--timezone", "UTC"),
        ("tenants", "disable", "nope"),
        ("integrations", "set", "nope", "manychat", "api_key=mc_unknown_tenant_key_123456"),
        ("integrations", "list", "nope"),
        ("integrations", "import-env", str(dotenv), "--tenant", "nope"),
        ("tokens", "create", "--tenant", "nope"),
    )
    for proc in procs:
        line = refused(proc, "No tenant 'nope'")
        assert "mc_unknown_tenant_key_123456" not in line
    assert rows(head_url, "SELECT count(*) FROM tenant_integrations") == [(0,)]
    assert rows(head_url, "SELECT count(*) FROM api_tokens") == [(0,)]
    assert tenant_row(head_url, "nope") is None


# ---------------------------------------------------------------------------------------------- integrations


def test_integrations_set_list_show_remove(env: dict[str, str], head_url: str, tmp_path: Path) -> None:
    stripe_key, whsec, ghl_key = rand("sk_live_"), rand("whsec_"), rand("pit-")
    pem = pem_public_key()
    pem_file = tmp_path / "ghl.pem"
    pem_file.write_text(pem)
    plaintexts = [stripe_key, whsec, ghl_key, *pem_body(pem)]

    stored = ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={stripe_key}",
                    f"webhook_secret={whsec}"))
    assert f"secret_key=sk_l…({len(stripe_key)} chars)" in stored.stdout
    assert f"webhook_secret=whse…({len(whsec)} chars)" in stored.stdout
    path = key_file(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = file_keys(env)
    assert len(keys) == 1

    ghl, manychat = mcb_all(
        env,
        ("integrations", "set", "ppcu", "ghl", f"api_key={ghl_key}", "location_id=LOC42",
         f"webhook_secret=@{pem_file}", "--allow-unauthenticated"),
        ("integrations", "set", "ppcu", "manychat", "--generate-token"),
    )
    assert "webhook_secret=<1 PEM key>" in ok(ghl).stdout and "without authentication" in ghl.stdout
    token = generated_token(ok(manychat))
    assert len(token) >= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert f"X-MCB-Token: {token}" in manychat.stdout
    assert f"http://127.0.0.1:8000/webhooks/ppcu/manychat?token={token}" in manychat.stdout
    assert token not in manychat.stderr
    assert file_keys(env) == keys  # the key file was made once, not per command

    # at rest: ciphertext only, and it decrypts with the key file's key to exactly what was given
    stored_rows = integration_rows(head_url)
    assert set(stored_rows) == {("ppcu", "stripe"), ("ppcu", "ghl"), ("ppcu", "manychat")}
    raw = json.dumps([r[:2] for r in stored_rows.values()])
    for plaintext in [*plaintexts, token, "LOC42"]:
        assert plaintext not in raw
    assert decrypt(keys, stored_rows["ppcu", "stripe"][0]) == {"secret_key": stripe_key}
    assert decrypt(keys, stored_rows["ppcu", "stripe"][1]) == whsec
    assert decrypt(keys, stored_rows["ppcu", "ghl"][0]) == {"api_key": ghl_key, "location_id": "LOC42"}
    assert decrypt(keys, stored_rows["ppcu", "ghl"][1]) == pem.strip()
    assert stored_rows["ppcu", "ghl"][2] == {"allow_unauthenticated": True}
    assert decrypt(keys, stored_rows["ppcu", "manychat"][0]) == {}
    assert decrypt(keys, stored_rows["ppcu", "manychat"][1]) == token

    # webhook activity: rows for ppcu (some old), and rows of another tenant that must not count
    rows(head_url, """
        INSERT INTO webhook_logs (tenant_id, source, payload, status, created_at)
        SELECT %(ppcu)s, s.source, '{}'::jsonb, s.status, now() - s.age
        FROM (VALUES ('stripe', 'processed', interval '1 hour'), ('stripe', 'processed', interval '2 days'),
                     ('stripe', 'processed', interval '6 days'), ('stripe', 'failed', interval '3 hours'),
                     ('manychat', NULL, interval '1 minute'), ('manychat', 'received', interval '1 day'),
                     ('ghl', 'processed', interval '30 days')) AS s(source, status, age)
        UNION ALL
        SELECT %(centner)s, 'stripe', '{}'::jsonb, 'processed', now() FROM generate_series(1, 5)
        """, {"ppcu": PPCU, "centner": CENTNER})

    listed, listed_json, shown_json, shown = mcb_all(
        env,
        ("integrations", "list", "ppcu"),
        ("integrations", "list", "ppcu", "--json"),
        (("tenants", "show", "ppcu", "--json"), {"MCB_PUBLIC_URL": "https://mcb.example.com/"}),
        ("tenants", "show", "ppcu"),
    )
    for proc in (listed, listed_json, shown_json, shown):
        ok(proc)
    assert_absent([*plaintexts, token, "LOC42"], listed, listed_json, shown_json, shown)
    assert "<1 PEM key>" in listed.stdout and f"sk_l…({len(stripe_key)} chars)" in listed.stdout
    assert json.loads(listed_json.stdout) == {
        "ghl": {"keys": {"api_key": f"pit-…({len(ghl_key)} chars)", "location_id": "•" * 8,
                         "webhook_secret": "<1 PEM key>"},
                "options": {"allow_unauthenticated": True}, "active": True},
        "manychat": {"keys": {"webhook_secret": f"{token[:4]}…({len(token)} chars)"}, "options": {},
                     "active": True},
        "stripe": {"keys": {"secret_key": f"sk_l…({len(stripe_key)} chars)",
                            "webhook_secret": f"whse…({len(whsec)} chars)"}, "options": {}, "active": True},
    }

    show = json.loads(shown_json.stdout)
    assert show["webhook_urls"] == {s: f"https://mcb.example.com/webhooks/ppcu/{s}" for s in SOURCES}
    assert set(show["integrations"]) == {"stripe", "ghl", "manychat"}
    assert show["integrations"]["ghl"]["keys"]["webhook_secret"] == "<1 PEM key>"
    warnings = show["warnings"]
    assert any("ghl" in w and "WITHOUT authentication" in w for w in warnings), warnings
    for source in ("denefits", "perspective"):
        assert any(source in w and "no webhook secret" in w for w in warnings), warnings
    for source in ("stripe", "manychat"):
        assert not any(w.startswith(source) for w in warnings), warnings
    assert len(warnings) == 3
    activity = sorted((a["source"], a["status"], a["count"]) for a in show["webhook_activity_7d"])
    assert activity == [("manychat", "received", 2), ("stripe", "failed", 1), ("stripe", "processed", 3)]
    assert "http://127.0.0.1:8000/webhooks/ppcu/denefits" in shown.stdout
    assert "warning: ghl webhooks are accepted WITHOUT authentication" in shown.stdout
    assert "warning: perspective webhooks will be rejected" in shown.stdout
    assert re.search(r"│ stripe\s+│ processed\s+│ 3\s+│", shown.stdout), shown.stdout

    # merge a key, then remove it with KEY=; remove a whole provider
    pk = rand("pk_live_")
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"publishable_key={pk}"))
    assert decrypt(keys, integration_rows(head_url)["ppcu", "stripe"][0]) == {
        "secret_key": stripe_key, "publishable_key": pk}
    cleared, removed = mcb_all(env, ("integrations", "set", "ppcu", "stripe", "publishable_key="),
                               ("integrations", "remove", "ppcu", "ghl"))
    ok(cleared)
    assert "Removed ghl from ppcu" in ok(removed).stdout
    after = integration_rows(head_url)
    assert set(after) == {("ppcu", "stripe"), ("ppcu", "manychat")}
    assert decrypt(keys, after["ppcu", "stripe"][0]) == {"secret_key": stripe_key}
    assert decrypt(keys, after["ppcu", "stripe"][1]) == whsec


def test_integrations_bad_input_is_refused_and_writes_nothing(
    env: dict[str, str], head_url: str, tmp_path: Path
) -> None:
    stripe_key = rand("sk_live_")
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={stripe_key}"))
    before = integration_rows(head_url)
    provider, key, stripe_token, both, missing_file, not_pair, again, nothing = mcb_all(
        env,
        ("integrations", "set", "ppcu", "paypal", "api_key=pp_live_1234567890abcdef"),
        ("integrations", "set", "ppcu", "stripe", "api_key=sk_test_1234567890abcdef"),
        ("integrations", "set", "ppcu", "stripe", "--generate-token"),
        ("integrations", "set", "ppcu", "manychat", "webhook_secret=abcdefghijklmnopqrstu", "--generate-token"),
        ("integrations", "set", "ppcu", "ghl", f"webhook_secret=@{tmp_path / 'missing.pem'}"),
        ("integrations", "set", "ppcu", "manychat", "=value-without-key"),
        ("integrations", "remove", "ppcu", "ghl"),
        ("integrations", "set", "ppcu", "manychat"),
    )
    line = refused(provider, "'paypal'")
    for name in PROVIDERS:
        assert name in line
    line = refused(key, "api_key", "stripe")
    for name in ("secret_key", "publishable_key", "webhook_secret"):
        assert name in line
    refused(stripe_token, "Stripe", "whsec_")
    refused(both, "--generate-token")
    refused(missing_file, "Cannot read", "missing.pem")
    refused(not_pair, "KEY=VALUE")
    refused(again, "ppcu has no ghl integration")
    refused(nothing, "Nothing to store")
    assert_absent(["pp_live_1234567890abcdef", "sk_test_1234567890abcdef", "abcdefghijklmnopqrstu", stripe_key],
                  provider, key, both)
    assert integration_rows(head_url) == before


def test_a_bare_secret_argument_is_not_echoed(env: dict[str, str]) -> None:
    secret = rand("sk_live_")
    proc = mcb(env, "integrations", "set", "ppcu", "stripe", secret)
    refused(proc, "KEY=VALUE")
    assert secret not in proc.stderr


# ---------------------------------------------------------------------------------------------- keys


def test_wrong_malformed_or_missing_key_fails_cleanly(env: dict[str, str], head_url: str) -> None:
    right, wrong = new_fernet_key(), new_fernet_key()
    stripe_key, whsec = rand("sk_live_"), rand("whsec_")
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={stripe_key}", f"webhook_secret={whsec}",
           MCB_SECRET_KEY=right))
    assert not key_file(env).exists()  # MCB_SECRET_KEY given: no key file is made
    stored = integration_rows(head_url)["ppcu", "stripe"]
    assert decrypt(right.encode(), stored[0]) == {"secret_key": stripe_key}
    with pytest.raises(InvalidToken):
        Fernet(wrong.encode()).decrypt(stored[0].encode())  # type: ignore[union-attr]

    procs = mcb_all(
        env,
        (("integrations", "list", "ppcu"), {"MCB_SECRET_KEY": wrong}),
        (("integrations", "list", "ppcu", "--json"), {"MCB_SECRET_KEY": wrong}),
        (("tenants", "show", "ppcu", "--json"), {"MCB_SECRET_KEY": wrong}),
        (("integrations", "list", "ppcu"), {"MCB_SECRET_KEY": "this-is-not-a-fernet-key"}),
        (("integrations", "list", "ppcu"), {"MCB_SECRET_KEY": None}),
        (("integrations", "list", "ppcu"), {"MCB_SECRET_KEY": right}),
    )
    *failing, good = procs
    for proc in failing[:3]:
        line = refused(proc, "Cannot decrypt", "MCB_SECRET_KEY")
        assert "stripe" in line and "ppcu" in line
        assert proc.stdout == ""
    refused(failing[3], "MCB_SECRET_KEY is not a valid key")
    refused(failing[4], "no secret key is configured", "MCB_SECRET_KEY")
    assert_absent([stripe_key, whsec, right, wrong, "this-is-not-a-fernet-key", stored[0], stored[1]],  # type: ignore[list-item]
                  *procs)
    assert "stripe" in ok(good).stdout
    assert integration_rows(head_url)["ppcu", "stripe"] == stored


def test_set_with_a_key_that_cannot_read_stored_secrets_is_refused(env: dict[str, str], head_url: str) -> None:
    right, wrong = new_fernet_key(), new_fernet_key()
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={rand('sk_live_')}", MCB_SECRET_KEY=right))
    proc = mcb(env, "integrations", "set", "ppcu", "manychat", f"api_key={rand('mc_')}", MCB_SECRET_KEY=wrong)
    refused(proc, "MCB_SECRET_KEY")
    assert set(integration_rows(head_url)) == {("ppcu", "stripe")}


def test_lost_key_file_is_not_silently_replaced(env: dict[str, str], head_url: str) -> None:
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={rand('sk_live_')}"))
    key_file(env).unlink()
    proc = mcb(env, "integrations", "set", "centner", "manychat", f"api_key={rand('mc_')}")
    refused(proc, "key file")
    assert not key_file(env).exists()
    assert set(integration_rows(head_url)) == {("ppcu", "stripe")}


def test_rotate_key_with_a_lost_key_file_names_the_fix(env: dict[str, str], head_url: str) -> None:
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={rand('sk_live_')}"))
    key_file(env).unlink()
    line = refused(mcb(env, "integrations", "rotate-key"), "key file")
    assert "nothing has been encrypted" not in line


def _env_file(path: Path) -> dict[str, str]:
    """A .env.local as the original kept it; returns every value by variable name."""
    values = {
        "STRIPE_SECRET_KEY": rand("sk_live_"),
        "STRIPE_WEBHOOK_SECRET": rand("whsec_"),
        "MANYCHAT_API_KEY": rand("mc_"),
        "GHL_API_KEY": rand("pit-"),
        "GHL_LOCATION_ID": rand("loc", 8),
        "META_ACCESS_TOKEN": rand("EAAB", 24),
        "META_AD_ACCOUNT_ID": "act_" + str(secrets.randbelow(10**15)).zfill(15),
        "NEXT_PUBLIC_SUPABASE_URL": "https://abcdefghijkl.supabase.co",
        "SUPABASE_SERVICE_ROLE_KEY": rand("eyJhbGciOiJIUzI1NiJ9.", 24),
        "CRON_SECRET": rand("cron_"),
    }
    path.write_text(
        "# The original's .env.local\n"
        f'STRIPE_SECRET_KEY="{values["STRIPE_SECRET_KEY"]}"\n'
        f"export STRIPE_WEBHOOK_SECRET='{values['STRIPE_WEBHOOK_SECRET']}'\n"
        "\n"
        f"MANYCHAT_API_KEY={values['MANYCHAT_API_KEY']}   # ManyChat Pro\n"
        f"GHL_API_KEY = {values['GHL_API_KEY']}\n"
        f"GHL_LOCATION_ID={values['GHL_LOCATION_ID']}\n"
        f'export META_ACCESS_TOKEN="{values["META_ACCESS_TOKEN"]}"\n'
        f"META_AD_ACCOUNT_ID={values['META_AD_ACCOUNT_ID']}\n"
        "# Supabase\n"
        f"NEXT_PUBLIC_SUPABASE_URL={values['NEXT_PUBLIC_SUPABASE_URL']}\n"
        f"SUPABASE_SERVICE_ROLE_KEY={values['SUPABASE_SERVICE_ROLE_KEY']}\n"
        f"CRON_SECRET='{values['CRON_SECRET']}'\n"
    )
    return values


UNRECOGNISED = ("NEXT_PUBLIC_SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "CRON_SECRET")


def test_import_env(env: dict[str, str], head_url: str, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env.local"
    values = _env_file(dotenv)
    secret_values = [v for k, v in values.items() if k != "NEXT_PUBLIC_SUPABASE_URL"]
    broken = tmp_path / "broken.env"
    broken.write_text(
        f"STRIPE_SECRET_KEY={values['STRIPE_SECRET_KEY']}\n"
        "# a comment\n"
        f"MANYCHAT_API_KEY={values['MANYCHAT_API_KEY']}\n"
        "THIS LINE IS BROKEN\n"
        f"GHL_API_KEY={values['GHL_API_KEY']}\n"
    )

    dry, bad, missing = mcb_all(
        env,
        ("integrations", "import-env", str(dotenv), "--tenant", "ppcu", "--dry-run"),
        ("integrations", "import-env", str(broken), "--tenant", "centner"),
        ("integrations", "import-env", str(tmp_path / "nope.env"), "--tenant", "ppcu"),
    )
    ok(dry)
    assert_absent(secret_values, dry)
    assert f"sk_l…({len(values['STRIPE_SECRET_KEY'])} chars)" in dry.stdout
    assert f"whse…({len(values['STRIPE_WEBHOOK_SECRET'])} chars)" in dry.stdout
    for variable in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "MANYCHAT_API_KEY", "GHL_API_KEY",
                     "GHL_LOCATION_ID", "META_ACCESS_TOKEN", "META_AD_ACCOUNT_ID"):
        assert variable in dry.stdout
    unrecognised = [ln for ln in dry.stdout.splitlines() if "Not recognised" in ln]
    assert len(unrecognised) == 1 and all(name in unrecognised[0] for name in UNRECOGNISED)
    assert "nothing was stored" in dry.stdout
    line = refused(bad, "malformed", str(broken))
    assert re.search(r"line\(s\) 4\b", line), line
    assert_absent(secret_values, bad)
    refused(missing, "No file at", "nope.env")
    assert integration_rows(head_url) == {}
    assert not key_file(env).exists()

    real = ok(mcb(env, "integrations", "import-env", str(dotenv), "--tenant", "ppcu"))
    assert_absent(secret_values, real)
    assert all(name in real.stdout for name in UNRECOGNISED)
    keys = file_keys(env)
    stored = integration_rows(head_url)
    assert set(stored) == {("ppcu", "stripe"), ("ppcu", "manychat"), ("ppcu", "ghl"), ("ppcu", "meta")}
    raw = json.dumps([r[:2] for r in stored.values()])
    for value in secret_values:
        assert value not in raw
    assert decrypt(keys, stored["ppcu", "stripe"][0]) == {"secret_key": values["STRIPE_SECRET_KEY"]}
    assert decrypt(keys, stored["ppcu", "stripe"][1]) == values["STRIPE_WEBHOOK_SECRET"]
    assert decrypt(keys, stored["ppcu", "manychat"][0]) == {"api_key": values["MANYCHAT_API_KEY"]}
    assert decrypt(keys, stored["ppcu", "ghl"][0]) == {"api_key": values["GHL_API_KEY"],
                                                       "location_id": values["GHL_LOCATION_ID"]}
    assert decrypt(keys, stored["ppcu", "meta"][0]) == {"access_token": values["META_ACCESS_TOKEN"],
                                                        "ad_account_id": values["META_AD_ACCOUNT_ID"]}
    for provider in ("manychat", "ghl", "meta"):
        assert stored["ppcu", provider][1] is None


def test_rotate_key_with_the_key_file(env: dict[str, str], head_url: str, tmp_path: Path) -> None:
    values = _env_file(tmp_path / ".env")
    ok(mcb(env, "integrations", "import-env", str(tmp_path / ".env"), "--tenant", "ppcu"))
    ok(mcb(env, "integrations", "set", "centner", "denefits", "--generate-token"))
    old_keys = file_keys(env)
    before = integration_rows(head_url)
    plain = {k: (decrypt(old_keys, c), decrypt(old_keys, s) if s else None) for k, (c, s, _) in before.items()}

    rotated = ok(mcb(env, "integrations", "rotate-key"))
    assert f"Re-encrypted {len(before)} integration(s)" in rotated.stdout
    path = key_file(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    new_keys = file_keys(env)
    assert len(new_keys) == 1 and new_keys != old_keys
    Fernet(new_keys[0])
    after = integration_rows(head_url)
    assert set(after) == set(before)
    for name, (creds, secret, _) in after.items():
        assert creds != before[name][0]
        assert (decrypt(new_keys, creds), decrypt(new_keys, secret) if secret else None) == plain[name]
        with pytest.raises(InvalidToken):
            Fernet(old_keys[0]).decrypt(creds.encode())  # type: ignore[union-attr]
    listed = ok(mcb(env, "integrations", "list", "ppcu", "--json"))
    assert set(json.loads(listed.stdout)) == {"stripe", "manychat", "ghl", "meta"}
    assert_absent(list(values.values())[:7], rotated, listed)


def test_rotate_key_with_mcb_secret_key(env: dict[str, str], head_url: str) -> None:
    old, new = new_fernet_key(), new_fernet_key()
    stripe_key = rand("sk_live_")
    ok(mcb(env, "integrations", "set", "ppcu", "stripe", f"secret_key={stripe_key}", MCB_SECRET_KEY=old))
    ok(mcb(env, "integrations", "set", "centner", "manychat", "--generate-token", MCB_SECRET_KEY=old))
    before = integration_rows(head_url)

    one_key = mcb(env, "integrations", "rotate-key", MCB_SECRET_KEY=old)
    refused(one_key, "MCB_SECRET_KEY holds one key", "MCB_SECRET_KEY=new,old", "generate-key")
    assert integration_rows(head_url) == before

    ok(mcb(env, "integrations", "rotate-key", MCB_SECRET_KEY=f"{new},{old}"))
    after = integration_rows(head_url)
    for name, (creds, secret, _) in after.items():
        assert creds != before[name][0]
        assert decrypt(new.encode(), creds) == decrypt(old.encode(), before[name][0])
        if secret:
            assert decrypt(new.encode(), secret) == decrypt(old.encode(), before[name][1])
    assert decrypt(new.encode(), after["ppcu", "stripe"][0]) == {"secret_key": stripe_key}
    new_only, old_only = mcb_all(env, (("integrations", "list", "ppcu"), {"MCB_SECRET_KEY": new}),
                                 (("integrations", "list", "centner"), {"MCB_SECRET_KEY": old}))
    assert "stripe" in ok(new_only).stdout
    refused(old_only, "Cannot decrypt", "MCB_SECRET_KEY")
    assert not key_file(env).exists()


# ---------------------------------------------------------------------------------------------- tokens


def test_tokens_create_list_revoke(env: dict[str, str], head_url: str) -> None:
    tenant_proc, admin_proc, neither, both, nope = mcb_all(
        env,
        ("tokens", "create", "--tenant", "centner", "--name", "dashboard"),
        ("tokens", "create", "--admin", "--name", "ops"),
        ("tokens", "create"),
        ("tokens", "create", "--tenant", "centner", "--admin"),
        ("tokens", "revoke", "mcb_nothing"),
    )
    refused(neither, "--tenant", "--admin")
    refused(both, "--tenant", "--admin")
    refused(nope, "No active token 'mcb_nothing'")
    issued = {}
    for name, proc in (("dashboard", tenant_proc), ("ops", admin_proc)):
        ok(proc)
        found = re.findall(r"mcb_[A-Za-z0-9_-]{30,}", proc.stdout)
        assert len(found) == 1 and found[0] + "\n" in proc.stdout, proc.stdout
        assert found[0] not in proc.stderr
        issued[name] = found[0]
    assert "Authorization: Bearer" in tenant_proc.stdout

    stored = {r[0]: r[1:] for r in rows(
        head_url, "SELECT name, tenant_id, token_prefix, token_hash, row_to_json(k)::text FROM api_tokens k")}
    assert set(stored) == {"dashboard", "ops"}
    for name, token in issued.items():
        _tenant_id, prefix, token_hash, whole_row = stored[name]
        assert token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token.startswith(prefix) and prefix.startswith("mcb_") and len(prefix) <= 12
        assert token not in whole_row and token[len(prefix):] not in whole_row
    assert stored["dashboard"][0] == CENTNER and stored["ops"][0] is None

    table, as_json, only_centner = mcb_all(env, ("tokens", "list"), ("tokens", "list", "--json"),
                                           ("tokens", "list", "--tenant", "centner", "--json"))
    assert_absent(list(issued.values()), ok(table), ok(as_json), ok(only_centner))
    listed = {t["name"]: t for t in json.loads(as_json.stdout)}
    assert (listed["dashboard"]["tenant"], listed["dashboard"]["admin"]) == ("centner", False)
    assert (listed["ops"]["tenant"], listed["ops"]["admin"]) == (None, True)
    assert listed["dashboard"]["prefix"] == stored["dashboard"][1] and stored["dashboard"][1] in table.stdout
    assert [t["name"] for t in json.loads(only_centner.stdout)] == ["dashboard"]

    by_prefix, by_id = mcb_all(env, ("tokens", "revoke", stored["dashboard"][1]),
                               ("tokens", "revoke", listed["ops"]["id"]))
    ok(by_prefix)
    ok(by_id)
    assert rows(head_url, "SELECT name FROM api_tokens WHERE revoked_at IS NOT NULL ORDER BY name") == [
        ("dashboard",), ("ops",)]
    active, everything, again = mcb_all(env, ("tokens", "list", "--json"), ("tokens", "list", "--all", "--json"),
                                        ("tokens", "revoke", stored["dashboard"][1]))
    assert json.loads(ok(active).stdout) == []
    assert {t["name"] for t in json.loads(ok(everything).stdout) if t["revoked_at"]} == {"dashboard", "ops"}
    refused(again, "No active token")


def test_authenticate_and_can_access(head_url: str) -> None:
    engine = make_engine(head_url)
    try:
        with admin_session(engine) as conn:
            ppcu_token, _ = tok.create_token(conn, PPCU, "ppcu api")
            admin_token, _ = tok.create_token(conn, None, "admin")
            revoked_token, revoked = tok.create_token(conn, CENTNER, "old")
        with admin_session(engine) as conn:
            tok.revoke_token(conn, str(revoked.id))

        with admin_session(engine) as conn:
            tenant = tok.authenticate(conn, ppcu_token)
            admin = tok.authenticate(conn, admin_token)
            assert tenant is not None and tenant.tenant_id == PPCU and tenant.tenant_slug == "ppcu"
            assert admin is not None and admin.tenant_id is None
            for bad in (revoked_token, "mcb_" + secrets.token_urlsafe(32), ppcu_token[:-1], ppcu_token + "x",
                        ppcu_token[len("mcb_"):], "", "Bearer " + ppcu_token):
                assert tok.authenticate(conn, bad) is None, bad
        # the runtime role (what the HTTP API uses) can authenticate too, and records the use
        with app_session(engine) as conn:
            again = tok.authenticate(conn, ppcu_token)
            assert again is not None and again.tenant_id == PPCU
        used = rows(head_url, "SELECT name FROM api_tokens WHERE last_used_at IS NOT NULL ORDER BY name")
        assert used == [("admin",), ("ppcu api",)]

        # a deactivated tenant's tokens stop working until it is reactivated; admin tokens are unaffected
        for active, expected in ((False, None), (True, "ppcu")):
            with admin_session(engine) as conn:
                conn.execute(text("UPDATE tenants SET is_active = :a WHERE id = :t"), {"a": active, "t": PPCU})
            with app_session(engine) as conn:
                found = tok.authenticate(conn, ppcu_token)
                assert (found.tenant_slug if found else None) == expected
                assert tok.authenticate(conn, admin_token) is not None

        assert tok.can_access(tenant, PPCU)
        assert not tok.can_access(tenant, CENTNER) and not tok.can_access(tenant, COLUMNLINE)
        for tenant_id in (PPCU, CENTNER, COLUMNLINE):
            assert tok.can_access(admin, tenant_id)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------- logs


def test_no_secret_reaches_output_or_logs_in_a_full_run(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "MCB_LOG_LEVEL": "DEBUG"}
    stripe_key, whsec, ghl_key = rand("sk_live_"), rand("whsec_"), rand("pit-")
    pem = pem_public_key()
    (tmp_path / "ghl.pem").write_text(pem)
    dotenv = tmp_path / ".env.local"
    env_values = _env_file(dotenv)
    known = [stripe_key, whsec, ghl_key, *pem_body(pem),
             *(v for k, v in env_values.items() if k != "NEXT_PUBLIC_SUPABASE_URL")]

    runs: list[Proc] = []

    def step(*args: str, **overrides: str | None) -> Proc:
        proc = ok(mcb(env, *args, **overrides))
        runs.append(proc)
        return proc

    added = step("tenants", "add", "acme", "--name", "Acme Co", "--owner", "Ann", "--timezone", "Europe/Berlin",
                 "--report-email", "ann@acme.example")
    stored = step("integrations", "set", "acme", "stripe", f"secret_key={stripe_key}", f"webhook_secret={whsec}")
    step("integrations", "set", "acme", "ghl", f"api_key={ghl_key}", f"webhook_secret=@{tmp_path / 'ghl.pem'}")
    generated = step("integrations", "set", "acme", "manychat", "--generate-token")
    step("integrations", "import-env", str(dotenv), "--tenant", "ppcu", "--dry-run")
    step("integrations", "import-env", str(dotenv), "--tenant", "ppcu")
    keys_before = [k.decode() for k in file_keys(env)]
    for proc in mcb_all(env, ("integrations", "list", "acme"), ("integrations", "list", "ppcu", "--json"),
                        ("tenants", "show", "acme"), ("tenants", "show", "ppcu", "--json")):
        runs.append(ok(proc))
    tenant_token = step("tokens", "create", "--tenant", "acme", "--name", "dashboard")
    admin_token = step("tokens", "create", "--admin")
    step("tokens", "list", "--all")
    step("integrations", "rotate-key")
    keys_after = [k.decode() for k in file_keys(env)]
    for proc in mcb_all(env, ("integrations", "list", "acme", "--json"), ("tenants", "list"),
                        ("tokens", "list", "--json")):
        runs.append(ok(proc))
    wrong = mcb(env, "integrations", "list", "acme", MCB_SECRET_KEY=new_fernet_key())
    refused(wrong, "MCB_SECRET_KEY")
    runs.append(wrong)

    # logging was on, so the search below means something
    assert "INFO mcb.tenancy.tenants: tenant acme added" in added.stderr
    assert "INFO mcb.tenancy.integrations: integration stripe stored for tenant acme" in stored.stderr
    assert re.search(r"INFO mcb\.tenancy\.tokens: api token mcb_\S+ created \(acme\)", tenant_token.stderr)
    assert sum("INFO mcb." in p.stderr for p in runs) >= 6

    assert_absent([*known, *keys_before, *keys_after], *runs)
    one_time = {
        generated_token(generated): generated,
        re.findall(r"mcb_[A-Za-z0-9_-]{30,}", tenant_token.stdout)[0]: tenant_token,
        re.findall(r"mcb_[A-Za-z0-9_-]{30,}", admin_token.stdout)[0]: admin_token,
    }
    for value, where in one_time.items():
        assert value in where.stdout and value not in where.stderr
        assert_absent([value], *(p for p in runs if p is not where))
