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
