"""Recalls' access counts, gathered in the Router and sent on in one call per shard.

A recall used to end with a second shard call to count its results' accesses: ~4-5 ms of
latency and a Ray call's CPU on both sides, for a number the shard itself only buffers until
its next checkpoint. Here the counts of every recall in `flush_seconds` travel together, so
a recall makes one shard call and a loaded router sends a couple of count calls a second.

What this costs: a count shows `flush_seconds` later (and a router that dies uncleanly loses
that window's counts, as a shard that crashes loses those since its checkpoint); a count for
a namespace that a reshard moves meanwhile is dropped, as a shard drops it during a move.
"""
from __future__ import annotations

import asyncio
import logging

from serve.shard_calls import ShardCalls
from serve.shard_routing import ShardRouter

log = logging.getLogger(__name__)


class AccessCounts:
    def __init__(self, router: ShardRouter, flush_seconds: float) -> None:
        self._router = router
        self._flush_seconds = flush_seconds
        self._pending: dict[str, list[str]] = {}
        self._flusher: asyncio.Task[None] | None = None  # held: the loop keeps weak refs only

    def add(self, namespace: str, memory_ids: list[str]) -> None:
        """Count one recall of these memories; sent within flush_seconds."""
        if not memory_ids:
            return
        self._pending.setdefault(namespace, []).extend(memory_ids)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        # Counts added while a flush waits on the shards find this task still running (and
        # start none): go round again until nothing is pending.
        while self._pending:
            await asyncio.sleep(self._flush_seconds)
            await self.flush()

    async def flush(self) -> None:
        """Send what is pending, one call per shard (also on the Router's shutdown)."""
        pending, self._pending = self._pending, {}
        by_shard: dict[int, list[tuple[str, list[str]]]] = {}
        shard_map = self._router.map
        for namespace, memory_ids in pending.items():
            home = shard_map.home(namespace)
            if home < len(self._router.shards):  # else the layout error answers its requests
                by_shard.setdefault(home, []).append((namespace, memory_ids))
        sent = await asyncio.gather(
            *(ShardCalls(self._router.shards[home]).record_accesses(batch)
              for home, batch in by_shard.items()),
            return_exceptions=True)
        for failure in (r for r in sent if isinstance(r, BaseException)):
            # Access counts only boost ranking: never worth failing or retrying a request.
            log.warning("access counts not recorded: %s", failure)
