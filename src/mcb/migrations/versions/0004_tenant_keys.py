"""Every unique key and every foreign key between tenant tables includes tenant_id (R-02, R-03).

The global keys of the original (contacts.mc_id, contacts.ghl_id, payments.payment_event_id with its
duplicate unique index, meta_ads.ad_id with the two foreign keys that depend on it, the creatives' and
insights' keys, the bare-date primary keys of the reporting tables) become tenant-scoped. Each new key is
built as a concurrent index and attached with ``USING INDEX``; each new foreign key is added NOT VALID and
validated; only then are the old ones dropped, found by their columns rather than their names.

Revision ID: 0004
Revises: 0003
"""

from functools import partial

from mcb.migrate import guards, online
from mcb.migrate.legacy import NATURAL_PRIMARY_KEYS

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

# (table, new constraint, columns, old global columns)
TENANT_UNIQUES: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("contacts", "contacts_tenant_id_mc_id_key", ("tenant_id", "mc_id"), ("mc_id",)),
    ("contacts", "contacts_tenant_id_ghl_id_key", ("tenant_id", "ghl_id"), ("ghl_id",)),
    ("payments", "payments_tenant_id_payment_event_id_key", ("tenant_id", "payment_event_id"), ("payment_event_id",)),
)

# (table, new FK name, definition, old FK columns, referenced table)
CONTACT_FKS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    (
        "payments",
        "payments_tenant_id_contact_id_fkey",
        "FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (contact_id)",
        ("contact_id",),
        "contacts",
    ),
    (
        "webhook_logs",
        "webhook_logs_tenant_id_contact_id_fkey",
        "FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE SET NULL (contact_id)",
        ("contact_id",),
        "contacts",
    ),
)

# The original schema's names for what 0004 replaces, found by their columns when it runs; named here for
# the plan that --dry-run prints and for the downgrade.
LEGACY_CONTACT_FKS = {"payments": "payments_contact_id_fkey", "webhook_logs": "fk_contact"}
LEGACY_UNIQUE_INDEXES = {"payments": ("idx_payments_event_id",)}

META_CHILDREN: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("meta_ad_creatives", "meta_ad_creatives_tenant_id_ad_id_key", ("tenant_id", "ad_id"), ("ad_id",)),
    (
        "meta_ad_insights",
        "meta_ad_insights_tenant_id_ad_id_snapshot_date_key",
        ("tenant_id", "ad_id", "snapshot_date"),
        ("ad_id", "snapshot_date"),
    ),
)

TENANT_INDEXES: tuple[tuple[str, str, str], ...] = (
    ("idx_contacts_tenant_stage", "contacts", "tenant_id, stage"),
    ("idx_contacts_tenant_created_at", "contacts", "tenant_id, created_at"),
    ("idx_contacts_tenant_source", "contacts", "tenant_id, source"),
    ("idx_payments_tenant_payment_date", "payments", "tenant_id, payment_date"),
    ("idx_webhook_logs_tenant_source", "webhook_logs", "tenant_id, source"),
    ("idx_webhook_logs_tenant_created_at", "webhook_logs", "tenant_id, created_at"),
    ("idx_meta_ad_insights_tenant_date", "meta_ad_insights", "tenant_id, snapshot_date"),
)


def upgrade() -> None:
    with online.steps():
        # Contacts are referenced by (tenant_id, id) so a row can only point at a contact of its own tenant.
        online.add_unique("contacts", "contacts_tenant_id_id_key", ("tenant_id", "id"))
        # Each new foreign key holds for the rows written from here on; its table's lane checks the others.
        for table, name, definition, _old_cols, _ref in CONTACT_FKS:
            online.add_constraint(table, name, definition, validate_now=False)
        # The rest of each table's keys and indexes, the tables side by side, the longest first.
        online.side_by_side(*(partial(_table_keys, table) for table in ("webhook_logs", "contacts", "payments")),
                            _meta_keys)
        # The old foreign keys to contacts go once the new ones are validated (a lane that dropped one would
        # wait for a gap between the index builds on contacts, which these locks conflict with).
        for table, _name, _definition, old_cols, ref in CONTACT_FKS:
            for old in online.foreign_keys_on(table, old_cols, ref, expected=LEGACY_CONTACT_FKS[table]):
                online.drop_constraint(table, old)

        for table, key in NATURAL_PRIMARY_KEYS.items():
            if online.table_exists(table):
                online.add_unique(table, f"{table}_pkey", ("tenant_id", *key), primary_key=True)


def _table_keys(table: str) -> None:
    """One table's share: its new foreign keys validated, its tenant-scoped unique keys in place of the
    global ones, its composite indexes."""
    for fk_table, name, _definition, _old_cols, _ref in CONTACT_FKS:
        if fk_table == table:
            online.validate(table, name)
    for unique_table, name, cols, old_cols in TENANT_UNIQUES:
        if unique_table == table:
            online.add_unique(table, name, cols)
            online.drop_unique_on(table, old_cols, expected_name=f"{table}_{'_'.join(old_cols)}_key",
                                  expected_indexes=LEGACY_UNIQUE_INDEXES.get(table, ()))
    _indexes_on(table)


def _indexes_on(table: str) -> None:
    for index_name, index_table, index_cols in TENANT_INDEXES:
        if index_table == table:
            online.create_index(index_name, index_table, index_cols)


def _meta_keys() -> None:
    online.add_unique("meta_ads", "meta_ads_tenant_id_ad_id_key", ("tenant_id", "ad_id"))
    for table, name, cols, old_cols in META_CHILDREN:
        online.add_constraint(
            table,
            f"{table}_tenant_id_ad_id_fkey",
            "FOREIGN KEY (tenant_id, ad_id) REFERENCES meta_ads (tenant_id, ad_id) ON DELETE CASCADE",
        )
        for old in online.foreign_keys_on(table, ("ad_id",), "meta_ads", expected=f"{table}_ad_id_fkey"):
            online.drop_constraint(table, old)
        online.add_unique(table, name, cols)
        online.drop_unique_on(table, old_cols, expected_name=f"{table}_{'_'.join(old_cols)}_key")
    # Only now that nothing depends on it can the global key of meta_ads go (the original's drop failed here).
    online.drop_unique_on("meta_ads", ("ad_id",), expected_name="meta_ads_ad_id_key")
    _indexes_on("meta_ad_insights")


def downgrade() -> None:
    with online.steps():
        online.guard(guards.single_tenant_keys_possible)
        for index_name, _table, _index_cols in reversed(TENANT_INDEXES):
            online.drop_index(index_name)
        for table, key in NATURAL_PRIMARY_KEYS.items():
            if online.table_exists(table):
                online.add_unique(table, f"{table}_pkey", key, primary_key=True)

        online.add_unique("meta_ads", "meta_ads_ad_id_key", ("ad_id",))
        for table, name, _cols, old_cols in META_CHILDREN:
            online.add_unique(table, f"{table}_{'_'.join(old_cols)}_key", old_cols)
            online.drop_constraint(table, name)
            online.add_constraint(
                table, f"{table}_ad_id_fkey", "FOREIGN KEY (ad_id) REFERENCES meta_ads (ad_id) ON DELETE CASCADE"
            )
            online.drop_constraint(table, f"{table}_tenant_id_ad_id_fkey")
        online.drop_constraint("meta_ads", "meta_ads_tenant_id_ad_id_key")

        for table, name, _cols, old_cols in reversed(TENANT_UNIQUES):
            online.add_unique(table, f"{table}_{'_'.join(old_cols)}_key", old_cols)
            online.drop_constraint(table, name)
        # The original also had a second unique index on payments.payment_event_id; it comes back too.
        online.create_index("idx_payments_event_id", "payments", "payment_event_id", unique=True)
        for table, name, _definition, _old_cols, _ref in reversed(CONTACT_FKS):
            online.add_constraint(
                table,
                LEGACY_CONTACT_FKS[table],
                "FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE SET NULL",
            )
            online.drop_constraint(table, name)
        online.drop_constraint("contacts", "contacts_tenant_id_id_key")
