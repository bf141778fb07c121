"""Store and update embed a memory of several sentences by its sentences: the service's real
pipeline in-process (real MiniLM, real shard), down to the vectors the shard keeps."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from models.config import EmbedderConfig
from models.embedders import SentenceTransformerEmbedder
from serve.app import resolve_config
from serve.clients import LocalEmbedderClient, LocalShardClient
from serve.schemas import RecallBody, StoreBody, UpdateBody
from serve.service import MemoryService
from shards.indexes.exact import split_stacks
from shards.shard import Shard
from shards.types import Scope

TURN = ("Melanie: We went camping at the lake last weekend. The kids roasted marshmallows "
        "by the fire. I painted a horse on the barn wall afterwards.")


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(EmbedderConfig())


def service(tmp: Path, embedder: SentenceTransformerEmbedder, **embedder_cfg: object
            ) -> tuple[MemoryService, Shard]:
    cfg = resolve_config({"shard_count": 1, "storage": {"data_dir": str(tmp)},
                          "embedder": embedder_cfg})
    shard = Shard.open_embedded(0, 1, embedder.dim, cfg.storage)
    return MemoryService(cfg, [LocalShardClient(shard)], LocalEmbedderClient(embedder)), shard


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.new_event_loop().run_until_complete(coro)


def stored_vectors(shard: Shard, ns: str, memory_id: str) -> tuple[np.ndarray, np.ndarray]:
    ns_id = shard.records.namespace_id(ns)
    found = shard.records.find(memory_id, Scope.of(ns))
    assert ns_id is not None and found is not None
    key = found[0]
    whole, sentences, _ = split_stacks([shard.records.vector_stacks(ns_id, [key])[key]], shard.dim)
    return whole[0], sentences


@pytest.fixture()
def svc(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[tuple[MemoryService, Shard]]:
    service_, shard = service(tmp_path, embedder)
    yield service_, shard
    shard.close()


def test_a_memory_of_several_sentences_is_embedded_by_them(svc, embedder) -> None:  # type: ignore[no-untyped-def]
    service_, shard = svc
    [stored], _, _ = run(service_.store("ns", [StoreBody(content=TURN)]))
    whole, sentences = stored_vectors(shard, "ns", stored["id"])
    expected = np.asarray(embedder.embed([
        "Melanie: We went camping at the lake last weekend.",
        "Melanie: The kids roasted marshmallows by the fire.",
        "Melanie: I painted a horse on the barn wall afterwards.",
    ]), dtype=np.float32)
    assert np.allclose(sentences, expected, atol=1e-5)
    mean = expected.mean(axis=0)
    assert np.allclose(whole, mean / np.linalg.norm(mean), atol=1e-5)

    # A memory of one sentence keeps one vector: its own embedding.
    [single], _, _ = run(service_.store("ns", [StoreBody(content="Refund approved for order 4521")]))
    whole, sentences = stored_vectors(shard, "ns", single["id"])
    assert sentences.shape[0] == 0
    assert np.allclose(whole, embedder.embed(["Refund approved for order 4521"])[0], atol=1e-5)


def test_an_update_of_content_replaces_the_sentences(svc) -> None:  # type: ignore[no-untyped-def]
    service_, shard = svc
    [stored], _, _ = run(service_.store("ns", [StoreBody(content=TURN)]))
    run(service_.update("ns", stored["id"], UpdateBody(content="Just one sentence now")))
    _, sentences = stored_vectors(shard, "ns", stored["id"])
    assert sentences.shape[0] == 0
    run(service_.update("ns", stored["id"], UpdateBody(content="First thing to say. Second thing to say.")))
    assert stored_vectors(shard, "ns", stored["id"])[1].shape[0] == 2


def test_the_sentence_that_answers_finds_its_memory(svc) -> None:  # type: ignore[no-untyped-def]
    service_, _ = svc
    fillers = [f"Caroline: The weather in town was mild on day {i}. We talked about work and "
               f"about the new bakery that opened near the station." for i in range(30)]
    run(service_.store("ns", [StoreBody(content=c) for c in fillers + [TURN]]))
    found = run(service_.recall("ns", RecallBody(query="who painted a horse", top_k=3, routing="vector",
                                                 neighborhood_mode="off")))
    assert found["memories"][0]["content"] == TURN


def test_sentence_vectors_can_be_turned_off(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    service_, shard = service(tmp_path, embedder, sentence_vectors=False)
    [stored], _, _ = run(service_.store("ns", [StoreBody(content=TURN)]))
    whole, sentences = stored_vectors(shard, "ns", stored["id"])
    assert sentences.shape[0] == 0
    assert np.allclose(whole, embedder.embed([TURN])[0], atol=1e-5)
    shard.close()
