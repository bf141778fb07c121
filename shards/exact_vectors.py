"""Exact vector search over one namespace's memories, from the record store's own vectors.

A tenant's namespace is a tiny slice of a shard: at 100k memories in 1k namespaces, a
namespace filter admits 0.1 % of the HNSW graph, and a filtered HNSW search walks most of
the graph to find 50 admitted nodes (Milvus Lite: p50 180 ms there, against 16 ms at 10k).
A matrix-vector product over the namespace's own few thousand vectors takes well under a
millisecond and is exact. So namespaces up to `max_rows` memories are searched here, from
an LRU cache of their vectors bounded in bytes; bigger ones go to the HNSW index, where
the filter admits enough of the graph for HNSW to do well.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shards.indexes import IndexFilter
from shards.types import Hit


@dataclass(frozen=True)
class NamespaceVectors:
    """One namespace's memories as columns: what the index filters and scores need."""

    keys: np.ndarray  # int64
    vectors: np.ndarray  # (n, dim) float32, unit length
    memory_types: np.ndarray  # int64 codes
    session_keys: np.ndarray  # int64, 0 when the memory has no session
    event_times: np.ndarray  # float64
    importances: np.ndarray  # float64

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.vectors, self.memory_types,
                                      self.session_keys, self.event_times, self.importances))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, bytes, int, int, float, float]], dim: int
                  ) -> NamespaceVectors:
        """Rows of (key, little-endian float32 vector blob, type code, session key, event
        time, importance), as the record store keeps them."""
        n = len(rows)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(n, dim)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        return cls(
            keys=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
            vectors=vectors,
            memory_types=np.fromiter((r[2] for r in rows), dtype=np.int64, count=n),
            session_keys=np.fromiter((r[3] for r in rows), dtype=np.int64, count=n),
            event_times=np.fromiter((r[4] for r in rows), dtype=np.float64, count=n),
            importances=np.fromiter((r[5] for r in rows), dtype=np.float64, count=n),
        )

    def search(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """Cosine top-`limit` among the rows the filter admits, best first (ties by key)."""
        if len(self.keys) == 0 or limit <= 0:
            return []
        mask = np.ones(len(self.keys), dtype=bool)
        if flt.memory_types:
            mask &= np.isin(self.memory_types, np.asarray(flt.memory_types, dtype=np.int64))
        if flt.session_key is not None:
            mask &= self.session_keys == flt.session_key
        if flt.since is not None:
            mask &= self.event_times >= flt.since
        if flt.until is not None:
            mask &= self.event_times <= flt.until
        if flt.min_importance is not None:
            mask &= self.importances >= flt.min_importance
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        scores = self.vectors[rows] @ (query / (norm or 1.0))
        if rows.size > limit:
            top = np.argpartition(-scores, limit - 1)[:limit]
        else:
            top = np.arange(rows.size)
        order = sorted(top.tolist(), key=lambda i: (-float(scores[i]), int(self.keys[rows[i]])))
        return [Hit(key=int(self.keys[rows[i]]), score=float(scores[i])) for i in order]


class ExactVectorCache:
    """Namespaces' vectors, loaded on first search and dropped when written or evicted.

    Not thread-safe on its own: the shard calls it under its lock.
    """

    def __init__(self, load: Callable[[int], NamespaceVectors], max_bytes: int) -> None:
        self._load = load
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, NamespaceVectors] = OrderedDict()
        self._bytes = 0

    def get(self, ns_id: int) -> NamespaceVectors:
        entry = self._entries.get(ns_id)
        if entry is not None:
            self._entries.move_to_end(ns_id)
            return entry
        entry = self._load(ns_id)
        if entry.nbytes <= self.max_bytes:  # one too big for the cache is used once
            self._entries[ns_id] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
        return entry

    def cached(self, ns_id: int) -> NamespaceVectors | None:
        return self._entries.get(ns_id)

    def invalidate(self, ns_ids: Sequence[int]) -> None:
        for ns_id in ns_ids:
            entry = self._entries.pop(ns_id, None)
            if entry is not None:
                self._bytes -= entry.nbytes

    def invalidate_keys(self, keys: Sequence[int]) -> None:
        """Drop the namespaces holding any of these (deleted) memories."""
        if not keys or not self._entries:
            return
        gone = np.asarray(list(keys), dtype=np.int64)
        self.invalidate([ns for ns, e in self._entries.items() if np.isin(gone, e.keys).any()])

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
