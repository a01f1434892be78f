"""Safety checks that a downgrade must pass before it changes anything (R-07).

Each check takes a query function and returns the problems it found (empty: safe). The runner calls all
of them before a downgrade starts, so a refusal changes nothing; each revision's ``downgrade()`` calls its
own again right before its destructive step, in case data arrived in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcb.errors import DowngradeRefused
from mcb.migrate.legacy import LEGACY_TABLES

Query = Callable[[str], list[tuple[Any, ...]]]

# Tables created after 0001 that hold data MCB itself writes.
MCB_DATA_TABLES: tuple[str, ...] = ("chatbot_configs", "conversation_threads", "meta_capi_events", "sync_runs")

# Columns added after 0001 whose values a downgrade would drop.
NEW_VALUE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("contacts", "fbclid", "fbclid IS NOT NULL"),
    ("contacts", "fbp", "fbp IS NOT NULL"),
    ("contacts", "fbc", "fbc IS NOT NULL"),
    ("contacts", "funnel_variant", "funnel_variant IS NOT NULL"),
    ("contacts", "deposit_paid_date", "deposit_paid_date IS NOT NULL"),
    ("contacts", "tags", "tags <> '{}'::jsonb"),
    ("contacts", "field_times", "field_times <> '{}'::jsonb"),
    ("meta_ads", "spend_28d", "spend_28d IS NOT NULL"),
    ("meta_ad_insights", "spend_28d", "spend_28d IS NOT NULL"),
    ("meta_ads", "campaign_name", "campaign_name IS NOT NULL"),
    ("meta_ads", "adset_name", "adset_name IS NOT NULL"),
    ("meta_ad_insights", "link_clicks", "link_clicks IS NOT NULL"),
    ("meta_ad_insights", "landing_page_views", "landing_page_views IS NOT NULL"),
    ("meta_ad_insights", "synced_at", "synced_at IS NOT NULL"),
)


def _exists(q: Query, table: str) -> bool:
    return bool(q(f"SELECT to_regclass('public.{table}') IS NOT NULL")[0][0])


def _has_column(q: Query, table: str, column: str) -> bool:
    return bool(
        q(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
            f"AND table_name = '{table}' AND column_name = '{column}'"
        )[0][0]
    )


def other_tenants_rows(q: Query) -> list[str]:
    """Rows owned by any tenant but the default one: the single-tenant schema has nowhere to put them."""
    problems: list[str] = []
    if not _exists(q, "tenants"):
        return problems
    for table in (*LEGACY_TABLES, "funnel_events", *MCB_DATA_TABLES):
        if not _exists(q, table) or not _has_column(q, table, "tenant_id"):
            continue
        rows = q(
            f"SELECT t.slug, count(*) FROM {table} x JOIN tenants t ON t.id = x.tenant_id "
            "WHERE NOT t.is_default GROUP BY t.slug ORDER BY t.slug"
        )
        problems += [f"{table} holds {n} row(s) of tenant {slug}" for slug, n in rows]
    return problems


def global_key_collisions(q: Query) -> list[str]:
    """Values that the restored global unique keys would reject."""
    keys: Sequence[tuple[str, str]] = (
        ("contacts", "mc_id"),
        ("contacts", "ghl_id"),
        ("payments", "payment_event_id"),
        ("meta_ads", "ad_id"),
        ("meta_ad_creatives", "ad_id"),
        ("meta_ad_insights", "ad_id, snapshot_date"),
    )
    problems = []
    for table, cols in keys:
        if not _exists(q, table):
            continue
        n = q(
            f"SELECT count(*) FROM (SELECT {cols} FROM {table} WHERE ({cols}) IS NOT NULL "
            f"GROUP BY {cols} HAVING count(*) > 1) d"
        )[0][0]
        if n:
            problems.append(f"{n} value(s) of {table}.({cols}) occur more than once")
    return problems


def events_written_after_upgrade(q: Query) -> list[str]:
    if not _exists(q, "funnel_events"):
        return []
    n = q("SELECT count(*) FROM funnel_events WHERE created_by <> 'migration'")[0][0]
    return [f"funnel_events holds {n} event(s) recorded after the upgrade"] if n else []


def mcb_tables_rows(q: Query) -> list[str]:
    problems = []
    for table in MCB_DATA_TABLES:
        if _exists(q, table):
            n = q(f"SELECT count(*) FROM {table}")[0][0]
            if n:
                problems.append(f"{table} holds {n} row(s)")
    return problems


def integrations(q: Query) -> list[str]:
    if not _exists(q, "tenant_integrations"):
        return []
    n = q("SELECT count(*) FROM tenant_integrations")[0][0]
    return [f"tenant_integrations holds {n} credential set(s)"] if n else []


def inbox_rows(q: Query) -> list[str]:
    problems = []
    if _exists(q, "webhook_logs") and _has_column(q, "webhook_logs", "inbox"):
        n = q("SELECT count(*) FROM webhook_logs WHERE inbox")[0][0]
        if n:
            problems.append(f"webhook_logs holds {n} webhook(s) received by MCB")
    if _exists(q, "webhook_rejections"):
        n = q("SELECT count(*) FROM webhook_rejections")[0][0]
        if n:
            problems.append(f"webhook_rejections holds {n} row(s)")
    return problems


def plaintext_integrations(q: Query) -> list[str]:
    if not _exists(q, "tenant_integrations"):
        return []
    kind = q("SELECT data_type FROM information_schema.columns WHERE table_schema = 'public' "
             "AND table_name = 'tenant_integrations' AND column_name = 'credentials'")
    if not kind or kind[0][0] != "jsonb":
        return []
    n = q("SELECT count(*) FROM tenant_integrations")[0][0]
    return [f"tenant_integrations holds {n} plaintext credential set(s); export them (they are readable with "
            "SELECT), delete the rows, upgrade, and store them again with `mcb integrations set`"] if n else []


def api_tokens(q: Query) -> list[str]:
    if not _exists(q, "api_tokens"):
        return []
    n = q("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")[0][0]
    return [f"api_tokens holds {n} active token(s)"] if n else []


def refund_payments(q: Query) -> list[str]:
    if not _exists(q, "payments"):
        return []
    n = q("SELECT count(*) FROM payments WHERE payment_type = 'refund'")[0][0]
    return [f"payments holds {n} refund(s), which the original schema cannot store"] if n else []


def new_column_values(q: Query) -> list[str]:
    problems = []
    for table, column, condition in NEW_VALUE_COLUMNS:
        if not _exists(q, table) or not _has_column(q, table, column):
            continue
        n = q(f"SELECT count(*) FROM {table} WHERE {condition}")[0][0]
        if n:
            problems.append(f"{table}.{column} holds {n} value(s) that the original schema has no column for")
    return problems


def legacy_rows(q: Query) -> list[str]:
    problems = []
    for table in LEGACY_TABLES:
        if _exists(q, table):
            n = q(f"SELECT count(*) FROM {table}")[0][0]
            if n:
                problems.append(f"{table} holds {n} row(s)")
    return problems


# Everything a downgrade to 0001 must check, in the order the operator should read it.
TO_SINGLE_TENANT: tuple[Callable[[Query], list[str]], ...] = (
    other_tenants_rows,
    global_key_collisions,
    events_written_after_upgrade,
    inbox_rows,
    mcb_tables_rows,
    integrations,
    api_tokens,
    refund_payments,
    new_column_values,
)


def downgrade_blockers(q: Query, checks: Sequence[Callable[[Query], list[str]]] = TO_SINGLE_TENANT) -> list[str]:
    problems: list[str] = []
    for check in checks:
        problems += check(q)
    return problems


def refuse_if(problems: list[str]) -> None:
    if problems:
        raise DowngradeRefused(
            "Downgrade refused, nothing was changed: " + "; ".join(problems) + "."
        )


# ----------------------------------------------------------------------------- in-revision wrappers


def _online_query(sql: str) -> list[tuple[Any, ...]]:
    from mcb.migrate import online

    return online.query(sql)


def legacy_tables_are_empty() -> None:
    refuse_if(legacy_rows(_online_query))


def no_integrations() -> None:
    refuse_if(integrations(_online_query) + other_tenants_rows(_online_query))


def no_plaintext_integrations() -> None:
    problems = plaintext_integrations(_online_query)
    if problems:
        from mcb.errors import UserError

        raise UserError("Upgrade stopped before revision 0009: " + problems[0] + ".")


def no_api_tokens() -> None:
    refuse_if(api_tokens(_online_query))


def no_refund_payments() -> None:
    refuse_if(refund_payments(_online_query))


def new_columns_are_empty() -> None:
    refuse_if(new_column_values(_online_query) + other_tenants_rows(_online_query))


def single_tenant_keys_possible() -> None:
    refuse_if(other_tenants_rows(_online_query) + global_key_collisions(_online_query))


def only_migration_events() -> None:
    refuse_if(events_written_after_upgrade(_online_query))


def no_mcb_rows() -> None:
    refuse_if(mcb_tables_rows(_online_query))


def default_tenant_id() -> str:
    """The default tenant's id as stored in the database (offline: the configured seed's id)."""
    from mcb.config import get_settings
    from mcb.migrate import online
    from mcb.tenancy.seeds import seed_tenant

    if online.offline():
        return str(seed_tenant(get_settings().default_tenant).id)
    value = online.scalar("SELECT mcb_default_tenant_id()")
    if value is None:
        raise DowngradeRefused("The tenants table has no default tenant; run `mcb db upgrade` again.")
    return str(value)


def drop_everything_sql() -> str:
    """SQL that removes revision 0001's objects (used only when its tables are empty)."""
    views = [
        "v_weekly_performance", "v_funnel_metrics", "v_revenue_breakdown", "v_timing_analysis",
        "v_attribution_summary", "v_symptom_performance", "v_data_quality", "v_ad_roas_by_theme",
        "v_symptom_ad_performance", "v_top_performing_ads", "v_creative_format_performance",
        "v_daily_ad_spend", "v_funnel_summary", "v_revenue_attribution", "v_conversion_over_time",
        "v_time_to_purchase_summary", "v_time_to_purchase", "v_payment_breakdown", "v_data_quality_report",
        "v_top_trigger_words", "v_paid_vs_organic",
    ]
    statements = [f"DROP VIEW IF EXISTS {v} CASCADE" for v in views]
    statements += [f"DROP TABLE IF EXISTS {t} CASCADE" for t in reversed(LEGACY_TABLES)]
    statements.append(
        "DO $$ DECLARE f record; BEGIN FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proname IN "
        "('find_contact_by_email','find_contact_by_mc_id','find_contact_by_ghl_id','find_contact_by_phone',"
        "'find_contact_smart','create_contact_with_mc_id','update_contact_dynamic','link_orphan_payments',"
        "'get_attribution_stats','fn_get_weekly_report','fn_calculate_mom_growth','fn_get_cohort_analysis',"
        "'fn_get_ad_performance_summary','fn_calculate_wow_changes','fn_get_report_memory',"
        "'update_updated_at_column') LOOP EXECUTE 'DROP FUNCTION IF EXISTS ' || f.sig || ' CASCADE'; "
        "END LOOP; END $$"
    )
    return ";\n".join(statements)
