"""What every provider module needs: unwrapping bodies, reporting keys it did not read."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mcb.funnel.events import PayloadError


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
