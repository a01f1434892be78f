"""ManyChat (Instagram DM bot) webhooks, spec 3.5, with R-16/R-17 fixed.

Two payload forms: ``{"subscriber": {...full subscriber...}, "event_type": ...}`` (preferred) or the
subscriber object itself at the root. The original's third form, a bare ``subscriber_id``, is completed by
the worker from ManyChat's API before this module reads it (``mcb.ingest.enrich``, R-26).

Event inference when ``event_type`` is absent, from boolean custom fields (first hit wins):
MCB_CLICKED_LINK → link_clicked, MCB_SENT_LINK → link_sent, MCB_LEAD_CONTACT → dm_qualified,
MCB_LEAD → contact_created, else contact_update.

Keys are deterministic (R-15): ``mc_<subscriber>_<event type>``; dated milestones use the date ManyChat
sends (DATE_* custom fields, R-17). The answers are kept under semantic names (R-16).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, PayloadError
from mcb.funnel.identity import clean_text, normalize_email, normalize_phone
from mcb.ingest.sources.common import content_key, first_object, known_keys_missing, parse_time

SOURCE: Final = "manychat"

# ManyChat event -> (funnel event type, stage, DATE_* custom field with the real time)
EVENTS: dict[str, tuple[str, str | None, str | None]] = {
    "contact_created": ("contact_subscribed", "new_lead", None),
    "dm_qualified": ("dm_qualified", "dm_qualified", "DATE_DM_QUALIFIED"),
    "link_sent": ("link_sent", "landing_link_sent", "DATE_LINK_SENT"),
    "link_clicked": ("link_clicked", "landing_link_clicked", "DATE_LINK_CLICKED"),
    "contact_update": ("contact_updated", None, None),
}
ACCEPTED_EVENTS = tuple(EVENTS)

INFERENCE = (
    ("MCB_CLICKED_LINK", "link_clicked"),
    ("MCB_SENT_LINK", "link_sent"),
    ("MCB_LEAD_CONTACT", "dm_qualified"),
    ("MCB_LEAD", "contact_created"),
)

# Subscriber keys this module reads or knowingly ignores (ManyChat's standard subscriber fields).
SUBSCRIBER_KEYS = {
    "id", "key", "page_id", "user_refs", "status", "first_name", "last_name", "name", "gender",
    "profile_pic", "locale", "language", "timezone", "live_chat_url", "last_input_text", "optin_phone",
    "phone", "optin_email", "email", "subscribed", "last_interaction", "ig_last_interaction",
    "last_seen", "ig_last_seen", "is_followup_enabled", "ig_username", "ig_id", "whatsapp_phone",
    "optin_whatsapp", "custom_fields", "tags", "instagram_username",
}
ROOT_KEYS = {"subscriber", "event_type", "subscriber_id", "type"}

# Custom fields with a meaning (several spellings existed over time).
FIELDS = {
    "email": ("custom field email", "MCB_SEARCH_EMAIL"),
    "ad_id": ("AD_ID", "ADID"),
    "source": ("source", "Source"),
    "chatbot_variant": ("chatbot_AB", "Chatbot AB Test"),
    "symptoms": ("Symptoms", "Q1"),
    "months_postpartum": ("Months Postpartum", "How Far Postpartum", "Q2"),
    "objections": ("Objections",),
    "lead_summary": ("Cody > Response",),
    "trigger_word": ("trigger_word", "All Tags"),
    "thread_id": ("thread_id", "Conversation ID"),
}


def _custom(sub: dict[str, Any]) -> dict[str, Any]:
    fields = sub.get("custom_fields") or {}
    if isinstance(fields, list):  # some exports send [{"name": ..., "value": ...}]
        return {str(f.get("name")): f.get("value") for f in fields if isinstance(f, dict)}
    return fields if isinstance(fields, dict) else {}


def _pick(custom: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = custom.get(name)
        if clean_text(value) is not None:
            return value
    return None


def _time(value: Any) -> datetime | None:
    return parse_time(value)


def parse(payload: Any, *, received_at: datetime) -> Normalized:
    root = first_object(payload)
    sub = root.get("subscriber") if isinstance(root.get("subscriber"), dict) else None
    if sub is None:
        if "id" in root and ("custom_fields" in root or "first_name" in root):
            sub = root  # the subscriber object sent at the root
        elif root.get("subscriber_id"):
            raise PayloadError(
                "ManyChat sent only subscriber_id; configure the ManyChat request to send the full "
                "subscriber data (Body → Add Full Contact Data)"
            )
        else:
            raise PayloadError("ManyChat payload has no subscriber")
    subscriber_id = clean_text(sub.get("id"))
    if subscriber_id is None:
        raise PayloadError("ManyChat subscriber has no id")
    custom = _custom(sub)

    event = clean_text(root.get("event_type") or root.get("type"))
    if event is None:
        event = next((name for field_name, name in INFERENCE if custom.get(field_name) is True), "contact_update")
    if event not in EVENTS:
        raise PayloadError(f"unknown ManyChat event_type {event!r}; accepted: {', '.join(ACCEPTED_EVENTS)}")
    event_type, stage, date_field = EVENTS[event]

    occurred = _time(custom.get(date_field)) if date_field else None
    if event == "contact_created":
        occurred = _time(sub.get("subscribed"))
    occurred = occurred or received_at

    ig_id = sub.get("ig_id")
    variant = clean_text(_pick(custom, FIELDS["chatbot_variant"]))
    facts = ContactFacts(
        mc_id=subscriber_id,
        ig_id=int(ig_id) if isinstance(ig_id, int | str) and str(ig_id).isdigit() else None,
        email_primary=normalize_email(sub.get("email")) or normalize_email(_pick(custom, FIELDS["email"])),
        phone=normalize_phone(clean_text(sub.get("phone")) or clean_text(sub.get("whatsapp_phone"))),
        first_name=clean_text(sub.get("first_name")),
        last_name=clean_text(sub.get("last_name")),
        ig=clean_text(sub.get("ig_username") or sub.get("instagram_username")),
        fb=clean_text(sub.get("name")),
        ad_id=clean_text(_pick(custom, FIELDS["ad_id"])),
        source=clean_text(_pick(custom, FIELDS["source"])) or "instagram",
        source_rule="live",
        tags={"chatbot": variant} if variant else {},
    )
    data = {
        name: clean_text(_pick(custom, FIELDS[name]))
        for name in ("symptoms", "months_postpartum", "objections", "lead_summary", "trigger_word", "thread_id")
    }
    data.update(chatbot_variant=variant, ad_id=facts.ad_id, mc_id=subscriber_id, manychat_event=event)
    events = (
        FunnelEvent(
            event_type=event_type,
            # A profile update has no id of its own: the same content is the same update.
            source_event_id=f"mc_{subscriber_id}_{event_type}" if event != "contact_update"
            else f"mc_{subscriber_id}_contact_updated_{content_key(sub)}",
            occurred_at=occurred,
            stage=stage,
            data={k: v for k, v in data.items() if v is not None},
            tags=dict(facts.tags),
        ),
    )
    unknown = known_keys_missing(sub, SUBSCRIBER_KEYS, prefix="subscriber.")
    unknown += known_keys_missing(root, ROOT_KEYS | (SUBSCRIBER_KEYS if sub is root else set()))
    return Normalized(
        source=SOURCE,
        event_type=event,
        contact=facts,
        events=events,
        may_create_contact=True,
        match_by=("mc_id", "email", "phone"),
        lead_event_type="contact_subscribed",
        unknown_keys=tuple(unknown),
    )
