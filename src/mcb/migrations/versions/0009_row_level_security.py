"""Row Level Security on every tenant table, the runtime role mcb_app, encrypted integrations, API tokens.

Every tenant-owned table gets RLS enabled and forced, with one policy: a row is visible and writable only
when its tenant_id equals the transaction's ``app.tenant_id`` (set by ``db.tenant_session``); with no
tenant set, nothing is visible. A second policy lets the migration owner through, and only when its
session says ``mcb.admin = on`` (migrations and admin commands do): where the owner is neither superuser
nor BYPASSRLS, an application misconfigured to connect as the owner still sees no tenant rows. The runtime role ``mcb_app`` owns nothing, is not a
superuser and cannot bypass RLS; the owner is granted membership so it can ``SET ROLE mcb_app``.

tenant_integrations is reshaped for encryption at rest: ``credentials`` and ``webhook_secret`` hold
Fernet tokens (text), non-secret settings go to ``options``. The table is MCB's own and empty until
``mcb integrations`` writes to it; a database that already holds plaintext rows is refused with the fix.

Revision ID: 0009
Revises: 0008
"""

from mcb.migrate import guards, online
from mcb.migrate.legacy import LEGACY_TABLES

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "mcb_app"
TENANT_EXPR = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
ADMIN_EXPR = "current_setting('mcb.admin', true) = 'on'"


# The tenant tables that exist at this revision (a revision never reads the head metadata: a table
# added later gets its policy in the revision that creates it).
MCB_TABLES = ("tenant_integrations", "funnel_events", "chatbot_configs", "conversation_threads", "meta_capi_events")


def _tables() -> list[str]:
    return [t for t in (*LEGACY_TABLES, *MCB_TABLES) if online.table_exists(t)]


def upgrade() -> None:
    with online.steps():
        online.guard(guards.no_plaintext_integrations)
        online.execute(
            """
            ALTER TABLE tenant_integrations ALTER COLUMN credentials DROP DEFAULT;
            ALTER TABLE tenant_integrations ALTER COLUMN credentials TYPE TEXT USING NULL;
            ALTER TABLE tenant_integrations ALTER COLUMN credentials DROP NOT NULL;
            ALTER TABLE tenant_integrations ADD COLUMN IF NOT EXISTS options JSONB NOT NULL DEFAULT '{}'::jsonb;
            COMMENT ON COLUMN tenant_integrations.credentials IS 'Fernet token of the credentials JSON object';
            COMMENT ON COLUMN tenant_integrations.webhook_secret IS 'Fernet token of the inbound webhook secret'
            """
            if not online.column_is_text("tenant_integrations", "credentials")
            else "ALTER TABLE tenant_integrations ADD COLUMN IF NOT EXISTS options JSONB NOT NULL DEFAULT '{}'::jsonb",
            step="tenant_integrations: encrypted credentials, options",
        )
        online.execute(
            """
            CREATE TABLE IF NOT EXISTS api_tokens (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID REFERENCES tenants (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                token_prefix TEXT NOT NULL,
                token_hash TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                last_used_at TIMESTAMPTZ,
                revoked_at TIMESTAMPTZ,
                CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
            );
            COMMENT ON TABLE api_tokens IS 'Bearer tokens: tenant_id NULL = admin token (all tenants); only a SHA-256 hash is stored'
            """,
            step="create api_tokens",
        )
        online.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
                END IF;
            END
            $$;
            GRANT {APP_ROLE} TO CURRENT_USER;
            GRANT USAGE ON SCHEMA public TO {APP_ROLE};
            GRANT SELECT ON tenants TO {APP_ROLE};
            GRANT SELECT ON api_tokens TO {APP_ROLE};
            GRANT UPDATE (last_used_at) ON api_tokens TO {APP_ROLE};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}
            """,
            step=f"runtime role {APP_ROLE}",
        )
        for table in _tables():
            online.execute(
                f"""
                GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE};
                ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
                ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
                DROP POLICY IF EXISTS tenant_isolation ON {table};
                CREATE POLICY tenant_isolation ON {table} USING (tenant_id = {TENANT_EXPR})
                    WITH CHECK (tenant_id = {TENANT_EXPR});
                DROP POLICY IF EXISTS owner_admin ON {table};
                CREATE POLICY owner_admin ON {table} TO CURRENT_USER USING ({ADMIN_EXPR}) WITH CHECK ({ADMIN_EXPR})
                """,
                step=f"{table}: row level security",
            )


def downgrade() -> None:
    with online.steps():
        online.guard(guards.no_api_tokens)
        for table in _tables():
            online.execute(
                f"""
                DROP POLICY IF EXISTS owner_admin ON {table};
                DROP POLICY IF EXISTS tenant_isolation ON {table};
                ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;
                ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;
                REVOKE ALL ON {table} FROM {APP_ROLE}
                """,
                step=f"{table}: drop row level security",
            )
        online.execute(
            f"""
            REVOKE ALL ON tenants FROM {APP_ROLE};
            DROP TABLE IF EXISTS api_tokens;
            REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE};
            REVOKE USAGE ON SCHEMA public FROM {APP_ROLE};
            ALTER TABLE tenant_integrations DROP COLUMN IF EXISTS options;
            ALTER TABLE tenant_integrations ALTER COLUMN credentials TYPE JSONB USING '{{}}'::jsonb;
            ALTER TABLE tenant_integrations ALTER COLUMN credentials SET DEFAULT '{{}}'::jsonb;
            ALTER TABLE tenant_integrations ALTER COLUMN credentials SET NOT NULL
            """,
            step="drop api_tokens; tenant_integrations back to its 0002 shape",
        )
