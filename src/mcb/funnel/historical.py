"""Historical import: the original's CSV exports of contacts and payments, through ``apply_event``.

Each CSV row becomes one ``Normalized`` delivery (spec section 6: the Google Sheets/Airtable contact lists
and the Stripe/Denefits payment exports the original loaded into ``hist_*``), applied by the one write
path, so an imported person is matched, merged and staged exactly as a webhook's would be.

- Historical: a contact created by an import gets the source ``<label>_historical`` (empty label:
  ``unknown_historical``, spec 6) as a *default*, so it never replaces a live source, and a later live
  engagement graduates the contact (spec 5.1). Its events carry ``event_data.historical = true`` and
  ``created_by = 'import'``.
- Idempotent: every key is derived from the row (contacts: the e-mail and the event type; payments: the
  export's id, else a digest of the row), so a rerun finds everything in place and changes nothing.
- Rows the import cannot use are skipped with a reason; rows it imports with a doubt (a phone too short to
  keep, a repeated e-mail, an orphan payment) are counted as suspicious with the reason.

Each run is recorded in ``hist_import_logs``.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from dateutil import parser as dateparser
from email_validator import EmailNotValidError, validate_email
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine, text

from mcb.analytics.rollups import compact_event_counts
from mcb.db.session import tenant_session
from mcb.errors import UserError
from mcb.funnel.apply import IdentityConflict, apply_event
from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, Payment
from mcb.funnel.identity import clean_text, normalize_phone

Kind = Literal["contacts", "payments"]
KINDS: tuple[Kind, ...] = ("contacts", "payments")

# Header spellings seen in the original's exports (hist_* column names, Sheets/Airtable headers, the
# Stripe and Denefits dashboards' CSVs as /reconcile-payments reads them, spec 5.3), by canonical name.
CONTACT_HEADERS: dict[str, tuple[str, ...]] = {
    "email": ("email", "email_primary", "e_mail", "email_address", "customer_email"),
    "first_name": ("first_name", "firstname", "first"),
    "last_name": ("last_name", "lastname", "last"),
    "name": ("name", "full_name", "customer_name", "contact_name"),
    "phone": ("phone", "phone_number", "mobile", "customer_phone"),
    "source": ("source", "traffic_source"),
    "ad_type": ("ad_type",),
    "ad_id": ("ad_id",),
    "mc_id": ("mc_id", "manychat_id", "subscriber_id"),
    "ghl_id": ("ghl_id",),
    "ig": ("ig", "instagram", "instagram_handle"),
    "trigger_word": ("trigger_word", "keyword"),
    "campaign_name": ("campaign_name", "campaign"),
    "reached_stage": ("reached_stage", "stage"),
    "has_purchase": ("has_purchase", "purchased"),
    "first_seen": ("first_seen", "created", "created_at", "date_added", "subscribe_date"),
    "last_seen": ("last_seen", "last_activity"),
    "purchase_date": ("purchase_date",),
    "data_quality_notes": ("data_quality_notes", "notes"),
    "is_suspicious": ("is_suspicious",),
}
PAYMENT_HEADERS: dict[str, tuple[str, ...]] = {
    "email": ("email", "customer_email", "email_metadata", "customer_email_metadata"),
    "name": ("name", "customer_name"),
    "phone": ("phone", "customer_phone"),
    "amount": ("amount", "payment_plan_amount", "total"),
    "currency": ("currency",),
    "payment_date": ("payment_date", "created_date_utc", "created", "date", "sign_up_date"),
    "source": ("source", "payment_source"),
    "external_id": ("external_id", "payment_plan_id", "id", "charge_id", "payment_event_id"),
    "payment_type": ("payment_type", "type"),
    "payment_category": ("payment_category", "category"),
    "status": ("status",),
    "stripe_customer_id": ("customer_id", "stripe_customer_id"),
    "is_suspicious": ("is_suspicious",),
}
REQUIRED: dict[Kind, tuple[str, ...]] = {"contacts": ("email",), "payments": ("amount", "payment_date")}

# reached_stage (hist_contacts' vocabulary) -> the events it evidences, in funnel order.
STAGE_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("qualified", "dm_qualified", "dm_qualified"),
    ("booked", "appointment_scheduled", "meeting_booked"),
    ("attended", "appointment_held", "meeting_held"),
    ("purchased", "purchase_completed", "purchased"),
)
REACHED = ("contacted", *(s for s, _, _ in STAGE_EVENTS))
# The original's fallback estimates working back from a purchase (spec 6): held 5 days before it,
# booked 7 days before held.
HELD_BEFORE_PURCHASE = timedelta(days=5)
BOOKED_BEFORE_HELD = timedelta(days=7)

DEPOSIT_AMOUNT = Decimal("100")  # a Stripe charge of exactly this much is a deposit (spec 1.6)
NOT_PAID = ("failed", "canceled", "cancelled", "incomplete", "pending", "void", "uncaptured")
TRUE_WORDS = ("1", "true", "yes", "y", "t", "x")


@dataclass
class RowPlan:
    """What one CSV row becomes: a delivery to apply (with doubts), or a skip with its reason."""

    line: int
    normalized: Normalized | None = None
    skip: str | None = None
    suspicious: list[str] = field(default_factory=list)
    payment_key: str | None = None


@dataclass
class ImportSummary:
    kind: Kind
    file: str
    tenant: str
    source_label: str | None
    rows: int = 0
    imported: int = 0
    already_imported: int = 0
    skipped: int = 0
    suspicious: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0  # rows that added to a contact that existed before the row
    events_created: int = 0
    payments_created: int = 0
    orphan_payments: int = 0
    reasons: dict[str, dict[str, int]] = field(default_factory=lambda: {"skipped": {}, "suspicious": {}})
    problems: list[dict[str, Any]] = field(default_factory=list)
    log_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# ----------------------------------------------------------------------------------------------- reading


def _header_key(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name.strip().lower())
    return "_".join(p for p in cleaned.split("_") if p)


def read_csv(path: Path, kind: Kind) -> tuple[list[dict[str, str]], list[str]]:
    """The file's rows keyed by canonical column name, and the header as written. A file that cannot be
    read as this kind of export raises one UserError sentence."""
    if not path.is_file():
        raise UserError(f"No file {str(path)!r}.")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        try:
            content = path.read_text(encoding="cp1252")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path.name} is not a text CSV file (it cannot be decoded).") from exc
    if not content.strip():
        raise UserError(f"{path.name} is empty.")
    try:
        dialect: Any = csv.Sniffer().sniff(content[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(content), dialect)
    try:
        header = next(reader)
        body = list(reader)
    except csv.Error as exc:
        raise UserError(f"{path.name} is not a readable CSV file: {exc}.") from exc
    aliases = CONTACT_HEADERS if kind == "contacts" else PAYMENT_HEADERS
    lookup = {alias: name for name, spellings in aliases.items() for alias in spellings}
    columns: dict[int, str] = {}
    for i, raw in enumerate(header):
        name = lookup.get(_header_key(raw))
        if name is not None and name not in columns.values():
            columns[i] = name
    missing = [r for r in REQUIRED[kind] if r not in columns.values()]
    if missing:
        raise UserError(
            f"{path.name} is not a {kind} export: it has no {' or '.join(missing)} column "
            f"(its columns are: {', '.join(h.strip() for h in header) or 'none'})."
        )
    rows = []
    for record in body:
        if not any(cell.strip() for cell in record):
            continue
        rows.append({name: record[i] if i < len(record) else "" for i, name in columns.items()})
    return rows, header


def _export_kind(header: list[str]) -> str | None:
    """Which dashboard a payments export came from, when its rows do not say (Stripe's has "Created date
    (UTC)", Denefits' has "Payment Plan ID")."""
    keys = {_header_key(h) for h in header}
    if "payment_plan_id" in keys or "payment_plan_amount" in keys or "sign_up_date" in keys:
        return "denefits"
    if "created_date_utc" in keys or "charge_id" in keys:
        return "stripe"
    return None


# -------------------------------------------------------------------------------------------- row values


def parse_date(value: str | None, zone: ZoneInfo) -> datetime | None:
    """A date or time from a spreadsheet, read in the tenant's zone when it has no offset; None if empty.
    Raises ValueError when there is text that is not a date."""
    text_value = clean_text(value)
    if text_value is None:
        return None
    try:
        parsed = datetime.fromisoformat(text_value)
    except ValueError:
        try:
            parsed = dateparser.parse(text_value)  # US month-first, as the original's exports write
        except (ValueError, OverflowError) as exc:
            raise ValueError(text_value) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_amount(value: str | None) -> Decimal:
    """Dollars as the exports write them ("$1,997.00", "(100.00)" for a negative). ValueError otherwise."""
    raw = (value or "").strip().replace("$", "").replace(",", "").replace(" ", "")
    negative = raw.startswith("(") and raw.endswith(")")
    raw = raw.strip("()")
    try:
        amount = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(value) from exc
    if not amount.is_finite():
        raise ValueError(value)
    return (-amount if negative else amount).quantize(Decimal("0.01"))


def check_email(value: str | None) -> str | None:
    """The address lower-cased, None when empty; ValueError when it is not an address."""
    raw = clean_text(value)
    if raw is None:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(raw) from exc


def _phone(value: str | None, doubts: list[str]) -> str | None:
    raw = clean_text(value)
    if raw is None:
        return None
    digits = "".join(c for c in raw if c.isdigit())
    if len(digits) < 10:  # the original kept digits-only phones of at least 10 digits (spec 6)
        doubts.append("phone too short (not kept)")
        return None
    return normalize_phone(raw)


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


# ------------------------------------------------------------------------------------------------ plans


def plan_contact(line: int, row: dict[str, str], zone: ZoneInfo, label: str | None) -> RowPlan:
    """One contacts row as a delivery: the contact, its lead event and the stage events it evidences."""
    doubts: list[str] = []
    try:
        email = check_email(row.get("email"))
    except ValueError:
        return RowPlan(line, skip="bad email")
    if email is None:
        return RowPlan(line, skip="no email")
    dates: dict[str, datetime | None] = {}
    for name in ("first_seen", "last_seen", "purchase_date"):
        try:
            dates[name] = parse_date(row.get(name), zone)
        except ValueError:
            if name == "first_seen":
                return RowPlan(line, skip="unparseable date")
            doubts.append(f"unparseable {name} (not kept)")
            dates[name] = None
    first_seen = dates["first_seen"] or dates["last_seen"] or dates["purchase_date"]
    if first_seen is None:
        return RowPlan(line, skip="no date")
    reached = (clean_text(row.get("reached_stage")) or "contacted").lower()
    if reached not in REACHED:
        doubts.append(f"unknown reached_stage {reached!r} (read as contacted)")
        reached = "contacted"
    if _is_true(row.get("has_purchase")) or (dates["purchase_date"] and reached != "purchased"):
        reached = "purchased"
    if _is_true(row.get("is_suspicious")):
        doubts.append("flagged suspicious in the export")

    first = clean_text(row.get("first_name"))
    last = clean_text(row.get("last_name"))
    if first is None and last is None and (full := clean_text(row.get("name"))):
        first, _, rest = full.partition(" ")
        last = rest.strip() or None
    original = clean_text(label) or clean_text(row.get("source")) or "unknown"
    source = original.lower().replace(" ", "_")
    if not source.endswith("_historical"):
        source += "_historical"
    facts = ContactFacts(
        email_primary=email,
        first_name=first,
        last_name=last,
        phone=_phone(row.get("phone"), doubts),
        mc_id=clean_text(row.get("mc_id")),
        ghl_id=clean_text(row.get("ghl_id")),
        ig=clean_text(row.get("ig")),
        ad_id=clean_text(row.get("ad_id")),
        source=source,
        source_rule="default",  # fills an empty source only: a live contact stays live
    )
    data = {k: v for k, v in {
        "historical": True,
        "import_source": original,
        "ad_type": clean_text(row.get("ad_type")),
        "trigger_word": clean_text(row.get("trigger_word")),
        "campaign_name": clean_text(row.get("campaign_name")),
        "data_quality_notes": clean_text(row.get("data_quality_notes")),
    }.items() if v is not None}
    events = [FunnelEvent("contact_created", f"hist_{email}_contact_created", first_seen, stage="new_lead",
                          data=data)]
    events += _stage_events(email, reached, first_seen, dates["last_seen"], dates["purchase_date"])
    normalized = Normalized(source="system", event_type="historical_contact", contact=facts,
                            events=tuple(events), match_by=("mc_id", "ghl_id", "email"))
    return RowPlan(line, normalized=normalized, suspicious=doubts)


def _stage_events(email: str, reached: str, first_seen: datetime, last_seen: datetime | None,
                  purchase: datetime | None) -> list[FunnelEvent]:
    """The milestones up to ``reached``. Times the export does not give are estimated the original's way
    (spec 6: from the purchase backwards, else the last activity) and marked ``estimated_time``."""
    depth = REACHED.index(reached)
    if depth == 0:
        return []
    anchor = max(last_seen or first_seen, first_seen)
    known: dict[str, datetime] = {}
    if purchase is not None:
        known["purchased"] = purchase
        known["attended"] = purchase - HELD_BEFORE_PURCHASE
        known["booked"] = known["attended"] - BOOKED_BEFORE_HELD
    events = []
    for name, event_type, stage in STAGE_EVENTS[:depth]:
        if name == "qualified":
            at, estimated = first_seen, True
        elif name == "purchased" and purchase is not None:
            at, estimated = purchase, False
        else:
            at, estimated = known.get(name, anchor), True
        at = max(at, first_seen)  # never before the person was first seen
        data: dict[str, Any] = {"historical": True}
        if estimated:
            data["estimated_time"] = True
        events.append(FunnelEvent(event_type, f"hist_{email}_{event_type}", at, stage=stage, data=data))
    return events


def plan_payment(line: int, row: dict[str, str], zone: ZoneInfo, export: str | None) -> RowPlan:
    """One payments row as a delivery of one payment (it never creates a contact: like a live payment,
    it is linked to its contact by e-mail now or when the contact arrives)."""
    doubts: list[str] = []
    try:
        amount = parse_amount(row.get("amount"))
    except ValueError:
        return RowPlan(line, skip="amount not a number")
    try:
        when = parse_date(row.get("payment_date"), zone)
    except ValueError:
        return RowPlan(line, skip="unparseable date")
    if when is None:
        return RowPlan(line, skip="no date")
    source = (clean_text(row.get("source")) or export or "").lower()
    if source not in ("stripe", "denefits"):
        return RowPlan(line, skip="unknown payment source (stripe or denefits)")
    status = (clean_text(row.get("status")) or "").lower()
    if status in NOT_PAID:
        return RowPlan(line, skip=f"not a payment (status {status})")
    try:
        email = check_email(row.get("email"))
    except ValueError:
        email = None
        doubts.append("bad email (stored as an orphan payment)")
    else:
        if email is None:
            doubts.append("no email (stored as an orphan payment)")
    if amount == 0:
        doubts.append("zero amount")
    if _is_true(row.get("is_suspicious")):
        doubts.append("flagged suspicious in the export")
    kind = (clean_text(row.get("payment_type")) or "").lower()
    category = (clean_text(row.get("payment_category")) or "").lower() or None
    refund = kind == "refund" or category == "refund" or status == "refunded" or amount < 0
    external = clean_text(row.get("external_id"))
    if refund:
        category, payment_type, state = "refund", "refund", "refunded"
        amount = -abs(amount)
    elif source == "stripe":
        if category not in ("deposit", "full_purchase", "miscellaneous"):
            category = ("deposit" if amount == DEPOSIT_AMOUNT
                        else "full_purchase" if amount > DEPOSIT_AMOUNT else "miscellaneous")
        payment_type, state = "buy_in_full", "paid"
    else:
        if category not in ("payment_plan", "downpayment", "recurring"):
            category = "payment_plan"  # a Denefits export row is a contract (its plan amount)
        payment_type = "buy_now_pay_later"
        state = "active" if category == "payment_plan" else "paid"
    if external and source == "denefits" and category in ("payment_plan", "downpayment"):
        key = f"{external}_{'plan' if category == 'payment_plan' else 'downpayment'}"  # as Denefits webhooks
    elif external:
        key = external if not refund or external.startswith(("re_", "evt_")) else f"{external}_refund"
    else:
        key = f"hist_{source}_{_digest(email, amount, when.isoformat(), category)}"
    payment = Payment(
        payment_event_id=key,
        payment_source=source,  # type: ignore[arg-type]  # checked above
        payment_type=payment_type,  # type: ignore[arg-type]
        payment_category=category,
        amount=amount,
        currency=(clean_text(row.get("currency")) or "usd").lower(),
        status=state,
        payment_date=when,
        customer_email=email,
        customer_name=clean_text(row.get("name")),
        customer_phone=_phone(row.get("phone"), doubts),
        stripe_customer_id=clean_text(row.get("stripe_customer_id")) if source == "stripe" else None,
        denefits_contract_code=external if source == "denefits" else None,
        denefits_financed_amount=amount if category == "payment_plan" else None,
        raw_payload={"historical_import": True, "line": line, "row": row},
    )
    normalized = Normalized(source=source, event_type="historical_payment",  # type: ignore[arg-type]
                            contact=ContactFacts(email_payment=email), payments=(payment,),
                            may_create_contact=False, match_by=("email",))
    return RowPlan(line, normalized=normalized, suspicious=doubts, payment_key=key)


# ---------------------------------------------------------------------------------------------- running


def plan_rows(kind: Kind, rows: Iterable[dict[str, str]], header: list[str], zone: ZoneInfo,
              label: str | None) -> list[RowPlan]:
    """Every row's plan, with repeats within the file found: an identical row is skipped, a repeated
    e-mail with other facts is merged into the one contact and flagged."""
    plans: list[RowPlan] = []
    seen_rows: set[tuple[tuple[str, str], ...]] = set()
    seen_keys: set[str] = set()
    export = _export_kind(header)
    # Stripe's dashboard export states its times in UTC ("Created date (UTC)"); other files are local.
    payment_zone = ZoneInfo("UTC") if "created_date_utc" in {_header_key(h) for h in header} else zone
    for index, row in enumerate(rows):
        line = index + 2  # the header is line 1
        content = tuple(sorted((k, v.strip()) for k, v in row.items()))
        if content in seen_rows:
            plans.append(RowPlan(line, skip="duplicate row"))
            continue
        seen_rows.add(content)
        plan = plan_contact(line, row, zone, label) if kind == "contacts" else plan_payment(line, row, payment_zone, export)
        if plan.normalized is not None:
            key = plan.payment_key or (plan.normalized.contact.email_primary or "")
            if key in seen_keys:
                if kind == "payments":
                    plan = RowPlan(line, skip="duplicate row (same payment id)")
                else:
                    plan.suspicious.append("email repeated in the file (merged into one contact)")
            seen_keys.add(key)
        plans.append(plan)
    return plans


def import_file(engine: Engine, tenant_id: UUID, tenant_slug: str, zone: str, kind: Kind, path: Path, *,
                source_label: str | None = None, batch: int = 200,
                on_progress: Callable[[int, int], None] | None = None) -> ImportSummary:
    """Import one CSV export for one tenant through ``apply_event``; ``engine`` is the runtime engine (the
    import runs under the tenant's RLS session). Returns the counts, also recorded in hist_import_logs."""
    if kind not in KINDS:
        raise UserError(f"Unknown import kind {kind!r}; use contacts or payments.")
    rows, header = read_csv(path, kind)
    plans = plan_rows(kind, rows, header, ZoneInfo(zone), source_label)
    summary = ImportSummary(kind, path.name, tenant_slug, source_label, rows=len(plans))
    started = datetime.now(UTC)
    done = 0
    for start in range(0, len(plans), batch):
        with tenant_session(engine, tenant_id) as conn:
            for plan in plans[start:start + batch]:
                _apply_plan(conn, tenant_id, plan, summary)
                done += 1
                if on_progress:
                    on_progress(done, len(plans))
    with tenant_session(engine, tenant_id) as conn:
        summary.log_id = _log_run(conn, tenant_id, summary, started)
        # Fold the event counts the import recorded into event_counts (revision 0016), as the worker does
        # after each batch: the reports would read them either way, but fewer rows.
        compact_event_counts(conn)
    return summary


def _count(summary: ImportSummary, bucket: str, reason: str, line: int) -> None:
    reasons = summary.reasons[bucket]
    reasons[reason] = reasons.get(reason, 0) + 1
    summary.problems.append({"line": line, "outcome": bucket, "reason": reason})


def _apply_plan(conn: Connection, tenant_id: UUID, plan: RowPlan, summary: ImportSummary) -> None:
    if plan.normalized is None:
        summary.skipped += 1
        _count(summary, "skipped", plan.skip or "unreadable row", plan.line)
        return
    existed = plan.payment_key is not None and conn.execute(
        text("SELECT 1 FROM payments WHERE tenant_id = :t AND payment_event_id = :k"),
        {"t": tenant_id, "k": plan.payment_key}).first() is not None
    savepoint = conn.begin_nested()
    try:
        result = apply_event(conn, tenant_id, plan.normalized, received_at=datetime.now(UTC), created_by="import")
    except IdentityConflict:
        savepoint.rollback()
        summary.skipped += 1
        _count(summary, "skipped", "identity conflict with an existing contact", plan.line)
        return
    savepoint.commit()
    new = result.created or result.events_created > 0 or (plan.payment_key is not None and not existed)
    if not new:
        summary.already_imported += 1
        return
    summary.imported += 1
    summary.contacts_created += int(result.created)
    summary.contacts_updated += int(plan.payment_key is None and not result.created)
    summary.events_created += result.events_created
    if plan.payment_key is not None:
        summary.payments_created += 1
        if result.status == "orphan":
            summary.orphan_payments += 1
    if plan.suspicious:
        summary.suspicious += 1
        for reason in plan.suspicious:
            _count(summary, "suspicious", reason, plan.line)


def _log_run(conn: Connection, tenant_id: UUID, summary: ImportSummary, started: datetime) -> int:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    problems = summary.problems
    return int(conn.execute(
        text(
            "INSERT INTO hist_import_logs (tenant_id, source_file, source_type, rows_processed, rows_imported, "
            "rows_skipped, rows_updated, errors, warnings, started_at, finished_at, imported_by, notes) "
            "VALUES (:t, :file, :kind, :rows, :imported, :skipped, :updated, :errors, :warnings, :started, now(), "
            ":by, :notes) RETURNING id"
        ),
        {"t": tenant_id, "file": summary.file, "kind": summary.kind, "rows": summary.rows,
         "imported": summary.imported, "skipped": summary.skipped, "updated": summary.contacts_updated,
         "errors": Jsonb([p for p in problems if p["outcome"] == "skipped"]),
         "warnings": Jsonb([p for p in problems if p["outcome"] == "suspicious"]),
         "started": started, "by": f"mcb import ({user})",
         "notes": f"already imported: {summary.already_imported}; suspicious: {summary.suspicious}"
                  + (f"; source label: {summary.source_label}" if summary.source_label else "")},
    ).scalar_one())

