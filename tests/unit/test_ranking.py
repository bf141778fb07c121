"""Fusion, decay and the final blend (pure functions)."""
from __future__ import annotations

import pytest

from serve.config import RankingConfig
from serve.ranking import DAY, asks, fuse, half_life_decay, minmax, rank, rrf
from shards.types import Candidate, Memory

NOW = 1_800_000_000.0


def memory(mid: str, *, importance: float = 0.5, age_days: float = 0.0,
           memory_type: str = "episodic", accesses: int = 0, content: str | None = None) -> Memory:
    t = NOW - age_days * DAY
    return Memory(id=mid, namespace="ns", content=content or mid, memory_type=memory_type,
                  importance=importance, tags=(), metadata={}, session_id=None,
                  created_at=t, updated_at=t, event_time=t, access_count=accesses)


def cand(mid: str, ranks: dict[str, int], scores: dict[str, float] | None = None, **kw: object) -> Candidate:
    return Candidate(memory=memory(mid, **kw), ranks=ranks,  # type: ignore[arg-type]
                     scores=scores or {ch: 1.0 / r for ch, r in ranks.items()})


def test_rrf_rewards_agreement_between_channels() -> None:
    both = cand("both", {"vector": 2, "bm25": 2})
    one = cand("one", {"vector": 1})
    scores = rrf([both, one], 60, {"vector": 0.5, "bm25": 0.5})
    assert scores[0] > scores[1]
    assert rrf([cand("top", {"vector": 1, "bm25": 1})], 60, {"vector": 0.5, "bm25": 0.5}) == [pytest.approx(1.0)]


def test_minmax_respects_vector_weight() -> None:
    a = cand("a", {"vector": 1, "bm25": 2}, {"vector": 0.9, "bm25": 1.0})
    b = cand("b", {"vector": 2, "bm25": 1}, {"vector": 0.5, "bm25": 9.0})
    vector_heavy = minmax([a, b], {"vector": 0.9, "bm25": 0.1})
    text_heavy = minmax([a, b], {"vector": 0.1, "bm25": 0.9})
    assert vector_heavy[0] > vector_heavy[1]
    assert text_heavy[1] > text_heavy[0]


def test_working_memory_decays_fastest() -> None:
    cfg = RankingConfig()
    working = half_life_decay(3 * DAY, cfg.half_life_days["working"])
    semantic = half_life_decay(3 * DAY, cfg.half_life_days["semantic"])
    assert working < 0.2 < 0.95 < semantic
    assert half_life_decay(-5, 1.0) == 1.0  # events in the future do not grow


def test_blend_breaks_relevance_ties_by_importance_and_recency() -> None:
    cfg = RankingConfig()
    same = {"vector": 1}
    old = cand("old", same, age_days=200)
    new = cand("new", same, age_days=0)
    important = cand("important", same, importance=1.0)
    ranked = rank([old, new, important], fusion="rrf", vector_weight=0.5, now=NOW, cfg=cfg,
                  channels=["vector"], relevance=[0.5, 0.5, 0.5])
    assert [s.candidate.memory.id for s in ranked] == ["important", "new", "old"]
    top = ranked[0]
    assert top.final == pytest.approx(top.relevance * cfg.relevance_weight
                                      + top.importance_part * cfg.importance_weight
                                      + top.recency * cfg.recency_weight + top.access)


def test_top_k_is_a_prefix_of_a_longer_answer() -> None:
    cfg = RankingConfig()
    cands = [cand(f"m{i}", {"vector": i + 1}) for i in range(20)]
    full = [s.candidate.memory.id for s in rank(cands, fusion="rrf", vector_weight=0.5, now=NOW, cfg=cfg, channels=["vector"])]
    assert full[:5] == [s.candidate.memory.id for s in rank(cands, fusion="rrf", vector_weight=0.5, now=NOW, cfg=cfg, channels=["vector"])][:5]
    assert len(set(full)) == 20


def test_asks_reads_the_end_of_a_memory() -> None:
    assert asks("Maria: That is cute! What do you all enjoy doing together?")
    assert asks('He said "why not?"  ')
    assert asks("これは何ですか？")
    assert not asks("Why not? Because the order #4521 arrived cracked.")
    assert not asks("Refund approved for #4521.")


def test_a_memory_that_asks_yields_to_one_that_states() -> None:
    question = cand("q", {"vector": 1}, {"vector": 0.80}, content="What books have you read lately?")
    answer = cand("a", {"vector": 2}, {"vector": 0.78}, content="I read Dune by Frank Herbert.")
    low = cand("low", {"vector": 3}, {"vector": 0.10}, content="The weather is nice.")
    kw = dict(fusion="minmax", vector_weight=1.0, channels=["vector"])
    plain = fuse([question, answer, low], cfg=RankingConfig(question_penalty=0), **kw)  # type: ignore[arg-type]
    assert plain[0] > plain[1]
    fused = fuse([question, answer, low], cfg=RankingConfig(question_penalty=0.3), **kw)  # type: ignore[arg-type]
    assert fused[1] == pytest.approx(1.0) and fused[0] < fused[1]
    assert fused[0] > fused[2]  # demoted, not dropped: it still beats an unrelated memory
