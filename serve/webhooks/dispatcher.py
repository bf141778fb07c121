"""The webhook dispatcher: a task of every Router replica. Each round:

1. (one replica at a time: a lease in the webhook store) takes each shard's outbox
   (shards/events.py; each event written in its change's own transaction) and owes each
   event to the subscriptions it concerns, then drops it from the outbox. A crash in between
   owes it again, and the store keeps one delivery per (subscription, event): at least once,
   never twice from here. A forget also redacts what pending deliveries still hold of the
   memory, and an update rewrites it as it is now. One taker keeps that order: a forget's
   redaction never overtakes the store it redacts.
2. (every replica) claims the deliveries that are due (a claim hands each to one replica:
   SQLite's write lock, PostgreSQL's SKIP LOCKED) and sends them, signed
   (engram/webhooks.py), `concurrency` at a time; 2xx is delivered, anything else is tried
   again after a backoff that doubles from retry_base_seconds up to retry_max_seconds (a
   receiver's Retry-After, when longer, wins), until max_attempts, then failed. Sending is
   the slow part, so it grows with the Router replicas.

Which subscriptions an event concerns: its type is one they asked for, its namespace matches
their patterns, it happened after they were created, and their creating key, as it is now
(not deleted, not expired, its grants), may read that namespace. The same check runs again
before every attempt, so a key deleted or narrowed stops its subscriptions' deliveries at once."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from engram import __version__
from engram import webhooks as signing
from serve import metrics
from serve.auth import grants_scope
from serve.config import WebhooksConfig
from serve.shard_calls import ShardCalls
from serve.webhooks.destinations import blocked
from shards.control.base import ApiKey, ControlStore
from shards.errors import NotFound
from shards.events import MEMORY_FORGOTTEN, MEMORY_UPDATED, NAMESPACE_DELETED, Event, redacted, refreshed
from shards.webhooks.base import (
    DELIVERED, FAILED, PENDING, Attempt, Delivery, NewDelivery, Subscription, WebhookStore,
)

log = logging.getLogger(__name__)
USER_AGENT = f"engram-webhooks/{__version__}"
LEASE_ROUNDS = 10  # the lease outlives this many quiet rounds: a dead holder's passes on soon
PRUNE_EVERY_S = 600.0


def envelope(event: Event) -> str:
    """The body every attempt of this event sends."""
    stamp = datetime.fromtimestamp(event.occurred_at, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps({"id": event.id, "type": event.type, "timestamp": stamp,
                       "namespace": event.namespace, "data": event.data}, separators=(",", ":"))


def may_read(key: ApiKey | None, namespace: str, now: float) -> bool:
    if key is None or (key.expires_at is not None and key.expires_at <= now):
        return False
    return grants_scope(key.namespaces).covers(namespace)


def concerns(subscription: Subscription, key: ApiKey | None, event: Event, now: float) -> bool:
    """Whether the subscription is owed this event: one of its types, in its namespaces, no
    older than the subscription itself, and readable by its key as the key is now."""
    return (event.type in subscription.events
            and event.occurred_at >= subscription.created_at
            and grants_scope(subscription.namespaces).covers(event.namespace)
            and may_read(key, event.namespace, now))


@dataclass
class RoundReport:
    events: int = 0
    owed: int = 0
    attempts: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(self, cfg: WebhooksConfig, store: WebhookStore, control: ControlStore,
                 shards: Sequence[ShardCalls], client: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.control = control
        self.shards = shards
        self.holder = uuid.uuid4().hex
        self._client = client
        self._last_prune = 0.0

    async def run(self) -> None:
        """Rounds for the replica's life; a failed round is logged and the next one retries."""
        while True:
            try:
                report = await self.round()
            except Exception:
                log.exception("webhook dispatch round failed")
                report = RoundReport()
            if report.events < self.cfg.batch:  # a full batch: more may wait, go on at once
                await asyncio.sleep(self.cfg.poll_seconds)

    async def round(self, now: float | None = None) -> RoundReport:
        report = RoundReport()
        now = time.time() if now is None else now
        lease_s = max(self.cfg.poll_seconds * LEASE_ROUNDS, self.cfg.timeout_seconds * 2)
        keys: dict[str, ApiKey | None] = {}
        subscriptions: list[Subscription] | None = None
        if await asyncio.to_thread(self.store.take_dispatcher_lease, self.holder, lease_s, now):
            subscriptions = await asyncio.to_thread(self.store.subscriptions)
            for shard in self.shards:
                report.events += await self._take_events(shard, subscriptions, keys, now)
            if now - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = now
                await asyncio.to_thread(self.store.prune, now - self.cfg.keep_finished_seconds)
        report.attempts = await self._send_due(keys, subscriptions)
        return report

    async def _key(self, keys: dict[str, ApiKey | None], key_id: str) -> ApiKey | None:
        if key_id not in keys:
            try:
                keys[key_id] = await asyncio.to_thread(self.control.get_key, key_id)
            except NotFound:
                keys[key_id] = None
        return keys[key_id]

    async def _take_events(self, shard: ShardCalls, subscriptions: list[Subscription],
                           keys: dict[str, ApiKey | None], now: float) -> int:
        events = await shard.pending_events(self.cfg.batch)
        if not events:
            return 0
        owed: list[NewDelivery] = []
        for event in events:
            # What deliveries still owe of a forgotten memory (or namespace) goes before they
            # do; what they owe of an updated one becomes the memory as it is now.
            if event.type == MEMORY_FORGOTTEN:
                await self._rewrite(event.namespace, [event.memory_id or ""], redacted)
            elif event.type == NAMESPACE_DELETED:
                await self._rewrite(event.namespace, None, redacted)
            elif event.type == MEMORY_UPDATED:
                data = event.data
                await self._rewrite(event.namespace, [event.memory_id or ""], lambda old: refreshed(old, data))
            body = envelope(event)
            for sub in subscriptions:
                if concerns(sub, await self._key(keys, sub.key_id), event, now):
                    owed.append(NewDelivery(sub.id, event.id, event.type, event.namespace, event.memory_id,
                                            body, now))
        if owed:
            await asyncio.to_thread(self.store.enqueue, owed)
        await shard.drop_events([e.seq for e in events])
        return len(events)

    async def _rewrite(self, namespace: str, memory_ids: list[str] | None,
                       rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        pending = await asyncio.to_thread(self.store.pending_with_text, namespace, memory_ids)
        if pending:
            bodies = {}
            for delivery_id, body in pending:
                envelope_json = json.loads(body)
                envelope_json["data"] = rewrite(envelope_json["data"])
                bodies[delivery_id] = json.dumps(envelope_json, separators=(",", ":"))
            await asyncio.to_thread(self.store.replace_bodies, bodies)

    async def _send_due(self, keys: dict[str, ApiKey | None],
                        known: list[Subscription] | None) -> dict[str, int]:
        """Claim what is due, send it `concurrency` at a time, then record every outcome in one
        write (a crash before it sends those again: at least once). known: the subscriptions
        this round read already (None: read them if anything is due)."""
        lease_s = self.cfg.timeout_seconds * 2 + 5  # held while in flight
        due = await asyncio.to_thread(self.store.claim_due, time.time(), self.cfg.batch, lease_s)
        outcomes: dict[str, int] = {}
        if not due:
            return outcomes
        if known is None:
            known = await asyncio.to_thread(self.store.subscriptions)
        subscriptions = {sub.id: sub for sub in known}
        attempts: list[Attempt] = []
        gate = asyncio.Semaphore(self.cfg.concurrency)
        client = self._client or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            async def one(delivery: Delivery) -> None:
                async with gate:
                    outcome, attempt = await self._attempt(client, delivery, keys, subscriptions)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                metrics.webhook_attempt(outcome)
                if attempt is not None:
                    attempts.append(attempt)

            await asyncio.gather(*(one(d) for d in due))
        finally:
            if self._client is None:
                await client.aclose()
            if attempts:
                await asyncio.to_thread(self.store.record_attempts, attempts, time.time())
        return outcomes

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery, keys: dict[str, ApiKey | None],
                       subscriptions: dict[str, Subscription]) -> tuple[str, Attempt | None]:
        sub = subscriptions.get(delivery.subscription_id)
        if sub is None:  # created after this round began, or deleted (its deliveries went with it)
            try:
                sub = await asyncio.to_thread(self.store.get_subscription, delivery.subscription_id)
            except NotFound:
                return FAILED, None
        now = time.time()
        if not may_read(await self._key(keys, sub.key_id), delivery.namespace, now):
            return FAILED, Attempt(delivery.id, FAILED, "the creating key can no longer read this namespace", now)
        why = await blocked(sub.url, self.cfg)
        if why is not None:
            return "blocked", self._retry_or_fail(delivery, f"blocked: {why}", None)
        body = delivery.body.encode()
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   "engram-event-type": delivery.event_type,
                   "engram-delivery-attempt": str(delivery.attempts + 1),
                   **signing.headers(sub.secret, delivery.event_id, body)}
        try:
            r = await client.post(sub.url, content=body, headers=headers, timeout=self.cfg.timeout_seconds)
        except httpx.HTTPError as exc:
            attempt = self._retry_or_fail(delivery, f"{type(exc).__name__}: {exc}"[:300], None)
            return attempt.state if attempt.state == FAILED else "retry", attempt
        if 200 <= r.status_code < 300:
            return DELIVERED, Attempt(delivery.id, DELIVERED, str(r.status_code), time.time())
        attempt = self._retry_or_fail(delivery, str(r.status_code), r.headers.get("retry-after"))
        return attempt.state if attempt.state == FAILED else "retry", attempt

    def _retry_or_fail(self, delivery: Delivery, status: str, retry_after: str | None) -> Attempt:
        attempts = delivery.attempts + 1
        now = time.time()
        if attempts >= self.cfg.max_attempts:
            return Attempt(delivery.id, FAILED, status, now)
        return Attempt(delivery.id, PENDING, status, now + self.backoff(attempts, retry_after))

    def backoff(self, attempts: int, retry_after: str | None = None) -> float:
        """Seconds before attempt `attempts + 1`: doubling, jittered ±20 %, capped."""
        wait = float(min(self.cfg.retry_base_seconds * 2 ** (attempts - 1), self.cfg.retry_max_seconds))
        wait *= random.uniform(0.8, 1.2)
        if retry_after is not None and retry_after.strip().isdigit():
            wait = max(wait, min(float(retry_after), self.cfg.retry_max_seconds))
        return wait
