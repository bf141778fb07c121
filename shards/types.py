"""Plain data that crosses the shard boundary: memories, sessions, scopes, filters, hits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MEMORY_TYPES: tuple[str, ...] = ("episodic", "semantic", "procedural", "working")


@dataclass(frozen=True)
class Memory:
    """A stored memory as the record store holds it (the source of truth)."""

    id: str
    namespace: str
    content: str
    memory_type: str
    importance: float
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    session_id: str | None
    created_at: float
    updated_at: float
    event_time: float
    expires_at: float | None = None
    access_count: int = 0
    last_accessed_at: float | None = None


@dataclass(frozen=True)
class EntityRef:
    """An entity a memory mentions: `key` is the normalised identity ("order:4521")."""

    key: str
    type: str
    value: str
    score: float = 1.0


@dataclass(frozen=True)
class NewMemory:
    """What a store carries into a shard: the memory plus its embedding."""

    id: str
    namespace: str
    content: str
    memory_type: str
    importance: float
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    session_id: str | None
    event_time: float
    vector: tuple[float, ...]
    expires_at: float | None = None
    idempotency_key: str | None = None
    entities: tuple[EntityRef, ...] = ()
    # One vector per sentence of a memory of several (models/sentences.py); vector search
    # scores a memory by its best sentence as well as by its whole.
    sentence_vectors: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class MemoryChanges:
    """A partial update; None leaves a field as it is. A new content needs a new vector."""

    content: str | None = None
    vector: tuple[float, ...] | None = None
    sentence_vectors: tuple[tuple[float, ...], ...] = ()  # replaced with the vector
    importance: float | None = None
    memory_type: str | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None
    event_time: float | None = None
    expires_at: float | None = None
    entities: tuple[EntityRef, ...] | None = None  # replaces the links when content changes


@dataclass(frozen=True)
class Session:
    id: str
    namespace: str
    started_at: float
    last_active_at: float
    ended_at: float | None = None
    ended_reason: str | None = None
    summary: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    memory_count: int = 0
    idle_timeout: float | None = None  # seconds; 0 never times out; None: the server default

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    created_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    memory_count: int = 0
    session_count: int = 0
    active_session_count: int = 0
    last_memory_at: float | None = None


@dataclass(frozen=True)
class Scope:
    """The namespaces a caller may reach: exact names and `prefix*` patterns, or all."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    everything: bool = False

    @classmethod
    def of(cls, namespace: str) -> Scope:
        return cls(names=frozenset({namespace}))

    def single(self) -> str | None:
        """The one namespace this scope names, when it names exactly one and no pattern."""
        if self.everything or self.prefixes or len(self.names) != 1:
            return None
        return next(iter(self.names))

    def covers(self, namespace: str) -> bool:
        return (
            self.everything
            or namespace in self.names
            or any(namespace.startswith(p) for p in self.prefixes)
        )


@dataclass(frozen=True)
class RecallFilter:
    """Filters a recall or a listing. Vector and keyword search push the scalar ones down."""

    memory_types: tuple[str, ...] | None = None
    session_id: str | None = None
    since: float | None = None  # on event_time, inclusive
    until: float | None = None  # on event_time, inclusive
    min_importance: float | None = None
    max_importance: float | None = None
    tags_any: tuple[str, ...] | None = None  # at least one of these tags (recall)
    tags_all: tuple[str, ...] | None = None  # every one of these tags (batch filters)
    created_after: float | None = None  # on created_at, inclusive
    created_before: float | None = None
    now: float | None = None  # expired memories (expires_at <= now) are left out

    @property
    def has_tags(self) -> bool:
        return bool(self.tags_any or self.tags_all)

    def admits(self, memory: Memory) -> bool:
        if self.memory_types and memory.memory_type not in self.memory_types:
            return False
        if self.session_id is not None and memory.session_id != self.session_id:
            return False
        if self.since is not None and memory.event_time < self.since:
            return False
        if self.until is not None and memory.event_time > self.until:
            return False
        if self.min_importance is not None and memory.importance < self.min_importance:
            return False
        if self.max_importance is not None and memory.importance > self.max_importance:
            return False
        if self.tags_any and not set(self.tags_any).intersection(memory.tags):
            return False
        if self.tags_all and not set(self.tags_all).issubset(memory.tags):
            return False
        if self.created_after is not None and memory.created_at < self.created_after:
            return False
        if self.created_before is not None and memory.created_at > self.created_before:
            return False
        if self.now is not None and memory.expires_at is not None and memory.expires_at <= self.now:
            return False
        return True


@dataclass(frozen=True)
class Hit:
    """One index answer: the record store's internal key and a score (higher is better)."""

    key: int
    score: float


@dataclass(frozen=True)
class Candidate:
    """A hydrated recall candidate with its rank and raw score in each channel that found it."""

    memory: Memory
    ranks: dict[str, int]
    scores: dict[str, float]
    context: tuple[Memory, ...] = ()  # its session neighbours, when the recall asked for them


@dataclass(frozen=True)
class GraphEdge:
    """Two memories linked by the entities they share; weight sums the entities' rarity."""

    source: str
    target: str
    weight: float
    shared: tuple[str, ...]


@dataclass(frozen=True)
class GraphNode:
    memory: Memory
    depth: int
    weight: float  # link strength from the start (1.0 for the root)


@dataclass(frozen=True)
class ShardStats:
    memories: int
    namespaces: int
    sessions: int
    pending_index_changes: int


@dataclass(frozen=True)
class WriteResult:
    """What Shard.write answers: (memory, created) per item in order (created False: a retry
    answered with what was stored), and the sessions the items are turns of, after the write."""
    memories: tuple[tuple[Memory, bool], ...]
    sessions: tuple[Session, ...] = ()
