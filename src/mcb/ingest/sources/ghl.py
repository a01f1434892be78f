"""GoHighLevel (CRM booking) webhooks, spec 3.6, with R-13, R-15, R-17, R-18, R-27 fixed.

GHL posts from a workflow's "Webhook" / "Custom Webhook" action: GHL's standard keys at the root
(``contact_id``, ``email``, ``pipleline_stage`` — GHL's own misspelling — ``pipeline_name``, ``calendar``,
the contact's custom fields by name such as ``MC_ID`` …) plus ``customData``, the key/value pairs the
operator configured in the action. Inputs, first non-empty wins:

- contact: ``customData.contact_id`` | ``contact_id`` — required, else PayloadError;
- event: ``customData.event_type`` | ``type`` (explicit), else derived from the stage names below;
- email (→ ``email_booking``): ``email`` | ``customData.email`` (root first: customData.email sometimes
  held the host's address); phone: ``customData.phone`` | ``phone``; names: ``first_name`` / ``last_name``
  (root, then customData; ``full_name`` split when both are missing);
- ``customData.MC_ID`` | ``MC_ID``; ``customData.AD_ID`` | ``AD_ID``; ``customData.source``;
  ``customData.tags`` (an object, or a JSON string of one);
- stage names: the GHL stage ``pipleline_stage`` | ``pipeline_stage`` and the custom stage
  ``customData.pipeline_stage``.

GHL renders an empty field as ``""``, ``null`` or, for a merge tag it could not fill, the literal
``{{contact.mc_id}}``: all mean "not said" and never clear a stored value (R-13).

Stage-name derivation (spec 3.6 order), when no explicit type is given:

1. a stage name containing "no show" / "noshow" / "no-show" → NoShow → skipped;
2. a stage name containing deposit / paid / "pay in full" / payment → PaymentStage → skipped (payments
   come from Stripe and Denefits);
3. custom stage (or GHL stage written the same way, e.g. PPCU's "Form Filled") form_filled →
   OpportunityCreate / ``form_submitted`` (R-18: a form fill is not an appointment); meeting_booked →
   OpportunityCreate / ``appointment_scheduled``; meeting_attended → MeetingCompleted /
   ``appointment_held``; package_sent → PackageSent / ``package_sent``;
4. GHL stage exactly "dc booked" → ``appointment_scheduled``; "completed dc" → ``appointment_held``;
5. GHL stage (or, without one, the custom stage) containing scheduled / booked →
   ``appointment_scheduled``; completed / attended → ``appointment_held``; package / the word "sent"
   (not "consent") → ``package_sent``; otherwise ContactUpdate → ``contact_updated`` (no stage).

Explicit types (case, ``_`` and spaces ignored): NoShow, PaymentStage → skipped; MeetingCompleted →
``appointment_held``; PackageSent → ``package_sent``; ContactCreate, ContactUpdate → ``contact_updated``;
OpportunityCreate and OpportunityStageUpdate → the derivation above (the stage name tells which milestone
an opportunity reached), defaulting to ``form_submitted`` for OpportunityCreate (the original's default
stage) and ``contact_updated`` for a stage update; MCB's own names (form_submitted, appointment_scheduled,
appointment_held, package_sent, contact_updated) are accepted as themselves. Anything else is a
PayloadError naming the accepted types.

Stages: ``form_submitted`` → form_submitted, ``appointment_scheduled`` → meeting_booked,
``appointment_held`` → meeting_held, ``package_sent`` → package_sent; ``apply_event`` only moves forward.

Keys (R-15): a milestone is recorded once per contact and type, ``ghl_<contact>_<event type>`` (a second
booking after a no-show is the same milestone); a contact update has no id of its own, so its key is
``ghl_<contact>_contact_updated_<digest of the body>`` — the same body is the same update.

Occurrence time (R-17): ``customData.date_added`` | ``customData.dateAdded`` when the workflow maps the
trigger's date; else, for ``appointment_held``, the appointment's start (``customData.appointment_time``
| ``calendar.startTime``, never later than the receive time); for ``appointment_scheduled`` the booking's
creation (``calendar.date_created`` | ``calendar.dateAdded``); else the receive time. GHL's root
``date_created`` is the contact's creation, not the event's, and is not used. Times without an offset are
read in ``calendar.selectedTimezone`` when GHL names one, else as UTC.

Contact: ghl_id, email_booking, phone, names, mc_id, ad_id; source = ``customData.source``, else
"instagram" when MC_ID or AD_ID is present, else "website" (``live``: an engaged historical contact
graduates); tags = ``customData.tags`` + ``ghl_stage`` (the stage name as GHL wrote it) + ``pipeline``
(``ppcu_pipeline`` / ``free_discovery_call`` for PPCU's two pipelines, else a slug of pipeline_name).
Matched by ghl_id, then MC_ID (which links the GHL id to the ManyChat contact, R-20), then e-mail, then
phone; a contact GHL creates gets a ``contact_created`` lead event (R-28).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Final

from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, PayloadError
from mcb.funnel.identity import clean_text, normalize_email, normalize_phone
from mcb.ingest.sources.common import content_key, first_object, known_keys_missing, parse_time

SOURCE: Final = "ghl"

# outcome -> (funnel event type, stage)
OUTCOMES: dict[str, tuple[str, str | None]] = {
    "form_submitted": ("form_submitted", "form_submitted"),
    "appointment_scheduled": ("appointment_scheduled", "meeting_booked"),
    "appointment_held": ("appointment_held", "meeting_held"),
    "package_sent": ("package_sent", "package_sent"),
    "contact_updated": ("contact_updated", None),
}
SKIP_NO_SHOW: Final = "skip_no_show"
SKIP_PAYMENT: Final = "skip_payment"
DERIVE: Final = "derive"

# explicit type (lower-case, without "_" and spaces) -> (provider event name, outcome or DERIVE)
EXPLICIT: dict[str, tuple[str, str]] = {
    **{name.replace("_", ""): (name, name) for name in OUTCOMES},  # MCB's names (PackageSent wins below)
    "opportunitycreate": ("OpportunityCreate", DERIVE),
    "opportunitystageupdate": ("OpportunityStageUpdate", DERIVE),
    "meetingcompleted": ("MeetingCompleted", "appointment_held"),
    "packagesent": ("PackageSent", "package_sent"),
    "contactcreate": ("ContactCreate", "contact_updated"),
    "contactupdate": ("ContactUpdate", "contact_updated"),
    "noshow": ("NoShow", SKIP_NO_SHOW),
    "paymentstage": ("PaymentStage", SKIP_PAYMENT),
}
ACCEPTED_EVENTS = tuple(sorted({name for name, _ in EXPLICIT.values()}))
# What an explicit opportunity type means when its stage name names no milestone.
_OPPORTUNITY_DEFAULT = {"OpportunityCreate": "form_submitted", "OpportunityStageUpdate": "contact_updated"}

# Step 3: custom stage values (also matched against the GHL stage written the same way).
CUSTOM_STAGES: dict[str, tuple[str, str]] = {
    "form_filled": ("OpportunityCreate", "form_submitted"),
    "meeting_booked": ("OpportunityCreate", "appointment_scheduled"),
    "meeting_attended": ("MeetingCompleted", "appointment_held"),
    "package_sent": ("PackageSent", "package_sent"),
}
# Step 4: exact GHL stage names of PPCU's FREE DISCOVERY CALL PIPELINE.
EXACT_STAGES: dict[str, tuple[str, str]] = {
    "dc booked": ("OpportunityCreate", "appointment_scheduled"),
    "completed dc": ("MeetingCompleted", "appointment_held"),
}
PIPELINES = {"ppcu pipeline": "ppcu_pipeline", "free discovery call pipeline": "free_discovery_call"}

# GHL's standard workflow-webhook keys: read, or knowingly ignored (address, owner, workflow metadata).
ROOT_KEYS = {
    "id", "contact_id", "location_id", "first_name", "last_name", "full_name", "email", "phone", "tags",
    "address1", "city", "state", "country", "postal_code", "timezone", "date_created", "date_of_birth",
    "company_name", "website", "full_address", "contact_type", "contact_source", "gclid", "location",
    "user", "owner", "workflow", "triggerData", "contact", "attributionSource", "lastAttributionSource",
    "customData", "calendar", "opportunity_name", "status", "lead_value", "opportunity_source", "source",
    "pipleline_stage", "pipeline_stage", "pipeline_id", "pipeline_name", "type", "MC_ID", "AD_ID",
}
# The customData keys MCB's GHL workflows send.
CUSTOM_KEYS = {
    "contact_id", "event_type", "email", "phone", "first_name", "last_name", "full_name", "MC_ID", "AD_ID",
    "source", "tags", "pipeline_stage", "appointment_time", "date_added", "dateAdded",
}


def _text(value: Any) -> str | None:
    """clean_text, and an unrendered GHL merge tag (``{{contact.x}}``) is no value either."""
    text = clean_text(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    return None if text is None or "{{" in text else text


def _first(*values: Any) -> str | None:
    return next((t for t in (_text(v) for v in values) if t is not None), None)


def _words(stage: str) -> str:
    return re.sub(r"[\s_]+", " ", stage.lower()).strip()


def _slug(stage: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", stage.lower()).strip("_")


def derive(ghl_stage: str | None, custom_stage: str | None) -> tuple[str, str]:
    """(provider event name, outcome) from the stage names, in the spec's order (see the docstring)."""
    names = [_words(s) for s in (ghl_stage, custom_stage) if s]
    if any(re.search(r"no ?-?show", n) for n in names):
        return "NoShow", SKIP_NO_SHOW
    if any(word in n for n in names for word in ("deposit", "paid", "pay in full", "payment")):
        return "PaymentStage", SKIP_PAYMENT
    for stage in (custom_stage, ghl_stage):
        if stage and _slug(stage) in CUSTOM_STAGES:
            return CUSTOM_STAGES[_slug(stage)]
    if ghl_stage and _words(ghl_stage) in EXACT_STAGES:
        return EXACT_STAGES[_words(ghl_stage)]
    name = _words(ghl_stage or custom_stage or "")
    if "scheduled" in name or "booked" in name:
        return "OpportunityCreate", "appointment_scheduled"
    if "completed" in name or "attended" in name:
        return "MeetingCompleted", "appointment_held"
    if "package" in name or re.search(r"\bsent\b", name):
        return "PackageSent", "package_sent"
    return "ContactUpdate", "contact_updated"


def classify(explicit: str | None, ghl_stage: str | None, custom_stage: str | None) -> tuple[str, str]:
    """(provider event name, outcome): the explicit type when given, else the stage names."""
    if explicit is None:
        return derive(ghl_stage, custom_stage)
    known = EXPLICIT.get(re.sub(r"[\s_]+", "", explicit.lower()))
    if known is None:
        raise PayloadError(f"unknown GHL event type {explicit!r}; accepted: {', '.join(ACCEPTED_EVENTS)}")
    name, outcome = known
    if outcome != DERIVE:
        return name, outcome
    derived = derive(ghl_stage, custom_stage)[1]
    return name, derived if derived != "contact_updated" else _OPPORTUNITY_DEFAULT[name]


def _time(value: Any, zone: str | None) -> datetime | None:
    """A GHL date in UTC; naive times are in the calendar's ``zone``, else UTC."""
    return parse_time(value, zone)


def _tags(custom: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """customData.tags as an object (None values dropped) and whether it could be read."""
    raw = custom.get("tags")
    if raw is None or raw == "":
        return {}, True
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}, False
    if not isinstance(raw, dict):
        return {}, False
    return {str(k): v for k, v in raw.items() if v is not None and v != ""}, True


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse(payload: Any, *, received_at: datetime) -> Normalized:
    root = first_object(payload)
    custom = _object(root.get("customData"))
    calendar = _object(root.get("calendar"))
    contact_id = _first(custom.get("contact_id"), root.get("contact_id"))
    if contact_id is None:
        raise PayloadError("GHL payload has no contact_id (customData.contact_id or contact_id)")

    ghl_stage = _first(root.get("pipleline_stage"), root.get("pipeline_stage"))
    custom_stage = _first(custom.get("pipeline_stage"))
    provider_event, outcome = classify(_first(custom.get("event_type"), root.get("type")), ghl_stage, custom_stage)

    mc_id = _first(custom.get("MC_ID"), root.get("MC_ID"))
    ad_id = _first(custom.get("AD_ID"), root.get("AD_ID"))
    first_name = _first(root.get("first_name"), custom.get("first_name"))
    last_name = _first(root.get("last_name"), custom.get("last_name"))
    full_name = _first(root.get("full_name"), custom.get("full_name"))
    if first_name is None and last_name is None and full_name:
        first_name, _, rest = full_name.partition(" ")
        last_name = rest.strip() or None
    tags, tags_read = _tags(custom)
    stage_name = ghl_stage or custom_stage
    if stage_name:
        tags["ghl_stage"] = stage_name
    pipeline_name = _first(root.get("pipeline_name"))
    if pipeline_name:
        tags["pipeline"] = PIPELINES.get(_words(pipeline_name), _slug(pipeline_name))
    facts = ContactFacts(
        ghl_id=contact_id,
        mc_id=mc_id,
        email_booking=normalize_email(_text(root.get("email"))) or normalize_email(_text(custom.get("email"))),
        phone=normalize_phone(_first(custom.get("phone"), root.get("phone"))),
        first_name=first_name,
        last_name=last_name,
        ad_id=ad_id,
        source=_first(custom.get("source")) or ("instagram" if mc_id or ad_id else "website"),
        # An explicit source or a ManyChat/ad id is evidence; "website" is only the fallback guess.
        source_rule="live" if (_first(custom.get("source")) or mc_id or ad_id) else "default",
        tags=tags,
    )

    unknown = known_keys_missing(root, ROOT_KEYS)
    unknown += known_keys_missing(custom, CUSTOM_KEYS, prefix="customData.")
    if not tags_read:
        unknown.append("customData.tags")
    if outcome in (SKIP_NO_SHOW, SKIP_PAYMENT):
        why = "no-show stage" if outcome == SKIP_NO_SHOW else "payment stage"
        after = "nothing happened to record" if outcome == SKIP_NO_SHOW else "payments come from Stripe and Denefits"
        return Normalized(
            source=SOURCE, event_type=provider_event, contact=facts,
            match_by=("ghl_id", "mc_id", "email", "phone"),
            skip_reason=f"{why} {stage_name or provider_event!r}: {after}",
            unknown_keys=tuple(unknown),
        )

    zone = _text(calendar.get("selectedTimezone"))
    appointment_at = _time(custom.get("appointment_time"), zone) or _time(calendar.get("startTime"), zone)
    occurred = _time(custom.get("date_added"), zone) or _time(custom.get("dateAdded"), zone)
    if occurred is None and outcome == "appointment_held" and appointment_at and appointment_at <= received_at:
        occurred = appointment_at
    if occurred is None and outcome == "appointment_scheduled":
        occurred = _time(calendar.get("date_created"), zone) or _time(calendar.get("dateAdded"), zone)
    event_type, stage = OUTCOMES[outcome]
    ghl_tags = root.get("tags")
    data = {
        "ghl_event": provider_event,
        "ghl_contact_id": contact_id,
        "ghl_stage": ghl_stage,
        "custom_stage": custom_stage,
        "pipeline_name": pipeline_name,
        "pipeline_id": _first(root.get("pipeline_id")),
        "opportunity_name": _first(root.get("opportunity_name")),
        "opportunity_status": _first(root.get("status")),
        "opportunity_source": _first(root.get("opportunity_source"), root.get("source")),
        "lead_value": root.get("lead_value") if isinstance(root.get("lead_value"), int | float) else None,
        "appointment_at": appointment_at.isoformat() if appointment_at else None,
        "calendar_name": _first(calendar.get("calendarName"), calendar.get("title")),
        "workflow_name": _first(_object(root.get("workflow")).get("name")),
        "ghl_tags": [t for t in ghl_tags if isinstance(t, str)] if isinstance(ghl_tags, list) else None,
        "mc_id": mc_id,
        "ad_id": ad_id,
    }
    key = (f"ghl_{contact_id}_{event_type}" if outcome != "contact_updated"
           else f"ghl_{contact_id}_contact_updated_{content_key(root)}")
    event = FunnelEvent(
        event_type=event_type,
        source_event_id=key,
        occurred_at=occurred or received_at,
        stage=stage,
        data={k: v for k, v in data.items() if v not in (None, [])},
        tags=dict(tags),
    )
    return Normalized(
        source=SOURCE,
        event_type=provider_event,
        contact=facts,
        events=(event,),
        may_create_contact=True,
        match_by=("ghl_id", "mc_id", "email", "phone"),
        lead_event_type="contact_created",
        unknown_keys=tuple(unknown),
    )
