"""Stable namespace → shard routing: jump consistent hash of blake2b(namespace).

Never Python's hash(): it is salted per process, and two replicas must agree forever.
Jump hash moves only ~1/N of the namespaces when N grows by one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass


def namespace_key(namespace: str) -> int:
    """64-bit stable key of a namespace name."""
    digest = hashlib.blake2b(namespace.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014)."""
    if buckets <= 0:
        raise ValueError("buckets must be positive")
    b, j = -1, 0
    key &= 0xFFFFFFFFFFFFFFFF
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def shard_for(namespace: str, shard_count: int) -> int:
    return jump_hash(namespace_key(namespace), shard_count)


@dataclass(frozen=True)
class ShardMap:
    """Where each namespace lives. Normally `shard_for(namespace, count)`; while a resharding
    job moves namespaces to `target` shards, the ones it has already moved (and new ones,
    placed straight at their new home) are listed in `moved`.

    Recorded with the control data; routers cache it and re-read it when a shard answers
    NamespaceMoved, so a stale copy costs a retry, never a wrong answer.
    """

    count: int
    target: int | None = None
    moved: frozenset[str] = frozenset()
    version: int = 0  # every change
    # Begin, end and every change of job of a reshard: shards refuse calls made with an
    # older epoch, so a router that slept through a reshard re-reads the map before it is
    # served, and a job that another has taken over from is refused outright.
    epoch: int = 0
    # The reshard is being undone: the job moves the `moved` namespaces back to their home
    # under `count`, and new namespaces are created there (not recorded in `moved`).
    aborting: bool = False

    def home(self, namespace: str) -> int:
        if self.target is not None and namespace in self.moved:
            return shard_for(namespace, self.target)
        return shard_for(namespace, self.count)

    @property
    def shards_needed(self) -> int:
        """Shard deployments the app must run: every shard that may hold data."""
        return max(self.count, self.target or 0)
