"""Normalising identifiers so that the same person is recognised whatever the platform wrote."""

from __future__ import annotations

import re

import phonenumbers


def normalize_email(value: object) -> str | None:
    """Lower-cased and trimmed; None for anything that is not an address."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if "@" in email and " " not in email else None


def normalize_phone(value: object) -> str | None:
    """E.164 (``+15551230001``) using the phonenumbers library, North America as the default region.

    Numbers it cannot parse keep the original's rule (spec 3.4): 10 digits get ``+1``, 11 digits starting
    with 1 get ``+``, other digit strings get ``+``.
    """
    if value is None:
        return None
    raw = str(value).strip()
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return None
    try:
        parsed = phonenumbers.parse(raw, "US")
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    if len(digits) == 10:
        return "+1" + digits
    return "+" + digits


def clean_text(value: object) -> str | None:
    """A non-empty trimmed string, or None. ManyChat and GHL send "" and "null" for "unknown"."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.lower() in ("null", "none", "undefined"):
        return None
    return text
