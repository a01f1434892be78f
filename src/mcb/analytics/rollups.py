"""Exact rollups the metrics read instead of scanning contacts and funnel_events.

- ``contact_leads`` (revisions 0013, 0015): one row per contact with the time of its earliest lead event
  and its identity facts (ad id, ManyChat id, GHL id, any e-mail, the primary e-mail lower-cased). Triggers
  on funnel_events and contacts keep it.
- ``shared_emails`` (revision 0015): the addresses that are the primary e-mail of two or more contacts. A
  trigger on contacts keeps it.
- ``event_counts`` (revision 0016): stage events and first leads per kind and quarter hour. Statement
  triggers on funnel_events and contact_leads keep it.
- ``funnel_event_repeats`` (revision 0015): the stage events that are not their contact's first of their
  type, with the time of the one before. Statement triggers on funnel_events keep it.

The ``rebuild_*`` functions recompute a tenant's rows from the source tables (after a bulk load that
bypassed triggers, or to prove a rollup exact: a rebuild of an exact rollup changes no row).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, text

from mcb.analytics.metrics import LEAD_EVENTS, STAGES

_TYPES = ", ".join(f"'{t}'" for t in LEAD_EVENTS)

REPEAT_TYPES: tuple[str, ...] = tuple(t for name, types in STAGES if name != "leads" for t in types)
"""The event types whose repeats funnel_event_repeats keeps (revision 0015 lists the same ones)."""

_IDENTITY = """c.ad_id IS NOT NULL, c.mc_id IS NOT NULL, c.ghl_id IS NOT NULL,
    (c.email_primary IS NOT NULL OR c.email_booking IS NOT NULL OR c.email_payment IS NOT NULL),
    lower(c.email_primary)"""


def rebuild_contact_leads(conn: Connection, tenant_id: UUID) -> int:
    """Recompute the tenant's contact_leads from its lead events and contacts; returns the number of rows
    changed."""
    removed = conn.execute(text(
        f"""DELETE FROM contact_leads l WHERE l.tenant_id = :t AND NOT EXISTS (
                SELECT 1 FROM funnel_events e WHERE e.tenant_id = :t AND e.contact_id = l.contact_id
                AND e.event_type IN ({_TYPES}))"""), {"t": tenant_id}).rowcount
    changed = conn.execute(text(
        f"""INSERT INTO contact_leads (tenant_id, contact_id, lead_at, has_ad_id, has_mc_id, has_ghl_id, has_email,
                                       primary_email)
            SELECT f.tenant_id, f.contact_id, f.lead_at, {_IDENTITY}
            FROM (SELECT tenant_id, contact_id, min(event_timestamp) AS lead_at FROM funnel_events
                  WHERE tenant_id = :t AND event_type IN ({_TYPES}) GROUP BY tenant_id, contact_id) f
            JOIN contacts c ON c.tenant_id = f.tenant_id AND c.id = f.contact_id
            ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at,
                has_ad_id = EXCLUDED.has_ad_id, has_mc_id = EXCLUDED.has_mc_id, has_ghl_id = EXCLUDED.has_ghl_id,
                has_email = EXCLUDED.has_email, primary_email = EXCLUDED.primary_email
            WHERE (contact_leads.lead_at, contact_leads.has_ad_id, contact_leads.has_mc_id, contact_leads.has_ghl_id,
                   contact_leads.has_email, contact_leads.primary_email)
                  IS DISTINCT FROM (EXCLUDED.lead_at, EXCLUDED.has_ad_id, EXCLUDED.has_mc_id, EXCLUDED.has_ghl_id,
                                    EXCLUDED.has_email, EXCLUDED.primary_email)"""), {"t": tenant_id}).rowcount
    return int(removed or 0) + int(changed or 0)


def rebuild_event_repeats(conn: Connection, tenant_id: UUID) -> int:
    """Recompute the tenant's funnel_event_repeats from its events; returns the number of rows changed."""
    expected = """
        SELECT tenant_id, contact_id, event_id, event_type, event_timestamp, previous_at FROM (
            SELECT e.tenant_id, e.contact_id, e.id AS event_id, e.event_type, e.event_timestamp,
                   lag(e.event_timestamp) OVER (PARTITION BY e.contact_id, e.event_type
                                                ORDER BY e.event_timestamp, e.id) AS previous_at
            FROM funnel_events e WHERE e.tenant_id = :t AND e.event_type = ANY(:types)
        ) x WHERE previous_at IS NOT NULL"""
    params = {"t": tenant_id, "types": list(REPEAT_TYPES)}
    removed = conn.execute(text(
        f"""DELETE FROM funnel_event_repeats r WHERE r.tenant_id = :t AND NOT EXISTS (
                SELECT 1 FROM ({expected}) x WHERE x.contact_id = r.contact_id AND x.event_id = r.event_id)"""),
        params).rowcount
    changed = conn.execute(text(
        f"""INSERT INTO funnel_event_repeats (tenant_id, contact_id, event_id, event_type, event_timestamp,
                                              previous_at)
            {expected}
            ON CONFLICT (tenant_id, contact_id, event_id) DO UPDATE SET event_type = EXCLUDED.event_type,
                event_timestamp = EXCLUDED.event_timestamp, previous_at = EXCLUDED.previous_at
            WHERE (funnel_event_repeats.event_type, funnel_event_repeats.event_timestamp,
                   funnel_event_repeats.previous_at)
                  IS DISTINCT FROM (EXCLUDED.event_type, EXCLUDED.event_timestamp, EXCLUDED.previous_at)"""),
        params).rowcount
    return int(removed or 0) + int(changed or 0)


def rebuild_shared_emails(conn: Connection, tenant_id: UUID) -> int:
    """Recompute the tenant's shared_emails from its contacts; returns the number of rows changed."""
    expected = """SELECT lower(email_primary) AS email FROM contacts
                  WHERE tenant_id = :t AND email_primary IS NOT NULL GROUP BY 1 HAVING count(*) > 1"""
    removed = conn.execute(text(
        f"DELETE FROM shared_emails s WHERE s.tenant_id = :t AND s.email NOT IN ({expected})"),
        {"t": tenant_id}).rowcount
    added = conn.execute(text(
        f"INSERT INTO shared_emails (tenant_id, email) SELECT :t, email FROM ({expected}) x ON CONFLICT DO NOTHING"),
        {"t": tenant_id}).rowcount
    return int(removed or 0) + int(added or 0)


def rebuild_event_counts(conn: Connection, tenant_id: UUID) -> int:
    """Recompute the tenant's event_counts from its events and contact_leads; returns the number of rows
    changed."""
    bucket = "date_bin('15 minutes', {col}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    historical = r"coalesce(c.source LIKE '%\_historical', false)"
    expected = f"""
        SELECT e.event_type AS kind, {historical} AS historical, {bucket.format(col="e.event_timestamp")} AS bucket,
               count(*) AS n
        FROM funnel_events e JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = e.contact_id
        WHERE e.tenant_id = :t AND e.event_type = ANY(:types) GROUP BY 1, 2, 3
        UNION ALL
        SELECT 'lead', {historical}, {bucket.format(col="l.lead_at")}, count(*)
        FROM contact_leads l JOIN contacts c ON c.tenant_id = l.tenant_id AND c.id = l.contact_id
        WHERE l.tenant_id = :t GROUP BY 2, 3"""
    params = {"t": tenant_id, "types": list(REPEAT_TYPES)}
    compact_event_counts(conn)
    # A quarter hour whose rows were all deleted keeps a row with n = 0, the same as no row.
    conn.execute(text("DELETE FROM event_counts WHERE tenant_id = :t AND n = 0"), {"t": tenant_id})
    removed = conn.execute(text(
        f"""DELETE FROM event_counts c WHERE c.tenant_id = :t AND NOT EXISTS (
                SELECT 1 FROM ({expected}) x
                WHERE x.kind = c.kind AND x.historical = c.historical AND x.bucket = c.bucket)"""), params).rowcount
    changed = conn.execute(text(
        f"""INSERT INTO event_counts (tenant_id, kind, historical, bucket, n)
            SELECT :t, kind, historical, bucket, n FROM ({expected}) x
            ON CONFLICT (tenant_id, kind, historical, bucket) DO UPDATE SET n = EXCLUDED.n
            WHERE event_counts.n <> EXCLUDED.n"""), params).rowcount
    return int(removed or 0) + int(changed or 0)


def compact_event_counts(conn: Connection) -> int:
    """Fold event_count_deltas into event_counts (every tenant's; the numbers read the same before and
    after). Returns how many counter rows it touched; 0 when another compaction is running."""
    return int(conn.execute(text("SELECT mcb_compact_event_counts()")).scalar_one())


ROLLUPS: tuple[str, ...] = ("contact_leads", "funnel_event_repeats", "shared_emails", "event_counts")
"""What ``rebuild_all`` recomputes, in its order (event_counts counts contact_leads' rows)."""


def rebuild_all(conn: Connection, tenant_id: UUID) -> dict[str, int]:
    """Every rollup of the tenant recomputed from its source rows: {rollup: rows changed}. All zeros means
    the rollups were exact."""
    return {
        "contact_leads": rebuild_contact_leads(conn, tenant_id),
        "funnel_event_repeats": rebuild_event_repeats(conn, tenant_id),
        "shared_emails": rebuild_shared_emails(conn, tenant_id),
        "event_counts": rebuild_event_counts(conn, tenant_id),
    }
