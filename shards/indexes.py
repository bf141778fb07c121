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
    context: str = ""  # words near this memory (its session's previous turn), weighted lower


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
