"""The recall pipeline: embed → shard candidates (vector ‖ BM25 ‖ graph) → fuse → rerank →
blend with importance, decay, recency and time → top_k → session context and associations.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from serve import render
from serve.access_counts import AccessCounts
from serve.clients import EmbedderClient, RerankerClient
from serve.shard_calls import ShardCalls
from serve.config import EngramConfig
from serve.errors import bad_request, too_large
from serve.ranking import Scored, fuse, rank, spread
from serve.schemas import RecallBody, SearchBody, parse_time
from serve.timehints import TimeHint, resolve
from shards.types import Candidate, RecallFilter

CHANNELS_BY_ROUTING = {
    "vector": ("vector",), "bm25": ("bm25",), "graph": ("graph",),
    "hybrid": ("vector", "bm25", "graph", "session"), "auto": ("vector", "bm25", "graph", "session"),
}


@dataclass(frozen=True)
class Reranked:
    relevance: list[float] | None
    report: dict[str, Any]


class Recaller:
    def __init__(self, cfg: EngramConfig, embedder: EmbedderClient, reranker: RerankerClient | None,
                 extractor: Any, access_counts: AccessCounts) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self.reranker = reranker
        self.extractor = extractor
        self.access_counts = access_counts

    def query_entities(self, query: str) -> list[str]:
        return [e.key for e in self.extractor.extract(query)]

    async def recall(self, shard: ShardCalls, namespace: str, body: RecallBody | SearchBody,
                     flt: RecallFilter, *, track_access: bool) -> dict[str, Any]:
        cap = self.cfg.limits.max_top_k
        if not 1 <= body.top_k <= cap:
            raise bad_request("top_k", f"must be between 1 and {cap}")
        if len(body.query.encode("utf-8")) > self.cfg.limits.max_query_bytes:
            raise too_large("query", f"over {self.cfg.limits.max_query_bytes} UTF-8 bytes")
        full = body if isinstance(body, RecallBody) else None  # search has fewer knobs
        routing = body.routing or "hybrid"
        channels = CHANNELS_BY_ROUTING[routing]
        hint = resolve(body.query, parse_time(full.reference_time, "reference_time") if full else None)
        keyword_text = body.query + (" " + " ".join(hint.words) if hint and hint.words else "")

        t0 = time.perf_counter()
        vector = await self.embedder.embed_query(body.query) if "vector" in channels else None
        t1 = time.perf_counter()
        limit = max(self.cfg.ranking.candidates, body.top_k)
        mode = self._neighborhood_mode(full)
        # One shard call: the candidates come with their session neighbours (the results'
        # context, whichever of them rank first), and a recall in a session touches it.
        candidates = await shard.recall_candidates(
            namespace, vector, keyword_text if "bm25" in channels else "",
            flt, limit, self.query_entities(body.query) if "graph" in channels else [],
            "graph" in channels, "session" in channels,
            neighbors=None if mode == "off" else (self.cfg.ranking.neighborhood_before,
                                                  self.cfg.ranking.neighborhood_after),
            touch_session=full.session_id if full is not None else None)
        fusion = full.fusion if full and full.fusion else self.cfg.ranking.fusion
        vector_weight = (full.vector_weight if full and full.vector_weight is not None
                         else self.cfg.ranking.vector_weight)
        relevance = fuse(candidates, fusion=fusion, vector_weight=vector_weight,
                         cfg=self.cfg.ranking, channels=channels)
        reranked = await self._rerank(body, candidates, relevance)
        ranked = rank(candidates, fusion=fusion, vector_weight=vector_weight, now=time.time(),
                      cfg=self.cfg.ranking, channels=channels,
                      relevance=reranked.relevance or relevance,
                      time_window=(hint.start, hint.end) if hint else None)[:body.top_k]
        t2 = time.perf_counter()

        ids = [s.candidate.memory.id for s in ranked]
        out: dict[str, Any] = {
            "memories": [render.scored_json(s) for s in ranked],
            "total_found": len(candidates),
            "fusion": fusion,
            "routing": routing,
            "rerank_report": reranked.report,
            "query_embedding_time_ms": int((t1 - t0) * 1000),
            "search_time_ms": int((t2 - t1) * 1000),
            "warnings": [],
        }
        if hint is not None:
            out["time_window"] = {"start": int(hint.start), "end": int(hint.end)}
        if track_access:
            self.access_counts.add(namespace, ids)
        self._context(mode, [s.candidate for s in ranked], out)
        if full is not None and full.include_associated:
            out["associated_memories"] = await self._associated(shard, namespace, full, ids, flt)
        return out

    async def _rerank(self, body: RecallBody | SearchBody, candidates: list[Candidate],
                      relevance: list[float]) -> Reranked:
        """Cross-encoder scores for the top-M fused candidates; the rest fall behind them."""
        wanted = body.rerank if body.rerank is not None else isinstance(body, RecallBody)
        report: dict[str, Any] = {"applied": False, "candidates": 0, "capped": False, "skipped": None}
        if not wanted:
            report["skipped"] = "disabled"
        elif self.reranker is None:
            report["skipped"] = "unavailable"
        elif body.routing == "bm25":
            report["skipped"] = "bm25_routing"
        elif not candidates:
            report["skipped"] = "no_candidates"
        if report["skipped"]:
            return Reranked(None, report)
        assert self.reranker is not None
        requested = getattr(body, "rerank_candidates", None) or self.cfg.reranker.max_candidates
        m = min(requested, self.cfg.reranker.max_candidates)
        order = sorted(range(len(candidates)), key=lambda i: -relevance[i])[:m]
        try:
            scores = await self.reranker.score(body.query, [candidates[i].memory.content for i in order])
        except Exception:  # a reranker outage degrades recall to fused order, never fails it
            report["skipped"] = "failed"
            return Reranked(None, report)
        reranked = [0.0] * len(candidates)
        for i, s in zip(order, spread(scores)):
            reranked[i] = s
        report.update({"applied": True, "candidates": len(order), "capped": requested > m})
        return Reranked(reranked, report)

    def _neighborhood_mode(self, body: RecallBody | None) -> str:
        if body is None:  # search: no session context
            return "off"
        if body.neighborhood is False:
            return "off"
        return body.neighborhood_mode or self.cfg.ranking.neighborhood_mode

    @staticmethod
    def _context(mode: str, results: list[Candidate], out: dict[str, Any]) -> None:
        if mode == "off":
            return
        seen = {c.memory.id for c in results}
        context = []
        for result in results:
            for m in result.context:
                if m.id in seen:
                    continue
                seen.add(m.id)
                context.append({**render.memory_json(m), "score": 0.0, "retrieval": "neighborhood",
                                "context_of": result.memory.id})
        if mode == "inline":
            out["memories"].extend(context)
        else:
            out["context_memories"] = context

    async def _associated(self, shard: ShardCalls, namespace: str, body: RecallBody,
                          ids: list[str], flt: RecallFilter) -> list[dict[str, Any]]:
        depth = body.associated_memories_depth or 1
        cap = 10 if body.associated_memories_cap is None else body.associated_memories_cap
        nodes = await shard.associated(namespace, ids, depth, cap,
                                       body.associated_memories_min_weight or 0.0, flt)
        return [{**render.memory_json(n.memory), "score": round(n.weight, 6), "depth": n.depth,
                 "retrieval": "associated"} for n in nodes]
