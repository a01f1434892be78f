"""The original's SQL functions and views made tenant-aware (R-05, R-09).

Every function gets an overload whose first parameter is the tenant; the original signatures stay, as
wrappers scoped to the default tenant, because the original application still calls them while it runs
(and its upserts on the old global keys would otherwise fail). Every view gains tenant_id as its first
column and groups by it, so no view mixes tenants.

Revision ID: 0007
Revises: 0006
"""

from mcb.migrate import online

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with online.steps():
        online.run_sql_file("0007_tenant_functions.sql", step="tenant-aware SQL functions")
        online.run_sql_file("0007_tenant_views.sql", step="tenant-aware views")


def downgrade() -> None:
    with online.steps():
        online.execute(
            online.read_sql("0007_tenant_functions_down.sql") + ";\n" + online.read_sql("0001_functions.sql"),
            step="restore the original SQL functions",
        )
        online.run_sql_file("0001_views.sql", step="restore the original views")
