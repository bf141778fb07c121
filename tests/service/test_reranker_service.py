"""The Reranker deployment under the session's real Ray Serve, reached as the router reaches it.

It runs as a second Serve application (no HTTP route) beside the session's Engram, over a
tiny cross-encoder the test builds and saves; its @serve.batch fills forward passes with the
pairs of concurrent calls, which must not change any answer.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.config import RerankerConfig
from models.rerankers import CrossEncoderReranker
from serve.clients import ServeRerankerClient
from shards.errors import InvalidInput
from tests.builders import Engram

APP = "reranker-test"
QUERIES = ["refund for order 4521", "the cat and the dog", "monday morning train", "red apple"]
PASSAGES = [
    "my refund for order 4521 was paid on monday",
    "the cat is on the bus",
    "invoice and receipt by email",
    "a red apple and a yellow lemon",
    "the dog ran after the fox at night",
    "the train was late on monday morning",
    "password reset for my account",
]


@pytest.fixture(scope="module")
def model_path(tiny_cross_encoder_path: Path) -> Path:
    return tiny_cross_encoder_path


@pytest.fixture(scope="module")
def config(model_path: Path) -> RerankerConfig:
    # 4 pairs per pass: one call of 7 passages spans passes, concurrent calls share them.
    # float32: the comparisons are to 1e-4, which bfloat16's padding differences exceed.
    return RerankerConfig(model=str(model_path), device="cpu", precision="float32", max_batch_size=4,
                          batch_wait_timeout_s=0.02, max_candidates=10)


@pytest.fixture(scope="module")
def reranker_handle(engram: Engram, config: RerankerConfig) -> Iterator[Any]:
    """The session fixture started Ray and Serve; this adds a Reranker app beside Engram."""
    from ray import serve

    from serve.deployments import RerankerDeployment

    handle = serve.run(RerankerDeployment.bind(config.model_dump(mode="json")), name=APP,
                       route_prefix=None)
    try:
        yield handle
    finally:
        serve.delete(APP)


@pytest.fixture(scope="module")
def expected(config: RerankerConfig) -> dict[str, list[float]]:
    """Each query's scores computed here, one pair per forward pass."""
    local = CrossEncoderReranker(config.model_copy(update={"max_batch_size": 1}))
    return {q: local.score(q, PASSAGES) for q in QUERIES}


async def test_scores_come_back_in_passage_order(
        reranker_handle: Any, expected: dict[str, list[float]]) -> None:
    client = ServeRerankerClient(reranker_handle)
    query = QUERIES[0]
    scores = await client.score(query, PASSAGES)
    assert scores == pytest.approx(expected[query], rel=1e-4, abs=1e-5)
    shuffled = [PASSAGES[i] for i in (3, 0, 6, 1, 5, 2, 4)]
    assert await client.score(query, shuffled) == pytest.approx(
        [expected[query][i] for i in (3, 0, 6, 1, 5, 2, 4)], rel=1e-4, abs=1e-5)
    assert await client.score(query, []) == []


async def test_concurrent_recalls_share_passes_and_get_their_own_answers(
        reranker_handle: Any, expected: dict[str, list[float]]) -> None:
    client = ServeRerankerClient(reranker_handle)
    # Each query twice and with different passage subsets, all in flight together.
    calls = [(q, PASSAGES[k % 3:]) for k in range(3) for q in QUERIES]
    together = await asyncio.gather(*(client.score(q, p) for q, p in calls))
    for (q, passages), scores in zip(calls, together):
        offset = len(PASSAGES) - len(passages)
        assert scores == pytest.approx(expected[q][offset:], rel=1e-4, abs=1e-5), q
    one_by_one = [await client.score(q, p) for q, p in calls]
    for a, b in zip(together, one_by_one):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)


async def test_more_passages_than_max_candidates_are_refused(
        reranker_handle: Any, config: RerankerConfig) -> None:
    client = ServeRerankerClient(reranker_handle)
    with pytest.raises(InvalidInput, match="max_candidates"):
        await client.score("refund", ["a refund"] * (config.max_candidates + 1))
