"""The router's side of resharding: a stale shard map costs a retry, never a wrong answer.
Real shards in this process and a real control store; only Serve's hop is left out."""
from __future__ import annotations

import asyncio
from pathlib import Path

from serve.clients import LocalShardClient
from serve.shard_routing import ControlShardMap, ShardRouter
from shards.config import EmbeddedStorageConfig
from shards.control.sqlite import SQLiteControlStore
from shards.routing import shard_for
from shards.shard import Shard
from shards.types import RecallFilter
from tests.builders import mem, vec

MOVING = next(f"agent-{i}" for i in range(100) if shard_for(f"agent-{i}", 2) == 1)
NEW_THERE = next(f"new-{i}" for i in range(100) if shard_for(f"new-{i}", 2) == 1)


def test_stale_routers_follow_the_namespace(tmp_path: Path) -> None:
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 1, 8, cfg) for i in range(2)]
    control = SQLiteControlStore(tmp_path / "control.db")
    initial = control.check_deployed_shards(1)
    clients = [LocalShardClient(s) for s in shards]
    stale = ShardRouter(clients, ControlShardMap(control), initial)

    async def scenario() -> None:
        await stale.call(MOVING, "write", [mem("m1", MOVING, "parcel rerouted to depot", seed=1)])
        control.begin_reshard(2, "job", 60)
        for s in shards:
            s.set_routing(1, 2)
        # Writes wait while the namespace is copied, then land on its new shard.
        shards[0].freeze(MOVING)
        late = asyncio.create_task(
            stale.call(MOVING, "write", [mem("m2", MOVING, "parcel delivered", seed=2)]))
        await asyncio.sleep(0.2)
        assert not late.done()
        shards[0].handoff(MOVING)  # as the job would, from the frozen state the copy started in
        shards[1].import_head(shards[0].export_head(MOVING))
        rows, _ = shards[0].export_memories(MOVING, 0, 1000)
        shards[1].import_memories(MOVING, rows)
        shards[1].activate(MOVING, 1)
        control.mark_moved([MOVING], "job")
        shards[0].release(MOVING)
        await late
        assert stale.map.home(MOVING) == 1
        # A router that never heard of the move still reads the one true copy.
        other = ShardRouter(clients, ControlShardMap(control), initial)
        found = await other.call(MOVING, "recall_candidates", MOVING, vec(2), "parcel",
                                 RecallFilter(), 10)
        assert sorted(c.memory.id for c in found) == ["m1", "m2"]
        # A namespace created during the reshard goes to its new home, and stays findable.
        fresh = ShardRouter(clients, ControlShardMap(control), initial)
        await fresh.call(NEW_THERE, "write", [mem("n1", NEW_THERE, "first words", seed=3)])
        assert [n for n, _ in shards[1].namespace_table()] == sorted([MOVING, NEW_THERE])
        finished = control.finish_reshard("job")
        for s in shards:
            s.set_routing(2, None, finished.epoch)
        # A router that slept through the whole reshard is refused once (older epoch),
        # re-reads the map, and is served by the right shard.
        assert finished.epoch > initial.epoch
        found = await ShardRouter(clients, ControlShardMap(control), initial).call(
            NEW_THERE, "listing", NEW_THERE, RecallFilter(), 10, 0)
        assert [m.id for m in found[0]] == ["n1"]

    asyncio.run(scenario())
    for s in shards:
        s.close()


def one_shard_growing_to_two(tmp_path: Path) -> tuple[list[Shard], SQLiteControlStore, ShardRouter]:
    """Two shards, the data on one: the start of a reshard from 1 to 2, and a router."""
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 1, 8, cfg) for i in range(2)]
    control = SQLiteControlStore(tmp_path / "control.db")
    initial = control.check_deployed_shards(1)
    return shards, control, ShardRouter([LocalShardClient(s) for s in shards],
                                        ControlShardMap(control), initial)


def begin_reshard_to_two(control: SQLiteControlStore, shards: list[Shard]) -> None:
    """As the job's first step does: record the target, then tell every shard."""
    started = control.begin_reshard(2, "job", 60)
    for s in shards:
        s.set_routing(1, 2, started.epoch)


def test_reads_of_unknown_namespaces_leave_the_map_alone(tmp_path: Path) -> None:
    """During a reshard, reading a namespace that exists nowhere answers empty from its new
    home without recording it in the map; writing one records it there."""
    shards, control, router = one_shard_growing_to_two(tmp_path)

    async def scenario() -> None:
        begin_reshard_to_two(control, shards)
        ghosts = [f"ghost-{i}" for i in range(20)]
        for ghost in ghosts:
            found = await router.call(ghost, "recall_candidates", ghost, vec(1), "anything",
                                      RecallFilter(), 10)
            assert found == []
        assert control.shard_map().moved == frozenset()
        await router.call(NEW_THERE, "write", [mem("n1", NEW_THERE, "first words", seed=3)])
        assert control.shard_map().moved == {NEW_THERE}
        found = await router.call(NEW_THERE, "listing", NEW_THERE, RecallFilter(), 10, 0)
        assert [m.id for m in found[0]] == ["n1"]
        assert [n for n, _ in shards[1].namespace_table()] == [NEW_THERE]

    asyncio.run(scenario())
    for s in shards:
        s.close()


def test_a_stale_map_refusal_never_places_a_namespace(tmp_path: Path) -> None:
    """Two requests on one router, both routed by the map from before a reshard began: the
    first refusal refreshes the router's map, and the second, judged against the map *it*
    was sent with, is retried as well; neither records the namespace as moved (which would
    send it to an empty new home)."""
    shards, control, router = one_shard_growing_to_two(tmp_path)

    async def scenario() -> None:
        await router.call(MOVING, "write", [mem("m1", MOVING, "parcel rerouted to depot", seed=1)])
        begin_reshard_to_two(control, shards)
        found = await asyncio.gather(*(router.call(MOVING, "recall_candidates", MOVING, vec(1),
                                                   "parcel", RecallFilter(), 10)
                                       for _ in range(4)))
        assert [[c.memory.id for c in f] for f in found] == [["m1"]] * 4
        assert control.shard_map().moved == frozenset()

    asyncio.run(scenario())
    for s in shards:
        s.close()
