"""Exact vector search over one namespace's memories, from the record store's own vectors.

A tenant's namespace is a tiny slice of a shard: at 100k memories in 1k namespaces, a
namespace filter admits 0.1 % of the HNSW graph, and a filtered HNSW search walks most of
the graph to find 50 admitted nodes (Milvus Lite: p50 180 ms there, against 16 ms at 10k).
A matrix-vector product over the namespace's own few thousand vectors takes well under a
millisecond and is exact. So namespaces up to `max_rows` memories are searched here, from
an LRU cache of their vectors bounded in bytes; bigger ones go to the HNSW index, where
the filter admits enough of the graph for HNSW to do well.

A memory of several sentences also has a vector per sentence (models/sentences.py); its
score is `WHOLE_WEIGHT`·cos(whole) + (1 − WHOLE_WEIGHT)·max(cos(whole), cos(best sentence)).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shards.indexes.base import IndexFilter
from shards.types import Hit

# Measured on LoCoMo dev (vector channel alone, R@10): best sentence only 0.607, 0.3 whole +
# 0.7 best 0.625, 0.5/0.5 0.605, whole only 0.513. The whole keeps a memory whose sentences
# each say little but together match.
WHOLE_WEIGHT = 0.3


def stack_scores(whole: np.ndarray, sentence_scores: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """Each memory's score from its whole's cosine and its sentences' (owners: the memory's
    row for each sentence, ascending)."""
    best = whole.copy()
    if sentence_scores.size:
        starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        rows = owners[starts]
        best[rows] = np.maximum(best[rows], np.maximum.reduceat(sentence_scores, starts))
    return WHOLE_WEIGHT * whole + (1.0 - WHOLE_WEIGHT) * best


def split_stacks(blobs: Sequence[bytes], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whole vectors (n, dim), sentence vectors (m, dim), owner row of each sentence) from
    vector stack blobs (the record store's pack_vectors), all as float32 unit vectors."""
    n = len(blobs)
    width = dim * 4
    if sum(len(b) for b in blobs) == n * width:  # no sentence vectors: one copy, no loop
        whole = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(n, dim)
        sentences = np.zeros((0, dim), dtype=np.float32)
        owners = np.zeros(0, dtype=np.int64)
    else:
        whole = np.frombuffer(b"".join(b[:width] for b in blobs), dtype="<f4").reshape(n, dim)
        extra = [(i, b[width:]) for i, b in enumerate(blobs) if len(b) > width]
        sentences = np.frombuffer(b"".join(e for _, e in extra), dtype="<f4").reshape(-1, dim)
        owners = np.repeat(np.fromiter((i for i, _ in extra), dtype=np.int64, count=len(extra)),
                           [len(e) // width for _, e in extra])
    return _unit(whole), _unit(sentences), owners


def unit_query(vector: Sequence[float]) -> np.ndarray:
    query = np.asarray(vector, dtype=np.float32)
    return query / (float(np.linalg.norm(query)) or 1.0)


def score_stacks(blobs: Sequence[bytes], dim: int, vector: Sequence[float]) -> np.ndarray:
    """Each vector stack's score for the query, as exact search scores a memory."""
    whole, sentences, owners = split_stacks(blobs, dim)
    query = unit_query(vector)
    return stack_scores(whole @ query, sentences @ query, owners)


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


@dataclass(frozen=True)
class NamespaceVectors:
    """One namespace's memories as columns: what the index filters and scores need."""

    keys: np.ndarray  # int64
    vectors: np.ndarray  # (n, dim) float32, unit length
    memory_types: np.ndarray  # int64 codes
    session_keys: np.ndarray  # int64, 0 when the memory has no session
    event_times: np.ndarray  # float64
    importances: np.ndarray  # float64
    sentence_vectors: np.ndarray  # (m, dim) float32, unit length
    sentence_owners: np.ndarray  # int64: the row (in keys) each sentence belongs to, ascending

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.vectors, self.memory_types,
                                      self.session_keys, self.event_times, self.importances,
                                      self.sentence_vectors, self.sentence_owners))

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[int, bytes, int, int, float, float]], dim: int
                  ) -> NamespaceVectors:
        """Rows of (key, vector stack blob, type code, session key, event time, importance),
        as the record store keeps them."""
        n = len(rows)
        vectors, sentence_vectors, sentence_owners = split_stacks([r[1] for r in rows], dim)
        return cls(
            sentence_vectors=sentence_vectors, sentence_owners=sentence_owners,
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
        query = unit_query(vector)
        if self.sentence_owners.size:
            scores = stack_scores(self.vectors @ query, self.sentence_vectors @ query,
                                  self.sentence_owners)[rows]
        else:
            scores = self.vectors[rows] @ query
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
