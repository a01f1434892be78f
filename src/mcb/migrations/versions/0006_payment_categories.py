"""payments.payment_category filled for existing rows by the rules of spec 1.6 (R-23).

Stripe: exactly $100 is a deposit, more is a full purchase, less is miscellaneous. Denefits:
``<code>_downpayment`` rows are down payments, ``<code>_recurring_<n>`` rows are instalments, every other
Denefits row is the financed plan. Rows of type refund, or with a negative amount, are refunds. Filled in
batches, one per transaction, resumably; the legacy ``updated_at`` values are left as they were.

A BEFORE INSERT trigger, created before the backfill starts, gives the same category to every payment
that arrives without one: the original application keeps inserting payments and knows nothing of the
column. From then on no payment is ever without a category.

The existing rows are updated in physical order, a few rows of each page per transaction
(``online.page_backfill``): the column is in no index yet, so once the first rows of a page have moved
out, the others' new versions fit on the same page and write no index entry (HOT updates). In key order
every update hit a random full page and wrote an entry in each of the table's 14 indexes.

Revision ID: 0006
Revises: 0005
"""

from mcb.migrate import online

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

CATEGORY = r"""
CASE
    WHEN p.payment_type = 'refund' OR p.amount < 0 THEN 'refund'
    WHEN p.payment_source = 'stripe' THEN
        CASE WHEN p.amount = 100 THEN 'deposit' WHEN p.amount > 100 THEN 'full_purchase' ELSE 'miscellaneous' END
    WHEN p.payment_event_id LIKE '%%\_downpayment' THEN 'downpayment'
    WHEN p.payment_event_id LIKE '%%\_recurring\_%%' THEN 'recurring'
    ELSE 'payment_plan'
END
"""

# The rows of each step of the walk go in place of {rows}; rows that have a category are never touched.
BACKFILL = f"""
UPDATE payments p SET payment_category = {CATEGORY}
WHERE {{rows}} AND p.payment_category IS NULL
"""

TRIGGER = f"""
CREATE OR REPLACE FUNCTION mcb_payment_category_default() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE p payments := NEW;
BEGIN
    IF NEW.payment_category IS NULL THEN
        NEW.payment_category := {CATEGORY.replace("%%", "%")};
    END IF;
    RETURN NEW;
END;
$fn$;
CREATE OR REPLACE TRIGGER payments_category_default BEFORE INSERT ON payments
    FOR EACH ROW EXECUTE FUNCTION mcb_payment_category_default()
"""


def upgrade() -> None:
    with online.steps():
        online.execute(TRIGGER, step="payments without a category get one on insert")
        online.page_backfill(
            "payment_categories",
            table="payments",
            alias="p",
            update_sql=BACKFILL,
            todo="p.payment_category IS NULL",
            unit="payments",
            setup_sql="SELECT set_config('mcb.preserve_updated_at', 'on', true)",
        )
        online.create_index(
            "idx_payments_tenant_category_date", "payments", "tenant_id, payment_category, payment_date"
        )


def downgrade() -> None:
    with online.steps():
        online.drop_index("idx_payments_tenant_category_date")
        online.execute(
            "DROP TRIGGER IF EXISTS payments_category_default ON payments;\n"
            "DROP FUNCTION IF EXISTS mcb_payment_category_default()",
            step="drop the category trigger",
        )
        online.execute(
            online.forget_backfill_sql("payment_categories"),
            step="forget the payment category backfill (0003's downgrade drops the column)",
        )
