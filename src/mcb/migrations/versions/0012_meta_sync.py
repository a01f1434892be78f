"""Meta Ads sync per tenant: the sync_runs table and the columns the daily sync fills.

``sync_runs`` records every sync of a tenant's external account (today: Meta Ads), whether started by
``mcb meta sync``, cron or ``mcb serve --schedule``: its window, outcome, counts and, when it failed, one
sentence and a kind (``token_expired`` lets ``mcb tenants show`` flag a refused token). It is a tenant
table: RLS enabled and forced, the tenant policy, grants to mcb_app, none to hosted API roles.

meta_ads gains the campaign's and ad set's names; meta_ad_insights, now one row per ad per day
(decision 1), gains link clicks, landing page views and the time the row was last written by a sync
(the latest sync of a day wins). All new columns are nullable without a default: catalog-only.

Revision ID: 0012
Revises: 0011
"""

from mcb.migrate import guards, online

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None

NEW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("meta_ads", "campaign_name", "TEXT"),
    ("meta_ads", "adset_name", "TEXT"),
    ("meta_ad_insights", "link_clicks", "INTEGER"),
    ("meta_ad_insights", "landing_page_views", "INTEGER"),
    ("meta_ad_insights", "synced_at", "TIMESTAMPTZ"),
)


def upgrade() -> None:
    with online.steps():
        for table, column, definition in NEW_COLUMNS:
            online.add_column(table, column, definition)
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS sync_runs (
                id BIGSERIAL PRIMARY KEY,
                tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                provider TEXT NOT NULL,
                trigger TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'running',
                started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                finished_at TIMESTAMPTZ,
                since DATE,
                until DATE,
                ads INTEGER NOT NULL DEFAULT 0,
                creatives INTEGER NOT NULL DEFAULT 0,
                insight_rows INTEGER NOT NULL DEFAULT 0,
                api_calls INTEGER NOT NULL DEFAULT 0,
                error_kind TEXT,
                error TEXT,
                CONSTRAINT sync_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed')),
                CONSTRAINT sync_runs_trigger_check CHECK (trigger IN ('cli', 'schedule'))
            );
            CREATE INDEX IF NOT EXISTS idx_sync_runs_tenant_provider_started
                ON sync_runs (tenant_id, provider, started_at);
            GRANT USAGE, SELECT ON SEQUENCE sync_runs_id_seq TO mcb_app;
            {online.tenant_table_security("sync_runs")}
            """,
            step="create sync_runs (tenant-scoped, RLS)",
        )


def _synced_data() -> None:
    problems: list[str] = []
    if online.table_exists("sync_runs"):
        n = online.scalar("SELECT count(*) FROM sync_runs")
        if n:
            problems.append(f"sync_runs holds {n} run(s)")
    for table, column, _definition in NEW_COLUMNS:
        if online.column_exists(table, column):
            n = online.scalar(f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL")
            if n:
                problems.append(f"{table}.{column} holds {n} value(s)")
    guards.refuse_if(problems)


def downgrade() -> None:
    with online.steps():
        online.guard(_synced_data)
        online.execute("DROP TABLE IF EXISTS sync_runs", step="drop sync_runs")
        for table, column, _definition in reversed(NEW_COLUMNS):
            online.drop_column(table, column)
