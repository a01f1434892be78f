"""What every provider module needs: unwrapping bodies, reporting keys it did not read."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as dateparser

from mcb.funnel.events import PayloadError
from mcb.funnel.identity import clean_text


def first_object(payload: Any) -> dict[str, Any]:
    """The JSON object of a body; array-wrapped bodies (Make.com, R-27) give their first element."""
    if isinstance(payload, list):
        if not payload:
            raise PayloadError("the body is an empty array")
        payload = payload[0]
    if not isinstance(payload, dict):
        raise PayloadError(f"the body is a JSON {type(payload).__name__}, expected an object")
    return payload


def known_keys_missing(obj: dict[str, Any], known: set[str], *, prefix: str = "") -> list[str]:
    """Keys of ``obj`` the parser does not know: recorded on the inbox row and counted in
    ``mcb webhooks stats`` (R-45), never silently dropped."""
    return sorted(f"{prefix}{k}" for k in obj if k not in known)


def content_key(value: Any) -> str:
    """A short stable digest of a JSON value, for idempotency keys of events without a provider id."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_time(value: Any, zone: str | None = None) -> datetime | None:
    """A provider's time in UTC: epoch seconds or milliseconds, or ISO-like text. Text without an offset is
    read in ``zone`` (an IANA name the payload gives), else UTC, never in the machine's local time.
    Anything unreadable (empty, "null", an unrendered ``{{merge tag}}``) is None."""
    if value is None or isinstance(value, bool) or value in ("", 0):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value) / (1000 if value > 1e11 else 1), UTC)
        text = clean_text(value) if isinstance(value, str) else None
        if text is None or "{{" in text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = dateparser.parse(text)
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None:
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
        except (ZoneInfoNotFoundError, ValueError):
            parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
