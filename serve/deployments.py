"""Thin Ray Serve wrappers: the embedder, the reranker, the shards and the router replicas."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from collections.abc import Callable
from typing import Any

from ray import serve

from models.config import EmbedderConfig, RerankerConfig
from models.embedders import build_embedder, split_for_passes
from models.rerankers import CrossEncoderReranker
from serve.clients import (
    EmbedderClient,
    LocalEmbedderClient,
    RouterEmbedderClient,
    ServeEmbedderClient,
    ServeRerankerClient,
    ServeShardClient,
    ShardClient,
)
from serve.config import EngramConfig
from serve.metrics import export_through_ray, keep_gauges_fresh
from serve.quotas import RateLimiter
from serve.routes.app import create_app
from serve.reshard_control import ReshardControl
from serve.service import MemoryService
from serve.shard_calls import ShardCalls
from serve.shard_routing import ControlShardMap, ShardRouter
from serve.traffic import TrafficWindow
from serve.traffic_board import RayTraffic
from serve.webhooks.dispatcher import Dispatcher
from shards.control.factory import open_control_store
from shards.errors import InvalidInput, ShardError
from shards.routing import ShardMap
from shards.shard import Shard
from shards.webhooks.factory import open_webhook_store

log = logging.getLogger(__name__)

# serve.batch's types know one-list methods only (score_pair takes two lists, and the
# decorated methods carry set_max_batch_size): typed Any, as Ray itself treats them.
batched: Callable[..., Callable[[Callable[..., Any]], Any]] = serve.batch

RATE_SHARE_REFRESH_S = 10.0  # how often a Router replica recounts the replicas (serve/quotas.py)

# What the router may call on a shard; nothing else crosses the handle.
SHARD_METHODS = Shard.REMOTE_METHODS


# num_cpus 0 by default so that the whole app fits a 2-core machine; the YAML sets real
# resources (num_cpus, num_gpus) per deployment where a cluster has them.
@serve.deployment(name="Embedder", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
class EmbedderDeployment:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = EmbedderConfig.model_validate(cfg)
        self.model = build_embedder(self.cfg)
        # Forward passes run off the event loop (which also runs Serve's own work when user
        # code shares the replica's loop, see cluster/ingress.py): texts that arrive during
        # a pass queue for the next one instead of waiting for the loop. Up to
        # embedder.parallel_passes of them run at once (2 on CPU, one core each): a batch
        # store's texts are split over them, and two batches' passes run side by side; lone
        # texts still share one @serve.batch pass at a time.
        self._executor = ThreadPoolExecutor(max_workers=self.model.parallel_passes,
                                            thread_name_prefix="embedder")
        self.embed_one.set_max_batch_size(self.cfg.max_batch_size)
        self.embed_one.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.model.embed, texts)

    @batched(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def embed_one(self, texts: list[str]) -> list[list[float]]:
        return await self._embed(texts)

    async def embed_many(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        parts = split_for_passes(texts, self.model.parallel_passes)
        embedded = await asyncio.gather(*(self._embed(part) for part in parts))
        return [vector for part in embedded for vector in part]

    async def embed_query(self, text: str) -> list[float]:
        result: list[float] = await self.embed_one(self.cfg.query_prefix + text)
        return result

    def dim(self) -> int:
        return int(self.model.dim)

    def device(self) -> str:
        """Where this replica embeds: "cpu" or "cuda" (Routers mirror a CPU Embedder)."""
        return str(getattr(self.model, "device", "cuda"))


@serve.deployment(name="Reranker", max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
class RerankerDeployment:
    """A cross-encoder. A recall sends its top-M passages in one `score` call; each pair then
    queues on its own in `score_pair`, so a forward pass (max_batch_size pairs) is filled with
    pairs from whichever recalls are waiting, first come first served."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = RerankerConfig.model_validate(cfg)
        self.model = CrossEncoderReranker(self.cfg)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reranker")
        self.score_pair.set_max_batch_size(self.cfg.max_batch_size)
        self.score_pair.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)

    @batched(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def score_pair(self, queries: list[str], passages: list[str]) -> list[float]:
        # Off the event loop: recalls that arrive during a pass queue their pairs for the next.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self.model.score_pairs, list(zip(queries, passages)))

    async def score(self, query: str, passages: list[str]) -> list[float]:
        """Relevance (raw logit, higher is better) of each passage to the query, in order."""
        if len(passages) > self.cfg.max_candidates:
            raise InvalidInput(f"{len(passages)} passages to rerank; at most "
                               f"reranker.max_candidates={self.cfg.max_candidates}", "passages")
        scores: list[float] = await asyncio.gather(*(self.score_pair(query, p) for p in passages))
        return list(scores)


@serve.deployment(name="Shard", max_ongoing_requests=128, ray_actor_options={"num_cpus": 0})
class ShardDeployment:
    """One shard. Embedded: exactly one replica, which owns the shard's files. Production
    (every part on a server): several replicas, autoscaled (shards/records/base.SharedRecordStore)."""

    async def __init__(self, index: int, cfg: dict[str, Any], embedder: Any) -> None:  # type: ignore[misc]  # Serve awaits it
        self.cfg = EngramConfig.from_args(cfg)
        self.index = index
        dim = await embedder.dim.remote()
        # One thread: SQLite, Milvus Lite and tantivy each want a single writer.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"shard{index}")
        loop = asyncio.get_running_loop()
        self.shard = await loop.run_in_executor(
            self._executor, Shard.open_embedded, index, self.cfg.shard_count, dim, self.cfg.storage)
        self._maintenance = asyncio.get_running_loop().create_task(self._maintain())
        self.shared_calls = self.shared_reads = 0
        log.info("shard ready", extra={"shard": index, "pid": os.getpid()})

    async def call(self, method: str, *args: Any, map_epoch: int | None = None, **kwargs: Any) -> Any:
        """map_epoch: the epoch of the caller's shard map (routers and the reshard job send
        it). It is checked on the shard's one thread, just before the method: a call that a
        newer map (a reshard job taking over) overtook while it queued is refused, not run."""
        if method not in SHARD_METHODS:
            raise InvalidInput(f"unknown shard method: {method}", "method")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, partial(self.shard.call_at_epoch, map_epoch, method, *args, **kwargs))

    async def call_many(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[tuple[bool, Any]]:
        """Several calls in one (serve/clients.py coalesces a Router's concurrent recall
        reads): run in order on the shard's thread, each checked against its own map_epoch.
        Each answer is (True, result) or (False, the exception it raised), so one refused
        call (a namespace moved) does not fail the others."""
        for method, _, _ in calls:
            if method not in SHARD_METHODS:
                raise InvalidInput(f"unknown shard method: {method}", "method")
        self.shared_calls += 1
        self.shared_reads += len(calls)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_many, calls)

    def read_sharing(self) -> tuple[int, int]:
        """(call_many calls, the calls they carried) since this replica started: how often
        Routers' concurrent reads shared a call."""
        return self.shared_calls, self.shared_reads

    def _run_many(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[tuple[bool, Any]]:
        answers: list[tuple[bool, Any]] = []
        for method, args, kwargs in calls:
            kwargs = dict(kwargs)
            map_epoch = kwargs.pop("map_epoch", None)
            try:
                answers.append((True, self.shard.call_at_epoch(map_epoch, method, *args, **kwargs)))
            except ShardError as exc:  # an answer (not found, moved, ...): the Router maps it
                answers.append((False, exc))
            except Exception as exc:
                # Logged here, where the traceback is (Serve logs a failed call's, but this
                # call did not fail), and sent as a plain error that surely pickles: an
                # exception from a library might not, and would fail the whole batch.
                log.exception("shard call failed", extra={"shard": self.index, "method": method})
                answers.append((False, RuntimeError(f"{method} failed on shard {self.index}: "
                                                    f"{type(exc).__name__}: {exc}")))
        return answers

    async def _maintain(self) -> None:
        """End idle sessions, delete expired memories and checkpoint the indexes, off the
        request path."""
        period = min(self.cfg.sessions.sweep_seconds, self.cfg.storage.checkpoint_seconds)
        last_sweep = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                if time.time() - last_sweep >= self.cfg.sessions.sweep_seconds:
                    last_sweep = time.time()
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._executor, self.end_idle_sessions_default)
                    await self.call("purge_expired")
            except Exception:  # keep maintaining; the next round retries
                log.exception("shard sweep failed", extra={"shard": self.index})
            try:  # apart: a failed sweep must not hold back the checkpoint
                await self.call("checkpoint")
            except Exception:
                log.exception("shard checkpoint failed", extra={"shard": self.index})

    def pid(self) -> int:
        return os.getpid()

    def end_idle_sessions_default(self) -> int:
        return int(self.shard.end_idle_sessions(self.cfg.sessions.idle_timeout_seconds))

    async def check_health(self) -> None:
        if self._maintenance.done() and self._maintenance.exception() is not None:
            raise RuntimeError("shard maintenance loop died")


async def query_embedder(config: EngramConfig, remote: ServeEmbedderClient, handle: Any) -> EmbedderClient:
    """The Router's embedder client: the Embedder's handle, or queries in this process
    (router.query_embedding; auto: when the Embedder runs on CPU)."""
    mode = config.router.query_embedding
    embedder_cfg = config.embedder
    if mode == "auto":
        if embedder_cfg.kind != "sentence-transformers" or await handle.device.remote() != "cpu":
            return remote
        embedder_cfg = embedder_cfg.model_copy(update={"device": "cpu"})
    elif mode == "embedder":
        return remote
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:  # loading takes seconds: off the loop
        model = await loop.run_in_executor(pool, build_embedder, embedder_cfg)
    log.info("router embeds queries itself", extra={"device": getattr(model, "device", "?")})
    return RouterEmbedderClient(LocalEmbedderClient(model, embedder_cfg.max_batch_size), remote)


@serve.deployment(name="Router", max_ongoing_requests=128, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class RouterDeployment(ReshardControl):
    """The API (its routes: serve/routes/), and the reshard job's calls (ReshardControl)."""

    async def __init__(self, cfg: dict[str, Any], embedder: Any, reranker: Any, *shards: Any) -> None:  # type: ignore[misc]  # Serve awaits it
        """reranker: the Reranker's handle, or None when no reranker.model is configured."""
        config = EngramConfig.from_args(cfg)
        self.control = open_control_store(config.storage)
        shard_map = self.control.check_deployed_shards(config.shard_count)  # recorded on first start
        if config.shard_count > shard_map.shards_needed:
            log.warning("shards %d-%d hold nothing until `python -m cluster.reshard --to %d` "
                        "moves namespaces there", shard_map.shards_needed, config.shard_count - 1,
                        config.shard_count)
        root = os.environ.get(config.auth.root_key_env)
        if root:
            self.control.ensure_root_key(root)
        else:  # unsetting the variable is how an operator revokes the root key
            log.warning("%s is not set: no root key (the one recorded before is revoked)",
                        config.auth.root_key_env)
            self.control.revoke_root_key()
        clients: list[ShardClient] = [ServeShardClient(h, config.router.shard_read_batch) for h in shards]
        router = ShardRouter(clients, ControlShardMap(self.control), shard_map)
        self.service = MemoryService(
            config, clients, await query_embedder(config, ServeEmbedderClient(embedder), embedder),
            reranker=ServeRerankerClient(reranker) if reranker is not None else None,
            router=router)
        ReshardControl.__init__(self, self.control, router)
        self.rate_limiter = RateLimiter()
        export_through_ray()  # what Prometheus scrapes: every replica, through Ray's node agents
        self._gauges_task = asyncio.get_running_loop().create_task(keep_gauges_fresh())
        context = serve.get_replica_context()  # the console's live figures: one board per app
        self.traffic = RayTraffic(TrafficWindow(), f"engram-traffic-{context.app_name}",
                                  context.replica_id.unique_id)
        self._traffic_task = asyncio.get_running_loop().create_task(self.traffic.send_forever())
        self._share_task = asyncio.get_running_loop().create_task(self._keep_rate_share())
        # Webhooks: every replica serves the routes and sends deliveries; one at a time takes
        # the shards' outboxes (a lease: serve/webhooks/dispatcher.py).
        self.webhook_store = open_webhook_store(config.storage)
        if config.webhooks.enabled:
            dispatcher = Dispatcher(config.webhooks, self.webhook_store, self.control,
                                    [ShardCalls(c) for c in clients])
            self._webhooks_task = asyncio.get_running_loop().create_task(dispatcher.run())

    async def _keep_rate_share(self) -> None:
        """Each replica admits its share of a key's rate: 1 / the Router replicas running
        (the ingress spreads requests evenly over them). Serve's controller says how many."""
        context = serve.get_replica_context()
        while True:
            try:
                status = await asyncio.to_thread(serve.status)
                deployment = status.applications[context.app_name].deployments[context.deployment]
                # ReplicaState is a str enum: its values are the names
                running = sum(n for state, n in deployment.replica_states.items() if state == "RUNNING")
                self.rate_limiter.share = 1.0 / max(1, running)
            except Exception:  # keep the share it has; the next round asks again
                log.warning("could not count the Router replicas for rate limits", exc_info=True)
            await asyncio.sleep(RATE_SHARE_REFRESH_S)

    async def __del__(self) -> None:
        """Serve calls this on a graceful shutdown (a redeploy, a scale-down): the access
        counts gathered since the last flush go to the shards first. Bounded: when the whole
        app is going away its shards may be gone already, and a few counts are not worth a
        stalled shutdown."""
        try:
            await asyncio.wait_for(self.service.access_counts.flush(), timeout=2.0)
        except Exception:  # TimeoutError, or shards already gone
            log.warning("access counts not flushed at shutdown", exc_info=True)

    def __serve_build_asgi_app__(self) -> Any:
        # Built in the replica, after __init__: Serve would otherwise pickle a frozen copy
        # of a module-level app, and state set on the module's app would never be seen.
        return create_app(self.service, self.control, self.rate_limiter, self.webhook_store, self.traffic)
