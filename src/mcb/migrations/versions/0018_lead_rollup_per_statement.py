"""The lead rollup (``contact_leads``) is kept once per statement instead of once per lead event.

``contact_leads`` was kept by a row trigger on ``funnel_events`` (0013, 0015): one ``INSERT ... ON
CONFLICT`` per lead event written, and each of those statements fired ``contact_leads``' own statement
triggers (0016's event counts, both the INSERT and the UPDATE one, each with its transition tables). The
worker writes a chunk's events with one INSERT, so that was up to 16 statements and 32 trigger calls
where one statement would do; in the worker's profile (docs/benchmarks.md, session 7) it was the single
most expensive thing PostgreSQL did for a delivery.

Now two statement triggers (INSERT and UPDATE: a trigger with transition tables takes one event) upsert
every lead of the statement at once, each contact with its earliest lead time in the statement, which is
where the row trigger's upserts one after the other arrived too; a statement that wrote no lead event
does nothing at all. The identity facts come from the contact as before, so the rows are the same.

Catalog only (a function and triggers). The swap of the triggers is one short transaction under the lock
timeout, so no statement runs with both or with neither.

Revision ID: 0018
Revises: 0017
"""

from mcb.migrate import online

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels = None
depends_on = None

LEAD_EVENTS = "('contact_subscribed', 'contact_created')"

# A lead's identity facts, as 0015 defines them (read from the contact).
IDENTITY = """c.ad_id IS NOT NULL, c.mc_id IS NOT NULL, c.ghl_id IS NOT NULL,
    (c.email_primary IS NOT NULL OR c.email_booking IS NOT NULL OR c.email_payment IS NOT NULL),
    lower(c.email_primary)"""

# Runs as the writer (like 0013's row trigger): under Row Level Security a tenant's statement reads only its
# own contacts, and its rows are all its own.
LEADS_FUNCTION = f"""
CREATE OR REPLACE FUNCTION mcb_track_contact_leads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- No lead event in the statement: no upsert, so contact_leads' own statement triggers do not fire.
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE event_type IN {LEAD_EVENTS}) THEN
        RETURN NULL;
    END IF;
    INSERT INTO contact_leads (tenant_id, contact_id, lead_at, has_ad_id, has_mc_id, has_ghl_id, has_email,
                               primary_email)
    SELECT n.tenant_id, n.contact_id, n.lead_at, {IDENTITY}
    FROM (SELECT tenant_id, contact_id, min(event_timestamp) AS lead_at FROM new_rows
          WHERE event_type IN {LEAD_EVENTS} GROUP BY tenant_id, contact_id) n
    LEFT JOIN contacts c ON c.tenant_id = n.tenant_id AND c.id = n.contact_id
    ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
    WHERE EXCLUDED.lead_at < contact_leads.lead_at;
    RETURN NULL;
END
$$"""

LEADS_TRIGGERS = """
CREATE OR REPLACE TRIGGER funnel_events_contact_leads_insert AFTER INSERT ON funnel_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mcb_track_contact_leads();
CREATE OR REPLACE TRIGGER funnel_events_contact_leads_update AFTER UPDATE ON funnel_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mcb_track_contact_leads()"""

# 0015's row trigger and its function, for the downgrade.
LEAD_ROW_FUNCTION_0015 = f"""
CREATE OR REPLACE FUNCTION mcb_track_contact_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_leads (tenant_id, contact_id, lead_at, has_ad_id, has_mc_id, has_ghl_id,
                               has_email, primary_email)
    SELECT NEW.tenant_id, NEW.contact_id, NEW.event_timestamp, {IDENTITY}
    FROM (SELECT) AS one
    LEFT JOIN contacts c ON c.tenant_id = NEW.tenant_id AND c.id = NEW.contact_id
    ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
    WHERE EXCLUDED.lead_at < contact_leads.lead_at;
    RETURN NULL;
END
$$"""

LEAD_ROW_TRIGGER_0013 = f"""
CREATE OR REPLACE TRIGGER funnel_events_contact_lead
    AFTER INSERT OR UPDATE OF event_timestamp, event_type ON funnel_events
    FOR EACH ROW WHEN (NEW.event_type IN {LEAD_EVENTS})
    EXECUTE FUNCTION mcb_track_contact_lead()"""


def upgrade() -> None:
    with online.steps():
        online.execute(LEADS_FUNCTION, step="contact_leads: a function that keeps it per statement")
        online.execute(
            LEADS_TRIGGERS + ";\nDROP TRIGGER IF EXISTS funnel_events_contact_lead ON funnel_events",
            step="funnel_events: contact_leads kept by statement triggers instead of a row trigger",
        )
        online.execute("DROP FUNCTION IF EXISTS mcb_track_contact_lead()",
                       step="drop the row trigger's function")


def downgrade() -> None:
    with online.steps():
        online.execute(LEAD_ROW_FUNCTION_0015, step="contact_leads: the row trigger's function as 0015 made it")
        online.execute(
            LEAD_ROW_TRIGGER_0013
            + ";\nDROP TRIGGER IF EXISTS funnel_events_contact_leads_insert ON funnel_events"
            + ";\nDROP TRIGGER IF EXISTS funnel_events_contact_leads_update ON funnel_events",
            step="funnel_events: contact_leads kept by the row trigger again",
        )
        online.execute("DROP FUNCTION IF EXISTS mcb_track_contact_leads()", step="drop the statement function")
