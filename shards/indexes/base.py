"""The index seams: what the vector and keyword indexes take and answer.

Indexes hold only internal keys and typed scalars (namespace id, memory-type code,
session key, times, importance): no value from a request ever reaches a filter expression.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shards.types import MEMORY_TYPES, Hit


def memory_type_code(memory_type: str) -> int:
    return MEMORY_TYPES.index(memory_type)


# The keyword index holds each session turn with the turns around it (a lower-weight field):
# a reply ("I was in Chicago") is found by the words of what it answers, and a statement by
# the follow-up that names its topic. Two each side measured best on LoCoMo dev (docs/benchmarks.md).
CONTEXT_TURNS = 2
# Stored in each shard's meta: an index built under another context rule is rebuilt on open.
KEYWORD_CONTEXT_FORMAT = f"session-turns-{CONTEXT_TURNS}-{CONTEXT_TURNS}"


@dataclass(frozen=True)
class IndexRow:
    key: int
    ns_id: int
    vector: tuple[float, ...]
    content: str
    memory_type: int
    session_key: int  # 0 when the memory has no session
    event_time: float
    importance: float
    context: str = ""  # the turns around this one in its session, weighted lower


@dataclass(frozen=True)
class IndexFilter:
    """Scalar filters an index applies itself; all numbers, built by the shard."""

    ns_id: int
    memory_types: tuple[int, ...] | None = None
    session_key: int | None = None
    since: float | None = None
    until: float | None = None
    min_importance: float | None = None


class VectorIndex(Protocol):
    def upsert(self, rows: Sequence[IndexRow]) -> None: ...
    def delete(self, keys: Sequence[int]) -> None: ...
    def search(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """Nearest first; score is cosine similarity (higher is better)."""
        ...
    def flush(self) -> None:
        """Make everything upserted or deleted so far durable."""
        ...
    def count(self) -> int: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...
    def others_wrote(self) -> None:
        """Other replicas of this shard have written since this process last searched: the
        next search must see their acknowledged writes too (not only this process's own)."""
        ...


class KeywordIndex(Protocol):
    def upsert(self, rows: Sequence[IndexRow]) -> None: ...
    def delete(self, keys: Sequence[int]) -> None: ...
    def search(self, text: str, flt: IndexFilter, limit: int) -> list[Hit]:
        """Best first; score is BM25 (higher is better, unbounded)."""
        ...
    def flush(self) -> None: ...
    def count(self) -> int: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...
    def others_wrote(self) -> None:
        """Other replicas of this shard have written since this process last searched: the
        next search must see their acknowledged writes too (not only this process's own)."""
        ...
