"""The one typed client of a shard. For each method a shard serves remotely
(Shard.REMOTE_METHODS) it has one of the same name, parameters, defaults and result, so mypy
checks every shard call's arguments and the use of its answer. tests/unit/test_shard_calls.py
holds the two together: a Shard method whose signature changes fails there until its mirror
changes with it.

A ShardCalls sends each call through a transport, the one untyped hop (serve.clients.
ShardClient): a shard's Serve handle (ServeShardClient), a Shard in this process
(LocalShardClient), or a namespace's routed shard (serve.shard_routing.RoutedShard, which
finds the namespace's shard for each call)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from serve.clients import ShardClient
from shards.events import Event
from shards.types import (
    Candidate,
    EntityRef,
    GraphEdge,
    GraphNode,
    Memory,
    MemoryChanges,
    NamespaceInfo,
    NewMemory,
    RecallFilter,
    Scope,
    Session,
    ShardStats,
    WriteResult,
)

class ShardCalls:
    """A shard's methods as async calls over a transport, in alphabetical order."""

    def __init__(self, transport: ShardClient) -> None:
        self._transport = transport

    async def activate(self, namespace: str, expected_memories: int) -> None:
        await self._transport.call("activate", namespace, expected_memories)

    async def all_sessions(
            self, scope: Scope, active_only: bool = False, limit: int = 100,
    ) -> list[Session]:
        return cast("list[Session]", await self._transport.call(
            "all_sessions", scope, active_only, limit))

    async def associated(
            self, namespace: str, memory_ids: Sequence[str], depth: int, cap: int, min_weight:
            float, flt: RecallFilter,
    ) -> list[GraphNode]:
        return cast("list[GraphNode]", await self._transport.call(
            "associated", namespace, memory_ids, depth, cap, min_weight, flt))

    async def begin_copy(self, namespace: str) -> bool:
        return cast("bool", await self._transport.call("begin_copy", namespace))

    async def catch_up_indexes(self) -> int:
        return cast("int", await self._transport.call("catch_up_indexes"))

    async def checkpoint(self) -> None:
        await self._transport.call("checkpoint")

    async def delete(
            self, scope: Scope, memory_ids: Sequence[str], namespace: str | None = None, reason: str =
            'forget',
    ) -> list[Memory]:
        return cast("list[Memory]", await self._transport.call("delete", scope, memory_ids, namespace, reason))

    async def discard(self, namespace: str, unrouted: bool = False) -> int:
        return cast("int", await self._transport.call("discard", namespace, unrouted))

    async def drop_events(self, seqs: Sequence[int]) -> int:
        return cast("int", await self._transport.call("drop_events", seqs))

    async def drop_namespace(self, namespace: str) -> int:
        return cast("int", await self._transport.call("drop_namespace", namespace))

    async def end_session(
            self, session_id: str, scope: Scope, summary: str | None = None, reason: str =
            'client', now: float | None = None,
    ) -> Session:
        return cast("Session", await self._transport.call(
            "end_session", session_id, scope, summary, reason, now))

    async def ensure_namespace(
            self, namespace: str, metadata: dict[str, Any] | None = None, now: float | None =
            None,
    ) -> bool:
        return cast("bool", await self._transport.call("ensure_namespace", namespace, metadata, now))

    async def export_changes(
            self, namespace: str, after_seq: int, limit: int,
    ) -> tuple[list[Any], list[str], int]:
        return cast("tuple[list[Any], list[str], int]", await self._transport.call(
            "export_changes", namespace, after_seq, limit))

    async def dump_head(self, namespace: str) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._transport.call("dump_head", namespace))

    async def dump_memories(self, namespace: str, after_key: int, limit: int) -> tuple[list[Any], int]:
        return cast("tuple[list[Any], int]", await self._transport.call(
            "dump_memories", namespace, after_key, limit))

    async def export_head(self, namespace: str) -> dict[str, Any]:
        return cast("dict[str, Any]", await self._transport.call("export_head", namespace))

    async def export_memories(
            self, namespace: str, after_key: int, limit: int,
    ) -> tuple[list[Any], int]:
        return cast("tuple[list[Any], int]", await self._transport.call(
            "export_memories", namespace, after_key, limit))

    async def forget_matching(self, namespace: str, flt: RecallFilter) -> list[Memory]:
        return cast("list[Memory]", await self._transport.call("forget_matching", namespace, flt))

    async def freeze(self, namespace: str) -> int | None:
        return cast("int | None", await self._transport.call("freeze", namespace))

    async def get_session(self, session_id: str, scope: Scope) -> Session | None:
        return cast("Session | None", await self._transport.call("get_session", session_id, scope))

    async def handoff(self, namespace: str) -> None:
        await self._transport.call("handoff", namespace)

    async def import_changes(
            self, namespace: str, rows: Sequence[tuple[Any, ...]], deleted_ids: Sequence[str],
    ) -> int:
        return cast("int", await self._transport.call("import_changes", namespace, rows, deleted_ids))

    async def import_head(self, head: dict[str, Any], replace_live: bool = False) -> None:
        await self._transport.call("import_head", head, replace_live)

    async def import_memories(self, namespace: str, rows: Sequence[tuple[Any, ...]]) -> int:
        return cast("int", await self._transport.call("import_memories", namespace, rows))

    async def layout(self) -> tuple[int, int, int]:
        return cast("tuple[int, int, int]", await self._transport.call("layout"))

    async def listing(
            self, namespace: str, flt: RecallFilter, limit: int, offset: int, newest_first: bool
            = True,
    ) -> tuple[list[Memory], int]:
        return cast("tuple[list[Memory], int]", await self._transport.call(
            "listing", namespace, flt, limit, offset, newest_first))

    async def lookup(self, memory_id: str, scope: Scope) -> list[Memory]:
        return cast("list[Memory]", await self._transport.call("lookup", memory_id, scope))

    async def memory_entities(
            self, memory_id: str, scope: Scope,
    ) -> tuple[Memory, list[EntityRef]] | None:
        return cast("tuple[Memory, list[EntityRef]] | None", await self._transport.call(
            "memory_entities", memory_id, scope))

    async def memory_graph(
            self, memory_id: str, scope: Scope, depth: int, max_nodes: int = 50, min_weight:
            float = 0.0,
    ) -> tuple[list[GraphNode], list[GraphEdge]] | None:
        return cast("tuple[list[GraphNode], list[GraphEdge]] | None", await self._transport.call(
            "memory_graph", memory_id, scope, depth, max_nodes, min_weight))

    async def namespace_stats(self, namespace: str) -> tuple[NamespaceInfo, dict[str, Any]]:
        return cast("tuple[NamespaceInfo, dict[str, Any]]", await self._transport.call(
            "namespace_stats", namespace))

    async def namespace_table(self) -> list[tuple[str, str | None]]:
        return cast("list[tuple[str, str | None]]", await self._transport.call("namespace_table"))

    async def usage(self, scope: Scope) -> dict[str, tuple[int, int]]:
        return cast("dict[str, tuple[int, int]]", await self._transport.call("usage", scope))

    async def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        return cast("list[NamespaceInfo]", await self._transport.call("namespaces", scope))

    async def neighborhood(
            self, namespace: str, memory_ids: Sequence[str], before: int = 1, after: int = 1,
    ) -> dict[str, list[Memory]]:
        return cast("dict[str, list[Memory]]", await self._transport.call(
            "neighborhood", namespace, memory_ids, before, after))

    async def pending_events(self, limit: int = 500) -> list[Event]:
        return cast("list[Event]", await self._transport.call("pending_events", limit))

    async def purge_expired(self, now: float | None = None, limit: int = 1000) -> int:
        return cast("int", await self._transport.call("purge_expired", now, limit))

    async def rebuild_indexes(self) -> int:
        return cast("int", await self._transport.call("rebuild_indexes"))

    async def recall_candidates(
            self, namespace: str, vector: Sequence[float] | None, text: str, flt: RecallFilter,
            limit: int, query_entities: Sequence[str] = (), graph: bool = True, session: bool =
            True, *, neighbors: tuple[int, int] | None = None, touch_session: str | None = None,
    ) -> list[Candidate]:
        return cast("list[Candidate]", await self._transport.call(
            "recall_candidates", namespace, vector, text, flt, limit, query_entities, graph,
            session, neighbors=neighbors, touch_session=touch_session))

    async def record_access(self, namespace: str, memory_ids: Sequence[str], now: float | None = None) -> None:
        await self._transport.call("record_access", namespace, memory_ids, now)

    async def record_accesses(self, accesses: Sequence[tuple[str, Sequence[str]]]) -> None:
        await self._transport.call("record_accesses", accesses)

    async def refresh_head(self, head: dict[str, Any]) -> None:
        await self._transport.call("refresh_head", head)

    async def release(self, namespace: str) -> int:
        return cast("int", await self._transport.call("release", namespace))

    async def routing(self) -> tuple[int, int | None]:
        return cast("tuple[int, int | None]", await self._transport.call("routing"))

    async def sessions(
            self, namespace: str, active_only: bool = False, limit: int = 100, offset: int = 0,
    ) -> list[Session]:
        return cast("list[Session]", await self._transport.call(
            "sessions", namespace, active_only, limit, offset))

    async def set_routing(self, count: int, target: int | None, epoch: int = 0) -> None:
        await self._transport.call("set_routing", count, target, epoch)

    async def start_session(
            self, namespace: str, session_id: str, metadata: dict[str, Any], idle_timeout: float
            | None = None, now: float | None = None,
    ) -> Session:
        return cast("Session", await self._transport.call(
            "start_session", namespace, session_id, metadata, idle_timeout, now))

    async def stats(self) -> ShardStats:
        return cast("ShardStats", await self._transport.call("stats"))

    async def stored_status(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        return cast("list[str]", await self._transport.call("stored_status", items))

    async def thaw(self, namespace: str) -> None:
        await self._transport.call("thaw", namespace)

    async def touch_session(self, session_id: str, scope: Scope, now: float | None = None) -> Session:
        return cast("Session", await self._transport.call("touch_session", session_id, scope, now))

    async def update(
            self, namespace: str, memory_id: str, changes: MemoryChanges, now: float | None =
            None,
    ) -> Memory:
        return cast("Memory", await self._transport.call("update", namespace, memory_id, changes, now))

    async def write(self, items: Sequence[NewMemory], now: float | None = None,
                    memory_limit: int | None = None) -> WriteResult:
        return cast("WriteResult", await self._transport.call("write", items, now, memory_limit))
