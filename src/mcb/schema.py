"""Table metadata of the head revision: the one place where columns are named.

The migrations build the database; this metadata describes what they build, and a test proves the two
agree (``mcb.migrate.drift``). Constraint names follow the naming convention below from revision 0002
on; the original's tables keep the names Postgres gave them in revision 0001, so every constraint and
index here carries its real name explicitly.

Columns are listed in the order the database holds them: on the original's tables the columns MCB added
(revision 0003) come last.

``tenant_id`` on the original's tables defaults to the id of the install's default tenant (revision 0003
writes it as a literal, so the original application, which inserts without tenant_id, keeps working).
That literal depends on ``MCB_DEFAULT_TENANT``, so it is not stated here; ``mcb.migrate.drift`` checks it
against ``mcb_default_tenant_id()`` instead.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import (
    ARRAY,
    BIGINT,
    BOOLEAN,
    DATE,
    INTEGER,
    JSONB,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    UUID,
)
from sqlalchemy.sql.elements import conv

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

TIMESTAMPTZ = TIMESTAMP(timezone=True)
TEXT_ARRAY = ARRAY(TEXT)

# Server defaults as Postgres renders them, so that Alembic compares like with like.
_NOW = text("now()")
_NEW_UUID = text("gen_random_uuid()")
_EMPTY_OBJECT = text("'{}'::jsonb")
_FALSE = text("false")
_TRUE = text("true")
_ZERO = text("0")


# Column.info key marking a column whose server default is the default tenant's id (see the module doc).
DEFAULTS_TO_DEFAULT_TENANT = "defaults_to_default_tenant"
# Table.info key set to False on a table whose tenant_id is not ownership (so it is not in TENANT_TABLES).
TENANT_OWNED = "tenant_owned"


def _legacy_tenant_id() -> Column[object]:
    """tenant_id as revision 0003 added it to every table of the original (default: the default tenant)."""
    return Column("tenant_id", UUID, nullable=False, info={DEFAULTS_TO_DEFAULT_TENANT: True})


def _tenant_fk(table: str, *, ondelete: str | None = None) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"{table}_tenant_id_fkey", ondelete=ondelete
    )


def _contact_fk(table: str, *, ondelete: str) -> ForeignKeyConstraint:
    """A reference to a contact of the same tenant: (tenant_id, contact_id) -> contacts (tenant_id, id)."""
    return ForeignKeyConstraint(
        ["tenant_id", "contact_id"],
        ["contacts.tenant_id", "contacts.id"],
        name=f"{table}_tenant_id_contact_id_fkey",
        ondelete=ondelete,
    )


# ============================================================================ tenancy (revisions 0002, 0009)

# One row per client business. Exactly one is the default: it owns every legacy row and every write that
# names no tenant.
tenants = Table(
    "tenants",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("slug", TEXT, nullable=False),
    Column("name", TEXT, nullable=False),
    Column("owner_name", TEXT),
    Column("report_email", TEXT),
    Column("is_active", BOOLEAN, nullable=False, server_default=_TRUE),
    Column("is_default", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("config", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("id", name="tenants_pkey"),
    UniqueConstraint("slug", name="tenants_slug_key"),
    CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name=conv("tenants_slug_check")),
    Index("tenants_is_default_key", "is_default", unique=True, postgresql_where=text("is_default")),
)

# A tenant's credentials for one provider and its inbound webhook secret, both encrypted at rest (0009
# reshaped the table: Fernet tokens in text columns, non-secret settings in options).
tenant_integrations = Table(
    "tenant_integrations",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("provider", TEXT, nullable=False),
    Column("credentials", TEXT, comment="Fernet token of the credentials JSON object"),
    Column("webhook_secret", TEXT, comment="Fernet token of the inbound webhook secret"),
    Column("is_active", BOOLEAN, nullable=False, server_default=_TRUE),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("options", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    PrimaryKeyConstraint("id", name="tenant_integrations_pkey"),
    _tenant_fk("tenant_integrations", ondelete="CASCADE"),
    UniqueConstraint("tenant_id", "provider", name="tenant_integrations_tenant_id_provider_key"),
)

# Bearer tokens for the dashboard and the JSON API (0009). Not tenant-owned: tenant_id is the token's
# scope, and NULL means an admin token for every tenant. Only a hash of the token is stored.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID),
    Column("name", TEXT, nullable=False),
    Column("token_prefix", TEXT, nullable=False),
    Column("token_hash", TEXT, nullable=False),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("last_used_at", TIMESTAMPTZ),
    Column("revoked_at", TIMESTAMPTZ),
    PrimaryKeyConstraint("id", name="api_tokens_pkey"),
    _tenant_fk("api_tokens", ondelete="CASCADE"),
    UniqueConstraint("token_hash", name="api_tokens_token_hash_key"),
    comment="Bearer tokens: tenant_id NULL = admin token (all tenants); only a SHA-256 hash is stored",
    info={TENANT_OWNED: False},
)


# ============================================================================ the original's tables (0001)
# Revision 0001 creates them as the original had them; 0003 adds tenant_id (and a few columns), 0004 makes
# every key tenant-scoped.

# One person in the funnel, identified by any of their platform ids, emails or phone.
contacts = Table(
    "contacts",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("mc_id", TEXT),
    Column("ghl_id", TEXT),
    Column("ad_id", TEXT),
    Column("stripe_customer_id", TEXT),
    Column("ig_id", BIGINT),
    Column("first_name", TEXT),
    Column("last_name", TEXT),
    Column("email_primary", TEXT),
    Column("email_booking", TEXT),
    Column("email_payment", TEXT),
    Column("phone", TEXT),
    Column("ig", TEXT),
    Column("fb", TEXT),
    Column("stage", TEXT),
    Column("chatbot_ab", TEXT),  # deprecated (kept, never written by MCB)
    Column("misc_ab", TEXT),  # deprecated (kept, never written by MCB)
    Column("trigger_word", TEXT),  # deprecated (kept, never written by MCB)
    Column("q1_question", TEXT),  # deprecated (kept, never written by MCB)
    Column("q2_question", TEXT),  # deprecated (kept, never written by MCB)
    Column("objections", TEXT),  # deprecated (kept, never written by MCB)
    Column("subscribe_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("subscribed", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("followed_date", TIMESTAMPTZ),
    Column("dm_qualified_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("link_send_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("link_click_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("ig_last_interaction", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("form_submit_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    # Superseded by appointment_date / appointment_held_date before the original's 12-25 drop.
    Column("meeting_book_date", TIMESTAMPTZ),
    Column("meeting_held_date", TIMESTAMPTZ),
    Column("appointment_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("appointment_held_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("package_sent_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("checkout_started", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("purchase_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    # deprecated (kept, never written by MCB)
    Column("purchase_amount", NUMERIC(10, 2), server_default=_ZERO),
    Column("feedback_sent_date", TIMESTAMPTZ),
    Column("feedback_received_date", TIMESTAMPTZ),
    Column("feedback_text", TEXT),
    Column("lead_summary", TEXT),  # deprecated (kept, never written by MCB)
    Column("thread_id", TEXT),  # deprecated (kept, never written by MCB)
    Column("source", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    # Added by revision 0003. funnel_variant and deposit_paid_date are on the original's 12-25 drop list too.
    Column("fbclid", TEXT),
    Column("fbp", TEXT),
    Column("fbc", TEXT),
    Column("funnel_variant", TEXT),  # deprecated (kept, never written by MCB)
    Column("deposit_paid_date", TIMESTAMPTZ),  # deprecated (kept, never written by MCB)
    Column("tags", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    # Added by revision 0010: when MCB set each field (field -> event time), for order-independent merges.
    Column("field_times", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    PrimaryKeyConstraint("id", name="contacts_pkey"),
    _tenant_fk("contacts"),
    # The target of every reference to a contact, so that a row can only point at its own tenant's contact.
    UniqueConstraint("tenant_id", "id", name="contacts_tenant_id_id_key"),
    UniqueConstraint("tenant_id", "mc_id", name="contacts_tenant_id_mc_id_key"),
    UniqueConstraint("tenant_id", "ghl_id", name="contacts_tenant_id_ghl_id_key"),
    Index("idx_contacts_mc_id", "mc_id", postgresql_where=text("mc_id IS NOT NULL")),
    Index("idx_contacts_ghl_id", "ghl_id", postgresql_where=text("ghl_id IS NOT NULL")),
    Index(
        "idx_contacts_stripe_customer_id",
        "stripe_customer_id",
        postgresql_where=text("stripe_customer_id IS NOT NULL"),
    ),
    Index("idx_contacts_ig_id", "ig_id", postgresql_where=text("ig_id IS NOT NULL")),
    Index("idx_contacts_email_primary", "email_primary", postgresql_where=text("email_primary IS NOT NULL")),
    Index("idx_contacts_email_booking", "email_booking", postgresql_where=text("email_booking IS NOT NULL")),
    Index("idx_contacts_email_payment", "email_payment", postgresql_where=text("email_payment IS NOT NULL")),
    Index("idx_contacts_phone", "phone", postgresql_where=text("phone IS NOT NULL")),
    Index("idx_contacts_ad_id", "ad_id", postgresql_where=text("ad_id IS NOT NULL")),
    Index(
        "idx_contacts_subscribe_date", "subscribe_date", postgresql_where=text("subscribe_date IS NOT NULL")
    ),
    Index(
        "idx_contacts_dm_qualified_date",
        "dm_qualified_date",
        postgresql_where=text("dm_qualified_date IS NOT NULL"),
    ),
    Index(
        "idx_contacts_form_submit_date",
        "form_submit_date",
        postgresql_where=text("form_submit_date IS NOT NULL"),
    ),
    Index(
        "idx_contacts_appointment_date",
        "appointment_date",
        postgresql_where=text("appointment_date IS NOT NULL"),
    ),
    Index("idx_contacts_purchase_date", "purchase_date", postgresql_where=text("purchase_date IS NOT NULL")),
    Index("idx_contacts_stage", "stage"),
    Index("idx_contacts_chatbot_ab", "chatbot_ab"),
    Index("idx_contacts_tenant_stage", "tenant_id", "stage"),
    Index("idx_contacts_tenant_created_at", "tenant_id", "created_at"),
    Index("idx_contacts_tenant_source", "tenant_id", "source"),
    # Contact matching (revision 0010): e-mails case-insensitively, phone, Stripe customer, per tenant.
    Index("idx_contacts_tenant_email_primary", "tenant_id", text("lower(email_primary)"),
          postgresql_where=text("email_primary IS NOT NULL")),
    Index("idx_contacts_tenant_email_booking", "tenant_id", text("lower(email_booking)"),
          postgresql_where=text("email_booking IS NOT NULL")),
    Index("idx_contacts_tenant_email_payment", "tenant_id", text("lower(email_payment)"),
          postgresql_where=text("email_payment IS NOT NULL")),
    Index("idx_contacts_tenant_phone", "tenant_id", "phone", postgresql_where=text("phone IS NOT NULL")),
    Index("idx_contacts_tenant_stripe_customer", "tenant_id", "stripe_customer_id",
          postgresql_where=text("stripe_customer_id IS NOT NULL")),
    # The historical contacts only (revision 0013): the reports' R-32 filter reads this small set.
    Index("idx_contacts_tenant_historical", "tenant_id", "id", postgresql_where=text(r"source LIKE '%\_historical'")),
)

# The durable inbox: every webhook request, stored before it is acknowledged.
webhook_logs = Table(
    "webhook_logs",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("source", TEXT, nullable=False),
    Column("event_type", TEXT),
    Column("contact_id", UUID),
    Column("mc_id", TEXT),
    Column("ghl_id", TEXT),
    Column("payload", JSONB, nullable=False),
    Column("status", TEXT, server_default=text("'received'::text")),
    Column("error_message", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    # The durable inbox (revision 0010): MCB's rows have inbox = true; the original's never get claimed.
    Column("inbox", BOOLEAN, nullable=False, server_default=text("false")),
    Column("headers", JSONB),
    Column("attempts", INTEGER, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TIMESTAMPTZ),
    Column("claimed_by", INTEGER),  # backend pid of the worker session holding the row (see ingest.worker)
    Column("processed_at", TIMESTAMPTZ),
    Column("status_detail", TEXT),
    Column("unknown_keys", ARRAY(TEXT)),
    Column("outcome", JSONB),
    PrimaryKeyConstraint("id", name="webhook_logs_pkey"),
    _tenant_fk("webhook_logs"),
    _contact_fk("webhook_logs", ondelete="SET NULL (contact_id)"),
    Index("idx_webhook_logs_source", "source"),
    Index("idx_webhook_logs_contact_id", "contact_id"),
    Index("idx_webhook_logs_mc_id", "mc_id"),
    Index("idx_webhook_logs_ghl_id", "ghl_id"),
    Index("idx_webhook_logs_created_at", "created_at"),
    Index("idx_webhook_logs_status", "status"),
    Index("idx_webhook_logs_tenant_source", "tenant_id", "source"),
    Index("idx_webhook_logs_tenant_created_at", "tenant_id", "created_at"),
    Index("idx_webhook_logs_inbox_pending", "id",
          postgresql_where=text("inbox AND status IN ('received', 'retry')")),
)

# Webhooks refused by authentication (revision 0010): counted and logged, never processed, no body kept.
webhook_rejections = Table(
    "webhook_rejections",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("tenant_id", UUID, nullable=False),
    Column("source", TEXT, nullable=False),
    Column("reason", TEXT, nullable=False),
    Column("remote_addr", TEXT),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("id", name="webhook_rejections_pkey"),
    _tenant_fk("webhook_rejections", ondelete="CASCADE"),
    Index("idx_webhook_rejections_tenant_time", "tenant_id", "created_at"),
)

# One sync of a tenant's external account (revision 0012): window, outcome, counts, and why it failed.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("tenant_id", UUID, nullable=False),
    Column("provider", TEXT, nullable=False),
    Column("trigger", TEXT, nullable=False),
    Column("status", TEXT, nullable=False, server_default=text("'running'::text")),
    Column("started_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("finished_at", TIMESTAMPTZ),
    Column("since", DATE),
    Column("until", DATE),
    Column("ads", INTEGER, nullable=False, server_default=_ZERO),
    Column("creatives", INTEGER, nullable=False, server_default=_ZERO),
    Column("insight_rows", INTEGER, nullable=False, server_default=_ZERO),
    Column("api_calls", INTEGER, nullable=False, server_default=_ZERO),
    Column("error_kind", TEXT),
    Column("error", TEXT),
    PrimaryKeyConstraint("id", name="sync_runs_pkey"),
    _tenant_fk("sync_runs", ondelete="CASCADE"),
    CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=conv("sync_runs_status_check")),
    CheckConstraint("trigger IN ('cli', 'schedule')", name=conv("sync_runs_trigger_check")),
    Index("idx_sync_runs_tenant_provider_started", "tenant_id", "provider", "started_at"),
)

# One row per Stripe or Denefits payment event, linked to its contact when one is known (else an orphan).
payments = Table(
    "payments",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("contact_id", UUID),
    Column("payment_event_id", TEXT, nullable=False),
    Column("payment_source", TEXT, nullable=False),
    Column("payment_type", TEXT, nullable=False),
    Column("customer_email", TEXT),
    Column("customer_name", TEXT),
    Column("customer_phone", TEXT),
    Column("amount", NUMERIC(10, 2), nullable=False),
    Column("currency", TEXT, server_default=text("'usd'::text")),
    Column("status", TEXT, nullable=False),
    Column("payment_date", TIMESTAMPTZ, nullable=False),
    Column("stripe_event_type", TEXT),
    Column("stripe_customer_id", TEXT),
    Column("stripe_session_id", TEXT),
    Column("denefits_contract_id", INTEGER),
    Column("denefits_contract_code", TEXT),
    Column("denefits_financed_amount", NUMERIC(10, 2)),
    Column("denefits_downpayment", NUMERIC(10, 2)),
    Column("denefits_recurring_amount", NUMERIC(10, 2)),
    Column("denefits_num_payments", INTEGER),
    Column("denefits_remaining_payments", INTEGER),
    Column("raw_payload", JSONB, nullable=False),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    Column("payment_category", TEXT),
    PrimaryKeyConstraint("id", name="payments_pkey"),
    _tenant_fk("payments"),
    _contact_fk("payments", ondelete="SET NULL (contact_id)"),
    UniqueConstraint("tenant_id", "payment_event_id", name="payments_tenant_id_payment_event_id_key"),
    CheckConstraint("payment_source IN ('stripe', 'denefits')", name=conv("payments_payment_source_check")),
    CheckConstraint(
        "payment_type IN ('buy_in_full', 'buy_now_pay_later', 'refund')",
        name=conv("payments_payment_type_check"),
    ),
    CheckConstraint(
        "payment_category IS NULL OR payment_category IN ('deposit', 'full_purchase', 'payment_plan', "
        "'downpayment', 'recurring', 'miscellaneous', 'refund')",
        name=conv("payments_payment_category_check"),
    ),
    Index("idx_payments_contact_id", "contact_id", postgresql_where=text("contact_id IS NOT NULL")),
    Index("idx_payments_orphans", "customer_email", postgresql_where=text("contact_id IS NULL")),
    Index("idx_payments_source", "payment_source"),
    Index("idx_payments_type", "payment_type"),
    Index("idx_payments_status", "status"),
    Index(
        "idx_payments_customer_email", "customer_email", postgresql_where=text("customer_email IS NOT NULL")
    ),
    Index("idx_payments_payment_date", "payment_date"),
    Index("idx_payments_created_at", "created_at"),
    Index("idx_payments_stripe_customer_id", "stripe_customer_id"),
    Index("idx_payments_stripe_session_id", "stripe_session_id"),
    Index("idx_payments_denefits_contract_id", "denefits_contract_id"),
    Index("idx_payments_tenant_payment_date", "tenant_id", "payment_date"),
    Index("idx_payments_tenant_category_date", "tenant_id", "payment_category", "payment_date"),
    Index("idx_payments_tenant_orphan_email", "tenant_id", text("lower(customer_email)"),
          postgresql_where=text("contact_id IS NULL")),
)

# One Meta ad with its lifetime totals as last synced.
meta_ads = Table(
    "meta_ads",
    metadata,
    Column("id", UUID, nullable=False, server_default=text("uuid_generate_v4()")),
    Column("ad_id", TEXT, nullable=False),
    Column("ad_name", TEXT),
    Column("campaign_id", TEXT),
    Column("adset_id", TEXT),
    Column("status", TEXT),
    Column("effective_status", TEXT),
    Column("is_active", BOOLEAN, server_default=_TRUE),
    Column("created_time", TIMESTAMPTZ),
    Column("updated_time", TIMESTAMPTZ),
    Column("date_start", DATE),
    Column("date_stop", DATE),
    Column("last_synced", TIMESTAMPTZ, server_default=_NOW),
    Column("spend", NUMERIC(10, 2), server_default=_ZERO),
    Column("impressions", INTEGER, server_default=_ZERO),
    Column("clicks", INTEGER, server_default=_ZERO),
    Column("reach", INTEGER, server_default=_ZERO),
    Column("ctr", NUMERIC(5, 2), server_default=_ZERO),
    Column("cpc", NUMERIC(5, 2), server_default=_ZERO),
    Column("frequency", NUMERIC(5, 2), server_default=_ZERO),
    Column("link_clicks", INTEGER, server_default=_ZERO),
    Column("landing_page_views", INTEGER, server_default=_ZERO),
    Column("leads", INTEGER, server_default=_ZERO),
    Column("pixel_leads", INTEGER, server_default=_ZERO),
    Column("video_views", INTEGER, server_default=_ZERO),
    Column("post_engagements", INTEGER, server_default=_ZERO),
    Column("cost_per_lead", NUMERIC(10, 2)),
    Column("cost_per_landing_page_view", NUMERIC(10, 2)),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    Column("spend_28d", NUMERIC(10, 2)),
    Column("campaign_name", TEXT),
    Column("adset_name", TEXT),
    PrimaryKeyConstraint("id", name="meta_ads_pkey"),
    _tenant_fk("meta_ads"),
    UniqueConstraint("tenant_id", "ad_id", name="meta_ads_tenant_id_ad_id_key"),
    Index("idx_meta_ads_ad_id", "ad_id"),
    Index("idx_meta_ads_is_active", "is_active", postgresql_where=text("is_active = true")),
    Index("idx_meta_ads_campaign_id", "campaign_id"),
    Index("idx_meta_ads_adset_id", "adset_id"),
)

# The creative (copy, media, theme) of one Meta ad.
meta_ad_creatives = Table(
    "meta_ad_creatives",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("ad_id", TEXT, nullable=False),
    Column("primary_text", TEXT),
    Column("headline", TEXT),
    Column("alternative_copy", TEXT),
    Column("video_id", TEXT),
    Column("thumbnail_url", TEXT),
    Column("preview_url", TEXT),
    Column("post_id", TEXT),
    Column("transformation_theme", TEXT),
    Column("symptom_focus", TEXT_ARRAY),
    Column("copy_length", TEXT),
    Column("media_type", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="meta_ad_creatives_pkey"),
    _tenant_fk("meta_ad_creatives"),
    ForeignKeyConstraint(
        ["tenant_id", "ad_id"],
        ["meta_ads.tenant_id", "meta_ads.ad_id"],
        name="meta_ad_creatives_tenant_id_ad_id_fkey",
        ondelete="CASCADE",
    ),
    UniqueConstraint("tenant_id", "ad_id", name="meta_ad_creatives_tenant_id_ad_id_key"),
    Index("idx_meta_ad_creatives_theme", "transformation_theme"),
    Index("idx_meta_ad_creatives_symptoms", "symptom_focus", postgresql_using="gin"),
)

# One Meta ad's numbers for one day (snapshot_date is the day; revision 0012): the latest sync of a day wins.
meta_ad_insights = Table(
    "meta_ad_insights",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("ad_id", TEXT, nullable=False),
    Column("snapshot_date", DATE, nullable=False),
    Column("spend", NUMERIC(10, 2)),
    Column("impressions", INTEGER),
    Column("clicks", INTEGER),
    Column("reach", INTEGER),
    Column("leads", INTEGER),
    Column("ctr", NUMERIC(5, 2)),
    Column("cpc", NUMERIC(5, 2)),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    Column("spend_28d", NUMERIC(10, 2)),
    Column("link_clicks", INTEGER),
    Column("landing_page_views", INTEGER),
    Column("synced_at", TIMESTAMPTZ),
    PrimaryKeyConstraint("id", name="meta_ad_insights_pkey"),
    _tenant_fk("meta_ad_insights"),
    ForeignKeyConstraint(
        ["tenant_id", "ad_id"],
        ["meta_ads.tenant_id", "meta_ads.ad_id"],
        name="meta_ad_insights_tenant_id_ad_id_fkey",
        ondelete="CASCADE",
    ),
    UniqueConstraint(
        "tenant_id", "ad_id", "snapshot_date", name="meta_ad_insights_tenant_id_ad_id_snapshot_date_key"
    ),
    Index("idx_meta_ad_insights_snapshot_date", "snapshot_date"),
    Index("idx_meta_ad_insights_tenant_date", "tenant_id", "snapshot_date"),
)

# Reporting memory: one row per reported week.
weekly_snapshots = Table(
    "weekly_snapshots",
    metadata,
    Column("week_ending", DATE, nullable=False),
    Column("total_contacts", INTEGER),
    Column("qualified", INTEGER),
    Column("qualify_rate", NUMERIC(5, 2)),
    Column("bookings", INTEGER),
    Column("shows", INTEGER),
    Column("purchases", INTEGER),
    Column("revenue", NUMERIC(12, 2)),
    Column("spend", NUMERIC(12, 2)),
    Column("roas", NUMERIC(8, 2)),
    Column("top_ad_by_volume", TEXT),
    Column("top_ad_by_quality", TEXT),
    Column("top_ad_by_roas", TEXT),
    Column("recommendations_given", TEXT_ARRAY),
    Column("actions_taken", TEXT_ARRAY),
    Column("insights", TEXT),
    Column("report_sent_at", TIMESTAMPTZ),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("tenant_id", "week_ending", name="weekly_snapshots_pkey"),
    _tenant_fk("weekly_snapshots"),
)

# A/B tests of ads or chatbot variants and their outcome.
ab_tests = Table(
    "ab_tests",
    metadata,
    Column("id", INTEGER, nullable=False, autoincrement=True),
    Column("name", TEXT, nullable=False),
    Column("hypothesis", TEXT),
    Column("variant_a_description", TEXT),
    Column("variant_b_description", TEXT),
    Column("variant_a_ad_ids", TEXT_ARRAY),
    Column("variant_b_ad_ids", TEXT_ARRAY),
    Column("metric_tracked", TEXT),
    Column("target_sample_size", INTEGER),
    Column("started_at", TIMESTAMPTZ),
    Column("ended_at", TIMESTAMPTZ),
    Column("status", TEXT, server_default=text("'planning'::text")),
    Column("winner", TEXT),
    Column("results", JSONB),
    Column("confidence_level", NUMERIC(5, 2)),
    Column("result_summary", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="ab_tests_pkey"),
    _tenant_fk("ab_tests"),
    CheckConstraint(
        "status IN ('planning', 'running', 'complete', 'cancelled')", name=conv("ab_tests_status_check")
    ),
    CheckConstraint(
        "winner IN ('variant_a', 'variant_b', 'no_difference')", name=conv("ab_tests_winner_check")
    ),
)

# Per-ad weekly funnel and spend figures.
ad_performance_weekly = Table(
    "ad_performance_weekly",
    metadata,
    Column("week_ending", DATE, nullable=False),
    Column("ad_id", TEXT, nullable=False),
    Column("contacts", INTEGER),
    Column("qualified", INTEGER),
    Column("qualify_rate", NUMERIC(5, 2)),
    Column("bookings", INTEGER),
    Column("booking_rate", NUMERIC(5, 2)),
    Column("shows", INTEGER),
    Column("show_rate", NUMERIC(5, 2)),
    Column("purchases", INTEGER),
    Column("revenue", NUMERIC(12, 2)),
    Column("spend", NUMERIC(12, 2)),
    Column("roas", NUMERIC(8, 2)),
    Column("cost_per_lead", NUMERIC(10, 2)),
    Column("cost_per_customer", NUMERIC(10, 2)),
    Column("transformation_theme", TEXT),
    Column("symptom_focus", TEXT_ARRAY),
    Column("is_new", BOOLEAN, server_default=_FALSE),
    Column("was_scaled", BOOLEAN, server_default=_FALSE),
    Column("was_paused", BOOLEAN, server_default=_FALSE),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("tenant_id", "week_ending", "ad_id", name="ad_performance_weekly_pkey"),
    _tenant_fk("ad_performance_weekly"),
)

# Per-creative-theme weekly figures with week-over-week changes.
theme_performance_weekly = Table(
    "theme_performance_weekly",
    metadata,
    Column("week_ending", DATE, nullable=False),
    Column("transformation_theme", TEXT, nullable=False),
    Column("ad_count", INTEGER),
    Column("contacts", INTEGER),
    Column("qualified", INTEGER),
    Column("purchases", INTEGER),
    Column("revenue", NUMERIC(12, 2)),
    Column("spend", NUMERIC(12, 2)),
    Column("roas", NUMERIC(8, 2)),
    Column("contacts_wow_change", NUMERIC(8, 2)),
    Column("revenue_wow_change", NUMERIC(8, 2)),
    Column("roas_wow_change", NUMERIC(8, 2)),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint(
        "tenant_id", "week_ending", "transformation_theme", name="theme_performance_weekly_pkey"
    ),
    _tenant_fk("theme_performance_weekly"),
)

# Weekly report emails as sent.
reports_sent = Table(
    "reports_sent",
    metadata,
    Column("id", INTEGER, nullable=False, autoincrement=True),
    Column("week_ending", DATE),
    Column("sent_to", TEXT_ARRAY),
    Column("subject", TEXT),
    Column("sections", TEXT_ARRAY),
    Column("top_recommendation", TEXT),
    Column("primary_insight", TEXT),
    Column("sent_at", TIMESTAMPTZ, server_default=_NOW),
    Column("opened_at", TIMESTAMPTZ),
    Column("clicked_at", TIMESTAMPTZ),
    Column("report_html", TEXT),
    Column("report_markdown", TEXT),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="reports_sent_pkey"),
    _tenant_fk("reports_sent"),
)

# Historical analysis tables (imported spreadsheets; never joined to the live tables).

# One historical person, keyed by email.
hist_contacts = Table(
    "hist_contacts",
    metadata,
    Column("email", TEXT, nullable=False),
    Column("first_name", TEXT),
    Column("last_name", TEXT),
    Column("phone", TEXT),
    Column("source", TEXT),
    Column("import_batch_id", TEXT),
    Column("ad_type", TEXT),
    Column("trigger_word", TEXT),
    Column("campaign_name", TEXT),
    Column("reached_stage", TEXT),
    Column("has_purchase", BOOLEAN, server_default=_FALSE),
    Column("first_seen", TIMESTAMPTZ),
    Column("last_seen", TIMESTAMPTZ),
    Column("purchase_date", TIMESTAMPTZ),
    Column("data_quality_notes", TEXT),
    Column("is_suspicious", BOOLEAN, server_default=_FALSE),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("tenant_id", "email", name="hist_contacts_pkey"),
    _tenant_fk("hist_contacts"),
    CheckConstraint("ad_type IN ('paid', 'organic')", name=conv("hist_contacts_ad_type_check")),
    CheckConstraint(
        "reached_stage IN ('contacted', 'qualified', 'booked', 'attended', 'purchased')",
        name=conv("hist_contacts_reached_stage_check"),
    ),
)

# One historical payment.
hist_payments = Table(
    "hist_payments",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("email", TEXT),
    Column("amount", NUMERIC(10, 2)),
    Column("currency", TEXT, server_default=text("'usd'::text")),
    Column("payment_date", TIMESTAMPTZ),
    Column("source", TEXT),
    Column("external_id", TEXT),
    Column("payment_type", TEXT),
    Column("import_batch_id", TEXT),
    Column("is_suspicious", BOOLEAN, server_default=_FALSE),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="hist_payments_pkey"),
    _tenant_fk("hist_payments"),
    CheckConstraint("source IN ('stripe', 'denefits')", name=conv("hist_payments_source_check")),
    Index("idx_hist_payments_email", "email"),
)

# One historical event of a person.
hist_timeline = Table(
    "hist_timeline",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("email", TEXT),
    Column("event_type", TEXT),
    Column("event_date", TIMESTAMPTZ),
    Column("source", TEXT),
    Column("event_details", JSONB),
    Column("import_batch_id", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="hist_timeline_pkey"),
    _tenant_fk("hist_timeline"),
    Index("idx_hist_timeline_email", "email"),
)

# One historical import run and its counts.
hist_import_logs = Table(
    "hist_import_logs",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("source_file", TEXT),
    Column("source_type", TEXT),
    Column("rows_processed", INTEGER),
    Column("rows_imported", INTEGER),
    Column("rows_skipped", INTEGER),
    Column("rows_updated", INTEGER),
    Column("errors", JSONB),
    Column("warnings", JSONB),
    Column("started_at", TIMESTAMPTZ),
    Column("finished_at", TIMESTAMPTZ),
    Column("imported_by", TEXT),
    Column("notes", TEXT),
    Column("created_at", TIMESTAMPTZ, server_default=_NOW),
    _legacy_tenant_id(),
    PrimaryKeyConstraint("id", name="hist_import_logs_pkey"),
    _tenant_fk("hist_import_logs"),
)


# ============================================================================ MCB's tables (0005, 0008)

# The append-only funnel history; source_event_id is the idempotency key of each event.
funnel_events = Table(
    "funnel_events",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("contact_id", UUID, nullable=False),
    Column("event_type", TEXT, nullable=False),
    Column("event_timestamp", TIMESTAMPTZ, nullable=False),
    Column("source", TEXT, nullable=False),
    Column("source_event_id", TEXT, nullable=False),
    Column("event_data", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    Column("contact_snapshot", JSONB),
    Column("tags", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("created_by", TEXT, nullable=False, server_default=text("'system'::text")),
    PrimaryKeyConstraint("id", name="funnel_events_pkey"),
    _tenant_fk("funnel_events"),
    _contact_fk("funnel_events", ondelete="CASCADE"),
    UniqueConstraint(
        "tenant_id", "source", "source_event_id", name="funnel_events_tenant_id_source_source_event_id_key"
    ),
    CheckConstraint(
        "event_type IN ('contact_subscribed', 'contact_created', 'contact_updated', 'dm_qualified', "
        "'link_sent', 'link_clicked', 'form_submitted', 'appointment_scheduled', 'appointment_held', "
        "'appointment_cancelled', 'appointment_rescheduled', 'package_sent', 'checkout_started', "
        "'purchase_completed', 'payment_refunded', 'payment_plan_created', 'payment_plan_updated', "
        "'deposit_paid', 'recurring_payment_received', 'feedback_requested', 'feedback_received', "
        "'testimonial_collected', 'migration_event', 'manual_override')",
        name=conv("funnel_events_event_type_check"),
    ),
    CheckConstraint(
        "source IN ('manychat', 'ghl', 'stripe', 'denefits', 'perspective', 'chatbot', 'system', 'manual')",
        name=conv("funnel_events_source_check"),
    ),
    Index(
        "idx_funnel_events_tenant_time",
        "tenant_id",
        "event_timestamp",
        postgresql_include=["event_type", "contact_id"],
    ),
    Index("idx_funnel_events_tenant_contact_time", "tenant_id", "contact_id", "event_timestamp"),
    # Revision 0013 replaced 0005's (tenant_id, event_type, event_timestamp) with this covering version.
    Index("idx_funnel_events_tenant_type_time_contact", "tenant_id", "event_type", "event_timestamp",
          postgresql_include=["contact_id"]),
)

# Each contact's earliest lead event time (revision 0013): an exact rollup of funnel_events kept by the
# trigger funnel_events_contact_lead, so the leads of a window are one range scan (mcb.analytics.metrics).
contact_leads = Table(
    "contact_leads",
    metadata,
    Column("tenant_id", UUID, nullable=False),
    Column("contact_id", UUID, nullable=False),
    Column("lead_at", TIMESTAMPTZ, nullable=False),
    # The lead's identity facts (revision 0015), kept from its contact by the trigger contacts_lead_identity;
    # NULL only until 0015's backfill has filled the rows that existed before it.
    Column("has_ad_id", BOOLEAN),
    Column("has_mc_id", BOOLEAN),
    Column("has_ghl_id", BOOLEAN),
    Column("has_email", BOOLEAN),
    Column("primary_email", TEXT),
    PrimaryKeyConstraint("tenant_id", "contact_id", name="contact_leads_pkey"),
    _tenant_fk("contact_leads"),
    _contact_fk("contact_leads", ondelete="CASCADE"),
    # 0015 replaced 0013's (tenant_id, lead_at) INCLUDE (contact_id) with this one, which the checks read alone.
    Index("idx_contact_leads_tenant_lead_at_identity", "tenant_id", "lead_at",
          postgresql_include=["contact_id", "has_ad_id", "has_mc_id", "has_ghl_id", "has_email", "primary_email"]),
    comment="Exact rollup: each contact's earliest lead event time (kept by a trigger on funnel_events)",
)

# Every contact's e-mail addresses, lower-cased (revision 0014), kept exact by the trigger
# contacts_track_emails: contact matching probes this primary key, because under Row Level Security an
# index on lower(email) cannot be used (lower() is not leakproof).
contact_emails = Table(
    "contact_emails",
    metadata,
    Column("tenant_id", UUID, nullable=False),
    Column("email", TEXT, nullable=False),
    Column("contact_id", UUID, nullable=False),
    PrimaryKeyConstraint("tenant_id", "email", "contact_id", name="contact_emails_pkey"),
    _tenant_fk("contact_emails"),
    _contact_fk("contact_emails", ondelete="CASCADE"),
    # 0015: the trigger's delete of a contact's old addresses and the cascade find them by contact.
    Index("idx_contact_emails_tenant_contact", "tenant_id", "contact_id"),
    comment="Each contact's e-mail addresses, lower-cased (kept by a trigger on contacts)",
)

# The addresses that are the primary e-mail of two or more of a tenant's contacts (revision 0015), kept
# exact by the trigger contacts_track_shared_email: the duplicate-e-mail check reads this small set.
shared_emails = Table(
    "shared_emails",
    metadata,
    Column("tenant_id", UUID, nullable=False),
    Column("email", TEXT, nullable=False),
    PrimaryKeyConstraint("tenant_id", "email", name="shared_emails_pkey"),
    _tenant_fk("shared_emails"),
    comment="Exact rollup: addresses that are the primary e-mail of two or more contacts (kept by a trigger on contacts)",
)

# The stage events that are not their contact's first of their type (revision 0015), with the time of the
# one before: an exact rollup kept by statement triggers on funnel_events, so a window's distinct contacts
# per event type are two counts instead of a DISTINCT (mcb.analytics.metrics).
funnel_event_repeats = Table(
    "funnel_event_repeats",
    metadata,
    Column("tenant_id", UUID, nullable=False),
    Column("contact_id", UUID, nullable=False),
    Column("event_id", UUID, nullable=False),
    Column("event_type", TEXT, nullable=False),
    Column("event_timestamp", TIMESTAMPTZ, nullable=False),
    Column("previous_at", TIMESTAMPTZ, nullable=False),
    PrimaryKeyConstraint("tenant_id", "contact_id", "event_id", name="funnel_event_repeats_pkey"),
    _tenant_fk("funnel_event_repeats"),
    _contact_fk("funnel_event_repeats", ondelete="CASCADE"),
    Index("idx_funnel_event_repeats_tenant_time", "tenant_id", "event_timestamp",
          postgresql_include=["event_type", "previous_at", "contact_id"]),
    comment="Exact rollup: stage events that are not their contact's first of their type (kept by triggers on funnel_events)",
)

# Stage events and first leads per tenant, kind and quarter hour (revision 0016): an exact rollup kept by
# statement triggers on funnel_events and contact_leads, so a window's activity counts are a sum over its
# quarter hours (mcb.analytics.metrics).
event_counts = Table(
    "event_counts",
    metadata,
    Column("tenant_id", UUID, nullable=False),
    Column("kind", TEXT, nullable=False),
    Column("historical", BOOLEAN, nullable=False),
    Column("bucket", TIMESTAMPTZ, nullable=False),
    Column("n", BIGINT, nullable=False),
    PrimaryKeyConstraint("tenant_id", "kind", "historical", "bucket", name="event_counts_pkey"),
    _tenant_fk("event_counts"),
    comment="Exact rollup: stage events and first leads per tenant, kind and quarter hour (with event_count_deltas; kept by triggers on funnel_events, contact_leads and contacts)",
)

# Changes to event_counts that mcb_compact_event_counts() has not folded in yet (revision 0016): the
# triggers only ever insert here, so concurrent writers never contend for a counter row.
event_count_deltas = Table(
    "event_count_deltas",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("kind", TEXT, nullable=False),
    Column("historical", BOOLEAN, nullable=False),
    Column("bucket", TIMESTAMPTZ, nullable=False),
    Column("n", BIGINT, nullable=False),
    PrimaryKeyConstraint("id", name="event_count_deltas_pkey"),
    _tenant_fk("event_count_deltas"),
    Index("idx_event_count_deltas_tenant_kind_bucket", "tenant_id", "kind", "bucket"),
    comment="Changes to event_counts not folded in yet (mcb_compact_event_counts)",
)

# A tenant's chatbot prompts and flows; at most one active default and one active config per A/B value.
chatbot_configs = Table(
    "chatbot_configs",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("config_name", TEXT, nullable=False),
    Column("is_default", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("is_active", BOOLEAN, nullable=False, server_default=_TRUE),
    Column("system_prompt", TEXT, nullable=False),
    Column("model", TEXT, nullable=False, server_default=text("'gpt-4o'::text")),
    Column("temperature", NUMERIC(3, 2), nullable=False, server_default=text("0.70")),
    Column("max_tokens", INTEGER, nullable=False, server_default=text("1000")),
    Column("response_schema", JSONB),
    Column("welcome_flow_id", TEXT),
    Column("response_flow_id", TEXT, nullable=False),
    Column("ab_test_field", TEXT, nullable=False, server_default=text("'chatbot_AB'::text")),
    Column("ab_test_value", TEXT),
    Column("total_messages", INTEGER, nullable=False, server_default=_ZERO),
    Column("total_qualifications", INTEGER, nullable=False, server_default=_ZERO),
    Column("total_bookings", INTEGER, nullable=False, server_default=_ZERO),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("id", name="chatbot_configs_pkey"),
    _tenant_fk("chatbot_configs", ondelete="CASCADE"),
    UniqueConstraint("tenant_id", "config_name", name="chatbot_configs_tenant_id_config_name_key"),
    UniqueConstraint("tenant_id", "id", name="chatbot_configs_tenant_id_id_key"),
    Index(
        "chatbot_configs_tenant_ab_key",
        "tenant_id",
        "ab_test_field",
        "ab_test_value",
        unique=True,
        postgresql_where=text("ab_test_value IS NOT NULL AND is_active"),
    ),
    Index(
        "chatbot_configs_tenant_default_key",
        "tenant_id",
        unique=True,
        postgresql_where=text("is_default AND is_active"),
    ),
)

# One Instagram DM conversation with the chatbot and what it extracted.
conversation_threads = Table(
    "conversation_threads",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("contact_id", UUID),
    Column("mc_id", TEXT, nullable=False),
    Column("openai_thread_id", TEXT),
    Column("chatbot_config_id", UUID),
    Column("status", TEXT, nullable=False, server_default=text("'active'::text")),
    Column("message_count", INTEGER, nullable=False, server_default=_ZERO),
    Column("last_user_message", TEXT),
    Column("last_bot_response", TEXT),
    Column("last_interaction_at", TIMESTAMPTZ),
    Column("extracted_symptoms", TEXT_ARRAY),
    Column("extracted_months_postpartum", TEXT),
    Column("extracted_email", TEXT),
    Column("extracted_objections", TEXT_ARRAY),
    Column("booking_intent", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("link_sent", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("pdf_sent", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("lead_magnet_sent", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("already_booked", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("recent_messages", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("id", name="conversation_threads_pkey"),
    _tenant_fk("conversation_threads", ondelete="CASCADE"),
    _contact_fk("conversation_threads", ondelete="SET NULL (contact_id)"),
    ForeignKeyConstraint(
        ["tenant_id", "chatbot_config_id"],
        ["chatbot_configs.tenant_id", "chatbot_configs.id"],
        name="conversation_threads_tenant_id_chatbot_config_id_fkey",
        ondelete="SET NULL (chatbot_config_id)",
    ),
    UniqueConstraint("tenant_id", "mc_id", name="conversation_threads_tenant_id_mc_id_key"),
    CheckConstraint(
        "status IN ('active', 'closed', 'escalated', 'paused')",
        name=conv("conversation_threads_status_check"),
    ),
)

# The Conversions API outbox: events to send to Meta, with their delivery state.
meta_capi_events = Table(
    "meta_capi_events",
    metadata,
    Column("id", UUID, nullable=False, server_default=_NEW_UUID),
    Column("tenant_id", UUID, nullable=False),
    Column("contact_id", UUID),
    Column("event_name", TEXT, nullable=False),
    Column("event_time", TIMESTAMPTZ, nullable=False),
    Column("event_id", TEXT, nullable=False, server_default=text("(gen_random_uuid())::text")),
    Column("event_source_url", TEXT),
    Column("action_source", TEXT, nullable=False, server_default=text("'system_generated'::text")),
    Column("ad_id", TEXT),
    Column("adset_id", TEXT),
    Column("campaign_id", TEXT),
    Column("pixel_id", TEXT),
    Column("user_email_hash", TEXT),
    Column("user_phone_hash", TEXT),
    Column("user_first_name_hash", TEXT),
    Column("user_last_name_hash", TEXT),
    Column("user_fbp", TEXT),
    Column("user_fbc", TEXT),
    Column("user_external_id", TEXT),
    Column("user_client_ip_address", TEXT),
    Column("user_client_user_agent", TEXT),
    Column("event_value", NUMERIC(12, 2)),
    Column("currency", TEXT, nullable=False, server_default=text("'USD'::text")),
    Column("content_type", TEXT),
    Column("content_ids", TEXT_ARRAY),
    Column("content_name", TEXT),
    Column("custom_data", JSONB),
    Column("sent_to_meta", BOOLEAN, nullable=False, server_default=_FALSE),
    Column("send_attempts", INTEGER, nullable=False, server_default=_ZERO),
    Column("last_send_attempt_at", TIMESTAMPTZ),
    Column("sent_at", TIMESTAMPTZ),
    Column("meta_response", JSONB),
    Column("meta_events_received", INTEGER),
    Column("meta_fbtrace_id", TEXT),
    Column("send_error", TEXT),
    Column("created_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("id", name="meta_capi_events_pkey"),
    _tenant_fk("meta_capi_events", ondelete="CASCADE"),
    _contact_fk("meta_capi_events", ondelete="SET NULL (contact_id)"),
    UniqueConstraint("tenant_id", "event_id", name="meta_capi_events_tenant_id_event_id_key"),
    CheckConstraint(
        "event_name IN ('Lead', 'AddToCart', 'InitiateCheckout', 'Purchase', 'CompleteRegistration', "
        "'Contact', 'Schedule')",
        name=conv("meta_capi_events_event_name_check"),
    ),
    CheckConstraint(
        "action_source IN ('website', 'app', 'phone_call', 'chat', 'email', 'physical_store', "
        "'system_generated', 'other')",
        name=conv("meta_capi_events_action_source_check"),
    ),
    Index(
        "idx_meta_capi_events_unsent",
        "tenant_id",
        "created_at",
        postgresql_where=text("NOT sent_to_meta AND send_attempts < 5"),
    ),
)

# ---------------------------------------------------------------------------- migration bookkeeping
# Created by the runner (mcb.migrate.ledger), not by a revision, so that even a failed first revision
# is logged.

# Every backup, adoption, revision, verification and downgrade, with its timing.
mcb_migration_log = Table(
    "mcb_migration_log",
    metadata,
    Column("id", BIGINT, nullable=False, autoincrement=True),
    Column("at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("action", TEXT, nullable=False),
    Column("revision", TEXT),
    Column("status", TEXT, nullable=False),
    Column("duration_ms", INTEGER),
    Column("detail", JSONB, nullable=False, server_default=_EMPTY_OBJECT),
    PrimaryKeyConstraint("id", name="mcb_migration_log_pkey"),
)

# Where each resumable backfill got to.
mcb_backfill_state = Table(
    "mcb_backfill_state",
    metadata,
    Column("name", TEXT, nullable=False),
    Column("cursor", TEXT),
    Column("rows_done", BIGINT, nullable=False, server_default=_ZERO),
    Column("started_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    Column("finished_at", TIMESTAMPTZ),
    Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=_NOW),
    PrimaryKeyConstraint("name", name="mcb_backfill_state_pkey"),
)


TENANT_TABLES: tuple[str, ...] = tuple(
    name
    for name, table in metadata.tables.items()
    if "tenant_id" in table.c and table.info.get(TENANT_OWNED, True)
)
"""Every tenant-owned table (the ones with a tenant_id column, except api_tokens), in definition order."""
