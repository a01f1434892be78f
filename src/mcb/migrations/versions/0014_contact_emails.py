"""contact_emails: every contact's e-mail addresses, lower-cased, so matching by e-mail can use an index
under Row Level Security.

Contact matching looks a person up by any of their three e-mail columns, case-insensitively (spec 3.4).
0010 indexed ``lower(email_*)``, but the runtime role works under RLS, and PostgreSQL only lets a query
condition into an index scan ahead of the policy's own condition when it is leakproof: ``lower()`` is
not, so under ``mcb_app`` every e-mail lookup read all the tenant's contacts (about 0.2 s at 200k
contacts, per webhook). Here the lower-cased address is stored, and ``email = ANY(...)`` (a leakproof
text comparison) probes the primary key.

- ``contact_emails (tenant_id, email, contact_id)``: tenant-owned, RLS, one row per distinct lower-cased
  address of a contact. It holds nothing that ``contacts`` does not: dropping it loses no data.
- A trigger on ``contacts`` keeps it exact on every insert and every change of an e-mail column, whoever
  writes: MCB, or the original application during and after the upgrade. It runs as the table owner with
  ``mcb.admin`` on, because the original application writes without a tenant session. Deleting a contact
  deletes its rows (foreign key, cascade).
- The existing contacts are copied in key order, resumably, after the trigger exists; ``contacts`` is
  only read, and no legacy value changes.

Revision ID: 0014
Revises: 0013
"""

from mcb.migrate import online

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None


EMAILS = "ARRAY[{p}.email_primary, {p}.email_booking, {p}.email_payment]"

BACKFILL = f"""
INSERT INTO contact_emails (tenant_id, email, contact_id)
SELECT DISTINCT c.tenant_id, lower(e.address), c.id
FROM contacts c CROSS JOIN LATERAL unnest({EMAILS.format(p="c")}) AS e(address)
WHERE e.address IS NOT NULL
  AND (%(lo)s::uuid IS NULL OR c.id > %(lo)s::uuid) AND (%(hi)s::uuid IS NULL OR c.id <= %(hi)s::uuid)
ON CONFLICT DO NOTHING
"""


def upgrade() -> None:
    with online.steps():
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS contact_emails (
                tenant_id UUID NOT NULL,
                email TEXT NOT NULL,
                contact_id UUID NOT NULL,
                CONSTRAINT contact_emails_pkey PRIMARY KEY (tenant_id, email, contact_id),
                CONSTRAINT contact_emails_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id),
                CONSTRAINT contact_emails_tenant_id_contact_id_fkey FOREIGN KEY (tenant_id, contact_id)
                    REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
            );
            COMMENT ON TABLE contact_emails IS 'Each contact''s e-mail addresses, lower-cased (kept by a trigger on contacts)';
            {online.tenant_table_security("contact_emails")}
            """,
            step="create contact_emails (tenant-scoped, RLS)",
        )
        online.execute(
            f"""
            CREATE OR REPLACE FUNCTION mcb_track_contact_emails() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    DELETE FROM contact_emails
                    WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id
                      AND email <> ALL (SELECT lower(a) FROM unnest({EMAILS.format(p="NEW")}) AS a
                                        WHERE a IS NOT NULL);
                END IF;
                INSERT INTO contact_emails (tenant_id, email, contact_id)
                SELECT DISTINCT NEW.tenant_id, lower(a), NEW.id FROM unnest({EMAILS.format(p="NEW")}) AS a
                WHERE a IS NOT NULL
                ON CONFLICT DO NOTHING;
                RETURN NULL;
            END
            $$;
            REVOKE ALL ON FUNCTION mcb_track_contact_emails() FROM PUBLIC;
            CREATE OR REPLACE TRIGGER contacts_track_emails
                AFTER INSERT OR UPDATE OF email_primary, email_booking, email_payment ON contacts
                FOR EACH ROW EXECUTE FUNCTION mcb_track_contact_emails()
            """,
            step="contacts: trigger keeping contact_emails",
        )
        online.keyset_backfill(
            "contact_emails",
            table="contacts",
            key="id",
            key_type="uuid",
            batch_sql=BACKFILL,
            unit="contacts",
        )


def downgrade() -> None:
    with online.steps():
        online.execute(
            """
            DROP TRIGGER IF EXISTS contacts_track_emails ON contacts;
            DROP FUNCTION IF EXISTS mcb_track_contact_emails();
            DROP TABLE IF EXISTS contact_emails;
            """
            + online.forget_backfill_sql("contact_emails"),
            step="drop contact_emails and its trigger (it held only copies of the contacts' e-mails)",
        )
