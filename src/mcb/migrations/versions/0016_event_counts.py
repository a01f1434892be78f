"""event_counts: how many stage events and first leads each tenant had in every quarter hour.

A report window starts and ends at local midnights, which are whole quarter hours in UTC in every time
zone in use today, so a window's number of events of a type (or of first leads) is a sum over its quarter
hours: about 3,000 rows for 30 days, whatever the tenant's size, instead of one index entry per event
(216k for 30 days on a tenant with 1M contacts). ``mcb.analytics.metrics`` reads it for the activity
counts, subtracts the historical contacts' own events when the tenant filters them (a small set, read
from their rows), and falls back to the events when a window is not on quarter hours.

- ``event_counts (tenant_id, kind, bucket, n)``: ``kind`` is a stage event type or ``lead`` (a contact's
  first lead, from ``contact_leads.lead_at``); ``bucket`` the start of the quarter hour (``date_bin``
  from 2000-01-01 UTC). Tenant-owned, RLS.
- Statement-level triggers on ``funnel_events`` and ``contact_leads`` add the counts of the rows a
  statement inserts, moves or deletes (transition tables, one upsert per statement, in key order so two
  writers take the rows' locks in the same order). They run as the owner, like 0014's, because deleting a
  contact in the original application cascades here.
- Existing rows are counted per tenant and kind, each unit a recount that replaces what the triggers added
  for it, under a SHARE lock on ``funnel_events`` (MCB's event writers wait for the unit; the original
  application has no such table). Resumable.

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

# (function, table, kind expression, time column, row filter)
COUNTERS = (
    ("mcb_count_funnel_events", "funnel_events", "event_type", "event_timestamp", f"event_type = ANY({_KINDS_SQL})"),
    ("mcb_count_contact_leads", "contact_leads", "'lead'::text", "lead_at", "true"),
)


def _counter_function(name: str, kind: str, at: str, where: str) -> str:
    bucket = BUCKET.format(col=at)

    def upsert(rows: str) -> str:
        return f"""
        INSERT INTO event_counts (tenant_id, kind, bucket, n)
        SELECT tenant_id, kind, bucket, sum(d) FROM ({rows}) x
        GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, kind, bucket) DO UPDATE SET n = event_counts.n + EXCLUDED.n;"""

    plus = f"SELECT tenant_id, {kind} AS kind, {bucket} AS bucket, 1 AS d FROM new_rows WHERE {where}"
    minus = f"SELECT tenant_id, {kind} AS kind, {bucket} AS bucket, -1 AS d FROM old_rows WHERE {where}"
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET mcb.admin = 'on' AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN {upsert(plus)}
        ELSIF TG_OP = 'UPDATE' THEN {upsert(plus + " UNION ALL " + minus)}
        ELSE {upsert(minus)}
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


# One unit: the tenant's counts of one kind, recounted from the rows and put in place of what is there.
RECOUNT = f"""
WITH fresh AS (
    SELECT %(tenant)s::uuid AS tenant_id, %(kind)s::text AS kind, b AS bucket, count(*) AS n FROM (
        SELECT {BUCKET.format(col="event_timestamp")} AS b FROM funnel_events
        WHERE %(kind)s <> 'lead' AND tenant_id = %(tenant)s::uuid AND event_type = %(kind)s
        UNION ALL
        SELECT {BUCKET.format(col="lead_at")} FROM contact_leads
        WHERE %(kind)s = 'lead' AND tenant_id = %(tenant)s::uuid
    ) r GROUP BY b
), put AS (
    INSERT INTO event_counts (tenant_id, kind, bucket, n) SELECT * FROM fresh
    ON CONFLICT (tenant_id, kind, bucket) DO UPDATE SET n = EXCLUDED.n
)
DELETE FROM event_counts c
WHERE c.tenant_id = %(tenant)s::uuid AND c.kind = %(kind)s
  AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.bucket = c.bucket)
"""


def upgrade() -> None:
    with online.steps():
        online.execute(
            f"""
            CREATE TABLE IF NOT EXISTS event_counts (
                tenant_id UUID NOT NULL,
                kind TEXT NOT NULL,
                bucket TIMESTAMPTZ NOT NULL,
                n BIGINT NOT NULL,
                CONSTRAINT event_counts_pkey PRIMARY KEY (tenant_id, kind, bucket),
                CONSTRAINT event_counts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id)
            );
            COMMENT ON TABLE event_counts IS 'Exact rollup: stage events and first leads per tenant, kind and quarter hour (kept by triggers on funnel_events and contact_leads)';
            {online.tenant_table_security("event_counts")}
            """,
            step="create event_counts (tenant-scoped, RLS)",
        )
        for name, table, kind, at, where in COUNTERS:
            online.execute(_counter_function(name, kind, at, where) + ";" + _triggers(name, table),
                           step=f"{table}: triggers keeping event_counts")
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
        online.execute(
            ";\n".join([*drops, "DROP TABLE IF EXISTS event_counts",
                        "DELETE FROM mcb_backfill_state WHERE name = 'event_counts'"]),
            step="drop event_counts and its triggers",
        )
