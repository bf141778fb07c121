"""Queries embedded in the Router: concurrent queries share a forward pass, a failure reaches
every waiter, and router.query_embedding picks where queries are embedded."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from models.config import EmbedderConfig
from models.embedders import build_embedder
from serve.clients import LocalEmbedderClient, RouterEmbedderClient, ServeEmbedderClient
from serve.config import EngramConfig
from serve.deployments import query_embedder


class GatedEmbedder:
    """Stands in for the model (not under test): records each pass and holds the first one
    until released, so that queries arrive while it runs."""

    dim = 3

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.release = threading.Event()

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        self.passes.append(list(texts))
        if len(self.passes) == 1:
            self.release.wait(10)
        if any(t == "boom" for t in texts):
            raise RuntimeError("model failed")
        return [[float(len(t)), 0.0, 1.0] for t in texts]


async def test_queries_arriving_during_a_pass_share_the_next_one() -> None:
    model = GatedEmbedder()
    client = LocalEmbedderClient(model)
    first = asyncio.create_task(client.embed_query("a"))
    await asyncio.sleep(0.05)  # the first pass is running, held
    rest = [asyncio.create_task(client.embed_query("b" * n)) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    model.release.set()
    assert await first == [1.0, 0.0, 1.0]
    assert [v[0] for v in await asyncio.gather(*rest)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert model.passes == [["a"], ["b", "bb", "bbb", "bbbb", "bbbbb"]]


async def test_a_pass_takes_at_most_max_batch_queries() -> None:
    model = GatedEmbedder()
    client = LocalEmbedderClient(model, max_batch=2)
    first = asyncio.create_task(client.embed_query("a"))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(client.embed_query("b" * n)) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    model.release.set()
    await asyncio.gather(first, *rest)
    assert model.passes == [["a"], ["b", "bb"], ["bbb", "bbbb"], ["bbbbb"]]


async def test_a_failed_pass_fails_its_waiters_and_the_next_pass_runs() -> None:
    model = GatedEmbedder()
    model.release.set()
    client = LocalEmbedderClient(model)
    results = await asyncio.gather(client.embed_query("boom"), client.embed_query("ok"),
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)  # one pass held both
    assert await client.embed_query("fine") == [4.0, 0.0, 1.0]


class Method:
    """One method of a Serve handle: `.remote()` gives an awaitable of `value`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def remote(self, *args: Any) -> Any:
        async def result() -> Any:
            return self.value
        return result()


class EmbedderHandle:
    """Stands in for the Embedder deployment's handle (Serve is not under test here)."""

    def __init__(self, device: str) -> None:
        self.device = Method(device)
        self.dim = Method(384)


@pytest.mark.parametrize(("mode", "device", "local"), [
    ("auto", "cpu", True),        # a CPU Embedder: the Router does the same work, one hop less
    ("auto", "cuda", False),      # a GPU Embedder: queries go there
    ("embedder", "cpu", False),
    ("router", "cuda", True),
])
async def test_query_embedding_mode(mode: str, device: str, local: bool) -> None:
    config = EngramConfig.from_args({"router": {"query_embedding": mode}})
    handle = EmbedderHandle(device)
    remote = ServeEmbedderClient(handle)
    client = await query_embedder(config, remote, handle)
    if local:
        assert isinstance(client, RouterEmbedderClient)
    else:
        assert client is remote


async def test_router_query_vectors_are_the_embedders() -> None:
    """The Router's copy embeds a query exactly as the Embedder's model does."""
    config = EngramConfig.from_args({})
    handle = EmbedderHandle("cpu")
    client = await query_embedder(config, ServeEmbedderClient(handle), handle)
    reference = build_embedder(EmbedderConfig(device="cpu"))
    query = "what happened with Jane's return request"
    assert await client.embed_query(query) == pytest.approx(reference.embed_queries([query])[0])
    assert await client.dim() == reference.dim


async def test_vllm_embedders_keep_queries() -> None:
    config = EngramConfig.from_args({"embedder": {"kind": "vllm"}})
    handle = EmbedderHandle("cpu")
    remote = ServeEmbedderClient(handle)
    assert await query_embedder(config, remote, handle) is remote
