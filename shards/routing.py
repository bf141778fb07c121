"""Stable namespace → shard routing: jump consistent hash of blake2b(namespace).

Never Python's hash(): it is salted per process, and two replicas must agree forever.
Jump hash moves only ~1/N of the namespaces when N grows by one.
"""
from __future__ import annotations

import hashlib


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
