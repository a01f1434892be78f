"""Exact rollups the metrics read instead of scanning funnel_events.

``contact_leads`` (revision 0013) holds each contact's earliest lead event time. A trigger on
funnel_events keeps it as events arrive; ``rebuild_contact_leads`` recomputes it from the events (after a
bulk load that bypassed triggers, or to prove it exact: a rebuild changes no row).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, text

from mcb.analytics.metrics import LEAD_EVENTS

_TYPES = ", ".join(f"'{t}'" for t in LEAD_EVENTS)


def rebuild_contact_leads(conn: Connection, tenant_id: UUID) -> int:
    """Recompute the tenant's contact_leads from its lead events; returns the number of rows changed."""
    removed = conn.execute(text(
        f"""DELETE FROM contact_leads l WHERE l.tenant_id = :t AND NOT EXISTS (
                SELECT 1 FROM funnel_events e WHERE e.tenant_id = :t AND e.contact_id = l.contact_id
                AND e.event_type IN ({_TYPES}))"""), {"t": tenant_id}).rowcount
    changed = conn.execute(text(
        f"""INSERT INTO contact_leads (tenant_id, contact_id, lead_at)
            SELECT tenant_id, contact_id, min(event_timestamp) FROM funnel_events
            WHERE tenant_id = :t AND event_type IN ({_TYPES}) GROUP BY tenant_id, contact_id
            ON CONFLICT (tenant_id, contact_id) DO UPDATE SET lead_at = EXCLUDED.lead_at
            WHERE contact_leads.lead_at IS DISTINCT FROM EXCLUDED.lead_at"""), {"t": tenant_id}).rowcount
    return int(removed or 0) + int(changed or 0)
