"""event_counts: how many stage events and first leads each tenant had in every quarter hour.

A report window starts and ends at local midnights, which are whole quarter hours in UTC in every time
zone in use today, so a window's number of events of a type (or of first leads) is a sum over its quarter
hours: about 3,000 rows for 30 days, whatever the tenant's size, instead of one index entry per event
(216k for 30 days on a tenant with 1M contacts). ``mcb.analytics.metrics`` reads it for the activity
counts and falls back to the events when a window is not on quarter hours.

- ``event_counts (tenant_id, kind, historical, bucket, n)`` and ``event_count_deltas`` (the same columns): ``kind`` is a stage event type or ``lead``
  (a contact's first lead, from ``contact_leads.lead_at``); ``historical`` whether the row's contact is a
  historical one (``source`` ends in ``_historical``, the R-32 filter); ``bucket`` the start of the quarter
  hour (``date_bin`` from 2000-01-01 UTC). Tenant-owned, RLS.
- Statement-level triggers on ``funnel_events`` and ``contact_leads`` record what a statement inserts,
  moves or deletes (transition tables) as rows of ``event_count_deltas``: plain inserts, so two writers
  of one tenant's current quarter hour never wait for each other or deadlock on a counter row. A contact
  that becomes historical or stops being one moves its rows to the other flag the same way; a deleted
  contact's rows are counted down before the cascade removes them. The functions run as the owner, like
  0014's, because the original application's contact writes reach them. ``mcb_compact_event_counts()``
  folds the deltas into ``event_counts`` in one statement (the worker calls it after each batch); readers
  add the two tables, so the numbers are exact whether or not it has run.
- Existing rows are counted per tenant and kind, each unit a recount that replaces what the triggers added
  for it, under a SHARE lock on ``funnel_events``: MCB's event writers, and a contact's move between the
  flags, wait for the unit (the original application writes no events and never changes a contact's
  historical source). Resumable.

Revision ID: 0016
Revises: 0015
"""

from mcb.migrate import online

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None

KINDS = (
    "dm_qualified", "link_sent", "link_clicked", "form_submitted", "appointment_scheduled",
    "appointment_held", "package_sent", "deposit_paid", "purchase_completed", "payment_plan_created",
)
_KINDS_SQL = "ARRAY[" + ", ".join(f"'{k}'" for k in KINDS) + "]::text[]"
BUCKET = "date_bin('15 minutes', {col}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
HISTORICAL = r"coalesce(c.source LIKE '%\_historical', false)"

# (function, table, kind expression, time column, row filter); a row's contact gives its historical flag.
COUNTERS = (
    ("mcb_count_funnel_events", "funnel_events", "r.event_type", "r.event_timestamp",
     f"r.event_type = ANY({_KINDS_SQL})"),
    ("mcb_count_contact_leads", "contact_leads", "'lead'::text", "r.lead_at", "true"),
)

# What a statement changed goes into event_count_deltas as plain inserts: no row is updated in place, so
# concurrent writers (two workers on one tenant's current quarter hour) never wait for each other or
# deadlock on a counter. mcb_compact_event_counts() folds the deltas into event_counts.
DELTAS = """
    INSERT INTO event_count_deltas (tenant_id, kind, historical, bucket, n)
    SELECT tenant_id, kind, historical, bucket, sum(d) FROM ({rows}) x
    GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;"""


def _counter_function(name: str, kind: str, at: str, where: str) -> str:
    def rows(table: str, sign: int) -> str:
        # A row whose contact is gone was counted down by contacts_count_delete before the cascade.
        return (f"SELECT r.tenant_id, {kind} AS kind, {HISTORICAL} AS historical, {BUCKET.format(col=at)} AS bucket, "
                f"{sign} AS d FROM {table} r JOIN contacts c ON c.tenant_id = r.tenant_id AND c.id = r.contact_id "
                f"WHERE {where}")

    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN {DELTAS.format(rows=rows("new_rows", 1))}
        ELSIF TG_OP = 'UPDATE' THEN {DELTAS.format(rows=rows("new_rows", 1) + " UNION ALL " + rows("old_rows", -1))}
        ELSE {DELTAS.format(rows=rows("old_rows", -1))}
        END IF;
        RETURN NULL;
    END
    $$;
    REVOKE ALL ON FUNCTION {name}() FROM PUBLIC"""


def _triggers(name: str, table: str) -> str:
    return f"""
    CREATE OR REPLACE TRIGGER {table}_count_insert AFTER INSERT ON {table}
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}();
    CREATE OR REPLACE TRIGGER {table}_count_update AFTER UPDATE ON {table}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}();
    CREATE OR REPLACE TRIGGER {table}_count_delete AFTER DELETE ON {table}
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {name}()"""


def _contact_rows(p: str, sign: str) -> str:
    """The counted rows of contact ``p`` (OLD or NEW) with their historical flag as ``p`` has it."""
    flag = f"coalesce({p}.source LIKE '%\\_historical', false)"
    return f"""
        SELECT {p}.tenant_id AS tenant_id, e.event_type AS kind, {flag} AS historical,
               {BUCKET.format(col="e.event_timestamp")} AS bucket, {sign} AS d
        FROM funnel_events e
        WHERE e.tenant_id = {p}.tenant_id AND e.contact_id = {p}.id AND e.event_type = ANY({_KINDS_SQL})
        UNION ALL
        SELECT {p}.tenant_id, 'lead', {flag}, {BUCKET.format(col="l.lead_at")}, {sign}
        FROM contact_leads l WHERE l.tenant_id = {p}.tenant_id AND l.contact_id = {p}.id"""


# A contact that becomes historical or stops being one takes its counted rows from one flag to the other;
# a deleted contact's rows are counted down here, while they are still there, because the cascade that
# deletes them runs after the contact is gone. The ROW EXCLUSIVE lock on funnel_events makes a move wait
# for a backfill unit in progress (it holds SHARE), so the unit's recount and the move cannot overlap.
CONTACT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION mcb_count_contact_moves() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
BEGIN
    LOCK TABLE funnel_events IN ROW EXCLUSIVE MODE;
    IF TG_OP = 'UPDATE' THEN {DELTAS.format(rows=_contact_rows("NEW", "1") + " UNION ALL " + _contact_rows("OLD", "-1"))}
        RETURN NULL;
    END IF;
    {DELTAS.format(rows=_contact_rows("OLD", "-1"))}
    RETURN OLD;
END
$$;
REVOKE ALL ON FUNCTION mcb_count_contact_moves() FROM PUBLIC;
CREATE OR REPLACE TRIGGER contacts_count_historical AFTER UPDATE OF source ON contacts
    FOR EACH ROW WHEN (coalesce(OLD.source LIKE '%\\_historical', false)
                       <> coalesce(NEW.source LIKE '%\\_historical', false))
    EXECUTE FUNCTION mcb_count_contact_moves();
CREATE OR REPLACE TRIGGER contacts_count_delete BEFORE DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION mcb_count_contact_moves()
"""

COMPACT_FUNCTION = """
CREATE OR REPLACE FUNCTION mcb_compact_event_counts() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
DECLARE folded bigint;
BEGIN
    -- One compaction at a time; a caller that finds one running leaves the work to it.
    IF NOT pg_try_advisory_xact_lock(hashtextextended('mcb.event_counts.compact', 0)) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM event_count_deltas RETURNING tenant_id, kind, historical, bucket, n
    ), summed AS (
        INSERT INTO event_counts (tenant_id, kind, historical, bucket, n)
        SELECT tenant_id, kind, historical, bucket, sum(n) FROM gone GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, kind, historical, bucket) DO UPDATE SET n = event_counts.n + EXCLUDED.n
        RETURNING 1
    )
    SELECT count(*) INTO folded FROM summed;
    RETURN folded;
END
$$;
REVOKE ALL ON FUNCTION mcb_compact_event_counts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mcb_compact_event_counts() TO mcb_app
"""

# One unit: the tenant's counts of one kind, recounted from the rows and put in place of what is there
# (its pending deltas are part of the recount, so they go).
RECOUNT = f"""
WITH dropped AS (
    DELETE FROM event_count_deltas WHERE tenant_id = %(tenant)s::uuid AND kind = %(kind)s
), hist AS MATERIALIZED (
    SELECT id FROM contacts WHERE tenant_id = %(tenant)s::uuid AND source LIKE '%%\\_historical'
), fresh AS (
    SELECT %(tenant)s::uuid AS tenant_id, %(kind)s::text AS kind, historical, b AS bucket, count(*) AS n FROM (
        SELECT {BUCKET.format(col="event_timestamp")} AS b, contact_id IN (SELECT id FROM hist) AS historical
        FROM funnel_events
        WHERE %(kind)s <> 'lead' AND tenant_id = %(tenant)s::uuid AND event_type = %(kind)s
        UNION ALL
        SELECT {BUCKET.format(col="lead_at")}, contact_id IN (SELECT id FROM hist) FROM contact_leads
        WHERE %(kind)s = 'lead' AND tenant_id = %(tenant)s::uuid
    ) r GROUP BY historical, b
), put AS (
    INSERT INTO event_counts (tenant_id, kind, historical, bucket, n) SELECT * FROM fresh
    ON CONFLICT (tenant_id, kind, historical, bucket) DO UPDATE SET n = EXCLUDED.n
)
DELETE FROM event_counts c
WHERE c.tenant_id = %(tenant)s::uuid AND c.kind = %(kind)s
  AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.historical = c.historical AND f.bucket = c.bucket)
"""


def upgrade() -> None:
    with online.steps():
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS event_counts (
                tenant_id UUID NOT NULL,
                kind TEXT NOT NULL,
                historical BOOLEAN NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                n BIGINT NOT NULL,
                CONSTRAINT event_counts_pkey PRIMARY KEY (tenant_id, kind, historical, bucket),
                CONSTRAINT event_counts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
            );
            COMMENT ON TABLE event_counts IS 'Exact rollup: stage events and first leads per tenant, kind and quarter hour (with event_count_deltas; kept by triggers on funnel_events, contact_leads and contacts)';
            {online.tenant_table_security("event_counts")};
            CREATE TABLE IF NOT EXISTS event_count_deltas (
                id UUID NOT NULL DEFAULT gen_random_uuid(),
                tenant_id UUID NOT NULL,
                kind TEXT NOT NULL,
                historical BOOLEAN NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                n BIGINT NOT NULL,
                CONSTRAINT event_count_deltas_pkey PRIMARY KEY (id),
                CONSTRAINT event_count_deltas_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
            );
            CREATE INDEX IF NOT EXISTS idx_event_count_deltas_tenant_kind_bucket
                ON event_count_deltas (tenant_id, kind, bucket);
            COMMENT ON TABLE event_count_deltas IS 'Changes to event_counts not folded in yet (mcb_compact_event_counts)';
            {online.tenant_table_security("event_count_deltas")}
            """,
            step="create event_counts and event_count_deltas (tenant-scoped, RLS)",
        )
        online.execute(COMPACT_FUNCTION, step="event_counts: the compaction function")
        for name, table, kind, at, where in COUNTERS:
            online.execute(_counter_function(name, kind, at, where) + ";" + _triggers(name, table),
                           step=f"{table}: triggers keeping event_counts")
        online.execute(CONTACT_FUNCTION, step="contacts: triggers moving event_counts with the historical flag")
        online.unit_backfill(
            "event_counts",
            units_sql=f"SELECT t.id::text, k FROM tenants t CROSS JOIN unnest({_KINDS_SQL} || 'lead'::text) AS k "
                      "ORDER BY 1, 2",
            batch_sql=RECOUNT,
            params=lambda unit: {"tenant": unit[0], "kind": unit[1]},
            setup_sql="LOCK TABLE funnel_events IN SHARE MODE",
            unit="tenant kinds",
        )


def downgrade() -> None:
    # event_counts holds only what funnel_events and contact_leads hold: dropping it loses no data.
    with online.steps():
        drops = []
        for name, table, *_ in COUNTERS:
            drops += [f"DROP TRIGGER IF EXISTS {table}_count_{op} ON {table}" for op in ("insert", "update", "delete")]
            drops.append(f"DROP FUNCTION IF EXISTS {name}()")
        drops += ["DROP TRIGGER IF EXISTS contacts_count_historical ON contacts",
                  "DROP TRIGGER IF EXISTS contacts_count_delete ON contacts",
                  "DROP FUNCTION IF EXISTS mcb_count_contact_moves()"]
        online.execute(
            ";\n".join([*drops, "DROP FUNCTION IF EXISTS mcb_compact_event_counts()",
                        "DROP TABLE IF EXISTS event_count_deltas", "DROP TABLE IF EXISTS event_counts",
                        "DELETE FROM mcb_backfill_state WHERE name = 'event_counts'"]),
            step="drop event_counts and its triggers",
        )
