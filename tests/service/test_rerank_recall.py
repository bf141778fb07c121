"""Recall with a cross-encoder: the service's real pipeline, in-process, with a tiny model."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from models.config import EmbedderConfig, RerankerConfig
from models.embedders import SentenceTransformerEmbedder
from models.rerankers import CrossEncoderReranker
from serve.app import resolve_config
from serve.clients import LocalEmbedderClient, LocalRerankerClient, LocalShardClient
from serve.schemas import RecallBody, StoreBody
from serve.service import MemoryService
from shards.shard import Shard


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, tiny_cross_encoder_path: Path):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("rerank")
    model = tiny_cross_encoder_path
    embedder = SentenceTransformerEmbedder(EmbedderConfig())
    out = {}
    for name, reranker_model in (("with", str(model)), ("without", None)):
        cfg = resolve_config({"shard_count": 1, "storage": {"data_dir": str(tmp / name)},
                              "reranker": {"model": reranker_model, "max_candidates": 8}})
        shard = Shard.open_embedded(0, 1, embedder.dim, cfg.storage)
        reranker = LocalRerankerClient(CrossEncoderReranker(cfg.reranker)) if reranker_model else None
        out[name] = MemoryService(cfg, [LocalShardClient(shard)], LocalEmbedderClient(embedder), reranker)
    yield out


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.new_event_loop().run_until_complete(coro)


def test_recall_reports_rerank(services) -> None:  # type: ignore[no-untyped-def]
    for svc in services.values():
        run(svc.store("ns", [StoreBody(content=f"note {i} about the garden") for i in range(12)]))
    with_ce, without = services["with"], services["without"]

    applied = run(with_ce.recall("ns", RecallBody(query="garden", top_k=5)))["rerank_report"]
    assert applied == {"applied": True, "candidates": 8, "capped": False, "skipped": None}
    capped = run(with_ce.recall("ns", RecallBody(query="garden", top_k=5, rerank_candidates=50)))
    assert capped["rerank_report"]["capped"] is True and capped["rerank_report"]["candidates"] == 8
    few = run(with_ce.recall("ns", RecallBody(query="garden", top_k=3, rerank_candidates=3)))
    assert few["rerank_report"]["candidates"] == 3 and len(few["memories"]) == 3
    off = run(with_ce.recall("ns", RecallBody(query="garden", rerank=False)))["rerank_report"]
    assert off["applied"] is False and off["skipped"] == "disabled"

    missing = run(without.recall("ns", RecallBody(query="garden", rerank=True)))
    assert missing["rerank_report"]["skipped"] == "unavailable" and len(missing["memories"]) == 5
