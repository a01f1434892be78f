"""``mcb db ...`` as an operator runs it: a real process, a real database, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.legacy_data import fill_legacy
from tests.revisions import FORWARD, HEAD

MCB = [sys.executable, "-c", "from mcb.cli import main; main()"]


def mcb(env: dict[str, str], *args: str, url: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(env)
    if url is not None:
        full_env["DATABASE_URL"] = url
    return subprocess.run([*MCB, *args], env=full_env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def _one_sentence(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_upgrade_empty_database_then_rerun_is_a_noop(empty_url: str, cli_env: dict[str, str]) -> None:
    first = mcb(cli_env, "db", "upgrade", url=empty_url)
    assert first.returncode == 0, first.stderr
    assert f"Upgraded to {HEAD} ({len(FORWARD) + 1} revision(s))" in first.stdout
    assert "tenant_scoped_keys" in first.stdout and "FAIL" not in first.stdout
    second = mcb(cli_env, "db", "upgrade", url=empty_url)
    assert second.returncode == 0
    assert f"Already at head ({HEAD}); nothing to do." in second.stdout


def test_verify_and_status_as_json(head_url: str, cli_env: dict[str, str]) -> None:
    verify = mcb(cli_env, "db", "verify", "--json", url=head_url)
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report["passed"] is True and report["revision"] == HEAD
    assert {c["name"] for c in report["checks"]} == {
        "revision", "seeded_tenants", "tenant_id_columns", "no_global_unique_keys", "tenant_scoped_keys",
        "foreign_keys_valid", "backfills_complete", "legacy_writes", "write_path", "row_level_security",
        "row_counts",
    }
    assert report["row_counts"]["ppcu"]["contacts"] == 0
    status = mcb(cli_env, "db", "status", "--json", url=head_url)
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert (st["kind"], st["revision"], st["head"], st["pending"]) == ("versioned", HEAD, HEAD, [])


def test_verify_fails_when_a_check_fails(head_url: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(head_url, autocommit=True) as conn:
        conn.execute("CREATE UNIQUE INDEX sneaky_global ON contacts (email_primary)")
    proc = mcb(cli_env, "db", "verify", url=head_url)
    assert proc.returncode == 5
    assert "contacts.sneaky_global (email_primary)" in proc.stdout
    assert _one_sentence(proc.stderr) == "Error: 1 check(s) failed."


def test_status_of_a_legacy_database_lists_pending_revisions(legacy_url: str, cli_env: dict[str, str]) -> None:
    proc = mcb(cli_env, "db", "status", url=legacy_url)
    assert proc.returncode == 0, proc.stderr
    assert "the original single-tenant schema, not yet adopted" in proc.stdout
    assert "0004  Every unique key and every foreign key between tenant tables includes tenant_id" in proc.stdout


def test_unreachable_database_is_one_sentence(cli_env: dict[str, str]) -> None:
    proc = mcb(cli_env, "db", "status", url="postgresql://mcb:secret-pw@127.0.0.1:9/mcb")
    assert proc.returncode == 3
    line = _one_sentence(proc.stderr)
    assert line.startswith("Error: Cannot connect to the database at 127.0.0.1:9/mcb:")
    assert "secret-pw" not in proc.stderr


def test_missing_database_and_bad_url(pg: object, cli_env: dict[str, str], empty_url: str) -> None:
    missing = empty_url.rsplit("/", 1)[0] + "/no_such_db" + ("?" + empty_url.split("?", 1)[1] if "?" in empty_url else "")
    proc = mcb(cli_env, "db", "upgrade", url=missing)
    assert proc.returncode == 3
    assert "that database does not exist" in _one_sentence(proc.stderr)
    bad = mcb(cli_env, "db", "status", url="mysql://x@y/z")
    assert bad.returncode == 1
    assert _one_sentence(bad.stderr) == "Error: DATABASE_URL must start with postgresql:// (MCB runs on PostgreSQL only)."


def test_role_without_login_is_refused_cleanly(empty_url: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS mcb_nologin")
        conn.execute("CREATE ROLE mcb_nologin NOLOGIN")
    url = empty_url.replace("postgres@", "mcb_nologin@", 1).replace("postgres:@", "mcb_nologin:@", 1)
    proc = mcb(cli_env, "db", "status", url=url)
    assert proc.returncode == 3
    assert 'role "mcb_nologin" is not permitted to log in' in _one_sentence(proc.stderr)


def test_unknown_shape_exit_code_and_message(empty_url: str, cli_env: dict[str, str]) -> None:
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (id int)")
    proc = mcb(cli_env, "db", "upgrade", url=empty_url)
    assert proc.returncode == 4
    line = _one_sentence(proc.stderr)
    assert "neither empty, nor MCB's, nor the original MCB schema" in line
    assert "table payments is missing" in line


def test_backup_and_restore_round_trip(legacy_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    fill_legacy(legacy_url, contacts=50, payments=10, webhook_logs=10, ads=3, insights_per_ad=2)
    up = mcb(cli_env, "db", "upgrade", "--no-backup", url=legacy_url)
    assert up.returncode == 0, up.stderr
    dump = tmp_path / "snap.dump"
    made = mcb(cli_env, "db", "backup", "--output", str(dump), url=legacy_url)
    assert made.returncode == 0, made.stderr
    assert dump.stat().st_size > 1000

    with psycopg.connect(legacy_url, autocommit=True) as conn:
        conn.execute("DELETE FROM funnel_events")
        conn.execute("DELETE FROM webhook_logs")
        conn.execute("CREATE TABLE scratch_after_backup (x int)")

    refused = mcb(cli_env, "db", "restore", str(dump), url=legacy_url)
    assert refused.returncode == 1
    assert _one_sentence(refused.stderr) == "Error: Restoring replaces everything in the database; pass --yes to confirm."

    restored = mcb(cli_env, "db", "restore", str(dump), "--yes", url=legacy_url)
    assert restored.returncode == 0, restored.stderr
    assert "Current state backed up to" in restored.stdout
    with psycopg.connect(legacy_url) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_logs").fetchone() == (10,)
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (53,)
        assert conn.execute("SELECT to_regclass('public.scratch_after_backup')").fetchone() == (None,)
        # The restored tables were analyzed in the restore's transaction: they have column statistics (a dump
        # carries none, and the server's autovacuum would take its time).
        analyzed = {r[0] for r in conn.execute(
            "SELECT DISTINCT tablename::text FROM pg_stats WHERE schemaname = 'public' "
            "AND tablename IN ('contacts', 'payments', 'webhook_logs', 'funnel_events')").fetchall()}
    assert analyzed == {"contacts", "payments", "webhook_logs", "funnel_events"}
    verify = mcb(cli_env, "db", "verify", url=legacy_url)
    assert verify.returncode == 0, verify.stdout


def test_restore_of_a_file_that_is_not_a_backup(head_url: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_text("not a dump")
    proc = mcb(cli_env, "db", "restore", str(junk), "--yes", "--no-safety-backup", url=head_url)
    assert proc.returncode == 1
    assert "is not a readable MCB backup" in _one_sentence(proc.stderr)
    missing = mcb(cli_env, "db", "restore", str(tmp_path / "nope.dump"), "--yes", url=head_url)
    assert missing.returncode == 1
    assert "No backup file at" in _one_sentence(missing.stderr)


@pytest.mark.parametrize("target", ["0001", "multi-tenant"])
def test_downgrade_rejects_unknown_targets(head_url: str, cli_env: dict[str, str], target: str) -> None:
    proc = mcb(cli_env, "db", "downgrade", target, url=head_url)
    assert proc.returncode == 1
    assert f"Unknown downgrade target '{target}'" in _one_sentence(proc.stderr)


def test_dry_run_prints_plan_and_sql(legacy_url: str, cli_env: dict[str, str]) -> None:
    # Written to a pipe, as `mcb db upgrade --dry-run > plan.sql` does: every statement whole, at any width.
    proc = mcb({**cli_env, "COLUMNS": "80"}, "db", "upgrade", "--dry-run", url=legacy_url)
    assert proc.returncode == 0, proc.stderr
    assert "Would adopt the original single-tenant schema (stamp revision 0001)." in proc.stdout
    assert "0005  funnel_events, the append-only history" in proc.stdout
    assert "CREATE TABLE IF NOT EXISTS funnel_events" in proc.stdout
    assert "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contacts_tenant_id_id_key ON contacts (tenant_id, id);\n" in proc.stdout
    # The original's global keys, which 0004 finds by their columns when it runs, are in the plan by name.
    for drop in ("ALTER TABLE payments DROP CONSTRAINT IF EXISTS payments_contact_id_fkey",
                 "ALTER TABLE webhook_logs DROP CONSTRAINT IF EXISTS fk_contact",
                 "DROP INDEX CONCURRENTLY IF EXISTS idx_payments_event_id",
                 "ALTER TABLE meta_ad_insights DROP CONSTRAINT IF EXISTS meta_ad_insights_ad_id_fkey"):
        assert drop in proc.stdout
    assert "Dry run: nothing was changed." in proc.stdout


def test_backfill_jobs_choose_the_parts_of_each_backfill(legacy_url: str, cli_env: dict[str, str], pg: object) -> None:
    fill_legacy(legacy_url, contacts=2_000, payments=1_500)
    refused = mcb(cli_env, "db", "upgrade", "--no-backup", "--backfill-jobs", "0", url=legacy_url)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--backfill-jobs" in refused.stderr

    # Batches of 500: every backfill has at least three, so each by key gets the three parts asked for.
    env = {**cli_env, "MCB_BACKFILL_BATCH": "500"}
    three = mcb(env, "db", "upgrade", "--no-backup", "--backfill-jobs", "3", url=legacy_url)
    assert three.returncode == 0, three.stderr
    with psycopg.connect(legacy_url) as conn:
        rows = conn.execute("SELECT name, finished_at IS NOT NULL FROM mcb_backfill_state ORDER BY name").fetchall()
        payments = conn.execute("SELECT count(*) FROM payments WHERE payment_category IS NULL").fetchone()[0]  # type: ignore[index]
    names = [name for name, _ in rows]
    assert all(finished for _, finished in rows)
    # The category walk (0006) is cut into page ranges instead of key ranges, but into as many parts.
    for backfill in ("contact_emails", "funnel_events_from_contacts", "payment_categories"):
        assert backfill in names
        assert len([n for n in names if n.startswith(backfill + "/")]) == 3, names
    assert payments == 0


def test_rebuild_rollups_puts_damaged_rollups_right_and_changes_nothing_when_exact(
        head_url: str, empty_url: str, cli_env: dict[str, str]) -> None:
    ppcu = "2cb58664-a84a-4d74-844a-4ccd49fcef5a"
    with psycopg.connect(head_url, autocommit=True) as conn:
        conn.execute("SET mcb.admin = 'on'")
        for mc_id, at in (("mc_r1", "2025-11-01 10:00+00"), ("mc_r2", "2025-11-01 10:20+00")):
            contact = conn.execute("INSERT INTO contacts (tenant_id, mc_id, email_primary) VALUES (%s, %s, "
                                   "'same@example.com') RETURNING id", (ppcu, mc_id)).fetchone()
            assert contact is not None
            conn.execute("INSERT INTO funnel_events (tenant_id, contact_id, event_type, event_timestamp, source, "
                         "source_event_id) VALUES (%s, %s, 'contact_subscribed', %s, 'manychat', %s), "
                         "(%s, %s, 'link_clicked', %s, 'manychat', %s), "
                         "(%s, %s, 'link_clicked', %s::timestamptz + interval '1 hour', 'manychat', %s)",
                         (ppcu, contact[0], at, mc_id + "_sub", ppcu, contact[0], at, mc_id + "_c1",
                          ppcu, contact[0], at, mc_id + "_c2"))
    exact = mcb(cli_env, "db", "rebuild-rollups", "--json", url=head_url)
    assert exact.returncode == 0, exact.stderr
    zero = {"contact_leads": 0, "funnel_event_repeats": 0, "shared_emails": 0, "event_counts": 0}
    assert json.loads(exact.stdout)["tenants"] == {"ppcu": zero, "centner": zero, "columnline": zero}
    with psycopg.connect(head_url, autocommit=True) as conn:  # damage three rollups
        conn.execute("SET mcb.admin = 'on'")
        conn.execute("DELETE FROM shared_emails")
        conn.execute("DELETE FROM funnel_event_repeats WHERE tenant_id = %s", (ppcu,))
        conn.execute("UPDATE contact_leads SET has_email = false WHERE tenant_id = %s", (ppcu,))
    fixed = mcb(cli_env, "db", "rebuild-rollups", "--tenant", "ppcu", url=head_url)
    assert fixed.returncode == 0, fixed.stderr
    # one shared address, each contact's second click, both leads' e-mail flag: 1 + 2 + 2 rows
    assert "5 row(s) put right." in fixed.stdout
    again = mcb(cli_env, "db", "rebuild-rollups", "--tenant", "ppcu", url=head_url)
    assert "The rollups were exact: nothing changed." in again.stdout
    unknown = mcb(cli_env, "db", "rebuild-rollups", "--tenant", "nobody", url=head_url)
    assert unknown.returncode != 0 and "No tenant 'nobody'" in _one_sentence(unknown.stderr)
    empty = mcb(cli_env, "db", "rebuild-rollups", url=empty_url)
    assert empty.returncode != 0 and "run `mcb db upgrade` first" in _one_sentence(empty.stderr)
