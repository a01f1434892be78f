"""funnel_events, the append-only history, backfilled from the legacy contact date columns (spec 1.4).

Every dated milestone of a contact becomes one event with the deterministic key
``migration_<contact id>_<event type>`` (R-15), so the backfill can be interrupted and rerun at will.
Every contact gets a lead event (``contact_subscribed`` when ManyChat dated it, else ``contact_created``,
R-28). The qualification answers are stored under semantic names (R-16): q1/q2 swapped meaning twice in
the original, so the one that reads like a duration ("3 months", "6 weeks") is ``months_postpartum`` and
the other ``symptoms``; the raw values stay alongside as ``legacy_q1_question`` / ``legacy_q2_question``.
The contacts table is only read, in physical order (``online.scan_backfill``). The table gets its keys,
indexes and foreign keys after the backfill.

Revision ID: 0005
Revises: 0004
"""

from mcb.migrate import guards, online
from mcb.migrate.sqltext import EVENT_SOURCES, EVENT_TYPES, in_list

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

DURATION = (
    r"'^\s*(\d+([.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"less|under|over|more|almost|about|newborn)\M|\m(months?|mos?|weeks?|wks?|years?|yrs?)\M'"
)


def _is_duration(column: str) -> str:
    return f"COALESCE(c.{column} ~* {DURATION}, false)"


LEAD_DATA = (
    "jsonb_build_object('trigger_word', c.trigger_word, 'chatbot_variant', c.chatbot_ab, "
    "'misc_variant', c.misc_ab, 'ad_id', c.ad_id, 'mc_id', c.mc_id, 'ghl_id', c.ghl_id, "
    "'ig', c.ig, 'fb', c.fb, 'source', c.source)"
)

# One row per dated milestone: (event type, timestamp). The event's data is built in the SELECT list, so
# only for the rows that survive the WHERE, and the duration test runs once per contact.
BACKFILL_TEMPLATE = f"""
INSERT INTO funnel_events (tenant_id, contact_id, event_type, event_timestamp, source, source_event_id,
                           event_data, contact_snapshot, created_by)
SELECT c.tenant_id, c.id, e.event_type, e.ts, 'system', 'migration_' || c.id::text || '_' || e.event_type,
       COALESCE(jsonb_strip_nulls(CASE e.event_type
           WHEN 'contact_subscribed' THEN {LEAD_DATA}
           WHEN 'contact_created' THEN {LEAD_DATA}
           WHEN 'dm_qualified' THEN jsonb_build_object(
               'symptoms', CASE WHEN q.q1_is_months THEN c.q2_question ELSE c.q1_question END,
               'months_postpartum', CASE WHEN q.q1_is_months THEN c.q1_question ELSE c.q2_question END,
               'objections', c.objections, 'lead_summary', c.lead_summary, 'thread_id', c.thread_id,
               'legacy_q1_question', c.q1_question, 'legacy_q2_question', c.q2_question)
           WHEN 'purchase_completed' THEN jsonb_build_object('amount', c.purchase_amount, 'currency', 'usd')
           WHEN 'feedback_received' THEN jsonb_build_object('feedback_text', c.feedback_text)
       END), '{{}}'::jsonb),
       jsonb_strip_nulls(jsonb_build_object(
           'email', COALESCE(c.email_primary, c.email_booking, c.email_payment),
           'first_name', c.first_name, 'last_name', c.last_name, 'phone', c.phone,
           'stage', c.stage, 'source', c.source)),
       'migration'
FROM contacts c
CROSS JOIN LATERAL (SELECT c.dm_qualified_date IS NOT NULL
                           AND {_is_duration('q1_question')} AND NOT {_is_duration('q2_question')} AS q1_is_months) q
CROSS JOIN LATERAL (VALUES
    (CASE WHEN COALESCE(c.subscribe_date, c.subscribed) IS NOT NULL
          THEN 'contact_subscribed' ELSE 'contact_created' END,
     COALESCE(c.subscribe_date, c.subscribed, c.created_at, c.updated_at, now())),
    ('dm_qualified', c.dm_qualified_date),
    ('link_sent', c.link_send_date),
    ('link_clicked', c.link_click_date),
    ('form_submitted', c.form_submit_date),
    ('appointment_scheduled', COALESCE(c.appointment_date, c.meeting_book_date)),
    ('appointment_held', COALESCE(c.appointment_held_date, c.meeting_held_date)),
    ('package_sent', c.package_sent_date),
    ('checkout_started', c.checkout_started),
    ('purchase_completed', c.purchase_date),
    ('feedback_requested', c.feedback_sent_date),
    ('feedback_received', c.feedback_received_date)
) AS e(event_type, ts)
WHERE e.ts IS NOT NULL AND {{where}}
"""

# While the table is private to this revision it has no keys: the walk, whose position is saved in the
# batch's own transaction and which reads each contact row version once, is what makes every contact's
# events written exactly once. Should the table already carry its unique key (a database that was upgraded
# by an earlier MCB), conflicts are skipped instead.
ON_CONFLICT = "ON CONFLICT (tenant_id, source, source_event_id) DO NOTHING"
BY_PAGE = BACKFILL_TEMPLATE.replace("{where}", "{rows}")
# The walk by key of earlier versions: a pass one of them began is finished that way.
RANGE = "(%(lo)s::uuid IS NULL OR c.id > %(lo)s::uuid) AND (%(hi)s::uuid IS NULL OR c.id <= %(hi)s::uuid)"
BY_KEY = BACKFILL_TEMPLATE.replace("{where}", RANGE)
NAME = "funnel_events_from_contacts"

# The contacts a walk left: inserted, or rewritten, by the original application since the walk began
# (the walk by page puts "written since" in place of {rows}; the walk by key looks at every contact).
NO_EVENTS = "NOT EXISTS (SELECT 1 FROM funnel_events f WHERE f.tenant_id = c.tenant_id AND f.contact_id = c.id)"
SWEEP_BY_PAGE = BACKFILL_TEMPLATE.replace("{where}", "{rows} AND " + NO_EVENTS)
SWEEP = BACKFILL_TEMPLATE.replace("{where}", NO_EVENTS)

KEY = "funnel_events_tenant_id_source_source_event_id_key"

INDEXES: tuple[tuple[str, str], ...] = (
    ("idx_funnel_events_tenant_time", "tenant_id, event_timestamp) INCLUDE (event_type, contact_id"),
    ("idx_funnel_events_tenant_contact_time", "tenant_id, contact_id, event_timestamp"),
    ("idx_funnel_events_tenant_type_time", "tenant_id, event_type, event_timestamp"),
)


CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS funnel_events (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    tenant_id UUID NOT NULL,
    contact_id UUID NOT NULL,
    event_type TEXT NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,
    source TEXT NOT NULL,
    source_event_id TEXT NOT NULL,
    event_data JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    contact_snapshot JSONB,
    tags JSONB NOT NULL DEFAULT '{{}}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by TEXT NOT NULL DEFAULT 'system',
    CONSTRAINT funnel_events_event_type_check CHECK (event_type IN ({in_list(EVENT_TYPES)})),
    CONSTRAINT funnel_events_source_check CHECK (source IN ({in_list(EVENT_SOURCES)}))
)
"""


def upgrade() -> None:
    with online.steps():
        online.execute(CREATE_TABLE, step="create funnel_events")
        on_conflict = ON_CONFLICT if online.constraint_exists("funnel_events", KEY) else ""
        if online.backfill_begun_by_key(NAME):
            online.keyset_backfill(NAME, table="contacts", key="id", key_type="uuid", batch_sql=BY_KEY + on_conflict,
                                   sweep_sql=SWEEP, unit="contacts")
        else:
            # In physical order: the contacts' uuids are random, so a key range is scattered over the whole
            # table, and at 1M contacts (more than the buffer cache) the walk by key read a quarter slower.
            online.scan_backfill(NAME, table="contacts", alias="c", batch_sql=BY_PAGE + on_conflict,
                                 sweep_sql=SWEEP_BY_PAGE, unit="contacts")
        # Keys and indexes are built once the rows are in (one sorted build each instead of millions of
        # random index inserts), plainly, as nothing else uses the table before this revision is done.
        online.add_unique("funnel_events", "funnel_events_pkey", ["id"], primary_key=True, private=True)
        online.add_unique("funnel_events", KEY, ["tenant_id", "source", "source_event_id"], private=True)
        for name, cols in INDEXES:
            online.create_index(name, "funnel_events", cols, private=True)
        online.add_constraint(
            "funnel_events", "funnel_events_tenant_id_fkey", "FOREIGN KEY (tenant_id) REFERENCES tenants (id)"
        )
        online.add_constraint(
            "funnel_events",
            "funnel_events_tenant_id_contact_id_fkey",
            "FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE",
        )


def downgrade() -> None:
    with online.steps():
        online.guard(guards.only_migration_events)
        online.execute(
            "DROP TABLE IF EXISTS funnel_events;\n" + online.forget_backfill_sql(NAME),
            step="drop funnel_events (it held only the backfill, which the contact columns still hold)",
        )
