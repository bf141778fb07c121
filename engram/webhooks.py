"""Webhook signatures, as Engram sends them and as a receiver checks them: the Standard
Webhooks scheme (https://www.standardwebhooks.com), so its libraries verify Engram's too.

Each delivery carries three headers:
- `webhook-id`: the event's id (`evt_…`), the same on every retry of it: a receiver that
  has seen it may answer 2xx and ignore the repeat (delivery is at least once);
- `webhook-timestamp`: when this attempt was signed, in Unix seconds;
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with
  the subscription's secret (`whsec_<base64 key>`, shown once, when it is created).

A receiver, with the raw body as it arrived:

    from engram.webhooks import verify
    event = verify(secret, request.headers, raw_body)   # raises InvalidSignature
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300  # a signature older or newer than this is refused (replays)


class InvalidSignature(ValueError):
    """The delivery is not from the subscription's Engram, was altered, or is too old."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value."""
    mac = hmac.new(_key(secret), f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, event_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, event_id, timestamp, body)}


def verify(secret: str, received: Mapping[str, str], body: bytes, *, now: float | None = None,
           tolerance_s: float = TOLERANCE_S) -> dict[str, Any]:
    """The event, once its signature checks out; InvalidSignature otherwise. `received`:
    the request's headers (any mapping; names compared without case)."""
    lower = {k.lower(): v for k, v in received.items()}
    event_id, stamp, signatures = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not event_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far from now: a replay, or a clock off")
    expected = sign(secret, event_id, timestamp, body)
    # The header may hold several space-separated signatures (a secret being rotated).
    if not any(hmac.compare_digest(expected, given) for given in signatures.split()):
        raise InvalidSignature("no signature matches this secret")
    event: dict[str, Any] = json.loads(body)
    return event
