"""Tenants and their integrations, seeded with ppcu, centner and columnline (spec 2.3, 1.3).

One tenant is marked default: it owns every legacy row and every write that names no tenant (the
original application keeps writing during and after the migration, without tenant_id).

Revision ID: 0002
Revises: 0001
"""

import json

from mcb.config import get_settings
from mcb.migrate import guards, online
from mcb.tenancy.seeds import SEED_TENANTS, seed_tenant

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def _quote(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def upgrade() -> None:
    default = seed_tenant(get_settings().default_tenant)
    seeds = ",\n".join(
        f"({_quote(t.id)}, {_quote(t.slug)}, {_quote(t.name)}, {_quote(t.owner_name)}, "
        f"{_quote(json.dumps(t.config))}::jsonb)"
        for t in SEED_TENANTS
    )
    with online.steps():
        online.execute(
            """
            CREATE TABLE IF NOT EXISTS tenants (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                slug TEXT NOT NULL,
                name TEXT NOT NULL,
                owner_name TEXT,
                report_email TEXT,
                is_active BOOLEAN NOT NULL DEFAULT true,
                is_default BOOLEAN NOT NULL DEFAULT false,
                config JSONB NOT NULL DEFAULT '{}'::jsonb,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CONSTRAINT tenants_slug_key UNIQUE (slug),
                CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$')
            );
            CREATE UNIQUE INDEX IF NOT EXISTS tenants_is_default_key ON tenants (is_default) WHERE is_default;
            CREATE OR REPLACE TRIGGER update_tenants_updated_at BEFORE UPDATE ON tenants
                FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
            CREATE TABLE IF NOT EXISTS tenant_integrations (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL,
                provider TEXT NOT NULL,
                credentials JSONB NOT NULL DEFAULT '{}'::jsonb,
                webhook_secret TEXT,
                is_active BOOLEAN NOT NULL DEFAULT true,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CONSTRAINT tenant_integrations_tenant_id_fkey FOREIGN KEY (tenant_id)
                    REFERENCES tenants (id) ON DELETE CASCADE,
                CONSTRAINT tenant_integrations_tenant_id_provider_key UNIQUE (tenant_id, provider)
            );
            CREATE OR REPLACE TRIGGER update_tenant_integrations_updated_at BEFORE UPDATE ON tenant_integrations
                FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()
            """,
            step="create tenants and tenant_integrations",
        )
        online.execute(
            f"""
            INSERT INTO tenants (id, slug, name, owner_name, config) VALUES
            {seeds}
            ON CONFLICT (slug) DO NOTHING;
            UPDATE tenants SET is_default = true
             WHERE slug = {_quote(default.slug)} AND NOT EXISTS (SELECT 1 FROM tenants WHERE is_default);
            CREATE OR REPLACE FUNCTION mcb_default_tenant_id() RETURNS uuid
                LANGUAGE sql STABLE AS $$ SELECT id FROM tenants WHERE is_default $$
            """,
            step=f"seed tenants ({', '.join(t.slug for t in SEED_TENANTS)}; default {default.slug})",
        )


def downgrade() -> None:
    with online.steps():
        online.guard(guards.no_integrations)
        online.execute(
            "DROP FUNCTION IF EXISTS mcb_default_tenant_id();\n"
            "DROP TABLE IF EXISTS tenant_integrations;\n"
            "DROP TABLE IF EXISTS tenants",
            step="drop tenants and tenant_integrations",
        )
