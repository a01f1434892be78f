"""Perspective (landing-page funnel forms) webhooks, spec 3.9, with R-15, R-17, R-28, R-30 fixed.

Body: ``funnelName``, ``funnelId``, ``profile.{email,firstName,phone}.value`` (the visitor's profile),
``values.{email,firstName,phone}`` (the form's answers; used when the profile lacks one),
``values.ps_converted_at`` | ``meta.ps_converted_at`` (when the visitor converted: the event's time,
R-17, else the receive time), the ad id from ``values.ad_id`` | ``values.AD_ID`` | ``values.adid`` |
``meta.ad_id`` | ``meta.utm_content``, ``meta.utm_source`` / ``utm_medium`` / ``utm_campaign`` (kept in
the event), and an optional ``tags`` object.

Rules:

- a funnel whose name (lower-case) contains "checkout", "supplements" or "_lm" is deprecated (PPCU:
  LVNG_CHECKOUT, LVNG_TOF_SUPPLEMENTS, LVNG_TOF_LM): skipped, whatever else the body holds (R-30);
- no e-mail (profile or values) is a PayloadError;
- renamed funnels are one funnel: LVNG_TOFMOFBOF_Calendly is LVNG_BOF_Calendly (``ALIASES``); the tag
  ``funnel`` holds the canonical name, the event keeps the raw one as ``funnel_name``;
- tags: ``funnel``; ``booking_source`` calendly / jane when the name contains it; ``traffic_source``
  manychat when it contains "manychat", website_other when it contains "website" or "other";
  ``perspective_funnel_id``; the payload's ``tags`` override them;
- one ``form_submitted`` event (stage form_submitted) keyed ``perspective_<funnelId or canonical
  name>_<email>``: one form submission per funnel and person, so redeliveries and resubmissions of the
  same funnel change nothing (R-15; the original's key embedded the receive time);
- contact: ``email_primary``, ``first_name``, ``phone``, ``ad_id`` (first touch), source
  "instagram_direct" only when the contact has none; matched by any of its three e-mails, then phone.
  A contact Perspective creates is a lead and gets a ``contact_created`` event (R-28).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from mcb.funnel.events import ContactFacts, FunnelEvent, Normalized, PayloadError
from mcb.funnel.identity import clean_text, normalize_email, normalize_phone
from mcb.ingest.sources.common import first_object, known_keys_missing, parse_time

SOURCE: Final = "perspective"
ACCEPTED_EVENTS = ("conversion",)  # a funnel form submission; deprecated funnels are "deprecated_funnel" skips
DEPRECATED_MARKERS = ("checkout", "supplements", "_lm")
# Renamed funnels (lower-case raw name -> canonical name).
ALIASES = {"lvng_tofmofbof_calendly": "LVNG_BOF_Calendly"}

ROOT_KEYS = {"funnelName", "funnelId", "profile", "values", "meta", "tags"}
PROFILE_KEYS = {"email", "firstName", "phone"}
VALUES_KEYS = {"email", "firstName", "phone", "ps_converted_at", "ad_id", "AD_ID", "adid"}
META_KEYS = {"ps_converted_at", "ad_id", "utm_content", "utm_source", "utm_medium", "utm_campaign"}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return clean_text(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None


def _first(*values: Any) -> str | None:
    return next((t for t in (_text(v) for v in values) if t is not None), None)


def _profile(profile: dict[str, Any], name: str) -> Any:
    """``profile.<name>.value`` (or a bare value)."""
    value = profile.get(name)
    return value.get("value") if isinstance(value, dict) else value


def _time(value: Any) -> datetime | None:
    return parse_time(value)


def canonical_funnel(name: str) -> str:
    return ALIASES.get(name.lower(), name)


def is_deprecated(name: str) -> bool:
    return any(marker in name.lower() for marker in DEPRECATED_MARKERS)


def funnel_tags(name: str | None, funnel_id: str | None) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    if name:
        lower = name.lower()
        tags["funnel"] = canonical_funnel(name)
        if "calendly" in lower:
            tags["booking_source"] = "calendly"
        elif "jane" in lower:
            tags["booking_source"] = "jane"
        if "manychat" in lower:
            tags["traffic_source"] = "manychat"
        elif "website" in lower or "other" in lower:
            tags["traffic_source"] = "website_other"
    if funnel_id:
        tags["perspective_funnel_id"] = funnel_id
    return tags


def parse(payload: Any, *, received_at: datetime) -> Normalized:
    root = first_object(payload)
    name = _text(root.get("funnelName"))
    funnel_id = _text(root.get("funnelId"))
    profile = _object(root.get("profile"))
    values = _object(root.get("values"))
    meta = _object(root.get("meta"))
    unknown = known_keys_missing(root, ROOT_KEYS)
    unknown += known_keys_missing(profile, PROFILE_KEYS, prefix="profile.")
    unknown += known_keys_missing(values, VALUES_KEYS, prefix="values.")
    unknown += known_keys_missing(meta, META_KEYS, prefix="meta.")
    raw_tags = root.get("tags")
    if raw_tags is not None and not isinstance(raw_tags, dict):
        unknown.append("tags")

    if name and is_deprecated(name):
        return Normalized(
            source=SOURCE, event_type="deprecated_funnel", match_by=("email", "phone"),
            skip_reason=f"deprecated funnel {name!r}", unknown_keys=tuple(sorted(unknown)),
        )
    email = normalize_email(_text(_profile(profile, "email"))) or normalize_email(_text(values.get("email")))
    if email is None:
        raise PayloadError("Perspective submission has no e-mail (profile.email.value or values.email)")

    ad_id = _first(values.get("ad_id"), values.get("AD_ID"), values.get("adid"), meta.get("ad_id"),
                   meta.get("utm_content"))
    tags = funnel_tags(name, funnel_id)
    tags.update({str(k): v for k, v in _object(raw_tags).items() if v is not None and v != ""})
    facts = ContactFacts(
        email_primary=email,
        first_name=_first(_profile(profile, "firstName"), values.get("firstName")),
        phone=normalize_phone(_first(_profile(profile, "phone"), values.get("phone"))),
        ad_id=ad_id,
        source="instagram_direct",
        source_rule="if_empty",
        tags=tags,
    )
    canonical = canonical_funnel(name) if name else None
    data = {
        "funnel_name": name,
        "funnel": canonical,
        "funnel_id": funnel_id,
        "ad_id": ad_id,
        "utm_source": _text(meta.get("utm_source")),
        "utm_medium": _text(meta.get("utm_medium")),
        "utm_campaign": _text(meta.get("utm_campaign")),
    }
    occurred = _time(values.get("ps_converted_at")) or _time(meta.get("ps_converted_at")) or received_at
    event = FunnelEvent(
        event_type="form_submitted",
        source_event_id=f"perspective_{funnel_id or canonical or 'unknown_funnel'}_{email}",
        occurred_at=occurred,
        stage="form_submitted",
        data={k: v for k, v in data.items() if v is not None},
        tags=dict(tags),
    )
    return Normalized(
        source=SOURCE,
        event_type="conversion",
        contact=facts,
        events=(event,),
        may_create_contact=True,
        match_by=("email", "phone"),
        lead_event_type="contact_created",
        unknown_keys=tuple(sorted(unknown)),
    )
