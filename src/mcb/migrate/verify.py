"""``mcb db verify``: the original's six checks done right (R-06), plus what MCB's migration promises.

Every check that writes does so inside a transaction that is rolled back, so verification never leaves
a row behind and never touches real data. Counts are exact ``count(*)`` (no API row cap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from mcb.config import Settings, get_settings
from mcb.schema import TENANT_TABLES
from mcb.tenancy.seeds import SEED_TENANTS


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class VerifyReport:
    revision: str | None
    head: str
    checks: list[Check] = field(default_factory=list)
    row_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "head": self.head,
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "row_counts": self.row_counts,
        }


def tenant_tables(conn: Connection) -> list[str]:
    """Every tenant-owned table of this database: the expected ones, plus any table with a NOT NULL
    tenant_id (so a table added later is covered without being listed anywhere)."""
    expected = [t for t in TENANT_TABLES if conn.execute(text(f"SELECT to_regclass('public.{t}')")).scalar() is not None]
    found = [r[0] for r in conn.execute(text(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'tenant_id' AND is_nullable = 'NO' ORDER BY table_name"
    ))]
    return expected + [t for t in found if t not in expected]


def run_checks(engine: Engine, settings: Settings | None = None) -> VerifyReport:
    from mcb.migrate.runner import current_revision, head_revision

    settings = settings or get_settings()
    report = VerifyReport(revision=current_revision(engine), head=head_revision())
    checks: list[Callable[[Connection, Settings, VerifyReport], Check]] = [
        check_revision,
        check_seeded_tenants,
        check_tenant_columns,
        check_no_global_unique,
        check_tenant_scoped_keys,
        check_constraints_valid,
        check_backfills,
        check_legacy_writes,
        check_write_path,
        check_row_level_security,
        check_row_counts,
    ]
    with engine.connect() as conn:
        for check in checks:
            try:
                result = check(conn, settings, report)
            except DBAPIError as exc:
                conn.rollback()
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
                result = Check(check.__name__.removeprefix("check_"), False, f"query failed: {reason}")
            report.checks.append(result)
            if conn.in_transaction():
                conn.rollback()
            if check is check_revision and not result.passed:
                break
    return report


def check_revision(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    ok = report.revision == report.head
    return Check("revision", ok, f"at {report.revision or 'no revision'}; head is {report.head}")


def check_seeded_tenants(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    rows = {slug: (str(tid), is_default) for tid, slug, is_default in
            conn.execute(text("SELECT id, slug, is_default FROM tenants"))}
    problems = []
    for seed in SEED_TENANTS:
        if seed.slug not in rows:
            problems.append(f"seed tenant {seed.slug} is missing")
        elif rows[seed.slug][0] != str(seed.id):
            problems.append(f"tenant {seed.slug} has id {rows[seed.slug][0]}, expected {seed.id}")
    defaults = [slug for slug, (_, is_default) in rows.items() if is_default]
    if len(defaults) != 1:
        problems.append(f"{len(defaults)} default tenants (exactly one expected)")
    elif defaults[0] != settings.default_tenant:
        problems.append(
            f"the database's default tenant is {defaults[0]} but MCB_DEFAULT_TENANT is {settings.default_tenant}"
        )
    extra = sorted(set(rows) - {s.slug for s in SEED_TENANTS})
    detail = "; ".join(problems) if problems else (
        f"ppcu, centner, columnline present with their fixed ids; default {defaults[0]}"
        + (f"; also {', '.join(extra)}" if extra else "")
    )
    return Check("seeded_tenants", not problems, detail)


def check_tenant_columns(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    problems = []
    tables = tenant_tables(conn)
    for table in tables:
        row = conn.execute(
            text(
                "SELECT is_nullable FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = :t AND column_name = 'tenant_id'"
            ),
            {"t": table},
        ).first()
        if row is None:
            problems.append(f"{table} has no tenant_id")
            continue
        if row[0] != "NO":
            problems.append(f"{table}.tenant_id is nullable")
        nulls = conn.execute(text(f"SELECT count(*) FROM {table} WHERE tenant_id IS NULL")).scalar()
        if nulls:
            problems.append(f"{table} has {nulls} row(s) without tenant")
    detail = "; ".join(problems) if problems else f"tenant_id NOT NULL with zero NULLs on {len(tables)} tables"
    return Check("tenant_id_columns", not problems, detail)


UNIQUE_INDEXES_SQL = """
SELECT c.relname AS index_name,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) k(attnum)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)::text[] AS cols,
       i.indisprimary
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass(:t) AND i.indisunique
"""


def check_no_global_unique(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    problems = []
    for table in tenant_tables(conn):
        for name, cols, primary in conn.execute(text(UNIQUE_INDEXES_SQL), {"t": f"public.{table}"}):
            if "tenant_id" in cols:
                continue
            if primary and list(cols) == ["id"]:
                continue  # a surrogate key: unique by construction, never a business key
            problems.append(f"{table}.{name} ({', '.join(cols)})")
    detail = ("global unique keys left: " + "; ".join(problems)) if problems else \
        "every unique key of every tenant table includes tenant_id"
    return Check("no_global_unique_keys", not problems, detail)


def _rejects(conn: Connection, sql: str, params: dict[str, Any]) -> bool:
    """Whether the statement fails with a unique violation (inside a savepoint)."""
    savepoint = conn.begin_nested()
    try:
        conn.execute(text(sql), params)
    except DBAPIError as exc:
        savepoint.rollback()
        return getattr(exc.orig, "sqlstate", None) == "23505"
    savepoint.commit()
    return False


def check_tenant_scoped_keys(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    """Insert the same natural keys twice in one tenant (rejected) and once in another (accepted)."""
    tenants = [r[0] for r in conn.execute(text("SELECT id FROM tenants ORDER BY is_default DESC, slug LIMIT 2"))]
    if len(tenants) < 2:
        return Check("tenant_scoped_keys", False, "needs two tenants")
    a, b = tenants
    tag = "mcb-verify-" + conn.execute(text("SELECT md5(random()::text)")).scalar()[:12]  # type: ignore[index]
    cases: list[tuple[str, str]] = [
        ("contacts.mc_id", "INSERT INTO contacts (tenant_id, mc_id) VALUES (:t, :k)"),
        ("contacts.ghl_id", "INSERT INTO contacts (tenant_id, ghl_id) VALUES (:t, :k)"),
        (
            "payments.payment_event_id",
            "INSERT INTO payments (tenant_id, payment_event_id, payment_source, payment_type, amount, status, "
            "payment_date, raw_payload) VALUES (:t, :k, 'stripe', 'buy_in_full', 1, 'paid', now(), '{}')",
        ),
        ("meta_ads.ad_id", "INSERT INTO meta_ads (tenant_id, ad_id) VALUES (:t, :k)"),
        ("meta_ad_creatives.ad_id", "INSERT INTO meta_ad_creatives (tenant_id, ad_id) VALUES (:t, :k)"),
        (
            "meta_ad_insights.(ad_id, snapshot_date)",
            "INSERT INTO meta_ad_insights (tenant_id, ad_id, snapshot_date) VALUES (:t, :k, DATE '2000-01-01')",
        ),
    ]
    problems = []
    for label, sql in cases:
        try:
            conn.execute(text(sql), {"t": a, "k": tag})
        except DBAPIError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
            problems.append(f"{label}: first insert failed ({reason})")
            break
        if not _rejects(conn, sql, {"t": a, "k": tag}):
            problems.append(f"{label}: a duplicate within one tenant was accepted")
        if _rejects(conn, sql, {"t": b, "k": tag}):
            problems.append(f"{label}: the same value in another tenant was rejected")
    conn.rollback()
    detail = "; ".join(problems) if problems else (
        "mc_id, ghl_id, payment_event_id, ad_id (ads, creatives, insights): duplicate rejected within a "
        "tenant, accepted across tenants (rolled back)"
    )
    return Check("tenant_scoped_keys", not problems, detail)


def check_constraints_valid(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    not_valid = [f"{t}.{c}" for t, c in conn.execute(text(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint con JOIN pg_namespace n "
        "ON n.oid = con.connamespace WHERE n.nspname = 'public' AND NOT con.convalidated"
    ))]
    invalid_indexes = [r[0] for r in conn.execute(text(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT i.indisvalid"
    ))]
    orphans = []
    for table, column in (("payments", "contact_id"), ("webhook_logs", "contact_id")):
        n = conn.execute(text(
            f"SELECT count(*) FROM {table} x WHERE x.{column} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM contacts c WHERE c.tenant_id = x.tenant_id AND c.id = x.{column})"
        )).scalar()
        if n:
            orphans.append(f"{table}: {n} row(s) point at a missing contact")
    problems = [f"constraint not validated: {c}" for c in not_valid]
    problems += [f"invalid index (interrupted build): {i}" for i in invalid_indexes]
    problems += orphans
    detail = "; ".join(problems) if problems else "all constraints validated, all indexes valid, no dangling references"
    return Check("foreign_keys_valid", not problems, detail)


def check_backfills(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    problems = []
    without_lead = conn.execute(text(
        "SELECT count(*) FROM contacts c WHERE NOT EXISTS (SELECT 1 FROM funnel_events e WHERE "
        "e.tenant_id = c.tenant_id AND e.contact_id = c.id AND e.event_type IN ('contact_subscribed', 'contact_created'))"
        " AND c.created_at < (SELECT coalesce(max(started_at), '-infinity') FROM mcb_backfill_state "
        "WHERE name = 'funnel_events_from_contacts' AND finished_at IS NOT NULL)"
    )).scalar()
    if without_lead:
        problems.append(f"{without_lead} contact(s) from before the upgrade have no lead event")
    uncategorised = conn.execute(text("SELECT count(*) FROM payments WHERE payment_category IS NULL")).scalar()
    if uncategorised:
        problems.append(f"{uncategorised} payment(s) have no category")
    unfinished = [r[0] for r in conn.execute(text(
        "SELECT name FROM mcb_backfill_state WHERE finished_at IS NULL"))]
    if unfinished:
        problems.append(f"unfinished backfills: {', '.join(unfinished)}")
    events = conn.execute(text("SELECT count(*) FROM funnel_events WHERE created_by = 'migration'")).scalar()
    detail = "; ".join(problems) if problems else (
        f"every contact has a lead event; every payment has a category; {events} backfilled events"
    )
    return Check("backfills_complete", not problems, detail)


def check_legacy_writes(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    """The original application's inserts (no tenant_id) still work and land in the default tenant."""
    problems = []
    default = conn.execute(text("SELECT mcb_default_tenant_id()")).scalar()
    tag = "mcb-verify-legacy-" + conn.execute(text("SELECT md5(random()::text)")).scalar()[:12]  # type: ignore[index]
    contact_tenant = conn.execute(
        text("INSERT INTO contacts (mc_id, stage, source) VALUES (:k, 'new_lead', 'instagram') RETURNING tenant_id"),
        {"k": tag},
    ).scalar()
    if contact_tenant != default:
        problems.append("a contact inserted without tenant_id did not land in the default tenant")
    log_tenant = conn.execute(
        text("INSERT INTO webhook_logs (source, payload, mc_id) VALUES ('manychat', '{}', :k) RETURNING tenant_id"),
        {"k": tag},
    ).scalar()
    if log_tenant != default:
        problems.append("a webhook log inserted without tenant_id did not land in the default tenant")
    upserted = conn.execute(
        text("SELECT create_contact_with_mc_id(:k, now(), 'new_lead')"), {"k": tag}
    ).scalar()
    if upserted is None:
        problems.append("the original's create_contact_with_mc_id() no longer works")
    conn.rollback()
    detail = "; ".join(problems) if problems else (
        "inserts without tenant_id (contacts, webhook_logs) and the original's upsert function land in the "
        "default tenant (rolled back)"
    )
    return Check("legacy_writes", not problems, detail)


def check_write_path(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    """The default tenant can still get a contact through the code path webhooks use (rolled back)."""
    from datetime import UTC, datetime
    from uuid import UUID

    from mcb.funnel.apply import apply_event
    from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized

    default = UUID(str(conn.execute(text("SELECT mcb_default_tenant_id()")).scalar()))
    tag = "mcb-verify-apply-" + conn.execute(text("SELECT md5(random()::text)")).scalar()[:12]  # type: ignore[index]
    now = datetime.now(UTC)
    delivery = Normalized(
        source="manychat",
        event_type="contact_created",
        contact=ContactFacts(mc_id=tag, email_primary=f"{tag}@verify.invalid"),
        events=(FunnelEvent("contact_subscribed", f"mc_{tag}_contact_subscribed", now, stage="new_lead"),),
        lead_event_type="contact_subscribed",
    )
    result = apply_event(conn, default, delivery, received_at=now)
    events = conn.execute(text("SELECT count(*) FROM funnel_events WHERE tenant_id = :t AND contact_id = :c"),
                          {"t": default, "c": result.contact_id}).scalar()
    conn.rollback()
    ok = result.status == "processed" and result.created and events == 1
    detail = ("a contact and its lead event were written for the default tenant by funnel.apply_event "
              "(rolled back)" if ok else f"apply_event gave {result.status}, created={result.created}, events={events}")
    return Check("write_path", ok, detail)


def check_row_level_security(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    """RLS enabled and forced with the tenant policy on every tenant table; the runtime role cannot
    bypass it; and, for real, a tenant session sees and writes only its own tenant (rolled back)."""
    if conn.execute(text("SELECT to_regclass('public.api_tokens')")).scalar() is None:
        return Check("row_level_security", False, "revision 0009 (row level security) is not applied")
    problems = []
    tables = tenant_tables(conn)
    for table, enabled, forced, policy in conn.execute(text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation') "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname = ANY(:t)"
    ), {"t": tables}):
        if not (enabled and forced and policy):
            problems.append(f"{table}: RLS enabled={enabled} forced={forced} policy={policy}")
    role = conn.execute(text(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'mcb_app'")).first()
    if role is None:
        problems.append("runtime role mcb_app is missing")
    elif role[0] or role[1]:
        problems.append("runtime role mcb_app is a superuser or may bypass RLS")
    owned = [r[0] for r in conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'mcb_app'"))]
    if owned:
        problems.append(f"mcb_app owns {', '.join(owned)}")
    if not problems:
        problems += _rls_probe(conn)
    conn.rollback()
    detail = "; ".join(problems) if problems else (
        f"RLS enabled and forced on {len(tables)} tenant tables; mcb_app cannot bypass it; a tenant session "
        "saw only its tenant, could not write another's, and saw nothing without a tenant (rolled back)"
    )
    return Check("row_level_security", not problems, detail)


def _rls_probe(conn: Connection) -> list[str]:
    tenants = [r[0] for r in conn.execute(text("SELECT id FROM tenants ORDER BY is_default DESC, slug LIMIT 2"))]
    if len(tenants) < 2:
        return ["needs two tenants"]
    a, b = (str(t) for t in tenants)
    problems = []
    for t in (a, b):
        conn.execute(text("INSERT INTO contacts (tenant_id, mc_id) VALUES (:t, 'mcb-verify-rls')"), {"t": t})
    conn.execute(text("SET LOCAL ROLE mcb_app"))
    conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": a})
    seen = conn.execute(text("SELECT DISTINCT tenant_id::text FROM contacts")).scalars().all()
    if seen != [a]:
        problems.append(f"a tenant session saw tenants {seen}")
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("INSERT INTO contacts (tenant_id, mc_id) VALUES (:t, 'mcb-verify-rls-2')"), {"t": b})
        problems.append("a tenant session inserted a row for another tenant")
        savepoint.commit()
    except DBAPIError:
        savepoint.rollback()
    changed = conn.execute(text("UPDATE contacts SET stage = 'x' WHERE tenant_id = :t"), {"t": b}).rowcount
    if changed:
        problems.append("a tenant session updated another tenant's rows")
    conn.execute(text("SELECT set_config('app.tenant_id', '', true)"))
    if conn.execute(text("SELECT count(*) FROM contacts")).scalar():
        problems.append("a session without a tenant saw tenant rows")
    return problems


def check_row_counts(conn: Connection, settings: Settings, report: VerifyReport) -> Check:
    counts: dict[str, dict[str, int]] = {}
    for table in tenant_tables(conn):
        for slug, n in conn.execute(text(
            f"SELECT t.slug, count(x.tenant_id) FROM tenants t LEFT JOIN {table} x ON x.tenant_id = t.id "
            "GROUP BY t.slug ORDER BY t.slug"
        )):
            counts.setdefault(slug, {})[table] = int(n)
    report.row_counts = counts
    summary = ", ".join(f"{slug}: {sum(v.values())}" for slug, v in counts.items())
    return Check("row_counts", True, f"exact rows per tenant ({summary})")
