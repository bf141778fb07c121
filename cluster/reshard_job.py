"""The reshard job's moves (cluster/reshard.py): each namespace to its new shard, or back on --abort."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import uuid
from typing import Any

from cluster.namespace_copy import NamespaceCopy
from cluster.reshard_tally import Progress, Tally
from serve.clients import ShardClient
from serve.retrying import retrying
from serve.shard_calls import ShardCalls
from shards.errors import Conflict, shard_error_in
from shards.routing import ShardMap, shard_for

log = logging.getLogger("engram.reshard")

INCOMING = "incoming"  # shards.shard.Shard.INCOMING: a copy being filled on its new shard


class LeaseLost(RuntimeError):
    """Another reshard job took over (this one was paused or cut off past its lease)."""


class Reshard:
    def __init__(self, router: Any, shards: list[ShardClient], page_size: int, tally: Tally,
                 lease_seconds: float = 60.0, job: str | None = None,
                 max_namespaces: int | None = None) -> None:
        self.router = router  # the Router deployment: it keeps the shard map
        self.shards = shards  # Shard0..ShardK-1's transports (K: the shards deployed)
        self.page_size = page_size
        self.tally = tally
        self.lease_seconds = lease_seconds
        self.job = job or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.epoch = 0  # of the map this job works under: shards refuse older ones
        self.renewer: asyncio.Task[None] | None = None
        self.finished = False
        self.max_namespaces = max_namespaces  # moves in this run; None: all of them

    def shard(self, index: int) -> ShardCalls:
        """Shard `index`, each call sent under the map epoch this job works by."""
        return ShardCalls(AtJobEpoch(self.shards[index], self))

    async def _renew(self) -> None:
        """Renew the lease every third of it while the job runs: a live job keeps it however
        long one step takes; a stalled or cut-off process loses it."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            await self.router.renew_reshard_lease.remote(self.job, self.lease_seconds)

    def check_lease(self) -> None:
        """Between steps: stop here if renewing failed (another job has taken over)."""
        if self.renewer is not None and self.renewer.done():
            self.renewer.result()

    async def run(self, target: int, progress_seconds: float) -> ShardMap:
        shard_map: ShardMap = await self.router.begin_reshard.remote(target, self.job,
                                                                     self.lease_seconds)
        assert shard_map.target in (target, None)
        if shard_map.target is None:  # already at that count (a run that died at the very end)
            await self.set_routing(shard_map)
            return shard_map
        return await self._leased(self._run(shard_map, target, progress_seconds))

    async def abort(self, progress_seconds: float) -> ShardMap:
        """Undo the reshard in progress: moves called off halfway are rolled back, moved
        namespaces go back to their home under the count, and the target is dropped."""
        current: ShardMap = await self.router.shard_map.remote()
        if current.target is None:  # nothing in progress (or an abort that died at its end)
            log.info("no reshard in progress: the map is at %d shards", current.count)
            await self.set_routing(current)
            return current
        shard_map: ShardMap = await self.router.begin_abort.remote(self.job, self.lease_seconds)
        return await self._leased(self._abort(shard_map, progress_seconds))

    async def _leased(self, work: Any) -> ShardMap:
        """Run `work` while renewing the lease; on failure, hand the lease back at once."""
        self.renewer = asyncio.create_task(self._renew())
        try:
            result: ShardMap = await work
            return result
        except Exception as exc:
            await self._stop_renewing()
            if self.finished:  # failed after its own finish: there is no lease left
                raise
            lost = await self._release_lease()
            if lost is not None:  # a call refused under a newer map, or renewing refused
                raise LeaseLost(f"another reshard job has taken over: {lost}") from exc
            raise
        finally:
            self.renewer.cancel()

    async def _stop_renewing(self) -> None:
        if self.renewer is not None:
            self.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.renewer

    async def _release_lease(self) -> str | None:
        """Stop renewing and give the lease up, so the next run can start at once (a renewal
        still in flight is refused, not taken back); None when done, or why this job no
        longer holds the lease."""
        await self._stop_renewing()
        try:
            await self.router.release_reshard_lease.remote(self.job)
        except Exception as exc:
            refused = shard_error_in(exc)
            if isinstance(refused, Conflict):
                return refused.message
            log.warning("could not release the reshard lease (%s); it runs out in %.0f s",
                        exc, self.lease_seconds)
        return None

    async def _run(self, shard_map: ShardMap, target: int, progress_seconds: float) -> ShardMap:
        # From here on every shard creates new namespaces only at their new home.
        await self.set_routing(shard_map)
        progress = Progress(self.tally, progress_seconds)
        while True:  # until a pass finds nothing left to move
            moves = await self.pending_moves(target)
            if not moves:
                break
            for name, source in moves:
                self.check_lease()
                if self.enough():
                    return await self.stop_here("or with --abort to undo")
                await self.move(name, source, shard_for(name, target))
                progress.report("")
        finished: ShardMap = await self.router.finish_reshard.remote(self.job)
        self.finished = True
        await self.set_routing(finished)
        return finished

    def enough(self) -> bool:
        return self.max_namespaces is not None and self.tally.namespaces >= self.max_namespaces

    async def stop_here(self, how_else: str) -> ShardMap:
        log.info("moved %d namespaces, as --max-namespaces asked: run the job again to go on, "
                 "%s", self.tally.namespaces, how_else)
        now_map: ShardMap = await self.router.shard_map.remote()
        await self._release_lease()
        return now_map

    async def _abort(self, shard_map: ShardMap, progress_seconds: float) -> ShardMap:
        count, target = shard_map.count, shard_map.target
        assert target is not None
        # From here on every shard creates new namespaces at their home under the count.
        await self.set_routing(dataclasses.replace(shard_map, target=None))
        await self.settle(shard_map, target)
        progress = Progress(self.tally, progress_seconds)
        while True:  # until the map lists nothing moved
            shard_map = await self.router.shard_map.remote()
            # Names recorded at their new home that are not there (a first write that never
            # came, a namespace deleted since) have nothing to bring back: home at once, or
            # they would wait for their turn below, unanswerable.
            absent = await self.absent_at_new_home(shard_map, target)
            if absent:
                shard_map = await self.router.unmark_moved.remote(sorted(absent), self.job)
            if not shard_map.moved:
                break
            for name in sorted(shard_map.moved):
                self.check_lease()
                if self.enough():
                    return await self.stop_here("with --abort")
                await self.move_back(name, shard_for(name, target), shard_for(name, count))
                progress.report(" back")
        finished: ShardMap = await self.router.finish_abort.remote(self.job)
        self.finished = True
        await self.set_routing(finished)
        return finished

    async def settle(self, shard_map: ShardMap, target: int) -> None:
        """Roll back the moves a killed run left halfway: a copy being filled, or activated
        but never in the map, is dropped; its source, still the namespace's home in the
        map, takes writes again; an old copy whose move the map recorded is released."""
        tables = await asyncio.gather(*(self.shard(i).namespace_table()
                                        for i in range(len(self.shards))))
        for i, table in enumerate(tables):
            for name, state in table:
                if state is None:
                    continue
                home = shard_map.home(name)
                homes = {shard_for(name, shard_map.count), shard_for(name, target)}
                if state == INCOMING:
                    await self.shard(i).discard(name)
                elif i != home:  # handed off, and the map points to its successor
                    await self.shard(i).release(name)
                else:  # the map still points here: the move never happened
                    for other in homes - {i}:
                        await self.shard(other).discard(name, True)
                    await self.shard(i).thaw(name)
                self.check_lease()

    async def absent_at_new_home(self, shard_map: ShardMap, target: int) -> set[str]:
        homes = {shard_for(name, target) for name in shard_map.moved}
        tables = dict(zip(homes, await asyncio.gather(
            *(self.shard(i).namespace_table() for i in homes))))
        return {name for name in shard_map.moved
                if name not in {n for n, _ in tables[shard_for(name, target)]}}

    async def move_back(self, name: str, source: int, dest: int) -> None:
        if source == dest:  # cannot be (a moved name's two homes differ): never copy onto itself
            raise RuntimeError(f"{name}: its home under both counts is shard {source}")
        expected = await self.copy(name, source, dest)
        if expected is not None:
            await NamespaceCopy(self.shard(source), self.shard(dest), name, self.page_size
                                ).hand_over(expected)
        await self.router.unmark_moved.remote([name], self.job)
        if expected is not None:
            await self.shard(source).release(name)
            self.tally.namespaces += 1
            self.tally.memories += expected

    async def set_routing(self, shard_map: ShardMap) -> None:
        """Every shard learns the map's counts and epoch. Retried for about 15 s: until all
        have it, a shard left behind places new namespaces by the map before."""
        self.epoch = shard_map.epoch

        async def everywhere() -> None:
            await asyncio.gather(*(self.shard(i).set_routing(shard_map.count, shard_map.target,
                                                             shard_map.epoch)
                                   for i in range(len(self.shards))))

        def on_retry(exc: BaseException, pause: float) -> None:
            log.warning("a shard did not take the shard map (%s); trying again", exc)

        # A refusal (a newer job, a conflict) is final: no retry changes that.
        await retrying(everywhere, retriable=lambda exc: shard_error_in(exc) is None,
                       deadline_s=16.0, first_pause_s=1.0, max_pause_s=8.0, on_retry=on_retry)

    async def pending_moves(self, target: int) -> list[tuple[str, int]]:
        """(namespace, shard holding it) of every namespace not yet at its new home."""
        tables = await asyncio.gather(*(self.shard(i).namespace_table()
                                        for i in range(len(self.shards))))
        return [(name, i) for i, table in enumerate(tables) for name, state in table
                if state != INCOMING and shard_for(name, target) != i]

    async def move(self, name: str, source: int, dest: int) -> None:
        shard_map: ShardMap = await self.router.shard_map.remote()
        if name in shard_map.moved:
            # A run that died after the map recorded the move: the new copy is live (and may
            # have taken writes since); only the old one is left to delete.
            await self.shard(source).handoff(name)
            await self.shard(source).release(name)
            self.tally.released += 1
            return
        expected = await self.copy(name, source, dest)
        if expected is None:
            return  # deleted since it was listed
        await NamespaceCopy(self.shard(source), self.shard(dest), name, self.page_size
                            ).hand_over(expected)
        await self.router.mark_moved.remote([name], self.job)
        await self.shard(source).release(name)
        self.tally.namespaces += 1
        self.tally.memories += expected


    async def copy(self, name: str, source: int, dest: int) -> int | None:
        """Copy a namespace from its home to a shard that will serve it (cluster/
        namespace_copy.py); the memory count the copy must hold (None: the namespace is
        gone). The source is left frozen."""
        copy = NamespaceCopy(self.shard(source), self.shard(dest), name, self.page_size,
                             between_pages=self.check_lease)
        try:
            return await copy.copy()
        finally:
            self.tally.caught_up += copy.caught_up


class AtJobEpoch:
    """A shard's transport that sends each call under the job's map epoch (which changes as
    the job goes): the shards refuse calls from a job a newer one has fenced off."""

    def __init__(self, client: ShardClient, job: Reshard) -> None:
        self._client = client
        self._job = job

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._client.call(method, *args, map_epoch=self._job.epoch, **kwargs)
