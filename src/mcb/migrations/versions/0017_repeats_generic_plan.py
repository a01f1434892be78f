"""The refresh of ``funnel_event_repeats`` is planned once per session instead of on every call.

0015's ``mcb_refresh_event_repeats`` was a SQL function. Every statement that writes ``funnel_events``
calls it (through its statement triggers) for the (contact, event type) pairs it touched, and each call
planned both of its statements anew for the arrays it was given: about 0.5 ms a call, of which some
0.35 ms was planning, in the worker's profile about a tenth of PostgreSQL's time per delivery. The same
two statements now run as PL/pgSQL with ``plan_cache_mode = force_generic_plan``: one plan per session
for any arrays, about 0.2 ms a call (docs/benchmarks.md, session 5). The rows it writes are the same.
A SQL function's plans are not kept between calls at all before PostgreSQL 18, so PL/pgSQL is what makes
the setting work on 15 too.

Catalog only (``CREATE OR REPLACE FUNCTION``): instant, and writers are not held up.

Revision ID: 0017
Revises: 0016
"""

from mcb.migrate import online

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None

# The two statements of 0015's function, unchanged.
BODY = """
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
"""

SIGNATURE = "mcb_refresh_event_repeats(t uuid[], c uuid[], k text[]) RETURNS void"


def upgrade() -> None:
    with online.steps():
        online.execute(
            f"""
            CREATE OR REPLACE FUNCTION {SIGNATURE}
            LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
            BEGIN
            {BODY}
            END
            $$
            """,
            step="funnel_event_repeats: the refresh keeps one plan per session",
        )


def downgrade() -> None:
    with online.steps():
        online.execute(
            f"CREATE OR REPLACE FUNCTION {SIGNATURE}\nLANGUAGE sql AS $${BODY}$$",
            step="funnel_event_repeats: the refresh as 0015 made it",
        )
