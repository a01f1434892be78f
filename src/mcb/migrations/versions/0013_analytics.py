"""What the reports need to stay fast on a big tenant: the contacts' lead times, and the historical set.

- ``contact_leads`` (tenant-owned, RLS): one row per contact with the time of its earliest lead event
  (``contact_subscribed`` or ``contact_created``). A lead is counted once, at that time, so "the leads of
  a window" is a range scan here instead of one probe per lead event into funnel_events for an earlier
  one (about 20k probes a week on a tenant with 1M contacts). It is an exact rollup: a trigger on
  funnel_events keeps ``lead_at = least(lead_at, event_timestamp)`` for every inserted lead event and for
  every lead event whose time moves (the write path only ever moves a time earlier), so replaying the
  inbox gives the same rows; the upgrade backfills it from the existing events after the trigger exists.
  Deleting a contact deletes its row (foreign key, cascade).
- ``idx_contacts_tenant_historical``: a partial index holding only the historical contacts (``source``
  ends in ``_historical``, the R-32 filter), so the reports read that small set without scanning the
  contacts. Built concurrently.
- ``idx_funnel_events_tenant_type_time`` (0005) is replaced by the same key with ``INCLUDE (contact_id)``:
  a report that needs a few event types (meetings held, buyers) reads them index-only instead of fetching
  each event's row for its contact id. Same key, so every query that used the old index can use the new
  one, and writes still maintain one index. Built concurrently before the old one is dropped.

Revision ID: 0013
Revises: 0012
"""

from mcb.migrate import online

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None

LEAD_EVENTS = "('contact_subscribed', 'contact_created')"


def upgrade() -> None:
    with online.steps():
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS contact_leads (
                tenant_id UUID NOT NULL,
                contact_id UUID NOT NULL,
                lead_at TIMESTAMPTZ NOT NULL,
                CONSTRAINT contact_leads_pkey PRIMARY KEY (tenant_id, contact_id),
                CONSTRAINT contact_leads_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
                CONSTRAINT contact_leads_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
                    REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX IF NOT EXISTS idx_contact_leads_tenant_lead_at ON contact_leads (tenant_id, lead_at)
                INCLUDE (contact_id);
            COMMENT ON TABLE contact_leads IS 'Exact rollup: each contact''s earliest lead event time (kept by a trigger on funnel_events)';
            {online.tenant_table_security("contact_leads")}
            """,
            step="create contact_leads (tenant-scoped, RLS)",
        )
        online.execute(
            f"""
            CREATE OR REPLACE FUNCTION mcb_track_contact_lead() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO contact_leads (tenant_id, contact_id, lead_at)
                VALUES (NEW.tenant_id, NEW.contact_id, NEW.event_timestamp)
                ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
                WHERE EXCLUDED.lead_at < contact_leads.lead_at;
                RETURN NULL;
            END
            $$;
            CREATE OR REPLACE TRIGGER funnel_events_contact_lead
                AFTER INSERT OR UPDATE OF event_timestamp, event_type ON funnel_events
                FOR EACH ROW WHEN (NEW.event_type IN {LEAD_EVENTS})
                EXECUTE FUNCTION mcb_track_contact_lead()
            """,
            step="funnel_events: trigger keeping contact_leads",
        )
        online.execute(
            f"""
            INSERT INTO contact_leads (tenant_id, contact_id, lead_at)
            SELECT tenant_id, contact_id, min(event_timestamp) FROM funnel_events
            WHERE event_type IN {LEAD_EVENTS} GROUP BY tenant_id, contact_id
            ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
            WHERE EXCLUDED.lead_at < contact_leads.lead_at
            """,
            step="contact_leads: backfill from the existing lead events",
            blocks_writes=False,
        )
        online.create_index("idx_contacts_tenant_historical", "contacts", "tenant_id, id",
                            where=r"source LIKE '%\_historical'")
        online.create_index("idx_funnel_events_tenant_type_time_contact", "funnel_events",
                            "tenant_id, event_type, event_timestamp) INCLUDE (contact_id")
        online.drop_index("idx_funnel_events_tenant_type_time")


def downgrade() -> None:
    # contact_leads holds nothing that funnel_events does not: dropping it loses no data.
    with online.steps():
        online.create_index("idx_funnel_events_tenant_type_time", "funnel_events",
                            "tenant_id, event_type, event_timestamp")
        online.drop_index("idx_funnel_events_tenant_type_time_contact")
        online.drop_index("idx_contacts_tenant_historical")
        online.execute(
            """
            DROP TRIGGER IF EXISTS funnel_events_contact_lead ON funnel_events;
            DROP FUNCTION IF EXISTS mcb_track_contact_lead();
            DROP TABLE IF EXISTS contact_leads
            """,
            step="drop contact_leads and its trigger",
        )
