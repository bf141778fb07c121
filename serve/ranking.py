"""Pure ranking functions: channel fusion, decay and the final blend. No I/O."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from serve.config import RankingConfig
from shards.types import Candidate

DAY = 86_400.0
EVIDENCE_CHANNELS = frozenset({"graph", "session"})


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    relevance: float
    importance_part: float
    recency: float
    decay: float
    access: float
    final: float
    time_match: float = 0.0

    @property
    def channels(self) -> list[str]:
        return sorted(self.candidate.ranks)


def rrf(candidates: Sequence[Candidate], k: int, weights: dict[str, float]) -> list[float]:
    """Reciprocal rank fusion, scaled to [0, 1] (1 = first in every channel).

    Fuse by rank: BM25 and cosine scores live on different scales.
    """
    best = sum(w / (k + 1) for w in weights.values()) or 1.0
    return [
        sum(weights.get(ch, 0.0) / (k + rank) for ch, rank in c.ranks.items()) / best
        for c in candidates
    ]


def minmax(candidates: Sequence[Candidate], weights: dict[str, float]) -> list[float]:
    """Normalise each channel's scores to [0, 1] over the candidates, then weight and add."""
    # Similarity channels are stretched between their worst and best candidate (cosine and
    # BM25 values bunch up). Evidence channels (graph, session) keep 0 as their floor: a graph
    # hop that found two memories must not zero the second one.
    bounds: dict[str, tuple[float, float]] = {}
    for c in candidates:
        for ch, s in c.scores.items():
            lo, hi = bounds.get(ch, (0.0 if ch in EVIDENCE_CHANNELS else s, s))
            bounds[ch] = (min(lo, s), max(hi, s))
    total = sum(weights.values()) or 1.0
    out = []
    for c in candidates:
        value = 0.0
        for ch, s in c.scores.items():
            lo, hi = bounds[ch]
            value += weights.get(ch, 0.0) * (1.0 if hi == lo else (s - lo) / (hi - lo))
        out.append(value / total)
    return out


def spread(values: Sequence[float]) -> list[float]:
    """Min-max over the candidates: the best match is 1, the worst 0.

    Raw RRF values sit close together (rank 1 vs 2 differ by ~1.6% at k=60), so without
    this a small importance gap would outvote a clearly better match.
    """
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return [1.0 for _ in values]
    return [(v - lo) / (hi - lo) for v in values]


def half_life_decay(age_seconds: float, half_life_days: float) -> float:
    return float(0.5 ** (max(age_seconds, 0.0) / (half_life_days * DAY)))


def channel_weights(vector_weight: float, channels: Sequence[str], cfg: RankingConfig) -> dict[str, float]:
    weights = {"vector": vector_weight, "bm25": 1.0 - vector_weight, "graph": cfg.graph_weight,
               "session": cfg.session_weight}
    return {ch: weights.get(ch, 0.5) for ch in channels}


def asks(content: str) -> bool:
    """Whether a memory ends by asking ("… What do you all enjoy doing together?")."""
    return content.rstrip(_CLOSERS).endswith(("?", "\uff1f"))


_CLOSERS = " \t\r\n\"'\u201d\u2019)]*_"


def fuse(candidates: Sequence[Candidate], *, fusion: str, vector_weight: float,
         cfg: RankingConfig, channels: Sequence[str]) -> list[float]:
    """Relevance in [0, 1] from the channels' ranks (RRF) or scores (min-max).

    A memory that ends by asking a question is weaker evidence than one that states
    something: it shares the words of the topic and hands the answer to what comes after it
    (which the session channel brings in). Its relevance is scaled by 1 - question_penalty.
    """
    weights = channel_weights(vector_weight, channels, cfg)
    fused = spread(rrf(candidates, cfg.rrf_k, weights) if fusion == "rrf"
                   else minmax(candidates, weights))
    if cfg.question_penalty <= 0:
        return fused
    keep = 1.0 - cfg.question_penalty
    return spread([v * keep if asks(c.memory.content) else v for c, v in zip(candidates, fused)])


def rank(candidates: Sequence[Candidate], *, fusion: str, vector_weight: float, now: float,
         cfg: RankingConfig, channels: Sequence[str], relevance: Sequence[float] | None = None,
         time_window: tuple[float, float] | None = None) -> list[Scored]:
    """Fuse, then blend relevance with importance × decay, recency and access; best first.

    final = relevance·w_r + importance·decay(age, half-life by type)·w_i + recency·w_t + access
            (+ w_time when the query names a time and the memory's event falls in it)
    """
    if relevance is None:
        relevance = fuse(candidates, fusion=fusion, vector_weight=vector_weight, cfg=cfg,
                         channels=channels)
    scored = []
    for c, rel in zip(candidates, relevance):
        m = c.memory
        age = now - m.event_time
        decay = half_life_decay(age, cfg.half_life_days.get(m.memory_type, 30.0))
        recency = half_life_decay(age, cfg.recency_half_life_days)
        access = min(0.05, cfg.access_boost * math.log2(1 + m.access_count))
        importance_part = m.importance * decay
        in_window = time_window is not None and time_window[0] <= m.event_time < time_window[1]
        time_match = cfg.time_match_weight if in_window else 0.0
        final = (rel * cfg.relevance_weight + importance_part * cfg.importance_weight
                 + recency * cfg.recency_weight + access + time_match)
        scored.append(Scored(c, rel, importance_part, recency, decay, access, final, time_match))
    # Ties broken by id so that top_k=k is always a prefix of top_k=k+n.
    scored.sort(key=lambda s: (-s.final, s.candidate.memory.id))
    return scored
