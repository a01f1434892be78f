"""Facts about the original single-tenant schema that the migration needs by name."""

from __future__ import annotations

# Tables that must exist for a database to be recognised as the original's (the ones MCB writes).
CORE_TABLES: tuple[str, ...] = (
    "contacts",
    "payments",
    "webhook_logs",
    "meta_ads",
    "meta_ad_creatives",
    "meta_ad_insights",
)

# Every table of revision 0001, in dependency order. All become tenant-owned; the ones after the
# core six are migrated when present.
LEGACY_TABLES: tuple[str, ...] = (
    *CORE_TABLES,
    "weekly_snapshots",
    "ab_tests",
    "ad_performance_weekly",
    "theme_performance_weekly",
    "reports_sent",
    "hist_contacts",
    "hist_payments",
    "hist_timeline",
    "hist_import_logs",
)

# Reporting tables whose primary key was a bare natural key: it becomes (tenant_id, ...).
NATURAL_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "weekly_snapshots": ("week_ending",),
    "ad_performance_weekly": ("week_ending", "ad_id"),
    "theme_performance_weekly": ("week_ending", "transformation_theme"),
    "hist_contacts": ("email",),
}


def original_table_ddl(table: str) -> str:
    """The CREATE TABLE (and its indexes and triggers) of one of revision 0001's tables, from its SQL file.

    Used to give an adopted database the optional tables its hand-built schema lacked, so that every
    database at head has the same shape.
    """
    import re

    from mcb.migrate.online import read_sql

    sql = read_sql("0001_tables.sql")
    match = re.search(rf"^CREATE TABLE {table} \(.*?^\);", sql, re.S | re.M)
    if match is None:
        raise KeyError(table)
    parts = [match.group(0).replace(f"CREATE TABLE {table} (", f"CREATE TABLE IF NOT EXISTS {table} (", 1)]
    for index in re.finditer(rf"^CREATE (UNIQUE )?INDEX (\w+) ON {table}\b[^;]*;", sql, re.M):
        parts.append(index.group(0).replace(f"INDEX {index.group(2)}", f"INDEX IF NOT EXISTS {index.group(2)}", 1))
    for trigger in re.finditer(rf"^CREATE TRIGGER (\w+) BEFORE UPDATE ON {table}\b[^;]*;", sql, re.M):
        parts.append(trigger.group(0).replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1))
    return "\n".join(parts)
