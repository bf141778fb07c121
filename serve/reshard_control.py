"""The Router's side of a reshard: the shard map in the control store, which only the
resharding job (cluster/reshard.py) changes, through these calls on a Router's handle.

RouterDeployment serves them (it inherits this class); the tests run the same class over a
real control store. After each change the Router re-reads the map, and every other replica
re-reads it the first time a shard answers NamespaceMoved or StaleShardMap.
"""
from __future__ import annotations

from serve.control_calls import control_call
from serve.shard_routing import ShardRouter
from shards.control.base import ControlStore
from shards.errors import InvalidInput
from shards.routing import ShardMap


class ReshardControl:
    def __init__(self, control: ControlStore, router: ShardRouter) -> None:
        self.control = control
        self.shard_router = router

    async def shard_map(self) -> ShardMap:
        return await self.shard_router.refresh()

    def deployed_shards(self) -> int:
        return len(self.shard_router.shards)

    async def begin_reshard(self, target: int, job: str, lease_seconds: float) -> ShardMap:
        deployed = self.deployed_shards()
        if target > deployed:
            raise InvalidInput(f"this app runs {deployed} shards: deploy it with shard_count: "
                               f"{target} before resharding to {target}", "target")
        await control_call(self.control, self.control.begin_reshard, target, job, lease_seconds)
        return await self.shard_router.refresh()

    async def renew_reshard_lease(self, job: str, lease_seconds: float) -> None:
        await control_call(self.control, self.control.renew_reshard_lease, job, lease_seconds)

    async def release_reshard_lease(self, job: str) -> None:
        await control_call(self.control, self.control.release_reshard_lease, job)

    async def mark_moved(self, names: list[str], job: str) -> ShardMap:
        await control_call(self.control, self.control.mark_moved, names, job)
        return await self.shard_router.refresh()

    async def finish_reshard(self, job: str) -> ShardMap:
        await control_call(self.control, self.control.finish_reshard, job)
        return await self.shard_router.refresh()

    async def begin_abort(self, job: str, lease_seconds: float) -> ShardMap:
        await control_call(self.control, self.control.begin_abort, job, lease_seconds)
        return await self.shard_router.refresh()

    async def unmark_moved(self, names: list[str], job: str) -> ShardMap:
        await control_call(self.control, self.control.unmark_moved, names, job)
        return await self.shard_router.refresh()

    async def finish_abort(self, job: str) -> ShardMap:
        await control_call(self.control, self.control.finish_abort, job)
        return await self.shard_router.refresh()
