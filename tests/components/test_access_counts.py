"""Recalls' access counts gathered in the router: one call per shard, none lost to a moved
namespace's error, none blocking a recall. Real shards in this process; only Serve's hop
is left out."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from serve.access_counts import AccessCounts
from serve.clients import LocalShardClient
from serve.shard_routing import FixedShardMap, ShardRouter
from shards.config import EmbeddedStorageConfig
from shards.routing import ShardMap, shard_for
from shards.shard import Shard
from shards.types import Scope
from tests.builders import mem

ON = {home: next(f"agent-{i}" for i in range(100) if shard_for(f"agent-{i}", 2) == home)
      for home in (0, 1)}


class CountingClient(LocalShardClient):
    def __init__(self, shard: Any) -> None:
        super().__init__(shard)
        self.calls: list[str] = []

    async def call(self, method: str, *args: Any, map_epoch: int | None = None, **kwargs: Any) -> Any:
        self.calls.append(method)
        return await super().call(method, *args, map_epoch=map_epoch, **kwargs)


def test_counts_reach_each_shard_in_one_call_after_the_flush_interval(tmp_path: Path) -> None:
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 2, 8, cfg) for i in range(2)]
    clients = [CountingClient(s) for s in shards]
    for home, ns in ON.items():
        shards[home].write([mem("a", ns, "first"), mem("b", ns, "second")])
    counts = AccessCounts(ShardRouter(clients, FixedShardMap(2), ShardMap(2)), flush_seconds=0.2)

    def access(ns: str) -> dict[str, int]:
        shards[shard_for(ns, 2)].checkpoint()
        return {i: m.access_count for i in ("a", "b") for m in shards[shard_for(ns, 2)].lookup(i, Scope.of(ns))}

    async def scenario() -> None:
        for _ in range(3):  # three recalls in one interval
            counts.add(ON[0], ["a", "b"])
            counts.add(ON[1], ["a"])
        counts.add(ON[1], [])  # a recall that found nothing counts nothing
        assert all(c.calls == [] for c in clients)  # nothing sent while recalls go on
        await asyncio.sleep(0.4)
        assert [c.calls for c in clients] == [["record_accesses"], ["record_accesses"]]

    asyncio.run(scenario())
    assert access(ON[0]) == {"a": 3, "b": 3} and access(ON[1]) == {"a": 3, "b": 0}
    for s in shards:
        s.close()


def test_a_failing_shard_loses_its_counts_only(tmp_path: Path) -> None:
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 2, 8, cfg) for i in range(2)]
    for home, ns in ON.items():
        shards[home].write([mem("a", ns, "first")])
    clients = [LocalShardClient(s) for s in shards]
    shards[0].close()  # gone: its call fails
    counts = AccessCounts(ShardRouter(clients, FixedShardMap(2), ShardMap(2)), flush_seconds=60)

    async def scenario() -> None:
        counts.add(ON[0], ["a"])
        counts.add(ON[1], ["a"])
        await counts.flush()  # as on the router's shutdown: no wait, and no error raised

    asyncio.run(scenario())
    shards[1].checkpoint()
    [m] = shards[1].lookup("a", Scope.of(ON[1]))
    assert m.access_count == 1
    shards[1].close()


class HeldClient(CountingClient):
    """Holds the first call until released: counts arrive while a flush waits on the shard."""

    def __init__(self, shard: Any) -> None:
        super().__init__(shard)
        self.release = asyncio.Event()

    async def call(self, method: str, *args: Any, map_epoch: int | None = None, **kwargs: Any) -> Any:
        if not self.calls:
            self.calls.append(method)
            await self.release.wait()
            return await LocalShardClient.call(self, method, *args, map_epoch=map_epoch, **kwargs)
        return await super().call(method, *args, map_epoch=map_epoch, **kwargs)


def test_counts_added_during_a_flush_are_sent_by_the_next_one(tmp_path: Path) -> None:
    shard = Shard.open_embedded(0, 1, 8, EmbeddedStorageConfig(data_dir=tmp_path))
    shard.write([mem("a", "ns", "first")])
    client = HeldClient(shard)
    counts = AccessCounts(ShardRouter([client], FixedShardMap(1), ShardMap(1)), flush_seconds=0.1)

    async def scenario() -> None:
        counts.add("ns", ["a"])
        await asyncio.sleep(0.2)  # the first flush is now waiting on the shard
        counts.add("ns", ["a"])  # no recall follows this one
        client.release.set()
        await asyncio.sleep(0.4)
        assert client.calls == ["record_accesses", "record_accesses"]

    asyncio.run(scenario())
    shard.checkpoint()
    [m] = shard.lookup("a", Scope.of("ns"))
    assert m.access_count == 2
    shard.close()
