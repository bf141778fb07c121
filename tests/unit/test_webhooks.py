"""Webhook signatures (engram/webhooks.py), destinations (serve/webhooks/destinations.py) and
the dispatcher's pure parts: which subscriptions an event concerns, the body, the backoff."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest

from engram.webhooks import InvalidSignature, headers, new_secret, sign, verify
from serve.config import WebhooksConfig
from serve.errors import ApiError
from serve.webhooks.destinations import blocked, check_url
from serve.webhooks.dispatcher import Dispatcher, concerns, envelope
from shards.control.base import ApiKey
from shards.events import Event
from shards.webhooks.base import Subscription


def test_the_signature_is_standard_webhooks_hmac_sha256() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"memory.stored"}'
    # computed here from the scheme's definition, not from the code under test
    mac = hmac.new(base64.b64decode(secret[6:]), b"evt_1.1700000000." + body, hashlib.sha256).digest()
    assert sign(secret, "evt_1", 1_700_000_000, body) == "v1," + base64.b64encode(mac).decode()
    sent = headers(secret, "evt_1", body, now=1_700_000_000)
    assert sent == {"webhook-id": "evt_1", "webhook-timestamp": "1700000000",
                    "webhook-signature": "v1," + base64.b64encode(mac).decode()}
    upper = {k.upper(): v for k, v in sent.items()}
    assert verify(secret, upper, body, now=1_700_000_100) == {"type": "memory.stored"}


@pytest.mark.parametrize("change", ["body", "secret", "id", "old", "missing"])
def test_a_forged_altered_or_replayed_delivery_is_refused(change: str) -> None:
    secret, body = new_secret(), b'{"a":1}'
    sent = headers(secret, "evt_1", body, now=1_000_000)
    now = 1_000_010.0
    if change == "body":
        body = b'{"a":2}'
    elif change == "secret":
        secret = new_secret()
    elif change == "id":
        sent["webhook-id"] = "evt_2"
    elif change == "old":
        now += 3600
    else:
        del sent["webhook-signature"]
    with pytest.raises(InvalidSignature):
        verify(secret, sent, body, now=now)


CFG = WebhooksConfig()


@pytest.mark.parametrize(("url", "field_error"), [
    ("ftp://example.com/x", "http:// or https://"),
    ("http:///nohost", "http:// or https://"),
    ("http://user:pw@example.com/", "no credentials"),
    ("http://127.0.0.1:8080/hook", "private, loopback"),
    ("http://10.1.2.3/hook", "private, loopback"),
    ("http://[::1]/hook", "private, loopback"),
    ("http://169.254.169.254/latest/meta-data", "private, loopback"),
    ("http://example.com:99999/", "not a URL"),
    ("https://example.com/" + "x" * 3000, "at most"),
    ("https://example.com/a\x00b", "control characters"),
    ("https://example.com/a b", "control characters"),
])
def test_a_webhook_url_is_refused_naming_the_field(url: str, field_error: str) -> None:
    with pytest.raises(ApiError) as refused:
        check_url(url, CFG)
    assert refused.value.status == 400 and refused.value.field == "url"
    assert field_error in refused.value.message


def test_allowed_hosts_and_private_networks_are_the_operators_call() -> None:
    check_url("https://hooks.example.com/engram", CFG)
    loopback = WebhooksConfig(allowed_hosts=["127.0.0.1"], allow_private_networks=True)
    check_url("http://127.0.0.1:8080/hook", loopback)
    with pytest.raises(ApiError, match="not one this Engram delivers to"):
        check_url("https://hooks.example.com/engram", loopback)
    # at send time the name's addresses are checked (localhost resolves to loopback)
    assert "not a public address" in (asyncio.run(blocked("http://localhost:9/x", CFG)) or "")
    assert asyncio.run(blocked("http://127.0.0.1:9/x", loopback)) is None


def key(grants: tuple[str, ...] | None, expires_at: float | None = None) -> ApiKey:
    return ApiKey(key_id="k1", name="k", scope="read", namespaces=grants, created_at=0.0, expires_at=expires_at)


def test_an_event_concerns_a_subscription_only_within_its_keys_reach() -> None:
    sub = Subscription(id="wh_1", key_id="k1", url="http://x", events=("memory.stored",),
                       namespaces=("acme-*",), secret="whsec_", created_at=0.0)
    event = Event(1, "evt_1", "memory.stored", "acme-eu", 5.0, {"id": "m1"}, "m1")
    assert concerns(sub, key(("acme-*",)), event, now=10.0)
    assert not concerns(sub, key(("acme-us",)), event, now=10.0)  # the key was narrowed since
    assert not concerns(sub, key(("acme-*",), expires_at=9.0), event, now=10.0)  # expired
    assert not concerns(sub, None, event, now=10.0)  # deleted
    other_type = Event(2, "evt_2", "session.ended", "acme-eu", 5.0, {}, None)
    assert not concerns(sub, key(None), other_type, now=10.0)
    elsewhere = Event(3, "evt_3", "memory.stored", "globex", 5.0, {}, "m2")
    assert not concerns(sub, key(None), elsewhere, now=10.0)  # outside its patterns
    later = Subscription(id="wh_2", key_id="k1", url="http://x", events=("memory.stored",),
                         namespaces=("acme-*",), secret="whsec_", created_at=6.0)
    assert not concerns(later, key(None), event, now=10.0)  # it happened before the subscription


def test_the_body_is_the_event_and_the_backoff_doubles_up_to_its_cap() -> None:
    body = json.loads(envelope(Event(1, "evt_1", "memory.forgotten", "acme", 1_700_000_000.5,
                                     {"id": "m1", "namespace": "acme", "reason": "forget"}, "m1")))
    assert body == {"id": "evt_1", "type": "memory.forgotten", "timestamp": "2023-11-14T22:13:20.500000Z",
                    "namespace": "acme", "data": {"id": "m1", "namespace": "acme", "reason": "forget"}}
    d = Dispatcher(WebhooksConfig(retry_base_seconds=2, retry_max_seconds=30), None, None, [])  # type: ignore[arg-type]
    waits = [d.backoff(n) for n in range(1, 7)]
    for n, wait in enumerate(waits[:4], start=1):
        assert 0.8 * 2 * 2 ** (n - 1) <= wait <= 1.2 * 2 * 2 ** (n - 1)
    assert all(w <= 36 for w in waits)
    assert d.backoff(1, retry_after="20") >= 20  # the receiver asked for longer
