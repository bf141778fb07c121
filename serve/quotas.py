"""Per-key limits (shards.control.base.KeyLimits), enforced in the Router: a request rate
with a burst, memories per namespace, and content bytes stored across the key's namespaces.

- The rate is a token bucket per key in each Router replica, refilled at the key's rate
  times this replica's share of the traffic (1 / the Router replicas running: the ingress
  spreads requests evenly, so the replicas together admit about the key's rate). A bucket
  needs no round trip, and a bucket held centrally would put one on every request.
- Memories per namespace: checked by the shard inside the write's transaction (exact: a
  batch that would pass the limit rolls back whole).
- Stored bytes: the namespaces a key reaches may live on every shard, so no one
  transaction sees them all. The Router reads their usage from the shards' counters at
  most every USAGE_TTL_S per key and adds what it stored since; writes racing through
  other Router replicas inside that window can pass the limit by what they carry.

Every refusal is a 429 with Retry-After, before anything is written.
"""
from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from serve.errors import QUOTA_RETRY_AFTER_S, ApiError
from serve import metrics
from shards.control.base import ApiKey

USAGE_TTL_S = 2.0
MAX_BUCKETS = 100_000  # keys seen by one replica; the oldest buckets go first past it


@dataclass
class _Bucket:
    tokens: float
    at: float


def rate_limited(key: ApiKey, retry_after_s: float, limit: float) -> ApiError:
    metrics.rejected("rate_limit")
    return ApiError(429, "RATE_LIMITED",
                    f"key {key.key_id} may send {limit:g} requests per second: slow down and "
                    "retry after the time Retry-After gives", field="requests_per_second",
                    retry_after=max(1, math.ceil(retry_after_s)))


def quota_exceeded(message: str, field: str, reason: str) -> ApiError:
    metrics.rejected(reason)
    return ApiError(429, "QUOTA_EXCEEDED", message, field=field, retry_after=QUOTA_RETRY_AFTER_S)


class RateLimiter:
    """Token buckets per key for this Router replica."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = 1.0  # this replica's share of the traffic (RouterDeployment keeps it)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, key: ApiKey) -> None:
        """Take one token from the key's bucket, or raise 429 with the wait for the next."""
        limits = key.limits
        if limits.requests_per_second is None:
            return
        rate = limits.requests_per_second * self.share
        capacity = max(1.0, (limits.burst if limits.burst is not None else limits.requests_per_second) * self.share)
        now = self._clock()
        bucket = self._buckets.pop(key.key_id, None) or _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        self._buckets[key.key_id] = bucket  # re-inserted: most recently used last
        if len(self._buckets) > MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]
        if bucket.tokens < 1.0:
            raise rate_limited(key, (1.0 - bucket.tokens) / rate, limits.requests_per_second)
        bucket.tokens -= 1.0


Usage = Callable[[ApiKey], Awaitable[int]]


class StoredBytes:
    """The content bytes stored across each key's namespaces, as this replica knows them."""

    def __init__(self, read_usage: Usage, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read_usage
        self._clock = clock
        self._known: dict[str, tuple[int, float]] = {}  # key id -> (bytes, when read)

    async def check(self, key: ApiKey, adding: int) -> None:
        """Refuse a write of `adding` content bytes that would pass the key's limit."""
        limit = key.limits.stored_bytes
        if limit is None or adding <= 0:
            return
        used = await self.used(key)
        if used + adding > limit:
            raise quota_exceeded(
                f"key {key.key_id} may store {limit} bytes of content across its namespaces; "
                f"{used} are stored and this write adds {adding}: forget some memories first, "
                "or ask an operator to raise the key's limits.stored_bytes", "stored_bytes",
                "stored_bytes")

    async def used(self, key: ApiKey) -> int:
        known = self._known.get(key.key_id)
        if known is None or self._clock() - known[1] > USAGE_TTL_S:
            known = (await self._read(key), self._clock())
            self._known[key.key_id] = known
            if len(self._known) > MAX_BUCKETS:
                del self._known[next(iter(self._known))]
        return known[0]

    def stored(self, key: ApiKey, added: int) -> None:
        """A write of `added` bytes went in: count it until the next read."""
        if key.limits.stored_bytes is not None and key.key_id in self._known:
            used, at = self._known[key.key_id]
            self._known[key.key_id] = (used + added, at)
