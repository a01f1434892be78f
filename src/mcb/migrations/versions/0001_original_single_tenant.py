"""The original single-tenant schema (spec section 1.2): 15 tables, helper functions, 21 views.

Revision ID: 0001
Revises:
"""

from mcb.migrate import guards, online

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    with online.steps():
        online.run_sql_file("0001_tables.sql", step="create the original tables, indexes and triggers")
        online.run_sql_file("0001_functions.sql", step="create the original SQL functions")
        online.run_sql_file("0001_views.sql", step="create the original views")


def downgrade() -> None:
    with online.steps():
        online.guard(guards.legacy_tables_are_empty)
        online.execute(guards.drop_everything_sql(), step="drop the original schema (it held no rows)")
