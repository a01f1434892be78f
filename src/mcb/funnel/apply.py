"""``apply_event``: the one write path for contacts, funnel events and payments.

Whether a change comes from a webhook, a replay, an import or a test, it goes through here, inside a
tenant session. The rules (DESIGN.md, "The data path", step 5):

- payments are stored first, before any matching that could fail (R-24);
- the contact is found within the tenant by the strongest identifier the event carries; when several
  contacts match, the oldest wins (deterministic, R-19); a candidate whose mc_id/ghl_id contradicts the
  event's is not the same person;
- a contact is created only when the event may create one, and then gets a lead event (R-28);
- identity fields are never cleared (R-13); when two deliveries disagree, the value with the earliest
  evidence wins, so any order of deliveries ends in the same contact;
- the stage only moves forward (R-14);
- events carry deterministic keys and are appended with ON CONFLICT DO NOTHING (R-15), so a redelivery
  changes nothing;
- orphan payments are linked as soon as a contact with their e-mail exists (R-21).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, text

from mcb.db import raw
from mcb.funnel import stages
from mcb.funnel.events import IDENTITY_FIELDS, ContactFacts, FunnelEvent, Normalized
from mcb.funnel.identity import normalize_email
from mcb.funnel.payments import (
    LINK_SQL,
    PAYMENT_COLUMNS,
    link_params,
    link_payments,
    payment_funnel_event,
    upsert_payment,
)

Status = Literal["processed", "skipped", "orphan"]

# Identifiers that name one person on one platform: a match on a weaker identifier is rejected when the
# candidate already carries a different one of these.
STRONG_IDS = ("mc_id", "ghl_id")
# Identifiers unique within a tenant (contacts_tenant_id_mc_id_key, contacts_tenant_id_ghl_id_key).
UNIQUE_IDS = ("mc_id", "ghl_id")
# The time recorded for a default (not evidence): later than any real time, so any evidence replaces it.
WEAK = "9999-12-31T23:59:59+00:00"
LEAD_EVENTS = ("contact_subscribed", "contact_created")
# The contact columns this module reads and writes (a contact has many more, mostly the original's
# deprecated ones): fetching only these keeps every statement's result small.
CONTACT_COLUMNS: tuple[str, ...] = ("id", "tenant_id", "stage", "tags", "field_times", "source", "ad_id",
                                    *IDENTITY_FIELDS)
_CONTACT_SELECT = ", ".join(CONTACT_COLUMNS)


@dataclass
class ApplyResult:
    status: Status
    contact_id: UUID | None = None
    created: bool = False
    events_created: int = 0
    payments: list[str] = field(default_factory=list)
    linked_payments: list[str] = field(default_factory=list)
    detail: str | None = None

    def as_outcome(self) -> dict[str, Any]:
        return {
            "contact_id": str(self.contact_id) if self.contact_id else None,
            "created": self.created,
            "events_created": self.events_created,
            "payments": self.payments,
            "linked_payments": self.linked_payments,
        }


def _epoch(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _lock_identities(conn: Connection, tenant_id: UUID, facts: ContactFacts) -> None:
    """Serialise concurrent deliveries about the same person (two workers must not both create them).
    The locks are taken in one statement, in sorted order, so two deliveries never wait on each other
    crosswise."""
    keys = []
    for name in ("mc_id", "ghl_id", "stripe_customer_id", "phone"):
        value = getattr(facts, name)
        if value:
            keys.append(f"{tenant_id}:{name}:{value}")
    keys += [f"{tenant_id}:email:{e}" for e in facts.emails()]
    if keys:
        raw.execute(conn, "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                    "FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS sorted",
                    {"keys": sorted(set(keys))})


def find_contact(conn: Connection, tenant_id: UUID, facts: ContactFacts, match_by: tuple[str, ...], *,
                 unmatched: set[str] | None = None) -> dict[str, Any] | None:
    """The contact this event is about, or None. Tenant-scoped; oldest first among several matches.
    ``unmatched``: filled with the keys whose value no contact of the tenant carries."""
    for key in match_by:
        if key == "email":
            emails = sorted({e.strip().lower() for e in facts.emails()})
            if not emails:
                continue
            # contact_emails holds every contact's addresses lower-cased (revision 0014): under RLS only a
            # leakproof comparison such as this one can use an index; lower(email_*) = ... cannot.
            candidates = "SELECT contact_id FROM contact_emails WHERE tenant_id = :t AND email = ANY(:v)"
            value: Any = emails
        elif key in UNIQUE_IDS:
            value = getattr(facts, key)
            if value is None:
                continue
            # At most one contact of the tenant carries it (a unique key): the lookup is that key's index,
            # whatever the statistics say (the general form below, planned while the table was small, could
            # scan the tenant's contacts).
            rows = raw.fetch_all(conn, f"SELECT {_CONTACT_SELECT} FROM contacts WHERE tenant_id = :t AND {key} = :v "
                                 "FOR UPDATE", {"t": tenant_id, "v": value})
            if not rows and unmatched is not None:
                unmatched.add(key)
            if rows and _same_person(rows[0], facts):
                return dict(rows[0])
            continue
        else:
            value = getattr(facts, key)
            if value is None:
                continue
            candidates = f"SELECT id FROM contacts WHERE tenant_id = :t AND {key} = :v"
        # The candidates are found first, by their index, then ordered: given ORDER BY created_at LIMIT, the
        # planner would otherwise walk the whole tenant in created_at order looking for them.
        rows = raw.fetch_all(
            conn,
            f"SELECT {_CONTACT_SELECT} FROM contacts WHERE tenant_id = :t AND id = ANY(ARRAY({candidates})) "
            "ORDER BY created_at NULLS LAST, id LIMIT 20 FOR UPDATE",
            {"t": tenant_id, "v": value},
        )
        if not rows and unmatched is not None:
            unmatched.add(key)
        for row in rows:
            if _same_person(row, facts):
                return dict(row)
    return None


def _same_person(row: dict[str, Any], facts: ContactFacts) -> bool:
    """A candidate whose mc_id/ghl_id contradicts the event's is not the same person."""
    return all(getattr(facts, s) is None or row[s] is None or row[s] == getattr(facts, s) for s in STRONG_IDS)


class IdentityConflict(ValueError):
    """The event's platform ids point at two different contacts (e.g. its ghl_id belongs to a contact with
    another mc_id). Not retried: the webhook row ends ``error`` with this message for an operator."""


def _refuse_conflicting_identity(conn: Connection, tenant_id: UUID, facts: ContactFacts,
                                 unmatched: set[str]) -> None:
    """Raise IdentityConflict when a contact of the tenant already carries one of the event's platform ids.
    ``unmatched``: keys that find_contact looked up in this transaction and found on no contact (they cannot
    have appeared since: this delivery holds the advisory lock on each of its identifiers)."""
    for key in STRONG_IDS:
        value = getattr(facts, key)
        if value is None or key in unmatched:
            continue
        other = raw.fetch_first(conn, f"SELECT id FROM contacts WHERE tenant_id = :t AND {key} = :v",
                                {"t": tenant_id, "v": value})
        if other is not None:
            raise IdentityConflict(
                f"identity conflict: {key} {value} belongs to contact {other['id']}, whose other platform id "
                "differs from this event's; nothing was changed"
            )


def _create_contact(conn: Connection, tenant_id: UUID, facts: ContactFacts, at: datetime) -> dict[str, Any]:
    values = facts.values()
    if facts.ad_id:
        values["ad_id"] = facts.ad_id
    if facts.source:
        values["source"] = facts.source
    times = {k: _epoch(at) for k in values}
    tags = dict(facts.tags)
    for k in tags:
        times[f"tags.{k}"] = _epoch(at)
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    return raw.fetch_one(
        conn,
        f"INSERT INTO contacts (tenant_id, stage, tags, field_times{', ' + columns if columns else ''}) "
        f"VALUES (:tenant_id, 'new_lead', :tags, :times{', ' + params if params else ''}) RETURNING {_CONTACT_SELECT}",
        {**values, "tenant_id": tenant_id, "tags": Jsonb(tags), "times": Jsonb(times)},
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().lower() == b.strip().lower()
    return bool(a == b)


def _earlier(stamp: str, value: Any, seen: str | None, current: Any) -> bool:
    """Whether evidence (stamp, value) beats what is stored; ties go to the smaller value, so the outcome
    never depends on delivery order. Values MCB did not set (no time recorded) are never replaced."""
    if seen is None:
        return False
    return stamp < seen or (stamp == seen and str(value) < str(current))


def _merge(contact: dict[str, Any], facts: ContactFacts, at: datetime, event_stages: list[str | None]) -> dict[str, Any]:
    """The column changes that bring ``contact`` up to date with ``facts`` (empty: nothing to write).

    Identity fields, ad_id (first touch) and source: the earliest evidence wins. Tags: the latest
    evidence wins per key. Stage: the furthest. Every rule is order-independent.
    """
    original_times: dict[str, str] = dict(contact["field_times"] or {})
    times = dict(original_times)
    stamp = _epoch(at)
    changes: dict[str, Any] = {}

    def offer(column: str, value: Any, *, weak: bool = False) -> None:
        if value is None:
            return  # never clear a known value
        current = contact[column]  # KeyError, not a silent None, if CONTACT_COLUMNS lacks it
        seen = times.get(column)
        # A weak value (a default, not evidence) fills a gap and yields to any evidence.
        when = WEAK if weak else stamp
        if current is None or (not _same(current, value) and _earlier(when, value, seen, current)):
            changes[column] = value
            times[column] = when
        elif _same(current, value) and seen is not None and when < seen:
            times[column] = when  # the same value, evidenced earlier: remember the earlier time

    for column in IDENTITY_FIELDS:
        offer(column, getattr(facts, column))
    offer("ad_id", facts.ad_id)
    if facts.source:
        current = contact["source"]
        if facts.source_rule == "live" and current and current.endswith("_historical"):
            changes["source"] = facts.source  # an engaged historical contact re-enters analytics
            times["source"] = stamp
        else:
            offer("source", facts.source, weak=facts.source_rule == "default")
    if facts.tags:
        tags = dict(contact["tags"] or {})
        for key, value in facts.tags.items():
            seen = times.get(f"tags.{key}")
            later = seen is None or stamp > seen or (stamp == seen and str(value) > str(tags.get(key)))
            if key not in tags or later:
                tags[key] = value
                times[f"tags.{key}"] = stamp
            elif tags.get(key) == value and seen is not None and stamp > seen:
                times[f"tags.{key}"] = stamp
        if tags != (contact.get("tags") or {}):
            changes["tags"] = tags
    new_stage = stages.furthest(contact["stage"], *event_stages)
    if new_stage != contact["stage"]:
        changes["stage"] = new_stage
    if times != original_times:
        changes["field_times"] = times
    return changes


def _update_contact(conn: Connection, contact: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    if not changes:
        return contact
    params = {k: (Jsonb(v) if isinstance(v, dict) else v) for k, v in changes.items()}
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    return raw.fetch_one(
        conn, f"UPDATE contacts SET {sets} WHERE tenant_id = :tenant_id AND id = :id RETURNING {_CONTACT_SELECT}",
        {**params, "tenant_id": contact["tenant_id"], "id": contact["id"]},
    )


def _emails(contact: dict[str, Any]) -> list[str]:
    return sorted({e for e in (normalize_email(contact.get(k)) for k in
                               ("email_primary", "email_booking", "email_payment")) if e})


# The linked payments' columns in the fused statement, prefixed: a contact has columns of the same names.
_LINKED = ", ".join(f"{c} AS p_{c}" for c in PAYMENT_COLUMNS)


def _update_contact_and_link(conn: Connection, tenant_id: UUID, contact: dict[str, Any], changes: dict[str, Any],
                             payment_event_ids: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``_update_contact`` then ``link_payments`` in one statement: the contact as updated, and the payments
    linked to it. What the link matches on (the contact's e-mails, phone and Stripe customer after the
    update) is known before the statement runs, and the two UPDATEs touch different tables, so running them
    side by side in one snapshot changes nothing but the round trip."""
    after = {**contact, **changes}
    params = {k: (Jsonb(v) if isinstance(v, dict) else v) for k, v in changes.items()}
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    rows = raw.fetch_all(
        conn,
        f"WITH c AS (UPDATE contacts SET {sets} WHERE tenant_id = :tenant_id AND id = :id RETURNING {_CONTACT_SELECT}), "
        f"l AS ({LINK_SQL} RETURNING {_LINKED}) SELECT * FROM c LEFT JOIN l ON true",
        {**params, "tenant_id": contact["tenant_id"], "id": contact["id"],
         **link_params(tenant_id, after, payment_event_ids=payment_event_ids, emails=_emails(after))},
    )
    if not rows:
        raise LookupError("expected one row, got 0")
    updated = {k: rows[0][k] for k in CONTACT_COLUMNS}
    linked = [{c: row[f"p_{c}"] for c in PAYMENT_COLUMNS} for row in rows if row["p_payment_event_id"] is not None]
    return updated, linked


def _snapshot(contact: dict[str, Any]) -> dict[str, Any]:
    email = contact.get("email_primary") or contact.get("email_booking") or contact.get("email_payment")
    snap = {
        "email": email,
        "first_name": contact.get("first_name"),
        "last_name": contact.get("last_name"),
        "phone": contact.get("phone"),
        "stage": contact.get("stage"),
        "source": contact.get("source"),
        "tags": contact.get("tags") or {},
    }
    return {k: v for k, v in snap.items() if v not in (None, {})}


# The lead event a source's deliveries evidence, keyed by the person's id on that platform, so that every
# delivery of the source names the same event (the earliest evidence keeps it) whatever came first.
LEAD_KEYS: dict[str, tuple[str, str]] = {
    "manychat": ("mc_id", "mc_{}_contact_subscribed"),
    "ghl": ("ghl_id", "ghl_{}_contact_created"),
    "perspective": ("email_primary", "perspective_{}_contact_created"),
}


def _lead_event(n: Normalized, contact: dict[str, Any], at: datetime, created: bool) -> FunnelEvent | None:
    """Every contact has a lead event (R-28). A delivery from a source that creates contacts evidences its
    lead event; the contact's lead time is its earliest lead event (analytics count that one)."""
    if not n.may_create_contact or any(e.event_type in LEAD_EVENTS for e in n.events):
        return None
    spec = LEAD_KEYS.get(n.source)
    value = getattr(n.contact, spec[0]) if spec else None
    if spec is not None and value:
        key = spec[1].format(value)
    elif created:
        key = f"lead_{contact['id']}"
    else:
        return None
    return FunnelEvent(n.lead_event_type, key, at, stage="new_lead", data={"evidenced_by": n.event_type})


@dataclass
class _EventRow:
    """One funnel_events row to write: whose it is and the evidence it carries."""
    contact_id: Any
    event_type: str
    source: str
    key: str
    at: datetime
    data: str  # JSON text, keys sorted: compared as text to pick the earlier evidence, as the upsert does
    tags: dict[str, Any]
    snapshot: dict[str, Any]
    created_by: str
    owner: ApplyResult | None = None


def _event_rows(contact: dict[str, Any], source: str, events: list[tuple[str, FunnelEvent]],
                created_by: str) -> list[_EventRow]:
    """A delivery's events as rows, one per key: among events that share a key the earliest evidence wins
    (time, then the smaller data), as the upsert's rule does (one INSERT may not touch a row twice)."""
    chosen: dict[tuple[str, str], tuple[FunnelEvent, str]] = {}
    for event_source, event in events:
        key = (event_source or source, event.source_event_id)
        data = json.dumps(event.data, default=str, sort_keys=True)
        held = chosen.get(key)
        if held is None or (event.occurred_at, data) < (held[0].occurred_at, held[1]):
            chosen[key] = (event, data)
    snapshot = _snapshot(contact)
    return [_EventRow(contact["id"], event.event_type, event_source, event_key, event.occurred_at, data,
                      event.tags, snapshot, created_by)
            for (event_source, event_key), (event, data) in sorted(chosen.items(), key=lambda kv: kv[0])]


def _write_events(conn: Connection, tenant_id: UUID, rows: list[_EventRow]) -> list[_EventRow]:
    """Append the rows in one statement; returns those that were new. A row whose key exists keeps the
    earliest evidence of it (time, then the smaller data), so the history does not depend on delivery
    order."""
    if not rows:
        return []
    params: dict[str, Any] = {"t": tenant_id}
    values = []
    for i, row in enumerate(rows):
        values.append(f"(:t, :c{i}, :type{i}, :at{i}, :source{i}, :key{i}, CAST(:data{i} AS jsonb), :snap{i}, "
                      f":tags{i}, :by{i})")
        params.update({f"c{i}": row.contact_id, f"type{i}": row.event_type, f"at{i}": row.at,
                       f"source{i}": row.source, f"key{i}": row.key, f"data{i}": row.data,
                       f"snap{i}": Jsonb(row.snapshot), f"tags{i}": Jsonb(row.tags), f"by{i}": row.created_by})
    inserted = raw.fetch_all(
        conn,
        (
            "INSERT INTO funnel_events (tenant_id, contact_id, event_type, event_timestamp, source, "
            "source_event_id, event_data, contact_snapshot, tags, created_by) VALUES "
            + ", ".join(values)
            + " ON CONFLICT (tenant_id, source, source_event_id) DO UPDATE SET "
            "event_timestamp = EXCLUDED.event_timestamp, event_data = EXCLUDED.event_data, tags = EXCLUDED.tags "
            "WHERE EXCLUDED.event_timestamp < funnel_events.event_timestamp "
            "OR (EXCLUDED.event_timestamp = funnel_events.event_timestamp "
            "AND EXCLUDED.event_data::text < funnel_events.event_data::text) "
            "RETURNING source, source_event_id, (xmax = 0) AS new"
        ),
        params,
    )
    new = {(r["source"], r["source_event_id"]) for r in inserted if r["new"] is True}
    return [row for row in rows if (row.source, row.key) in new]


class EventBatch:
    """The funnel events of several deliveries of one tenant, written by one INSERT (``flush``) instead of
    one per delivery: the worker's chunk. The rows and the counts are those the deliveries would have
    written one after the other: a key met again keeps its first row (contact, type, snapshot) with the
    earliest evidence (time, data, tags) of all, and the first delivery that had it counts it as created.
    Nothing in ``apply_event`` reads funnel_events, so a later delivery of the chunk sees the same state
    either way; the statement triggers that keep the rollups then run once for the chunk."""

    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id = tenant_id
        self._rows: dict[tuple[str, str], _EventRow] = {}

    def add(self, owner: ApplyResult, rows: list[_EventRow]) -> None:
        for row in rows:
            held = self._rows.get((row.source, row.key))
            if held is None:
                row.owner = owner
                self._rows[(row.source, row.key)] = row
            elif (row.at, row.data) < (held.at, held.data):
                held.at, held.data, held.tags = row.at, row.data, row.tags

    def flush(self, conn: Connection) -> None:
        rows = sorted(self._rows.values(), key=lambda r: (r.source, r.key))
        self._rows = {}
        for row in _write_events(conn, self.tenant_id, rows):
            if row.owner is not None:
                row.owner.events_created += 1


def apply_event(conn: Connection, tenant_id: UUID, n: Normalized, *, received_at: datetime,
                created_by: str = "webhook", events_into: EventBatch | None = None) -> ApplyResult:
    """Apply one normalized delivery for one tenant. ``conn`` is a tenant session's connection;
    ``created_by`` names the path on the events it appends (``webhook``, ``import``). ``events_into``:
    the events go into that batch, and the result's ``events_created`` is counted when it is flushed."""
    if n.skip_reason:
        return ApplyResult("skipped", detail=n.skip_reason)
    facts = n.contact
    _lock_identities(conn, tenant_id, facts)

    stored = [upsert_payment(conn, tenant_id, p) for p in n.payments]
    payment_ids = [p["payment_event_id"] for p in stored]

    unmatched: set[str] = set()
    contact = find_contact(conn, tenant_id, facts, n.match_by, unmatched=unmatched)
    created = False
    # The evidence time: the earliest time the delivery itself states (events, payment dates).
    at = min([*(e.occurred_at for e in n.events), *(p.payment_date for p in n.payments)], default=received_at)
    if contact is None:
        has_identity = any(getattr(facts, k) for k in ("mc_id", "ghl_id", "stripe_customer_id", "phone")) or facts.emails()
        if not n.may_create_contact or not has_identity:
            if stored:
                return ApplyResult("orphan", payments=payment_ids,
                                   detail="no contact matches this payment yet; it will be linked when one appears")
            return ApplyResult("skipped", detail="no matching contact, and this event does not create contacts")
        _refuse_conflicting_identity(conn, tenant_id, facts, unmatched)
        contact = _create_contact(conn, tenant_id, facts, at)
        created = True

    events: list[tuple[str, FunnelEvent]] = []
    lead = _lead_event(n, contact, at, created)
    if lead is not None:
        events.append((n.source, lead))
    events += [(n.source, e) for e in n.events]
    changes = _merge(contact, facts, at, [e.stage for _, e in events])
    if changes:
        contact, linked = _update_contact_and_link(conn, tenant_id, contact, changes, payment_ids)
    else:
        linked = link_payments(conn, tenant_id, contact, payment_event_ids=payment_ids, emails=_emails(contact))
    own = [p for p in stored if p["contact_id"] == contact["id"]]
    payment_rows = {p["payment_event_id"]: p for p in [*own, *linked]}
    payment_events = [(row["payment_source"], ev) for row in payment_rows.values()
                      if (ev := payment_funnel_event(row)) is not None]
    # A payment linked later says what it would have said on arrival: the e-mail and Stripe
    # customer it was made with, as of its own date; and its stage.
    for row in sorted(linked, key=lambda r: (r["payment_date"], r["payment_event_id"])):
        paid_with = ContactFacts(email_payment=normalize_email(row.get("customer_email")),
                                 stripe_customer_id=row.get("stripe_customer_id"))
        contact = _update_contact(conn, contact, _merge(contact, paid_with, row["payment_date"], []))
    if payment_events:
        contact = _update_contact(conn, contact, _merge(contact, ContactFacts(), at,
                                                        [e.stage for _, e in payment_events]))
    events += payment_events
    result = ApplyResult(
        "processed",
        contact_id=contact["id"],
        created=created,
        payments=payment_ids,
        linked_payments=[p["payment_event_id"] for p in linked if p["payment_event_id"] not in payment_ids],
    )
    rows = _event_rows(contact, n.source, events, created_by)
    if events_into is not None:
        events_into.add(result, rows)
    else:
        result.events_created = len(_write_events(conn, tenant_id, rows))
    return result


def link_all_orphans(conn: Connection, tenant_id: UUID) -> list[tuple[str, UUID]]:
    """Attach every orphan payment of the tenant whose e-mail now belongs to a contact (oldest contact wins);
    returns (payment_event_id, contact_id) pairs. For ``mcb payments link-orphans`` and the worker."""
    orphans = conn.execute(
        text("SELECT DISTINCT lower(customer_email) FROM payments WHERE tenant_id = :t AND contact_id IS NULL "
             "AND customer_email IS NOT NULL"),
        {"t": tenant_id},
    ).scalars().all()
    done: list[tuple[str, UUID]] = []
    for email in orphans:
        n = Normalized(source="stripe", event_type="link_orphans", contact=ContactFacts(email_payment=email),
                       may_create_contact=False, match_by=("email",))
        result = apply_event(conn, tenant_id, n, received_at=datetime.now(UTC))
        if result.contact_id is not None:
            done += [(p, result.contact_id) for p in result.linked_payments]
    return done
