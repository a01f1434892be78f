"""Two more exact rollups for the reports: each lead's identity flags, and the events that repeat a stage.

The dashboard's data-quality checks and its distinct stage counts dominated its time on a tenant with 1M
contacts (docs/benchmarks.md): the checks read one contact row per lead of the range (81k in 30 days),
and every stage count made its (stage, contact) pairs distinct by hashing every event of the window.

- ``contact_leads`` gains the identity facts the checks count (``has_ad_id``, ``has_mc_id``,
  ``has_ghl_id``, ``has_email``: any of the three e-mail columns, ``primary_email``: the primary address
  lower-cased), so the checks read the range's leads and nothing else. The trigger that creates a lead's
  row (0013) now fills them from the contact, and a trigger on ``contacts`` keeps them when one of those
  columns changes, whoever writes (MCB, or the original application: like 0014's it runs as the owner).
  Existing rows are filled in contact key order, resumably; ``NULL`` in ``has_email`` means "not filled
  yet" and only exists until that backfill is done.
- ``shared_emails``: the lower-cased addresses that are the primary e-mail of two or more of a tenant's
  contacts, so the duplicate-e-mail check is one hashed set instead of a probe per lead. A trigger on
  ``contacts`` recounts an address's owners whenever a contact takes it or leaves it, under a
  transaction-scoped advisory lock that the address hashes to (one of 64), so two writers of the same
  address cannot both miss each other. The existing shared addresses are found with one read of the
  contacts and each recounted the same way, in transactions of about 20 ms at most (a transaction holds
  its address locks until it commits, and the original application's writes of those addresses wait for
  it).
- The leads' range index is replaced by one that also carries the identity columns, so the checks read
  the index alone.
- ``contact_emails`` gets an index on (tenant_id, contact_id): 0014's trigger deletes a contact's old
  addresses by contact, and a deleted contact's addresses cascade by contact, and both read every address
  of the tenant without it (about 10 ms a contact at 700k addresses).
- ``funnel_event_repeats``: one row per stage event that is not its contact's first event of that type
  (``previous_at`` is the time of the one before it; ties are ordered by event id). A window's distinct
  contacts with an event of a type is then the window's events of that type, less those whose previous
  one is also in the window: two plain counts instead of a DISTINCT over every event. Statement-level
  triggers on ``funnel_events`` recompute the rows of every (contact, event type) a statement touches, so
  inserts in any order, a time that moves earlier, and deletes all leave it exact. It is filled per tenant
  and event type; each unit holds a SHARE lock on ``funnel_events`` while it runs, which makes MCB's own
  event writers (never the original application, which has no such table) wait a moment instead of racing
  the backfill.

Both hold nothing that ``contacts`` and ``funnel_events`` do not; ``mcb.analytics.rollups`` can rebuild
them, and downgrade drops them.

Revision ID: 0015
Revises: 0014
"""

import time

from alembic import op

from mcb.migrate import online

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None

LEAD_EVENTS = "('contact_subscribed', 'contact_created')"

# The event types whose repeats are kept: every type a stage metric counts, apart from the lead events
# (contact_leads already counts a contact once). mcb.analytics.metrics.STAGES must stay within this list
# (a test checks it); a stage that needs another type needs a revision that extends it and backfills.
REPEAT_TYPES = (
    "dm_qualified", "link_sent", "link_clicked", "form_submitted", "appointment_scheduled",
    "appointment_held", "package_sent", "deposit_paid", "purchase_completed", "payment_plan_created",
)
_TYPES_SQL = "ARRAY[" + ", ".join(f"'{t}'" for t in REPEAT_TYPES) + "]::text[]"

IDENTITY = """{p}.ad_id IS NOT NULL, {p}.mc_id IS NOT NULL, {p}.ghl_id IS NOT NULL,
    ({p}.email_primary IS NOT NULL OR {p}.email_booking IS NOT NULL OR {p}.email_payment IS NOT NULL),
    lower({p}.email_primary)"""

IDENTITY_CHANGED = """(OLD.ad_id IS NULL) <> (NEW.ad_id IS NULL) OR (OLD.mc_id IS NULL) <> (NEW.mc_id IS NULL)
    OR (OLD.ghl_id IS NULL) <> (NEW.ghl_id IS NULL)
    OR (OLD.email_primary IS NULL AND OLD.email_booking IS NULL AND OLD.email_payment IS NULL)
       <> (NEW.email_primary IS NULL AND NEW.email_booking IS NULL AND NEW.email_payment IS NULL)
    OR lower(OLD.email_primary) IS DISTINCT FROM lower(NEW.email_primary)"""

IDENTITY_BACKFILL = f"""
UPDATE contact_leads l
SET (has_ad_id, has_mc_id, has_ghl_id, has_email, primary_email) = ({IDENTITY.format(p="c")})
FROM contacts c
WHERE l.tenant_id = c.tenant_id AND l.contact_id = c.id AND l.has_email IS NULL
  AND (%(lo)s::uuid IS NULL OR c.id > %(lo)s::uuid) AND (%(hi)s::uuid IS NULL OR c.id <= %(hi)s::uuid)
"""

# The repeats of the given (tenant, contact, event type) groups, recomputed from funnel_events.
REFRESH_FUNCTION = f"""
CREATE OR REPLACE FUNCTION mcb_refresh_event_repeats(t uuid[], c uuid[], k text[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM funnel_event_repeats r USING unnest(t, c, k) AS g(t, c, k)
    WHERE r.tenant_id = g.t AND r.contact_id = g.c AND r.event_type = g.k;
    INSERT INTO funnel_event_repeats (tenant_id, contact_id, event_id, event_type, event_timestamp, previous_at)
    SELECT x.tenant_id, x.contact_id, x.id, x.event_type, x.event_timestamp, x.previous_at
    FROM unnest(t, c, k) AS g(t, c, k)
    CROSS JOIN LATERAL (
        SELECT e.tenant_id, e.contact_id, e.id, e.event_type, e.event_timestamp,
               lag(e.event_timestamp) OVER (ORDER BY e.event_timestamp, e.id) AS previous_at
        FROM funnel_events e WHERE e.tenant_id = g.t AND e.contact_id = g.c AND e.event_type = g.k
    ) x
    WHERE x.previous_at IS NOT NULL;
$$;
CREATE OR REPLACE FUNCTION mcb_track_event_repeats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE t uuid[]; c uuid[]; k text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(g.tenant_id), array_agg(g.contact_id), array_agg(g.event_type) INTO t, c, k
        FROM (SELECT DISTINCT tenant_id, contact_id, event_type FROM new_rows
              WHERE event_type = ANY({_TYPES_SQL})) g;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(g.tenant_id), array_agg(g.contact_id), array_agg(g.event_type) INTO t, c, k
        FROM (SELECT n.tenant_id, n.contact_id, n.event_type FROM new_rows n
              WHERE n.event_type = ANY({_TYPES_SQL})
              UNION
              SELECT o.tenant_id, o.contact_id, o.event_type FROM old_rows o
              WHERE o.event_type = ANY({_TYPES_SQL})) g;
    ELSE
        SELECT array_agg(g.tenant_id), array_agg(g.contact_id), array_agg(g.event_type) INTO t, c, k
        FROM (SELECT DISTINCT tenant_id, contact_id, event_type FROM old_rows
              WHERE event_type = ANY({_TYPES_SQL})) g;
    END IF;
    IF t IS NOT NULL THEN
        PERFORM mcb_refresh_event_repeats(t, c, k);
    END IF;
    RETURN NULL;
END
$$;
"""

SHARED_FUNCTIONS = """
-- plan_cache_mode: planning the owner count (contacts has some 25 indexes, and RLS) takes about 4 ms, and
-- with custom plans it was planned again on every call; one generic plan per session is as good.
CREATE OR REPLACE FUNCTION mcb_refresh_shared_email(t uuid, address text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on'
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    -- Writers of one address take turns; each statement below then sees every committed owner. The lock
    -- is one of 64 (addresses share them): a transaction that changes thousands of addresses, such as a
    -- bulk update by the original application, holds at most 64 locks instead of filling the lock table.
    PERFORM pg_advisory_xact_lock(1296253509, hashtext(t::text || ':' || address) & 63);  -- 'MCBE'
    IF (SELECT count(*) FROM (
            SELECT 1 FROM contact_emails e JOIN contacts d ON d.tenant_id = t AND d.id = e.contact_id
            WHERE e.tenant_id = t AND e.email = address AND lower(d.email_primary) = address LIMIT 2) x) > 1 THEN
        INSERT INTO shared_emails (tenant_id, email) VALUES (t, address) ON CONFLICT DO NOTHING;
    ELSE
        DELETE FROM shared_emails WHERE tenant_id = t AND email = address;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION mcb_refresh_shared_email(uuid, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION mcb_track_shared_email() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
DECLARE was text; now_is text;
BEGIN
    IF TG_OP <> 'INSERT' THEN was := lower(OLD.email_primary); END IF;
    IF TG_OP <> 'DELETE' THEN now_is := lower(NEW.email_primary); END IF;
    IF was IS NOT DISTINCT FROM now_is THEN
        RETURN NULL;
    END IF;
    -- Two addresses are refreshed in one order, so two writers swapping them rarely wait on each other.
    IF was IS NOT NULL AND (now_is IS NULL OR was < now_is) THEN
        PERFORM mcb_refresh_shared_email(OLD.tenant_id, was);
        was := NULL;
    END IF;
    IF now_is IS NOT NULL THEN
        PERFORM mcb_refresh_shared_email(NEW.tenant_id, now_is);
    END IF;
    IF was IS NOT NULL THEN
        PERFORM mcb_refresh_shared_email(OLD.tenant_id, was);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mcb_track_shared_email() FROM PUBLIC;
-- Named to fire after contacts_track_emails (triggers fire in name order), whose rows it counts.
CREATE OR REPLACE TRIGGER contacts_track_shared_email
    AFTER INSERT OR DELETE OR UPDATE OF email_primary ON contacts
    FOR EACH ROW EXECUTE FUNCTION mcb_track_shared_email()
"""

# Every address shared when this reads the contacts is recounted under its lock; an address that becomes
# shared afterwards does so through a write the trigger sees.
SHARED_CANDIDATES = """
SELECT tenant_id, lower(email_primary) FROM contacts WHERE email_primary IS NOT NULL
GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2
"""
SHARED_TRANSACTION_SECONDS = 0.02
"""How long one transaction of the fill goes on recounting addresses before it commits. Each recount takes
the advisory lock of its address (one of 64) until the transaction ends, and the original application's
write of a contact whose primary address hashes to a held lock waits for it: with 200 addresses to a
transaction, at 1M contacts, that wait was 1.2 s (docs/benchmarks.md, migration, session 7). A recount of an
address that many contacts carry takes milliseconds, so the budget is time, not a number of addresses."""


def _fill_shared_emails() -> None:
    if online.offline():
        op.execute("SELECT mcb_refresh_shared_email(tenant_id, address) FROM ("
                          + SHARED_CANDIDATES.strip() + ") AS shared(tenant_id, address)")
        return
    started = time.monotonic()
    candidates = online.query(SHARED_CANDIDATES)
    conn = online.raw()
    done = 0
    while done < len(candidates):
        with conn.transaction():
            began = time.monotonic()
            while done < len(candidates):
                tenant_id, address = candidates[done]
                conn.execute("SELECT mcb_refresh_shared_email(%s::uuid, %s::text)", (tenant_id, address))
                done += 1
                if time.monotonic() - began >= SHARED_TRANSACTION_SECONDS:
                    break
    online.reporter().step_done(f"shared_emails: {len(candidates)} addresses shared today",
                                time.monotonic() - started)


REPEATS_BACKFILL = """
SELECT mcb_refresh_event_repeats(array_agg(g.tenant_id), array_agg(g.contact_id), array_agg(g.event_type))
FROM (
    SELECT e.tenant_id, e.contact_id, e.event_type FROM funnel_events e
    WHERE e.tenant_id = %(tenant)s::uuid AND e.event_type = %(type)s
    GROUP BY 1, 2, 3 HAVING count(*) > 1
) g
"""

LEAD_FUNCTION_0013 = """
CREATE OR REPLACE FUNCTION mcb_track_contact_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_leads (tenant_id, contact_id, lead_at)
    VALUES (NEW.tenant_id, NEW.contact_id, NEW.event_timestamp)
    ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
    WHERE EXCLUDED.lead_at < contact_leads.lead_at;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    with online.steps():
        # --- contact_leads: the identity facts of each lead
        online.execute(
            """
            ALTER TABLE contact_leads ADD COLUMN IF NOT EXISTS has_ad_id BOOLEAN,
                ADD COLUMN IF NOT EXISTS has_mc_id BOOLEAN, ADD COLUMN IF NOT EXISTS has_ghl_id BOOLEAN,
                ADD COLUMN IF NOT EXISTS has_email BOOLEAN, ADD COLUMN IF NOT EXISTS primary_email TEXT
            """,
            step="contact_leads: add the identity columns (catalog only)",
        )
        online.execute(
            f"""
            CREATE OR REPLACE FUNCTION mcb_track_contact_lead() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO contact_leads (tenant_id, contact_id, lead_at, has_ad_id, has_mc_id, has_ghl_id,
                                           has_email, primary_email)
                SELECT NEW.tenant_id, NEW.contact_id, NEW.event_timestamp, {IDENTITY.format(p="c")}
                FROM (SELECT) AS one
                LEFT JOIN contacts c ON c.tenant_id = NEW.tenant_id AND c.id = NEW.contact_id
                ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
                WHERE EXCLUDED.lead_at < contact_leads.lead_at;
                RETURN NULL;
            END
            $$
            """,
            step="funnel_events: a lead's row starts with its contact's identity facts",
        )
        online.execute(
            f"""
            CREATE OR REPLACE FUNCTION mcb_track_lead_identity() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
            BEGIN
                UPDATE contact_leads
                SET (has_ad_id, has_mc_id, has_ghl_id, has_email, primary_email) = ({IDENTITY.format(p="NEW")})
                WHERE tenant_id = NEW.tenant_id AND contact_id = NEW.id;
                RETURN NULL;
            END
            $$;
            REVOKE ALL ON FUNCTION mcb_track_lead_identity() FROM PUBLIC;
            CREATE OR REPLACE TRIGGER contacts_lead_identity
                AFTER UPDATE OF ad_id, mc_id, ghl_id, email_primary, email_booking, email_payment ON contacts
                FOR EACH ROW WHEN ({IDENTITY_CHANGED})
                EXECUTE FUNCTION mcb_track_lead_identity()
            """,
            step="contacts: trigger keeping the leads' identity facts",
        )
        online.keyset_backfill(
            "contact_leads_identity",
            table="contacts",
            key="id",
            key_type="uuid",
            batch_sql=IDENTITY_BACKFILL,
            unit="contacts",
        )
        online.create_index("idx_contact_leads_tenant_lead_at_identity", "contact_leads",
                            "tenant_id, lead_at) INCLUDE (contact_id, has_ad_id, has_mc_id, has_ghl_id, has_email, "
                            "primary_email")
        online.drop_index("idx_contact_leads_tenant_lead_at")
        # contact_emails (0014) had no index leading with the contact: its trigger's DELETE of a contact's
        # old addresses, and the cascade of a deleted contact, read every address of the tenant.
        online.create_index("idx_contact_emails_tenant_contact", "contact_emails", "tenant_id, contact_id")
        # --- shared_emails
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS shared_emails (
                tenant_id UUID NOT NULL,
                email TEXT NOT NULL,
                CONSTRAINT shared_emails_pkey PRIMARY KEY (tenant_id, email),
                CONSTRAINT shared_emails_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
            );
            COMMENT ON TABLE shared_emails IS 'Exact rollup: addresses that are the primary e-mail of two or more contacts (kept by a trigger on contacts)';
            {online.tenant_table_security("shared_emails")}
            """,
            step="create shared_emails (tenant-scoped, RLS)",
        )
        online.execute(SHARED_FUNCTIONS, step="contacts: trigger keeping shared_emails")
        _fill_shared_emails()
        # --- funnel_event_repeats
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS funnel_event_repeats (
                tenant_id UUID NOT NULL,
                contact_id UUID NOT NULL,
                event_id UUID NOT NULL,
                event_type TEXT NOT NULL,
                event_timestamp TIMESTAMPTZ NOT NULL,
                previous_at TIMESTAMPTZ NOT NULL,
                CONSTRAINT funnel_event_repeats_pkey PRIMARY KEY (tenant_id, contact_id, event_id),
                CONSTRAINT funnel_event_repeats_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
                CONSTRAINT funnel_event_repeats_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
                    REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX IF NOT EXISTS idx_funnel_event_repeats_tenant_time
                ON funnel_event_repeats (tenant_id, event_timestamp) INCLUDE (event_type, previous_at, contact_id);
            COMMENT ON TABLE funnel_event_repeats IS 'Exact rollup: stage events that are not their contact''s first of their type (kept by triggers on funnel_events)';
            {online.tenant_table_security("funnel_event_repeats")}
            """,
            step="create funnel_event_repeats (tenant-scoped, RLS)",
        )
        online.execute(
            REFRESH_FUNCTION
            + """;
            CREATE OR REPLACE TRIGGER funnel_events_repeats_insert AFTER INSERT ON funnel_events
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mcb_track_event_repeats();
            CREATE OR REPLACE TRIGGER funnel_events_repeats_update AFTER UPDATE ON funnel_events
                REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                FOR EACH STATEMENT EXECUTE FUNCTION mcb_track_event_repeats();
            CREATE OR REPLACE TRIGGER funnel_events_repeats_delete AFTER DELETE ON funnel_events
                REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mcb_track_event_repeats()
            """,
            step="funnel_events: triggers keeping funnel_event_repeats",
        )
        online.unit_backfill(
            "funnel_event_repeats",
            units_sql=f"SELECT t.id::text, k FROM tenants t CROSS JOIN unnest({_TYPES_SQL}) AS k ORDER BY 1, 2",
            batch_sql=REPEATS_BACKFILL,
            params=lambda unit: {"tenant": unit[0], "type": unit[1]},
            setup_sql="LOCK TABLE funnel_events IN SHARE MODE",
            unit="tenant event types",
        )


def downgrade() -> None:
    # Both rollups hold only what contacts and funnel_events hold: dropping them loses no data.
    with online.steps():
        online.execute(
            """
            DROP TRIGGER IF EXISTS funnel_events_repeats_insert ON funnel_events;
            DROP TRIGGER IF EXISTS funnel_events_repeats_update ON funnel_events;
            DROP TRIGGER IF EXISTS funnel_events_repeats_delete ON funnel_events;
            DROP FUNCTION IF EXISTS mcb_track_event_repeats();
            DROP FUNCTION IF EXISTS mcb_refresh_event_repeats(uuid[], uuid[], text[]);
            DROP TABLE IF EXISTS funnel_event_repeats;
            DELETE FROM mcb_backfill_state WHERE name = 'funnel_event_repeats'
            """,
            step="drop funnel_event_repeats and its triggers",
        )
        online.execute(
            """
            DROP TRIGGER IF EXISTS contacts_track_shared_email ON contacts;
            DROP FUNCTION IF EXISTS mcb_track_shared_email();
            DROP FUNCTION IF EXISTS mcb_refresh_shared_email(uuid, text);
            DROP TABLE IF EXISTS shared_emails
            """,
            step="drop shared_emails and its trigger",
        )
        online.drop_index("idx_contact_emails_tenant_contact")
        online.create_index("idx_contact_leads_tenant_lead_at", "contact_leads",
                            "tenant_id, lead_at) INCLUDE (contact_id")
        online.drop_index("idx_contact_leads_tenant_lead_at_identity")
        online.execute(
            """
            DROP TRIGGER IF EXISTS contacts_lead_identity ON contacts;
            DROP FUNCTION IF EXISTS mcb_track_lead_identity();
            """
            + LEAD_FUNCTION_0013
            + """;
            ALTER TABLE contact_leads DROP COLUMN IF EXISTS has_ad_id, DROP COLUMN IF EXISTS has_mc_id,
                DROP COLUMN IF EXISTS has_ghl_id, DROP COLUMN IF EXISTS has_email,
                DROP COLUMN IF EXISTS primary_email;
            """
            + online.forget_backfill_sql("contact_leads_identity"),
            step="contact_leads: back to 0013's columns and trigger",
        )
