"""Which shard a namespace's request goes to, while a resharding job may be moving it.

The router caches the shard map (shards/routing.py). A shard that does not hold a namespace
answers NamespaceMoved, one copying it NamespaceMoving, and any shard whose map is newer
than the caller's StaleShardMap; the router then re-reads the map and calls again, so a stale map costs a retry, never a wrong answer.
"""
from __future__ import annotations

from typing import Any, Protocol

from serve.clients import ShardClient
from serve.control_calls import control_call
from serve.retrying import retrying
from shards.control.base import ControlStore
from shards.errors import (
    LayoutMismatch,
    NamespaceMoved,
    NamespaceMoving,
    ShardError,
    StaleShardMap,
    shard_error_in,
)
from shards.routing import ShardMap, shard_for

# How long a request waits for a namespace being moved before answering 503 + Retry-After.
# A move freezes writes only while its namespace is copied (milliseconds for a typical agent).
MOVE_WAIT_S = 5.0


class ShardMapSource(Protocol):
    async def current(self) -> ShardMap: ...

    async def place(self, namespace: str) -> ShardMap:
        """A namespace created during a reshard: record that it lives at its new home."""
        ...


class FixedShardMap:
    """No control store (benchmarks in one process): every namespace by the one count."""

    def __init__(self, count: int) -> None:
        self._map = ShardMap(count)

    async def current(self) -> ShardMap:
        return self._map

    async def place(self, namespace: str) -> ShardMap:
        return self._map


class ControlShardMap:
    """The map recorded in the control store, which the resharding job updates."""

    def __init__(self, control: ControlStore) -> None:
        self._control = control

    # Read only after a shard said the map is stale, written only during a reshard.
    async def current(self) -> ShardMap:
        return await control_call(self._control, self._control.shard_map)

    async def place(self, namespace: str) -> ShardMap:
        return await control_call(self._control, self._control.place, namespace)


def move_error(exc: BaseException) -> ShardError | None:
    """The NamespaceMoved, NamespaceMoving or StaleShardMap inside whatever Ray wrapped
    around it: the refusals a re-read of the shard map (or a short wait) answers."""
    found = shard_error_in(exc)
    return found if isinstance(found, (NamespaceMoved, NamespaceMoving, StaleShardMap)) else None


class ShardRouter:
    def __init__(self, shards: list[ShardClient], source: ShardMapSource, initial: ShardMap) -> None:
        self.shards = shards
        self.source = source
        self.map = initial

    async def refresh(self) -> ShardMap:
        self.map = await self.source.current()
        return self.map

    def _client(self, namespace: str) -> ShardClient:
        home = self.map.home(namespace)
        if home >= len(self.shards):
            raise LayoutMismatch(
                f"agent {namespace} lives on shard {home}, but this app runs "
                f"{len(self.shards)} shards: redeploy with shard_count: {self.map.shards_needed}",
                "shard_count")
        return self.shards[home]

    async def call(self, namespace: str, method: str, *args: Any, **kwargs: Any) -> Any:
        # The map this call is routed by: other requests may refresh self.map meanwhile,
        # and what counts after a refusal is whether the map has changed since *this* call.
        sent = self.map
        new_home: ShardClient | None = None  # a read of a namespace its old home lacks

        async def attempt() -> Any:
            nonlocal sent, new_home
            sent = self.map
            client, new_home = new_home or self._client(namespace), None
            return await client.call(method, *args, map_epoch=sent.epoch, **kwargs)

        async def recover(exc: BaseException) -> bool:
            """Re-read the map; True: call again at once (else after a pause)."""
            nonlocal new_home
            moved = move_error(exc)
            current = await self.refresh()
            if current.home(namespace) != sent.home(namespace) or current.epoch != sent.epoch:
                return True  # the map has caught up: call the (new) home at once
            if isinstance(moved, NamespaceMoved) and current.target is not None \
                    and not current.aborting and namespace not in current.moved:
                # Not on its old home and not moved: a namespace new during a reshard is
                # created where it will end up, so a write records it there. A read asks
                # that home without recording anything (reads of names that exist nowhere
                # would otherwise grow the map until the reshard ends).
                if moved.write:
                    self.map = await self.source.place(namespace)
                else:
                    new_home = self.shards[shard_for(namespace, current.target)]
                return True
            return False

        return await retrying(attempt, retriable=lambda exc: move_error(exc) is not None,
                              deadline_s=MOVE_WAIT_S, first_pause_s=0.02, max_pause_s=0.5,
                              recover=recover)

    def for_namespace(self, namespace: str) -> RoutedShard:
        return RoutedShard(self, namespace)


class RoutedShard:
    """A ShardClient for one namespace's requests: each call finds the namespace's shard."""

    def __init__(self, router: ShardRouter, namespace: str) -> None:
        self._router = router
        self._namespace = namespace

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._router.call(self._namespace, method, *args, **kwargs)
