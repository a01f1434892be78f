"""Fetching what a webhook left out, before its provider module reads it.

ManyChat can be configured to send only ``subscriber_id``; the original then called ManyChat's
``/fb/subscriber/getInfo`` inside the request and hung when ManyChat was slow (R-26). MCB stores the
webhook first and the worker fetches the subscriber afterwards, with the tenant's ManyChat API key and a
5-second timeout; a failure is retried with the worker's backoff, and nothing blocks the HTTP answer.
"""

from __future__ import annotations

from typing import Any

import httpx

from mcb.config import Settings
from mcb.funnel.events import PayloadError
from mcb.tenancy.integrations import Integration

TIMEOUT_SECONDS = 5.0


class FetchFailed(Exception):
    """The provider's API did not answer usefully; the row is retried later."""


def needs_manychat_fetch(payload: Any) -> bool:
    first = payload[0] if isinstance(payload, list) and payload else payload
    return isinstance(first, dict) and "subscriber" not in first and bool(first.get("subscriber_id")) \
        and "custom_fields" not in first


def fetch_manychat_subscriber(payload: Any, integration: Integration | None, settings: Settings) -> dict[str, Any]:
    """The payload with ``subscriber`` filled from ManyChat's API."""
    first = payload[0] if isinstance(payload, list) else payload
    api_key = integration.credentials.get("api_key") if integration else None
    if not api_key:
        raise PayloadError(
            "ManyChat sent only subscriber_id and the tenant has no ManyChat api_key to fetch the subscriber "
            "with; set it with `mcb integrations set TENANT manychat api_key=...` and replay"
        )
    url = settings.manychat_api_url.rstrip("/") + "/fb/subscriber/getInfo"
    try:
        response = httpx.get(url, params={"subscriber_id": str(first["subscriber_id"])},
                             headers={"Authorization": f"Bearer {api_key}"}, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise FetchFailed(f"ManyChat getInfo failed: {type(exc).__name__}") from None
    if response.status_code in (401, 403):
        raise PayloadError("ManyChat refused the tenant's api_key (HTTP "
                           f"{response.status_code}); store a valid key and replay")
    if response.status_code != 200:
        raise FetchFailed(f"ManyChat getInfo answered HTTP {response.status_code}")
    body = response.json()
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise FetchFailed("ManyChat getInfo answered without data")
    return {**first, "subscriber": data}
