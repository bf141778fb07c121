"""How the router reaches shards, embedder and reranker: Serve handles, or objects in-process.

The in-process clients let benchmarks measure the same service code without Serve's hops.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class ShardClient(Protocol):
    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...


class EmbedderClient(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]: ...
    async def embed_query(self, text: str) -> list[float]: ...
    async def dim(self) -> int: ...


class RerankerClient(Protocol):
    async def score(self, query: str, passages: list[str]) -> list[float]:
        """Cross-encoder relevance of each passage to the query (higher is better), in order."""
        ...


class ServeShardClient:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._handle.call.remote(method, *args, **kwargs)


class ServeEmbedderClient:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if len(texts) == 1:
            # Single texts go through @serve.batch so concurrent stores share a forward pass.
            return [await self._handle.embed_one.remote(texts[0])]
        result: list[list[float]] = await self._handle.embed_many.remote(texts)
        return result

    async def embed_query(self, text: str) -> list[float]:
        result: list[float] = await self._handle.embed_query.remote(text)
        return result

    async def dim(self) -> int:
        return int(await self._handle.dim.remote())


class ServeRerankerClient:
    """The Reranker deployment's handle: one call per recall, the pairs batched there."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        result: list[float] = await self._handle.score.remote(query, list(passages))
        return result


class LocalShardClient:
    """A Shard object in this process, called on its own thread (shards are blocking code)."""

    def __init__(self, shard: Any) -> None:
        self._shard = shard
        self._executor = ThreadPoolExecutor(max_workers=1)

    async def call(self, method: str, *args: Any, map_epoch: int | None = None, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self._shard.call_at_epoch(map_epoch, method, *args, **kwargs))


class LocalEmbedderClient:
    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._executor = ThreadPoolExecutor(max_workers=1)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        result: list[list[float]] = await loop.run_in_executor(
            self._executor, self._embedder.embed, texts)
        return result

    async def embed_query(self, text: str) -> list[float]:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self._embedder.embed_queries, [text])
        return list(result[0])

    async def dim(self) -> int:
        return int(self._embedder.dim)


class LocalRerankerClient:
    """A CrossEncoderReranker in this process, on its own thread (a forward pass blocks)."""

    def __init__(self, reranker: Any) -> None:
        self._reranker = reranker
        self._executor = ThreadPoolExecutor(max_workers=1)

    async def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        loop = asyncio.get_running_loop()
        result: list[float] = await loop.run_in_executor(
            self._executor, self._reranker.score, query, list(passages))
        return result
