"""A shard's recall: vector, keyword, graph and session candidates, hydrated and filtered."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shards.errors import NotFound
from shards.indexes.base import IndexFilter, memory_type_code
from shards.indexes.exact import score_stacks
from shards.shard.graph import GraphMixin
from shards.shard.sessions import SessionsMixin
from shards.types import Candidate, Hit, Memory, RecallFilter, Scope

# HNSW answers by whole vectors; sentence vectors re-rank a wider set (see _rescored_hnsw).
HNSW_OVERFETCH = 2


class RecallMixin(GraphMixin, SessionsMixin):
    """Recall: the candidate channels of one namespace, hydrated from the record store."""

    def recall_candidates(self, namespace: str, vector: Sequence[float] | None, text: str,
                          flt: RecallFilter, limit: int, query_entities: Sequence[str] = (),
                          graph: bool = True, session: bool = True, *,
                          neighbors: tuple[int, int] | None = None,
                          touch_session: str | None = None) -> list[Candidate]:
        """Vector, keyword, graph and session candidates, hydrated and filtered.

        The graph channel finds memories that name the query's entities, and memories that
        share rare entities with the best vector/keyword hits (what similarity misses). The
        session channel brings the turns just before and after the best hits: an answer is
        often the reply to the message that matched.

        neighbors=(before, after): each candidate carries its session neighbours as
        `context`, so the router shows the results' conversational context without a
        second call once it has ranked them. touch_session: the recall is activity in that
        session (Dakera), which keeps it from idling.
        """
        self._check(namespace, write=False)
        if touch_session is not None:
            self._keep_alive(namespace, touch_session)
        ns_id = self.records.namespace_id(namespace)
        if ns_id is None:
            return []
        self._observe(ns_id)
        session_key = None
        if flt.session_id is not None:
            session_key = self.records.session_key(namespace, flt.session_id)
            if session_key is None:
                return []
        index_filter = IndexFilter(
            ns_id=ns_id,
            memory_types=tuple(memory_type_code(t) for t in flt.memory_types) if flt.memory_types else None,
            session_key=session_key, since=flt.since, until=flt.until,
            min_importance=flt.min_importance,
        )
        # Tags and expiry are checked on the record store: over-fetch so filters leave enough.
        fetch = limit * 4 if flt.has_tags else limit
        channels: dict[str, list[Any]] = {}
        with self._lock:
            if vector is not None:
                channels["vector"] = self._vector_search(vector, index_filter, fetch)
            if text:
                channels["bm25"] = self.keywords.search(text, index_filter, fetch)
        seeds: dict[int, float] = {}
        for hits in channels.values():
            for rank, h in enumerate(hits[:self.graph_seeds], start=1):
                seeds[h.key] = max(seeds.get(h.key, 0.0), 1.0 / rank)
        if session and seeds:
            channels["session"] = self._session_hits(seeds)
        if graph:
            channels["graph"] = self._graph_hits(namespace, query_entities, dict(seeds), fetch)
        ranks: dict[int, dict[str, int]] = {}
        scores: dict[int, dict[str, float]] = {}
        for channel, hits in channels.items():
            for rank, hit in enumerate(hits, start=1):
                ranks.setdefault(hit.key, {})[channel] = rank
                scores.setdefault(hit.key, {})[channel] = hit.score
        admitted = {k: m for k, m in self.records.by_keys(namespace, ranks).items() if flt.admits(m)}
        context = self._session_context(namespace, admitted, *neighbors) if neighbors else {}
        return [Candidate(memory=m, ranks=ranks[k], scores=scores[k], context=context.get(k, ()))
                for k, m in admitted.items()]

    def _vector_search(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """Exact search for a namespace small enough (the usual tenant), HNSW otherwise."""
        cached = self._exact.cached(flt.ns_id)
        if cached is not None or self.records.namespace_count(flt.ns_id) <= self.exact_search_max_rows:
            return (cached or self._exact.get(flt.ns_id)).search(vector, flt, limit)
        return self._rescored_hnsw(vector, flt, limit)

    def _rescored_hnsw(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """HNSW holds each memory's whole vector only: over-fetch, then score the hits with
        their sentence vectors too, as exact search does. (A memory only one of whose
        sentences matches is found when its whole is near enough to be fetched.)"""
        hits = self.vectors.search(vector, flt, limit * HNSW_OVERFETCH)
        if not hits:
            return hits
        stacks = self.records.vector_stacks(flt.ns_id, [h.key for h in hits])
        hits = [h for h in hits if h.key in stacks]  # deleted since the index answered
        if not hits:
            return hits
        scores = score_stacks([stacks[h.key] for h in hits], self.dim, vector)
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].key))[:limit]
        return [Hit(key=hits[i].key, score=float(scores[i])) for i in order]

    def neighborhood(self, namespace: str, memory_ids: Sequence[str], before: int = 1,
                     after: int = 1) -> dict[str, list[Memory]]:
        """Session-adjacent memories of each given memory (its conversational context)."""
        self._check(namespace, write=False)
        scope = Scope.of(namespace)
        found = dict(f for mid in memory_ids if (f := self.records.find(mid, scope)) is not None)
        context = self._session_context(namespace, found, before, after)
        return {m.id: list(context.get(k, ())) for k, m in found.items()}

    def _session_context(self, namespace: str, known: dict[int, Memory], before: int,
                         after: int) -> dict[int, tuple[Memory, ...]]:
        """key → its live session neighbours (before, after), hydrated once for all keys. A
        neighbour that is itself in `known` is that same object, so a reply pickles it once."""
        around = self.records.session_neighbor_keys(list(known), before, after)
        missing = {n for keys in around.values() for n in keys} - known.keys()
        pool = {**known, **self.records.by_keys(namespace, missing)}
        live = RecallFilter(now=time.time())  # an expired turn is context no more
        return {k: tuple(pool[n] for n in keys if n in pool and live.admits(pool[n]))
                for k, keys in around.items()}

    def _keep_alive(self, namespace: str, session_id: str) -> None:
        if not self._takes_writes(namespace):
            return  # frozen for a move: the session's clock is not worth a wait
        try:
            self.touch_session(session_id, Scope.of(namespace))
        except NotFound:  # nothing to recall there and nothing to keep alive
            pass
