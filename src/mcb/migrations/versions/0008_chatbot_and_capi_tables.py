"""The post-migration tables of the final model (spec 1.4): chatbot_configs, conversation_threads and
the Conversions API outbox meta_capi_events, tenant-scoped from the start.

New, empty tables: created in one short transaction each. The original's auto-link trigger on
conversation_threads and its event_id trigger are replaced by column defaults and by MCB's own code.

Revision ID: 0008
Revises: 0007
"""

from mcb.migrate import guards, online

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

CAPI_EVENTS = "'Lead', 'AddToCart', 'InitiateCheckout', 'Purchase', 'CompleteRegistration', 'Contact', 'Schedule'"
ACTION_SOURCES = (
    "'website', 'app', 'phone_call', 'chat', 'email', 'physical_store', 'system_generated', 'other'"
)


def upgrade() -> None:
    with online.steps():
        online.execute(
            """
            CREATE TABLE IF NOT EXISTS chatbot_configs (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                config_name TEXT NOT NULL,
                is_default BOOLEAN NOT NULL DEFAULT false,
                is_active BOOLEAN NOT NULL DEFAULT true,
                system_prompt TEXT NOT NULL,
                model TEXT NOT NULL DEFAULT 'gpt-4o',
                temperature NUMERIC(3,2) NOT NULL DEFAULT 0.70,
                max_tokens INTEGER NOT NULL DEFAULT 1000,
                response_schema JSONB,
                welcome_flow_id TEXT,
                response_flow_id TEXT NOT NULL,
                ab_test_field TEXT NOT NULL DEFAULT 'chatbot_AB',
                ab_test_value TEXT,
                total_messages INTEGER NOT NULL DEFAULT 0,
                total_qualifications INTEGER NOT NULL DEFAULT 0,
                total_bookings INTEGER NOT NULL DEFAULT 0,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CONSTRAINT chatbot_configs_tenant_id_config_name_key UNIQUE (tenant_id, config_name),
                CONSTRAINT chatbot_configs_tenant_id_id_key UNIQUE (tenant_id, id)
            );
            CREATE UNIQUE INDEX IF NOT EXISTS chatbot_configs_tenant_ab_key
                ON chatbot_configs (tenant_id, ab_test_field, ab_test_value)
                WHERE ab_test_value IS NOT NULL AND is_active;
            CREATE UNIQUE INDEX IF NOT EXISTS chatbot_configs_tenant_default_key
                ON chatbot_configs (tenant_id) WHERE is_default AND is_active;
            CREATE OR REPLACE TRIGGER update_chatbot_configs_updated_at BEFORE UPDATE ON chatbot_configs
                FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()
            """,
            step="create chatbot_configs",
        )
        online.execute(
            """
            CREATE TABLE IF NOT EXISTS conversation_threads (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                contact_id UUID,
                mc_id TEXT NOT NULL,
                openai_thread_id TEXT,
                chatbot_config_id UUID,
                status TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'closed', 'escalated', 'paused')),
                message_count INTEGER NOT NULL DEFAULT 0,
                last_user_message TEXT,
                last_bot_response TEXT,
                last_interaction_at TIMESTAMPTZ,
                extracted_symptoms TEXT[],
                extracted_months_postpartum TEXT,
                extracted_email TEXT,
                extracted_objections TEXT[],
                booking_intent BOOLEAN NOT NULL DEFAULT false,
                link_sent BOOLEAN NOT NULL DEFAULT false,
                pdf_sent BOOLEAN NOT NULL DEFAULT false,
                lead_magnet_sent BOOLEAN NOT NULL DEFAULT false,
                already_booked BOOLEAN NOT NULL DEFAULT false,
                recent_messages JSONB NOT NULL DEFAULT '[]'::jsonb,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CONSTRAINT conversation_threads_tenant_id_mc_id_key UNIQUE (tenant_id, mc_id),
                CONSTRAINT conversation_threads_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
                    REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (contact_id),
                CONSTRAINT conversation_threads_tenant_id_chatbot_config_id_fkey
                    FOREIGN KEY (tenant_id, chatbot_config_id)
                    REFERENCES chatbot_configs (tenant_id, id) ON DELETE SET NULL (chatbot_config_id)
            );
            CREATE OR REPLACE TRIGGER update_conversation_threads_updated_at BEFORE UPDATE ON conversation_threads
                FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()
            """,
            step="create conversation_threads",
        )
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS meta_capi_events (
                id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                contact_id UUID,
                event_name TEXT NOT NULL CHECK (event_name IN ({CAPI_EVENTS})),
                event_time TIMESTAMPTZ NOT NULL,
                event_id TEXT NOT NULL DEFAULT gen_random_uuid()::text,
                event_source_url TEXT,
                action_source TEXT NOT NULL DEFAULT 'system_generated' CHECK (action_source IN ({ACTION_SOURCES})),
                ad_id TEXT,
                adset_id TEXT,
                campaign_id TEXT,
                pixel_id TEXT,
                user_email_hash TEXT,
                user_phone_hash TEXT,
                user_first_name_hash TEXT,
                user_last_name_hash TEXT,
                user_fbp TEXT,
                user_fbc TEXT,
                user_external_id TEXT,
                user_client_ip_address TEXT,
                user_client_user_agent TEXT,
                event_value NUMERIC(12,2),
                currency TEXT NOT NULL DEFAULT 'USD',
                content_type TEXT,
                content_ids TEXT[],
                content_name TEXT,
                custom_data JSONB,
                sent_to_meta BOOLEAN NOT NULL DEFAULT false,
                send_attempts INTEGER NOT NULL DEFAULT 0,
                last_send_attempt_at TIMESTAMPTZ,
                sent_at TIMESTAMPTZ,
                meta_response JSONB,
                meta_events_received INTEGER,
                meta_fbtrace_id TEXT,
                send_error TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CONSTRAINT meta_capi_events_tenant_id_event_id_key UNIQUE (tenant_id, event_id),
                CONSTRAINT meta_capi_events_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
                    REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (contact_id)
            );
            CREATE INDEX IF NOT EXISTS idx_meta_capi_events_unsent ON meta_capi_events (tenant_id, created_at)
                WHERE NOT sent_to_meta AND send_attempts < 5
            """,
            step="create meta_capi_events",
        )


def downgrade() -> None:
    with online.steps():
        online.guard(guards.no_mcb_rows)
        online.execute(
            "DROP TABLE IF EXISTS meta_capi_events;\n"
            "DROP TABLE IF EXISTS conversation_threads;\n"
            "DROP TABLE IF EXISTS chatbot_configs",
            step="drop chatbot_configs, conversation_threads, meta_capi_events (all empty)",
        )
