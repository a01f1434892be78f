"""The metric layer: one definition of each number MCB reports (R-31), tenant-scoped, over a window.

Every report, the dashboard and the e-mail compose these functions; none of them writes its own SQL for
a metric defined here. Each function takes a connection of the tenant's session
(``mcb.db.session.tenant_session``, so Row Level Security hides every other tenant), the ``Tenant`` and a
``Window`` of local dates (``mcb.analytics.window``), and states its tenant in the query as well.

Definitions (docs/reports.md repeats them for operators):

- **Counting contacts** is activity-based by default: a stage's count is the number of distinct contacts
  with one of the stage's events inside the window (``STAGES``). In cohort mode the population is the
  contacts acquired in the window (their lead falls in it) and a stage counts those of them that ever
  reached it.
- **Leads** are contacts counted once, at their earliest lead event (``contact_subscribed`` or
  ``contact_created``; every contact creation emits one, R-28): a contact is a lead of the window that
  holds its first lead event, and of no other.
- **Buyers** are distinct contacts with ``purchase_completed`` or ``payment_plan_created`` in the window
  (Decision 4). Deposits (``deposit_paid``) are their own line. Recurring instalments
  (``recurring_payment_received``) are cash, never buyers.
- **Money** comes from ``payments`` by ``payment_date`` in the window, skipping rows whose status says no
  money moved (``NOT_COLLECTED_STATUSES``). Cash collected = deposit + full_purchase + downpayment +
  recurring + refunds (refund rows carry negative amounts); projected revenue = full_purchase +
  payment_plan + downpayment + refunds (Decision 2); refunds = the refunded total as a positive number.
- **Ad spend** is the sum of the daily ``meta_ad_insights`` rows whose ``snapshot_date`` (the insight's
  day) is one of the window's local dates (Decision 1, R-34). Only rows written by MCB's daily sync
  (``synced_at`` set) count: the original's rows are rolling 7-day totals, and summing them is the
  over-count of R-34. A tenant's history before MCB comes back with ``mcb meta sync --since``.
- **The historical filter** (R-32) is the tenant setting ``config.historical_filter`` (default on). When
  on, contacts whose ``source`` ends in ``_historical`` are left out of every contact count, and their
  payments out of every money figure; orphan payments (no contact yet) always count. A historical contact
  that engages again through a live channel gets a live source (auto-graduation) and counts again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Connection, text

from mcb.analytics.window import Window
from mcb.tenancy.tenants import Tenant

Mode = Literal["activity", "cohort"]

LEAD_EVENTS: tuple[str, ...] = ("contact_subscribed", "contact_created")
BUYER_EVENTS: tuple[str, ...] = ("purchase_completed", "payment_plan_created")

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leads", LEAD_EVENTS),
    ("qualified", ("dm_qualified",)),
    ("link_sent", ("link_sent",)),
    ("link_clicked", ("link_clicked",)),
    ("forms", ("form_submitted",)),
    ("meetings_booked", ("appointment_scheduled",)),
    ("meetings_held", ("appointment_held",)),
    ("packages_sent", ("package_sent",)),
    ("deposits", ("deposit_paid",)),
    ("buyers", BUYER_EVENTS),
)
"""Each contact-count metric and the funnel event types that evidence it, in funnel order."""

STAGE_NAMES: tuple[str, ...] = tuple(name for name, _ in STAGES)

FUNNEL: tuple[str, ...] = (
    "leads", "qualified", "link_sent", "link_clicked", "forms", "meetings_booked", "meetings_held",
    "packages_sent", "buyers",
)
"""The stage-to-stage chain (deposits are reported beside it, not as a step)."""

STAGE_LABELS: dict[str, str] = {
    "leads": "Leads",
    "qualified": "Qualified",
    "link_sent": "Link sent",
    "link_clicked": "Link clicked",
    "forms": "Forms",
    "meetings_booked": "Meetings booked",
    "meetings_held": "Meetings held",
    "packages_sent": "Packages sent",
    "deposits": "Deposits",
    "buyers": "Buyers",
}

CASH_CATEGORIES: tuple[str, ...] = ("deposit", "full_purchase", "downpayment", "recurring")
PROJECTED_CATEGORIES: tuple[str, ...] = ("full_purchase", "payment_plan", "downpayment")
REFUND_CATEGORY = "refund"
PAYMENT_CATEGORIES: tuple[str, ...] = (
    "deposit", "full_purchase", "payment_plan", "downpayment", "recurring", "miscellaneous", "refund",
)
NOT_COLLECTED_STATUSES: tuple[str, ...] = ("failed", "unpaid", "pending", "canceled", "cancelled", "expired")
"""Payment statuses under which no money moved; such rows count nowhere."""

HISTORICAL_PREDICATE = r"source LIKE '%\_historical'"
"""The historical contacts (R-32): source ends in ``_historical``. A partial index of revision 0013 has this
exact predicate, so the set is read without scanning the contacts."""

DIMENSIONS: dict[str, str] = {
    "ad_id": "c.ad_id",
    "source": "c.source",
    "funnel": "c.tags->>'funnel'",
    "chatbot": "c.tags->>'chatbot'",
}
"""Contact attributes a count or a sum can be grouped by (first-touch ad, traffic source, funnel tag,
chatbot A/B variant)."""

PAYMENT_DIMENSIONS: dict[str, str] = {
    **DIMENSIONS,
    "category": "p.payment_category",
    "payment_source": "p.payment_source",
}


def historical_filter(tenant: Tenant) -> bool:
    """Whether the tenant's analytics leave historical contacts out (``config.historical_filter``, default
    on)."""
    value = tenant.config.get("historical_filter", True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


# ---------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Ratio:
    """``count`` of ``of``; ``rate`` is None when ``of`` is zero (undefined, not 0 %)."""

    count: int
    of: int

    @property
    def rate(self) -> float | None:
        return ratio(self.count, self.of)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "of": self.of, "rate": self.rate}


@dataclass(frozen=True)
class CategoryTotal:
    count: int = 0
    amount: Decimal = Decimal("0")


@dataclass(frozen=True)
class Money:
    """The tenant's payments in a window, by category; the three money metrics derive from it."""

    by_category: Mapping[str, CategoryTotal] = field(default_factory=dict)

    def _sum(self, categories: Iterable[str]) -> Decimal:
        return sum((self.by_category.get(c, CategoryTotal()).amount for c in categories), Decimal("0"))

    @property
    def refunds(self) -> Decimal:
        """The refunded total, as a positive amount."""
        return -self._sum((REFUND_CATEGORY,))

    @property
    def cash_collected(self) -> Decimal:
        return self._sum(CASH_CATEGORIES) - self.refunds

    @property
    def projected_revenue(self) -> Decimal:
        return self._sum(PROJECTED_CATEGORIES) - self.refunds

    def category(self, name: str) -> CategoryTotal:
        return self.by_category.get(name, CategoryTotal())

    def to_dict(self) -> dict[str, Any]:
        return {
            "cash_collected": money_value(self.cash_collected),
            "projected_revenue": money_value(self.projected_revenue),
            "refunds": money_value(self.refunds),
            "by_category": {
                c: {"count": self.category(c).count, "amount": money_value(self.category(c).amount)}
                for c in PAYMENT_CATEGORIES
            },
        }


def money_value(amount: Decimal | None) -> float | None:
    """Money in JSON: a number rounded to cents (computed exactly as Decimal before this)."""
    return None if amount is None else float(amount.quantize(Decimal("0.01")))


def ratio(numerator: float | Decimal | int | None, denominator: float | Decimal | int | None,
          digits: int = 4) -> float | None:
    """numerator / denominator, or None when the denominator is zero or missing."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(float(Decimal(str(numerator)) / Decimal(str(denominator))), digits)


def cpl(spend: Decimal, leads: int) -> float | None:
    """Cost per lead = ad spend / leads."""
    return ratio(spend, leads, 2)


def cpa(spend: Decimal, buyers: int) -> float | None:
    """Cost per acquisition = ad spend / buyers."""
    return ratio(spend, buyers, 2)


def roas(revenue: Decimal, spend: Decimal) -> float | None:
    """Return on ad spend = revenue / ad spend (projected revenue for ``roas``, cash for ``roas_cash``)."""
    return ratio(revenue, spend, 2)


def show_rate(meetings_held: int, meetings_booked: int) -> float | None:
    return ratio(meetings_held, meetings_booked)


def close_rate(buyers: int, meetings_held: int) -> float | None:
    return ratio(buyers, meetings_held)


def conversions(counts: Mapping[str, int], chain: Iterable[str] = FUNNEL) -> list[dict[str, Any]]:
    """Stage-to-stage conversion along ``chain``: each step's count over the previous step's."""
    steps = list(chain)
    return [
        {"from": a, "to": b, "from_count": counts.get(a, 0), "to_count": counts.get(b, 0),
         "rate": ratio(counts.get(b, 0), counts.get(a, 0))}
        for a, b in pairwise(steps)
    ]


def biggest_drop_off(counts: Mapping[str, int], chain: Iterable[str] = FUNNEL) -> dict[str, Any] | None:
    """The step that loses the largest share of the contacts that reached the previous stage (ties: the
    earlier step); None when no step has a population."""
    best: dict[str, Any] | None = None
    for step in conversions(counts, chain):
        if step["rate"] is None:
            continue
        lost = round(1 - step["rate"], 4)
        if best is None or lost > best["lost_rate"]:
            best = {**step, "lost": step["from_count"] - step["to_count"], "lost_rate": lost}
    return best


# ---------------------------------------------------------------------------- SQL building blocks


def _consecutive(windows: Sequence[Window]) -> None:
    if not windows:
        raise ValueError("no windows")
    for a, b in pairwise(windows):
        if b.start != a.end + timedelta(days=1) or b.timezone != a.timezone:
            raise ValueError(f"windows must be consecutive and in one time zone: {a.label} then {b.label}")


def _params(tenant: Tenant, windows: Window | Sequence[Window]) -> dict[str, Any]:
    """The tenant, the span of the windows (``s``/``e`` in UTC, ``ds``/``de`` as local dates) and their
    boundaries (``b`` instants, ``db`` dates) for ``width_bucket``: a statement over several consecutive
    windows reads their span once and sorts each row into its window (``_bucket``, ``_date_bucket``)."""
    spans = [windows] if isinstance(windows, Window) else list(windows)
    _consecutive(spans)
    first, last = spans[0], spans[-1]
    return {"t": tenant.id, "s": first.start_utc, "e": last.end_utc, "ds": first.start, "de": last.end,
            "b": [w.start_utc for w in spans] + [last.end_utc],
            "db": [w.start for w in spans] + [last.end + timedelta(days=1)]}


def _bucket(column: str) -> str:
    """SQL: the 1-based index of the window (of ``_params``'s windows) that holds the instant ``column``."""
    return f"width_bucket({column}, CAST(:b AS timestamptz[]))"


def _date_bucket(column: str) -> str:
    """SQL: the 1-based index of the window that holds the local date ``column``."""
    return f"width_bucket({column}, CAST(:db AS date[]))"


def _excludes_historical(tenant: Tenant, include_historical: bool | None) -> bool:
    return historical_filter(tenant) if include_historical is None else not include_historical


def _hist_cte(tenant: Tenant, include_historical: bool | None) -> str:
    if not _excludes_historical(tenant, include_historical):
        return "hist AS MATERIALIZED (SELECT NULL::uuid AS id WHERE false)"
    return f"hist AS MATERIALIZED (SELECT id FROM contacts WHERE tenant_id = :t AND {HISTORICAL_PREDICATE})"



# The contacts whose earliest lead event falls in the window, with its time. contact_leads (revision 0013)
# holds each contact's earliest lead event time, kept exact by a trigger on funnel_events.
_LEADS_CTE = f"""
leads AS (
    SELECT l.contact_id, l.lead_at, {_bucket("l.lead_at")} AS w
    FROM contact_leads l
    WHERE l.tenant_id = :t AND l.lead_at >= :s AND l.lead_at < :e
      AND l.contact_id NOT IN (SELECT id FROM hist)
)"""


_CONTACT_OF = "(SELECT * FROM contacts c WHERE c.tenant_id = :t AND c.id = {ref} OFFSET 0) c"
"""The contact of each row, looked up by its key. A month's leads are tens of thousands of rows, and for a
plain join the planner prefers hashing every contact of the tenant (a scan of 1M rows) to that many index
probes, which are several times faster with the table in memory; ``OFFSET 0`` keeps the lookup per row."""


def _metric_case(column: str = "e.event_type") -> str:
    """SQL mapping an event type to its (non-lead) stage metric, as the metric's index in ``STAGE_NAMES``
    (a small integer hashes faster than the name in the distinct counts)."""
    whens = " ".join(
        f"WHEN {column} IN ({', '.join(repr(t) for t in types)}) THEN {STAGE_NAMES.index(name)}"
        for name, types in STAGES if name != "leads"
    )
    return f"CASE {whens} END"


def _dimension(name: str | None, table: Mapping[str, str]) -> str:
    if name is None:
        return "NULL::text"
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown dimension {name!r}; one of {', '.join(table)}") from None


def _empty_counts() -> dict[str, int]:
    return dict.fromkeys(STAGE_NAMES, 0)


# ---------------------------------------------------------------------------- contact counts


def stage_counts_per_by(
    conn: Connection,
    tenant: Tenant,
    windows: Sequence[Window],
    dimension: str | None,
    *,
    mode: Mode = "activity",
    include_historical: bool | None = None,
    only: Iterable[str] | None = None,
    values: Iterable[str] | None = None,
) -> list[dict[str | None, dict[str, int]]]:
    """Every stage metric (``STAGES``) per value of a contact ``dimension`` (``DIMENSIONS``; None: one
    group keyed None), for each of several consecutive ``windows``, in one statement (one read of their
    span; each window's counts are what it alone would give). Activity mode: distinct contacts with the
    stage's event in the window (leads: whose first lead event is in it). Cohort mode: of the window's
    leads, those that ever reached the stage. ``only``: compute just these metrics (the others read 0);
    ``values``: just these values of the dimension — both to save work on large windows."""
    dim = _dimension(dimension, DIMENSIONS)
    wanted = set(STAGE_NAMES if only is None else only)
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown stage metric(s) {sorted(unknown)}")
    types = sorted({t for name, ts in STAGES if name != "leads" and name in wanted for t in ts})
    if dimension is None:
        join = ""
    elif values is None:
        join = f"CROSS JOIN LATERAL {_CONTACT_OF.format(ref='x.contact_id')}"
    else:  # a few values: the planner may start from their contacts (an index on the dimension)
        join = "JOIN contacts c ON c.tenant_id = :t AND c.id = x.contact_id"
    if values is not None and dimension is None:
        raise ValueError("values need a dimension")
    restrict = f"WHERE {dim} = ANY(:vals)" if values is not None else ""
    restrict_leads = f"{restrict or 'WHERE true'} AND {'true' if 'leads' in wanted else 'false'}"
    if mode == "activity":
        stage_rows = f"""
            SELECT {_bucket("e.event_timestamp")} AS w, {_metric_case()} AS metric, e.contact_id
            FROM funnel_events e
            WHERE e.tenant_id = :t AND e.event_timestamp >= :s AND e.event_timestamp < :e
              AND e.event_type = ANY(:types) AND e.contact_id NOT IN (SELECT id FROM hist)"""
    elif mode == "cohort":
        stage_rows = f"""
            SELECT l.w, {_metric_case()} AS metric, e.contact_id
            FROM leads l JOIN funnel_events e ON e.tenant_id = :t AND e.contact_id = l.contact_id
            WHERE e.event_type = ANY(:types)"""
    else:
        raise ValueError(f"unknown mode {mode!r}")
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)}, {_LEADS_CTE},
        x AS ({stage_rows}
        )
        -- a contact has one row in contact_leads: its leads need no DISTINCT
        SELECT x.w, {dim} AS grp, {STAGE_NAMES.index("leads")} AS metric, count(*)
        FROM leads x {join} {restrict_leads}
        GROUP BY 1, 2
        UNION ALL
        SELECT w, grp, metric, count(*) FROM (
            SELECT DISTINCT x.w, {dim} AS grp, x.metric, x.contact_id
            FROM x {join} {restrict}
        ) d
        GROUP BY 1, 2, 3"""
    if dimension is None and mode == "activity":
        return [{None: counts} for counts in _activity_counts(conn, tenant, windows, wanted, include_historical)]
    result: list[dict[str | None, dict[str, int]]] = [{} for _ in windows]
    params = {**_params(tenant, windows), "types": types, "vals": sorted(set(values or ()))}
    for w, grp, metric, count in conn.execute(text(sql), params):
        result[w - 1].setdefault(grp, _empty_counts())[STAGE_NAMES[metric]] = int(count)
    if dimension is None:
        for counts in result:
            counts.setdefault(None, _empty_counts())
    return result


QUARTER_HOUR = 900
"""event_counts (revision 0016) counts per quarter hour of UTC time since 2000-01-01."""


def _activity_counts(conn: Connection, tenant: Tenant, windows: Sequence[Window], wanted: set[str],
                     include_historical: bool | None) -> list[dict[str, int]]:
    """Activity-mode stage counts of each window without a DISTINCT over its events.

    A stage with one event type counts the window's events of that type less its *repeats*: the events
    whose contact's previous event of the type (``funnel_event_repeats``, revision 0015) is in the same
    window. What remains is one event per contact: its first of the type in the window. Leads are the
    window's first leads (``contact_leads``). When the windows start and end on quarter hours (local
    midnights do, in every time zone in use) both numbers come from ``event_counts`` (revision 0016),
    which keeps the historical contacts' rows apart; otherwise from the rows themselves. A
    stage with several types (buyers) makes its few (contact, stage) pairs distinct. All three tables are
    exact rollups kept by triggers, so both ways give the same numbers."""
    single = {name: types[0] for name, types in STAGES if name != "leads" and name in wanted and len(types) == 1}
    multi = sorted({t for name, ts in STAGES if name != "leads" and name in wanted and len(ts) > 1 for t in ts})
    params = {**_params(tenant, windows), "single": sorted(set(single.values())), "multi": multi}
    kinds = [*params["single"], *(["lead"] if "leads" in wanted else [])]
    params["kinds"] = kinds
    rolled_up = all(int(b.timestamp()) % QUARTER_HOUR == 0 for b in params["b"])
    if rolled_up:
        counted = f"""
        SELECT {_bucket("c.bucket")} AS w, 'counted' AS part, c.kind AS key, sum(c.n) AS n
        FROM (SELECT kind, historical, bucket, n FROM event_counts
              WHERE tenant_id = :t AND kind = ANY(:kinds) AND bucket >= :s AND bucket < :e
              UNION ALL  -- what the triggers recorded since the last compaction
              SELECT kind, historical, bucket, n FROM event_count_deltas
              WHERE tenant_id = :t AND kind = ANY(:kinds) AND bucket >= :s AND bucket < :e) c
        WHERE {"NOT c.historical" if _excludes_historical(tenant, include_historical) else "true"}
        GROUP BY 1, 3"""
    else:
        counted = f"""
        SELECT w, 'counted', 'lead', count(*) FROM leads WHERE 'lead' = ANY(:kinds) GROUP BY 1
        UNION ALL
        SELECT {_bucket("e.event_timestamp")}, 'counted', e.event_type, count(*)
        FROM funnel_events e
        WHERE e.tenant_id = :t AND e.event_timestamp >= :s AND e.event_timestamp < :e
          AND e.event_type = ANY(:single) AND e.contact_id NOT IN (SELECT id FROM hist)
        GROUP BY 1, 3"""
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)}, {_LEADS_CTE}
        {counted}
        UNION ALL
        SELECT {_bucket("r.event_timestamp")}, 'repeats', r.event_type, count(*)
        FROM funnel_event_repeats r
        WHERE r.tenant_id = :t AND r.event_timestamp >= :s AND r.event_timestamp < :e AND r.previous_at >= :s
          AND r.event_type = ANY(:single) AND r.contact_id NOT IN (SELECT id FROM hist)
          AND {_bucket("r.previous_at")} = {_bucket("r.event_timestamp")}
        GROUP BY 1, 3
        UNION ALL
        SELECT w, 'distinct', metric::text, count(*) FROM (
            SELECT DISTINCT {_bucket("e.event_timestamp")} AS w, {_metric_case()} AS metric, e.contact_id
            FROM funnel_events e
            WHERE e.tenant_id = :t AND e.event_timestamp >= :s AND e.event_timestamp < :e
              AND e.event_type = ANY(:multi) AND e.contact_id NOT IN (SELECT id FROM hist)
        ) d
        GROUP BY 1, 3"""
    found: dict[tuple[int, str, str], int] = {}
    for w, part, key, count in conn.execute(text(sql), params):
        found[(w, part, key)] = int(count)

    def net(w: int, key: str) -> int:
        return found.get((w, "counted", key), 0) - found.get((w, "repeats", key), 0)

    result = []
    for w in range(1, len(windows) + 1):
        counts = _empty_counts()
        if "leads" in wanted:
            counts["leads"] = net(w, "lead")
        for name, event_type in single.items():
            counts[name] = net(w, event_type)
        for name in wanted:
            if name != "leads" and name not in single:
                counts[name] = found.get((w, "distinct", str(STAGE_NAMES.index(name))), 0)
        result.append(counts)
    return result


def stage_counts_by(
    conn: Connection,
    tenant: Tenant,
    window: Window,
    dimension: str | None,
    *,
    mode: Mode = "activity",
    include_historical: bool | None = None,
    only: Iterable[str] | None = None,
    values: Iterable[str] | None = None,
) -> dict[str | None, dict[str, int]]:
    """``stage_counts_per_by`` of one window."""
    return stage_counts_per_by(conn, tenant, [window], dimension, mode=mode, include_historical=include_historical,
                               only=only, values=values)[0]


def stage_counts_per(conn: Connection, tenant: Tenant, windows: Sequence[Window], *, mode: Mode = "activity",
                     include_historical: bool | None = None, only: Iterable[str] | None = None) -> list[dict[str, int]]:
    """``stage_counts`` of each of several consecutive windows, in one statement."""
    return [r[None] for r in stage_counts_per_by(conn, tenant, windows, None, mode=mode,
                                                  include_historical=include_historical, only=only)]


def stage_counts(conn: Connection, tenant: Tenant, window: Window, *, mode: Mode = "activity",
                 include_historical: bool | None = None, only: Iterable[str] | None = None) -> dict[str, int]:
    """Every stage metric of the window: ``{"leads": …, "qualified": …, …, "buyers": …}`` (``only``: just
    these, the others read 0)."""
    return stage_counts_per(conn, tenant, [window], mode=mode, include_historical=include_historical, only=only)[0]


def _stage(name: str) -> Callable[..., int]:
    def metric(conn: Connection, tenant: Tenant, window: Window, *, mode: Mode = "activity",
               include_historical: bool | None = None) -> int:
        return stage_counts(conn, tenant, window, mode=mode, include_historical=include_historical)[name]

    metric.__name__ = name
    metric.__doc__ = f"{STAGE_LABELS[name]}: distinct contacts (see ``STAGES``)."
    return metric


leads = _stage("leads")
qualified = _stage("qualified")
link_sent = _stage("link_sent")
link_clicked = _stage("link_clicked")
forms = _stage("forms")
meetings_booked = _stage("meetings_booked")
meetings_held = _stage("meetings_held")
packages_sent = _stage("packages_sent")
deposits = _stage("deposits")
buyers = _stage("buyers")


def lead_contacts(conn: Connection, tenant: Tenant, window: Window, *,
                  include_historical: bool | None = None) -> list[tuple[UUID, Any]]:
    """The window's leads as (contact id, lead time), oldest first."""
    sql = f"WITH {_hist_cte(tenant, include_historical)}, {_LEADS_CTE} SELECT contact_id, lead_at FROM leads ORDER BY 2, 1"
    return [(r[0], r[1]) for r in conn.execute(text(sql), _params(tenant, window))]


def active_contact_ids(conn: Connection, tenant: Tenant, window: Window, *,
                       include_historical: bool | None = None) -> list[UUID]:
    """Contacts with any funnel event in the window (the weekly CSV's rows)."""
    sql = f"""WITH {_hist_cte(tenant, include_historical)}
        SELECT DISTINCT contact_id FROM funnel_events
        WHERE tenant_id = :t AND event_timestamp >= :s AND event_timestamp < :e
          AND contact_id NOT IN (SELECT id FROM hist)"""
    return [r[0] for r in conn.execute(text(sql), _params(tenant, window))]


MILESTONES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lead_at", LEAD_EVENTS),
    ("qualified_at", ("dm_qualified",)),
    ("link_clicked_at", ("link_clicked",)),
    ("form_at", ("form_submitted",)),
    ("meeting_held_at", ("appointment_held",)),
    ("purchased_at", BUYER_EVENTS),
)
"""The milestone dates of a contact listing: the first time (ever) of each."""


def contact_milestones(conn: Connection, tenant: Tenant, window: Window, *,
                       include_historical: bool | None = None) -> list[dict[str, Any]]:
    """The contacts active in the window (any funnel event in it), with identity, attribution and the first
    time of each milestone, ordered by lead time."""
    firsts = ", ".join(
        f"min(e.event_timestamp) FILTER (WHERE e.event_type IN ({', '.join(repr(t) for t in types)})) AS {name}"
        for name, types in MILESTONES
    )
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)},
        act AS (
            SELECT DISTINCT contact_id FROM funnel_events
            WHERE tenant_id = :t AND event_timestamp >= :s AND event_timestamp < :e
              AND contact_id NOT IN (SELECT id FROM hist)
        )
        SELECT c.id AS contact_id, c.first_name, c.last_name,
               coalesce(c.email_primary, c.email_booking, c.email_payment) AS email, c.phone, c.stage,
               c.source, c.ad_id, c.tags->>'funnel' AS funnel, c.tags->>'chatbot' AS chatbot, {firsts}
        FROM act JOIN contacts c ON c.tenant_id = :t AND c.id = act.contact_id
        JOIN funnel_events e ON e.tenant_id = :t AND e.contact_id = act.contact_id
        GROUP BY c.id
        ORDER BY lead_at NULLS LAST, c.id"""
    return [dict(r) for r in conn.execute(text(sql), _params(tenant, window)).mappings()]


# ---------------------------------------------------------------------------- money


def money_per_by(conn: Connection, tenant: Tenant, windows: Sequence[Window], dimension: str | None, *,
                 include_historical: bool | None = None,
                 values: Iterable[str] | None = None) -> list[dict[str | None, Money]]:
    """Payments of each of several consecutive windows (one statement) per value of ``dimension``
    (``PAYMENT_DIMENSIONS``; contact dimensions put orphan payments under None); ``values``: just these
    values of the dimension."""
    dim = _dimension(dimension, PAYMENT_DIMENSIONS)
    only_values = f"AND {dim} = ANY(:vals)" if values is not None else ""
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)}
        SELECT {_bucket("p.payment_date")} AS w, {dim} AS grp, p.payment_category, count(*),
               coalesce(sum(p.amount), 0)
        FROM payments p
        LEFT JOIN contacts c ON c.tenant_id = :t AND c.id = p.contact_id
        WHERE p.tenant_id = :t AND p.payment_date >= :s AND p.payment_date < :e
          AND lower(p.status) <> ALL(:bad)
          AND (p.contact_id IS NULL OR p.contact_id NOT IN (SELECT id FROM hist)) {only_values}
        GROUP BY 1, 2, 3"""
    grouped: list[dict[str | None, dict[str, CategoryTotal]]] = [{} for _ in windows]
    rows = conn.execute(text(sql), {**_params(tenant, windows), "bad": list(NOT_COLLECTED_STATUSES),
                                    "vals": sorted(set(values or ()))})
    for w, grp, category, count, amount in rows:
        grouped[w - 1].setdefault(grp, {})[category or "uncategorized"] = CategoryTotal(int(count), Decimal(amount))
    result = [{k: Money(v) for k, v in g.items()} for g in grouped]
    if dimension is None:
        for r in result:
            r.setdefault(None, Money())
    return result


def money_by(conn: Connection, tenant: Tenant, window: Window, dimension: str | None, *,
             include_historical: bool | None = None, values: Iterable[str] | None = None) -> dict[str | None, Money]:
    """``money_per_by`` of one window."""
    return money_per_by(conn, tenant, [window], dimension, include_historical=include_historical, values=values)[0]


def money_per(conn: Connection, tenant: Tenant, windows: Sequence[Window], *,
              include_historical: bool | None = None) -> list[Money]:
    """``money`` of each of several consecutive windows, in one statement."""
    return [r[None] for r in money_per_by(conn, tenant, windows, None, include_historical=include_historical)]


def money(conn: Connection, tenant: Tenant, window: Window, *, include_historical: bool | None = None) -> Money:
    """The window's payments by category (cash collected, projected revenue and refunds derive from it)."""
    return money_per(conn, tenant, [window], include_historical=include_historical)[0]


def cash_collected(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Decimal:
    """deposit + full_purchase + downpayment + recurring − refunds."""
    return money(conn, tenant, window, **kw).cash_collected


def projected_revenue(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Decimal:
    """full_purchase + payment_plan (contract value) + downpayment − refunds."""
    return money(conn, tenant, window, **kw).projected_revenue


def refunds(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Decimal:
    """The refunded total in the window (positive)."""
    return money(conn, tenant, window, **kw).refunds


# ---------------------------------------------------------------------------- ad spend


@dataclass(frozen=True)
class AdDelivery:
    """One ad's daily insights summed over the window."""

    spend: Decimal = Decimal("0")
    impressions: int = 0
    clicks: int = 0
    meta_leads: int = 0
    days: int = 0


# The insight rows a window's spend sums: the tenant's daily rows (written by MCB's sync, R-34) whose day
# is one of the window's local dates. Every spend and delivery figure reads exactly these rows.
_DAILY_INSIGHTS = "tenant_id = :t AND snapshot_date >= :ds AND snapshot_date <= :de AND synced_at IS NOT NULL"


def ad_delivery_by_ad(conn: Connection, tenant: Tenant, window: Window, *,
                      ad_ids: Iterable[str] | None = None) -> dict[str, AdDelivery]:
    """Per ad (``ad_ids``: just these): the sum of its daily insight rows whose day is one of the window's
    local dates."""
    only = "AND ad_id = ANY(:ids)" if ad_ids is not None else ""
    sql = f"""
        SELECT ad_id, coalesce(sum(spend), 0), coalesce(sum(impressions), 0), coalesce(sum(clicks), 0),
               coalesce(sum(leads), 0), count(*)
        FROM meta_ad_insights
        WHERE {_DAILY_INSIGHTS} {only}
        GROUP BY ad_id"""
    params = {**_params(tenant, window), "ids": sorted(set(ad_ids or ()))}
    return {r[0]: AdDelivery(Decimal(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
            for r in conn.execute(text(sql), params)}


def ad_spend_per(conn: Connection, tenant: Tenant, windows: Sequence[Window]) -> list[Decimal]:
    """``ad_spend`` of each of several consecutive windows, in one statement."""
    sql = f"""SELECT {_date_bucket("snapshot_date")} AS w, coalesce(sum(spend), 0) FROM meta_ad_insights
             WHERE {_DAILY_INSIGHTS}
             GROUP BY 1"""
    spend = [Decimal("0") for _ in windows]
    for w, total in conn.execute(text(sql), _params(tenant, windows)):
        spend[w - 1] = Decimal(total)
    return spend


def ad_spend(conn: Connection, tenant: Tenant, window: Window) -> Decimal:
    """Σ spend of the daily insight rows whose day is in the window (never a rolling snapshot, R-34)."""
    return ad_spend_per(conn, tenant, [window])[0]


def ad_spend_by_day(conn: Connection, tenant: Tenant, window: Window) -> dict[Any, Decimal]:
    """Σ spend per local date of the window (dates without rows are absent)."""
    sql = f"""SELECT snapshot_date, coalesce(sum(spend), 0) FROM meta_ad_insights
             WHERE {_DAILY_INSIGHTS}
             GROUP BY 1 ORDER BY 1"""
    return {r[0]: Decimal(r[1]) for r in conn.execute(text(sql), _params(tenant, window))}


# ---------------------------------------------------------------------------- timing


def time_to_convert(conn: Connection, tenant: Tenant, window: Window, *,
                    include_historical: bool | None = None) -> float | None:
    """Median days from a buyer's earliest lead event to their first buying event in the window, over the
    window's buyers that have a lead event (None when there are none)."""
    buy_types = ", ".join(f"'{t}'" for t in BUYER_EVENTS)
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)},
        b AS (
            SELECT contact_id, min(event_timestamp) AS bought FROM funnel_events
            WHERE tenant_id = :t AND event_type IN ({buy_types})
              AND event_timestamp >= :s AND event_timestamp < :e AND contact_id NOT IN (SELECT id FROM hist)
            GROUP BY contact_id
        )
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM b.bought - l.lead_at) / 86400.0)
        FROM b JOIN contact_leads l ON l.tenant_id = :t AND l.contact_id = b.contact_id"""
    value = conn.execute(text(sql), _params(tenant, window)).scalar_one()
    return None if value is None else round(float(value), 2)


# ---------------------------------------------------------------------------- data quality


@dataclass(frozen=True)
class ContactQuality:
    """Identity completeness of the window's leads."""

    contacts: int
    with_ad_id: int
    with_mc_id: int
    with_mc_and_ghl: int
    without_email: int
    without_platform_ids: int
    with_email: int
    duplicate_email: int

    @property
    def attribution_coverage(self) -> Ratio:
        """Leads with an ad id / leads (AD_ID capture)."""
        return Ratio(self.with_ad_id, self.contacts)

    @property
    def mc_ghl_linkage(self) -> Ratio:
        """Leads with both a ManyChat and a GHL id / leads with a ManyChat id."""
        return Ratio(self.with_mc_and_ghl, self.with_mc_id)

    @property
    def duplicate_email_rate(self) -> Ratio:
        """Leads whose primary e-mail (case-insensitive) another contact of the tenant also has / leads
        with a primary e-mail."""
        return Ratio(self.duplicate_email, self.with_email)


def contact_quality(conn: Connection, tenant: Tenant, window: Window, *,
                    include_historical: bool | None = None) -> ContactQuality:
    # The identity facts are kept on each lead's contact_leads row and the addresses that several contacts
    # have as their primary e-mail in shared_emails (revision 0015): the checks read the window's leads from
    # one index and hash that small set.
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)}
        SELECT count(*),
               count(*) FILTER (WHERE l.has_ad_id),
               count(*) FILTER (WHERE l.has_mc_id),
               count(*) FILTER (WHERE l.has_mc_id AND l.has_ghl_id),
               count(*) FILTER (WHERE NOT l.has_email),
               count(*) FILTER (WHERE NOT l.has_mc_id AND NOT l.has_ghl_id),
               count(*) FILTER (WHERE l.primary_email IS NOT NULL),
               count(*) FILTER (WHERE l.primary_email IN (SELECT email FROM shared_emails WHERE tenant_id = :t))
        FROM contact_leads l
        WHERE l.tenant_id = :t AND l.lead_at >= :s AND l.lead_at < :e
          AND l.contact_id NOT IN (SELECT id FROM hist)"""
    row = conn.execute(text(sql), _params(tenant, window)).one()
    return ContactQuality(*(int(v) for v in row))


def attribution_coverage(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Ratio:
    return contact_quality(conn, tenant, window, **kw).attribution_coverage


def mc_ghl_linkage(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Ratio:
    return contact_quality(conn, tenant, window, **kw).mc_ghl_linkage


def duplicate_email_rate(conn: Connection, tenant: Tenant, window: Window, **kw: Any) -> Ratio:
    return contact_quality(conn, tenant, window, **kw).duplicate_email_rate


@dataclass(frozen=True)
class OrphanRate:
    """Payments of the window without a contact: by count and by amount."""

    payments: int
    orphans: int
    amount: Decimal
    orphan_amount: Decimal

    @property
    def by_count(self) -> Ratio:
        return Ratio(self.orphans, self.payments)

    @property
    def by_amount(self) -> float | None:
        return ratio(self.orphan_amount, self.amount)

    def to_dict(self) -> dict[str, Any]:
        return {"payments": self.payments, "orphans": self.orphans, "rate": self.by_count.rate,
                "amount": money_value(self.amount), "orphan_amount": money_value(self.orphan_amount),
                "amount_rate": self.by_amount}


def orphan_rate(conn: Connection, tenant: Tenant, window: Window, *,
                include_historical: bool | None = None) -> OrphanRate:
    """Orphan payments / payments in the window (amounts as absolute values)."""
    sql = f"""
        WITH {_hist_cte(tenant, include_historical)}
        SELECT count(*), count(*) FILTER (WHERE contact_id IS NULL),
               coalesce(sum(abs(amount)), 0), coalesce(sum(abs(amount)) FILTER (WHERE contact_id IS NULL), 0)
        FROM payments
        WHERE tenant_id = :t AND payment_date >= :s AND payment_date < :e AND lower(status) <> ALL(:bad)
          AND (contact_id IS NULL OR contact_id NOT IN (SELECT id FROM hist))"""
    row = conn.execute(text(sql), {**_params(tenant, window), "bad": list(NOT_COLLECTED_STATUSES)}).one()
    return OrphanRate(int(row[0]), int(row[1]), Decimal(row[2]), Decimal(row[3]))


@dataclass(frozen=True)
class WebhookSourceHealth:
    source: str
    received: int
    errors: int
    last_received_at: Any

    @property
    def error_rate(self) -> Ratio:
        return Ratio(self.errors, self.received)


def webhook_error_rates(conn: Connection, tenant: Tenant, window: Window) -> dict[str, WebhookSourceHealth]:
    """Per source: stored webhooks received in the window, those that ended ``error``, and the last one."""
    sql = """
        SELECT source, count(*), count(*) FILTER (WHERE status = 'error'), max(created_at)
        FROM webhook_logs
        WHERE tenant_id = :t AND created_at >= :s AND created_at < :e
        GROUP BY source ORDER BY source"""
    return {r[0]: WebhookSourceHealth(r[0], int(r[1]), int(r[2]), r[3])
            for r in conn.execute(text(sql), _params(tenant, window))}


def last_webhook_per_source(conn: Connection, tenant: Tenant) -> dict[str, Any]:
    """When each source last delivered a webhook to the tenant (any time)."""
    sql = "SELECT source, max(created_at) FROM webhook_logs WHERE tenant_id = :t GROUP BY source"
    return {r[0]: r[1] for r in conn.execute(text(sql), {"t": tenant.id})}


def last_payment_per_source(conn: Connection, tenant: Tenant) -> dict[str, Any]:
    """When each payment source's latest payment was dated (for "no Denefits payment for 3 days")."""
    sql = "SELECT payment_source, max(payment_date) FROM payments WHERE tenant_id = :t GROUP BY 1"
    return {r[0]: r[1] for r in conn.execute(text(sql), {"t": tenant.id})}


# ---------------------------------------------------------------------------- the headline set


def summaries(conn: Connection, tenant: Tenant, windows: Sequence[Window], *, mode: Mode = "activity",
              include_historical: bool | None = None, only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """``summary`` of each of several consecutive windows (a week and the one before it, a trend's weeks)
    in three statements, whatever the number of windows. ``only``: count just these stage metrics (the
    others, and the rates built on them, read 0 or None) — for a caller that shows only a few."""
    all_counts = stage_counts_per(conn, tenant, windows, mode=mode, include_historical=include_historical,
                                  only=only)
    all_money = money_per(conn, tenant, windows, include_historical=include_historical)
    all_spend = ad_spend_per(conn, tenant, windows)
    out = []
    for counts, m, spend in zip(all_counts, all_money, all_spend, strict=True):
        out.append({
            **counts,
            "cash_collected": money_value(m.cash_collected),
            "projected_revenue": money_value(m.projected_revenue),
            "refunds": money_value(m.refunds),
            "ad_spend": money_value(spend),
            "cpl": cpl(spend, counts["leads"]),
            "cpa": cpa(spend, counts["buyers"]),
            "roas": roas(m.projected_revenue, spend),
            "roas_cash": roas(m.cash_collected, spend),
            "show_rate": show_rate(counts["meetings_held"], counts["meetings_booked"]),
            "close_rate": close_rate(counts["buyers"], counts["meetings_held"]),
            "conversion_rate": ratio(counts["buyers"], counts["leads"]),
            "payments": m.to_dict()["by_category"],
        })
    return out


def summary(conn: Connection, tenant: Tenant, window: Window, *, mode: Mode = "activity",
            include_historical: bool | None = None) -> dict[str, Any]:
    """The headline metrics of a window, keyed by metric name: every stage count, the money, ad spend,
    CPL, CPA, ROAS (projected and cash), show rate, close rate and the stage-to-stage conversions."""
    return summaries(conn, tenant, [window], mode=mode, include_historical=include_historical)[0]


TREND_STAGES: tuple[str, ...] = ("leads", "meetings_held", "buyers")


def weekly_trend(conn: Connection, tenant: Tenant, window: Window, *,
                 include_historical: bool | None = None) -> list[dict[str, Any]]:
    """Per consecutive 7-day window of ``window`` (``Window.weeks``): leads, meetings held, buyers, cash
    collected, projected revenue, ad spend and ROAS — the headline trend. It reads only the events those
    stages need, and every week at once: one statement each for the counts, the money and the spend."""
    weeks = window.weeks()
    all_counts = stage_counts_per(conn, tenant, weeks, include_historical=include_historical, only=TREND_STAGES)
    all_money = money_per(conn, tenant, weeks, include_historical=include_historical)
    all_spend = ad_spend_per(conn, tenant, weeks)
    out = []
    for week, counts, m, spend in zip(weeks, all_counts, all_money, all_spend, strict=True):
        out.append({
            "window": week.to_dict(),
            **{name: counts[name] for name in TREND_STAGES},
            "cash_collected": money_value(m.cash_collected),
            "projected_revenue": money_value(m.projected_revenue),
            "ad_spend": money_value(spend),
            "roas": roas(m.projected_revenue, spend),
        })
    return out


def change(current: float | int | None, previous: float | int | None) -> dict[str, Any]:
    """Week-over-week style change: absolute delta and relative change (None when undefined)."""
    if current is None or previous is None:
        return {"current": current, "previous": previous, "delta": None, "pct": None}
    delta = round(float(current) - float(previous), 4)
    return {"current": current, "previous": previous, "delta": delta, "pct": ratio(delta, previous)}
