"""Take MCB's tables away from a hosted database's public API roles.

Supabase grants its PostgREST roles ``anon`` and ``authenticated`` every right on each new table in
``public`` by default privilege. MCB's tables must not be reachable with the public anon key: the ones
without Row Level Security (tenants, api_tokens, the migration bookkeeping) least of all — anyone could
otherwise insert an admin API token. Where those roles do not exist (a plain PostgreSQL), nothing happens.
The original's own tables keep whatever grants the operator gave them; RLS (0009) already hides their rows
from any role that is not the owner, mcb_app with a tenant set, or a BYPASSRLS role.

Revision ID: 0011
Revises: 0010
"""

from mcb.migrate import online

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None

HOSTED_API_ROLES = ("anon", "authenticated")
MCB_TABLES = (
    "tenants",
    "tenant_integrations",
    "api_tokens",
    "funnel_events",
    "chatbot_configs",
    "conversation_threads",
    "meta_capi_events",
    "webhook_rejections",
    "alembic_version",
    "mcb_migration_log",
    "mcb_backfill_state",
)


def upgrade() -> None:
    tables = ", ".join(MCB_TABLES)
    roles = ", ".join(f"'{r}'" for r in HOSTED_API_ROLES)
    with online.steps():
        online.execute(
            f"""
            DO $$
            DECLARE r text;
            BEGIN
                FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ({roles}) LOOP
                    EXECUTE format('REVOKE ALL ON {tables} FROM %I', r);
                END LOOP;
            END
            $$
            """,
            step="revoke MCB's tables from hosted API roles (anon, authenticated) where they exist",
        )


def downgrade() -> None:
    # Nothing to give back: re-granting the public API roles would reopen the hole.
    pass
