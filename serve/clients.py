"""How the router reaches shards, embedder and reranker: Serve handles, or objects in-process.

The in-process clients let benchmarks measure the same service code without Serve's hops.
"""
from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from shards.errors import StorageUnavailable


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


# Shard methods whose concurrent calls from one Router share a handle call (call_many).
COALESCED_METHODS = frozenset({"recall_candidates"})


class ServeShardClient:
    """A shard's Serve handle. Recall reads that arrive while one is in flight to the same
    shard wait for it, then go together in one `call_many`: on two cores a handle call costs
    ~2.5 ms of CPU in the Router and as much in the Shard, more than the read itself
    (0.3-1.5 ms), and the shard runs its calls one at a time anyway. A lone recall is sent
    at once, as before. The price: a batch answers when its last read is done, so a read
    that shares a call waits for the others in it (~1-3 ms each at 100k memories)."""

    def __init__(self, handle: Any, max_batch: int = 16) -> None:
        """max_batch: most calls in one call_many (router.shard_read_batch); 1: none."""
        self._handle = handle
        self._max_batch = max_batch
        self._queued: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None  # held: the loop keeps weak refs only

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method not in COALESCED_METHODS or self._max_batch == 1:
            return await self._handle.call.remote(method, *args, **kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((method, args, kwargs, future))
        if self._sender is None or self._sender.done():
            # A context of its own: a task copies its creator's, and Serve would then take
            # the sender's calls for children of the request that started it, and cancel
            # them, with every other request's reads in them, if that one client hung up.
            self._sender = loop.create_task(self._send(), context=contextvars.Context())
        return await future

    async def _send(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued[:self._max_batch], self._queued[self._max_batch:]
                batch = [item for item in batch if not item[3].done()]  # cancelled while queued
                if batch:
                    await self._send_batch(batch)
        finally:  # the sender itself cancelled (the replica stopping): no waiter is left hanging
            for *_, future in self._queued:
                future.cancel()
            self._queued = []

    async def _send_batch(self, batch: list[tuple[str, tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                method, args, kwargs, _ = batch[0]
                outcomes = [(True, await self._handle.call.remote(method, *args, **kwargs))]
            else:
                outcomes = await self._handle.call_many.remote(
                    [(method, args, kwargs) for method, args, kwargs, _ in batch])
                if len(outcomes) != len(batch):  # never leave a waiter without an answer
                    raise RuntimeError(f"a shard answered {len(outcomes)} of {len(batch)} calls")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this sender is being cancelled
                for *_, future in batch:
                    future.cancel()
                raise
            # The call was cancelled below us (not this sender): a transient failure, 503.
            outcomes = [(False, StorageUnavailable("a shard call was cancelled; retry"))] * len(batch)
        except Exception as exc:  # one answer for the whole call: every waiter gets it
            outcomes = [(False, exc)] * len(batch)
        for (_, _, _, future), (ok, value) in zip(batch, outcomes):
            if future.done():  # its request was cancelled meanwhile
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


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
    """An embedder in this process, on its own thread. Queries that arrive while a forward
    pass runs share the next one, up to max_batch (as @serve.batch with no wait does on the
    Embedder): a pass per query cost a Router a fifth of its recalls/s at 8 clients."""

    def __init__(self, embedder: Any, max_batch: int = 64) -> None:
        self._embedder = embedder
        self._max_batch = max_batch
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._queued: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._drainer: asyncio.Task[None] | None = None  # held: the loop keeps weak refs only

    async def embed(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        result: list[list[float]] = await loop.run_in_executor(
            self._executor, self._embedder.embed, texts)
        return result

    async def embed_query(self, text: str) -> list[float]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._queued.append((text, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queued:
            batch, self._queued = self._queued[:self._max_batch], self._queued[self._max_batch:]
            try:
                vectors = await loop.run_in_executor(
                    self._executor, self._embedder.embed_queries, [t for t, _ in batch])
            except Exception as exc:  # every waiter gets the failure, none hangs
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors):
                if not future.done():  # a waiter whose request was cancelled is skipped
                    future.set_result(list(vector))

    async def dim(self) -> int:
        return int(self._embedder.dim)


class RouterEmbedderClient:
    """Queries embedded in the Router's own process, stores on the Embedder deployment.

    When the Embedder runs on CPU, a query costs the same in the Router as there, and the
    Router saves a handle hop each way (measured: recall p50 35 -> 32 ms at 1 client). Stores
    still go to the Embedder, which batches across Routers and autoscales on its own."""

    def __init__(self, local: LocalEmbedderClient, remote: EmbedderClient) -> None:
        self._local = local
        self._remote = remote

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._remote.embed(texts)

    async def embed_query(self, text: str) -> list[float]:
        return await self._local.embed_query(text)

    async def dim(self) -> int:
        return await self._local.dim()


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
