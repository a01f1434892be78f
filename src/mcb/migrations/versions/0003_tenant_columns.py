"""tenant_id NOT NULL on every legacy table, plus the columns the final model adds (spec 1.3, 1.4, 1.5).

``ADD COLUMN tenant_id uuid NOT NULL DEFAULT '<default tenant>'`` only writes the catalog: every existing
row reads as the default tenant without being rewritten, and the original application, which inserts
without tenant_id, keeps succeeding and lands in the default tenant. The foreign key to tenants is added
NOT VALID and validated afterwards, so no writer waits for a scan.

Revision ID: 0003
Revises: 0002
"""

from mcb.migrate import guards, online
from mcb.migrate.legacy import LEGACY_TABLES, original_table_ddl
from mcb.migrate.sqltext import CATEGORY_VALUES, PAYMENT_TYPES, PAYMENT_TYPES_LEGACY, in_list

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

NEW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("contacts", "fbclid", "TEXT"),
    ("contacts", "fbp", "TEXT"),
    ("contacts", "fbc", "TEXT"),
    ("contacts", "funnel_variant", "TEXT"),
    ("contacts", "deposit_paid_date", "TIMESTAMPTZ"),
    ("contacts", "tags", "JSONB NOT NULL DEFAULT '{}'::jsonb"),
    ("payments", "payment_category", "TEXT"),
    ("meta_ads", "spend_28d", "NUMERIC(10,2)"),
    ("meta_ad_insights", "spend_28d", "NUMERIC(10,2)"),
)


def upgrade() -> None:
    with online.steps():
        default_id = guards.default_tenant_id()
        for table in LEGACY_TABLES:
            if not online.table_exists(table):
                # A hand-built database may lack some of the original's optional tables: create them
                # empty, so that every database at head has the same shape.
                online.execute(original_table_ddl(table), step=f"create the missing original table {table}")
            online.add_column(table, "tenant_id", f"UUID NOT NULL DEFAULT '{default_id}'")
            online.add_constraint(table, f"{table}_tenant_id_fkey", "FOREIGN KEY (tenant_id) REFERENCES tenants (id)")
        for table, column, definition in NEW_COLUMNS:
            online.add_column(table, column, definition)
        online.add_constraint(
            "payments",
            "payments_payment_category_check",
            f"CHECK (payment_category IS NULL OR payment_category IN ({in_list(CATEGORY_VALUES)}))",
        )
        # Refunds are payments of type 'refund' with a negative amount; the original's CHECK refused them.
        online.replace_check("payments", "payments_payment_type_check", f"payment_type IN ({in_list(PAYMENT_TYPES)})")
        # Backfills set this so that the updated_at triggers leave legacy rows' updated_at alone.
        online.execute(online.read_sql("0003_updated_at_trigger.sql"), step="updated_at trigger honours backfills")


def downgrade() -> None:
    with online.steps():
        online.guard(guards.no_refund_payments)
        online.guard(guards.new_columns_are_empty)
        online.execute(online.read_sql("0003_updated_at_trigger_down.sql"), step="restore the original updated_at trigger")
        online.replace_check(
            "payments", "payments_payment_type_check", f"payment_type IN ({in_list(PAYMENT_TYPES_LEGACY)})"
        )
        online.drop_constraint("payments", "payments_payment_category_check")
        for table, column, _ in reversed(NEW_COLUMNS):
            online.drop_column(table, column)
        for table in reversed(LEGACY_TABLES):
            if online.table_exists(table):
                online.drop_column(table, "tenant_id")
