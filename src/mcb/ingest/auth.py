"""Authenticating inbound webhooks per tenant and source (R-25), before anything is stored.

- Stripe: the ``Stripe-Signature`` header verified by the official ``stripe`` package over the raw bytes,
  with the tenant's signing secret and a 300 s tolerance.
- GoHighLevel: ``X-GHL-Signature`` (Ed25519) or the older ``X-WH-Signature`` (RSA, SHA-256) verified
  against the public key(s) in the tenant's GHL webhook secret; workflow "Custom Webhook" actions (unsigned)
  by the shared token in the same secret.
- ManyChat, Perspective, Denefits/Make: the tenant's shared token, in the ``X-MCB-Token`` header or the
  ``token`` query parameter; Denefits' own payload field ``secret_key`` is accepted too.

Tokens are compared in constant time. A source with no secret is refused unless the tenant explicitly
allowed unauthenticated calls for it.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from mcb.tenancy.integrations import Integration

TOKEN_HEADER = "x-mcb-token"
PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PUBLIC KEY-----.*?-----END [A-Z ]*PUBLIC KEY-----", re.S)


class Rejected(Exception):
    """Authentication failed; the message is the logged reason (it never contains a secret)."""


def split_ghl_secret(secret: str) -> tuple[list[str], str | None]:
    """A GHL webhook secret holds PEM public keys and/or one shared token (the rest of the text)."""
    keys = PEM_BLOCK.findall(secret)
    rest = PEM_BLOCK.sub("", secret).strip()
    return keys, (rest or None)


def _token_matches(expected: str | None, *offered: str | None) -> bool:
    if not expected:
        return False
    return any(o is not None and hmac.compare_digest(o.encode(), expected.encode()) for o in offered)


def _verify_stripe(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    import stripe

    signature = headers.get("stripe-signature")
    if not signature:
        raise Rejected("missing Stripe-Signature header")
    try:
        stripe.WebhookSignature.verify_header(body.decode("utf-8", "replace"), signature, secret, tolerance=300)
    except stripe.SignatureVerificationError as exc:
        reason = "expired" if "tolerance" in str(exc).lower() else "invalid"
        raise Rejected(f"{reason} Stripe signature") from None


def _verify_ghl_signature(keys: list[str], body: bytes, headers: Mapping[str, str]) -> bool:
    """True when a GHL signature header is present and valid; Rejected when present and invalid."""
    for header, kind in (("x-ghl-signature", "ed25519"), ("x-wh-signature", "rsa")):
        value = headers.get(header)
        if not value:
            continue
        try:
            signature = base64.b64decode(value, validate=True)
        except ValueError:
            raise Rejected(f"malformed {header} header") from None
        for pem in keys:
            key = serialization.load_pem_public_key(pem.encode())
            try:
                if kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
                    key.verify(signature, body)
                    return True
                if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
                    key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
                    return True
            except InvalidSignature:
                continue
        raise Rejected(f"invalid {header} signature")
    return False


def authenticate(
    source: str,
    integration: Integration | None,
    body: bytes,
    headers: Mapping[str, str],
    query_token: str | None,
) -> str:
    """Return how the request was authenticated, or raise ``Rejected`` with the reason."""
    if integration is None or not integration.webhook_secret:
        if integration is not None and integration.allow_unauthenticated:
            return "unauthenticated (allowed by the tenant)"
        raise Rejected(f"no {source} webhook secret is configured for this tenant")
    secret = integration.webhook_secret
    offered = headers.get(TOKEN_HEADER)
    if source == "stripe":
        _verify_stripe(secret, body, headers)
        return "stripe signature"
    if source == "ghl":
        keys, token = split_ghl_secret(secret)
        if keys and _verify_ghl_signature(keys, body, headers):
            return "ghl signature"
        if _token_matches(token, offered, query_token):
            return "shared token"
        raise Rejected("missing or wrong GHL signature or token")
    if _token_matches(secret, offered, query_token):
        return "shared token"
    if source == "denefits":
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        first = payload[0] if isinstance(payload, list) and payload else payload
        if isinstance(first, dict) and _token_matches(secret, str(first.get("secret_key") or "") or None):
            return "payload secret_key"
    raise Rejected(f"missing or wrong {source} token")
