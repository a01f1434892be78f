"""The durable webhook inbox on webhook_logs, rejections, and the indexes contact matching needs.

MCB stores each accepted webhook as one webhook_logs row (``inbox = true``) before it answers, then a
worker claims it and writes the outcome on the same row. The original's rows (and the rows the original
keeps writing during the cut-over) have ``inbox = false`` and are never claimed. New columns have
constant defaults (catalog-only); indexes are built concurrently.

Revision ID: 0010
Revises: 0009
"""

from mcb.migrate import online

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

WEBHOOK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("inbox", "BOOLEAN NOT NULL DEFAULT false"),
    ("headers", "JSONB"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("next_attempt_at", "TIMESTAMPTZ"),
    ("claimed_by", "INTEGER"),
    ("processed_at", "TIMESTAMPTZ"),
    ("status_detail", "TEXT"),
    ("unknown_keys", "TEXT[]"),
    ("outcome", "JSONB"),
)

INDEXES: tuple[tuple[str, str, str, str | None], ...] = (
    ("idx_webhook_logs_inbox_pending", "webhook_logs", "id", "inbox AND status IN ('received', 'retry')"),
    ("idx_contacts_tenant_email_primary", "contacts", "tenant_id, lower(email_primary)", "email_primary IS NOT NULL"),
    ("idx_contacts_tenant_email_booking", "contacts", "tenant_id, lower(email_booking)", "email_booking IS NOT NULL"),
    ("idx_contacts_tenant_email_payment", "contacts", "tenant_id, lower(email_payment)", "email_payment IS NOT NULL"),
    ("idx_contacts_tenant_phone", "contacts", "tenant_id, phone", "phone IS NOT NULL"),
    ("idx_contacts_tenant_stripe_customer", "contacts", "tenant_id, stripe_customer_id",
     "stripe_customer_id IS NOT NULL"),
    ("idx_payments_tenant_orphan_email", "payments", "tenant_id, lower(customer_email)", "contact_id IS NULL"),
)


def upgrade() -> None:
    with online.steps():
        for column, definition in WEBHOOK_COLUMNS:
            online.add_column("webhook_logs", column, definition)
        # When each identity field got its value (field -> time of the event that set it): merging by
        # "earliest evidence wins" makes the final contact the same whatever order deliveries arrive in.
        online.add_column("contacts", "field_times", "JSONB NOT NULL DEFAULT '{}'::jsonb")
        online.execute(
            """
            CREATE TABLE IF NOT EXISTS webhook_rejections (
                id BIGSERIAL PRIMARY KEY,
                tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
                source TEXT NOT NULL,
                reason TEXT NOT NULL,
                remote_addr TEXT,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now()
            );
            CREATE INDEX IF NOT EXISTS idx_webhook_rejections_tenant_time ON webhook_rejections (tenant_id, created_at);
            GRANT SELECT, INSERT ON webhook_rejections TO mcb_app;
            GRANT USAGE, SELECT ON SEQUENCE webhook_rejections_id_seq TO mcb_app;
            ALTER TABLE webhook_rejections ENABLE ROW LEVEL SECURITY;
            ALTER TABLE webhook_rejections FORCE ROW LEVEL SECURITY;
            DROP POLICY IF EXISTS tenant_isolation ON webhook_rejections;
            CREATE POLICY tenant_isolation ON webhook_rejections
                USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
                WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
            DROP POLICY IF EXISTS owner_admin ON webhook_rejections;
            CREATE POLICY owner_admin ON webhook_rejections TO CURRENT_USER
                USING (current_setting('mcb.admin', true) = 'on')
                WITH CHECK (current_setting('mcb.admin', true) = 'on')
            """,
            step="create webhook_rejections (tenant-scoped, RLS)",
        )
        for name, table, columns, where in INDEXES:
            online.create_index(name, table, columns, where=where)


def downgrade() -> None:
    with online.steps():
        for name, _table, _columns, _where in reversed(INDEXES):
            online.drop_index(name)
        online.execute("DROP TABLE IF EXISTS webhook_rejections", step="drop webhook_rejections")
        online.drop_column("contacts", "field_times")
        for column, _definition in reversed(WEBHOOK_COLUMNS):
            online.drop_column("webhook_logs", column)
