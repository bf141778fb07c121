"""The memory service behind the HTTP API: validation, fan-out to shards, fusion, sessions.

It holds no Ray code: shards and the embedder are reached through `serve.clients`, so the
same logic runs behind Serve and in-process (benchmarks).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from serve import render
from serve.access_counts import AccessCounts
from serve.auth import Principal, dakera_namespace, grants_scope
from serve.clients import EmbedderClient, RerankerClient, ShardClient
from serve.config import EngramConfig
from serve.errors import bad_request, not_found
from serve import metrics
from serve.quotas import StoredBytes
from serve.recall import Recaller
from serve.schemas import (
    BatchFilter,
    RecallBody,
    SearchBody,
    StoreBody,
    UpdateBody,
    parse_time,
)
from serve.service_graph import GraphMethods
from serve.service_sessions import SessionMethods
from serve.shard_calls import ShardCalls
from serve.shard_routing import FixedShardMap, ShardRouter
from models.entities import build_extractor
from models.sentences import regroup, texts_to_embed
from shards.control.base import ApiKey
from shards.errors import QuotaExceeded, shard_error_in
from shards.routing import ShardMap
from shards.types import EntityRef, MemoryChanges, NewMemory, RecallFilter, Scope, Session


class MemoryService(SessionMethods, GraphMethods):
    """Memories, agents and namespaces here; sessions (serve/service_sessions.py), the knowledge
    graph (serve/service_graph.py) and the checks on a request (serve/service_base.py) beside."""

    def __init__(self, cfg: EngramConfig, shards: list[ShardClient], embedder: EmbedderClient,
                 reranker: RerankerClient | None = None,
                 router: ShardRouter | None = None) -> None:
        """router: finds each namespace's shard (over the control store's map in the Router
        deployment); None: `shard_for(namespace, len(shards))`, as in a one-process bench."""
        if len(shards) != cfg.shard_count:
            raise ValueError(f"{len(shards)} shard clients for shard_count={cfg.shard_count}")
        self.cfg = cfg
        self.shards = [ShardCalls(s) for s in shards]  # each shard as itself, for fan-outs
        self.router = router or ShardRouter(shards, FixedShardMap(len(shards)), ShardMap(len(shards)))
        self.embedder = embedder
        self.reranker = reranker  # None: no cross-encoder configured; recall says so
        self.extractor = build_extractor(cfg.entities)
        self.access_counts = AccessCounts(self.router, cfg.router.access_flush_seconds)
        self.recaller = Recaller(cfg, embedder, reranker, self.extractor, self.access_counts)
        self.stored_bytes = StoredBytes(self._content_bytes)
        self._dimension: int | None = None

    # -- helpers ------------------------------------------------------------------------
    async def dimension(self) -> int:
        """The embedder's vector dimension (asked once: the embedder lives in another actor)."""
        if self._dimension is None:
            self._dimension = await self.embedder.dim()
        return self._dimension

    def entities_of(self, content: str, tags: list[str]) -> tuple[EntityRef, ...]:
        """Entities of a memory: from its text and from its `key:value` tags."""
        found = self.extractor.extract(content + ("\n" + " ".join(tags) if tags else ""))
        return tuple(EntityRef(key=e.key, type=e.type, value=e.value, score=e.score) for e in found)

    # -- memories -----------------------------------------------------------------------
    def new_memory(self, namespace: str, body: StoreBody, vector: Sequence[float], now: float,
                   idempotency_key: str | None, field: str = "",
                   sentence_vectors: tuple[tuple[float, ...], ...] = ()) -> NewMemory:
        expires = parse_time(body.expires_at, f"{field}expires_at")
        if expires is not None and expires <= now:
            # Stored, it would be hidden at once and purged by the next sweep.
            raise bad_request(f"{field}expires_at", "is in the past: give a future time, or "
                              "ttl_seconds")
        if expires is None and body.ttl_seconds is not None:
            expires = now + body.ttl_seconds
        event_time = parse_time(body.event_time, f"{field}event_time")
        if body.id is not None and not body.id.strip():
            raise bad_request(f"{field}id", "must not be empty")
        return NewMemory(
            id=body.id or f"mem_{uuid.uuid4().hex}", namespace=namespace, content=body.content,
            memory_type=body.memory_type, importance=body.importance,
            tags=self._check_tags(body.tags, f"{field}tags"),
            metadata=self._check_metadata(body.metadata, f"{field}metadata"),
            session_id=body.session_id,
            event_time=float(int(now)) if event_time is None else event_time,
            vector=tuple(vector), expires_at=expires, idempotency_key=idempotency_key,
            entities=self.entities_of(body.content, body.tags or []),
            sentence_vectors=sentence_vectors,
        )

    async def store(self, namespace: str, bodies: list[StoreBody], idempotency_key: str | None = None,
                    key: ApiKey | None = None) -> tuple[list[dict[str, Any]], int, list[Session]]:
        """Embed and store; returns rendered memories, embedding ms and the sessions touched.
        key: the caller's, whose limits bind the write (serve/quotas.py)."""
        if len(bodies) > self.cfg.limits.max_batch_items:
            raise bad_request("memories", f"at most {self.cfg.limits.max_batch_items} per batch")
        batch = len(bodies) > 1
        for i, body in enumerate(bodies):
            self.check_content(body.content, f"memories[{i}].content" if batch else "content")
            if batch and (body.agent_id is not None or body.namespace is not None):
                field = f"memories[{i}].{'agent_id' if body.agent_id is not None else 'namespace'}"
                if self.namespace_of(body.agent_id, body.namespace, field) != namespace:
                    # A batch goes to one agent (the request's, which the key was checked for).
                    raise bad_request(field, f"differs from the batch's agent {namespace!r}: "
                                      "send one batch per agent")
        adding = sum(len(b.content.encode("utf-8")) for b in bodies)
        if key is not None:  # before the embedding: a refused write costs nothing
            await self.stored_bytes.check(key, adding)
        t0 = time.perf_counter()
        embedded = await self.embed_memories([b.content for b in bodies])
        embed_ms = int((time.perf_counter() - t0) * 1000)
        now = time.time()
        items = [
            self.new_memory(
                namespace, b, vector, now,
                None if idempotency_key is None else (f"{idempotency_key}:{i}" if batch else idempotency_key),
                field=f"memories[{i}]." if batch else "", sentence_vectors=sentence_vectors,
            )
            for i, (b, (vector, sentence_vectors)) in enumerate(zip(bodies, embedded))
        ]
        # One call: the shard checks each session as it writes (a missing one is a 404 on
        # session_id, and nothing is stored) and answers the sessions' state after it.
        try:
            written = await self.shard(namespace).write(
                items, memory_limit=None if key is None else key.limits.memories_per_namespace)
        except Exception as exc:
            if isinstance(shard_error_in(exc), QuotaExceeded):
                metrics.rejected("memories_per_namespace")
            raise
        if key is not None:
            self.stored_bytes.stored(key, sum(len(m.content.encode("utf-8"))
                                              for m, created in written.memories if created))
        return [render.memory_json(m) for m, _ in written.memories], embed_ms, list(written.sessions)

    async def _content_bytes(self, key: ApiKey) -> int:
        """Content bytes stored across the namespaces the key reaches (each shard's counters;
        a namespace two shards hold during a move counts once)."""
        scope = grants_scope(key.namespaces)
        usage: dict[str, tuple[int, int]] = {}
        for held in await self._across(scope, lambda s: s.usage(scope)):
            usage.update(held)
        return sum(content_bytes for _, content_bytes in usage.values())

    def _filter(self, *, memory_type: str | None = None, session_id: str | None = None,
                since: Any = None, until: Any = None, min_importance: float | None = None,
                tags_any: list[str] | None = None, batch: BatchFilter | None = None) -> RecallFilter:
        if batch is not None:
            return RecallFilter(
                memory_types=(batch.memory_type,) if batch.memory_type else None,
                session_id=batch.session_id, min_importance=batch.min_importance,
                max_importance=batch.max_importance,
                tags_all=tuple(batch.tags) if batch.tags else None,
                created_after=parse_time(batch.created_after, "filter.created_after"),
                created_before=parse_time(batch.created_before, "filter.created_before"),
                now=time.time(),
            )
        return RecallFilter(
            memory_types=(memory_type,) if memory_type else None, session_id=session_id,
            since=parse_time(since, "since"), until=parse_time(until, "until"),
            min_importance=min_importance, tags_any=tuple(tags_any) if tags_any else None,
            now=time.time(),
        )

    async def recall(self, namespace: str, body: RecallBody | SearchBody, *,
                     track_access: bool = True) -> dict[str, Any]:
        full = body if isinstance(body, RecallBody) else None
        flt = self._filter(
            memory_type=body.memory_type, session_id=body.session_id,
            since=full.since if full else None, until=full.until if full else None,
            min_importance=body.min_importance, tags_any=body.tags,
        )
        return await self.recaller.recall(self.shard(namespace), namespace, body, flt,
                                          track_access=track_access)

    async def lookup(self, memory_id: str, scope: Scope) -> list[Any]:
        found = await self._across(scope, lambda s: s.lookup(memory_id, scope))
        # While a reshard hands a namespace over, both shards may answer for a moment.
        return list({(m.namespace, m.id): m for group in found for m in group}.values())

    async def get(self, principal: Principal, memory_id: str, agent_id: str | None) -> dict[str, Any]:
        if agent_id is not None:
            namespace = self.namespace_of(agent_id, None)
            principal.require(namespace, "read")
            found = await self.shard(namespace).lookup(memory_id, Scope.of(namespace))
        else:
            principal.require_level("read")
            found = await self.lookup(memory_id, principal.scope)
        if not found:
            raise not_found("memory", memory_id)
        if len(found) > 1:
            agents = ", ".join(sorted(m.namespace for m in found))
            raise bad_request("agent_id", f"memory id {memory_id!r} exists in several agents "
                              f"({agents}); pass agent_id")
        return render.memory_json(found[0])

    async def embed_memories(self, contents: list[str]
                             ) -> list[tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]]:
        """(vector, sentence vectors) per memory, from one embedder call for them all."""
        texts, counts = texts_to_embed(contents, self.cfg.embedder.sentence_vectors)
        return regroup(await self.embedder.embed(texts), counts)

    async def update(self, namespace: str, memory_id: str, body: UpdateBody,
                     key: ApiKey | None = None) -> dict[str, Any]:
        vector: tuple[float, ...] | None = None
        sentence_vectors: tuple[tuple[float, ...], ...] = ()
        if body.content is not None:
            self.check_content(body.content)
            if key is not None and key.limits.stored_bytes is not None:
                # Only growth counts: shortening a memory is always allowed.
                held = await self.shard(namespace).lookup(memory_id, Scope.of(namespace))
                before = sum(len(m.content.encode("utf-8")) for m in held[:1])
                await self.stored_bytes.check(key, len(body.content.encode("utf-8")) - before)
            [(vector, sentence_vectors)] = await self.embed_memories([body.content])
        tags = None if body.tags is None else self._check_tags(body.tags, "tags")
        shard = self.shard(namespace)
        changes = MemoryChanges(
            content=body.content, vector=vector, sentence_vectors=sentence_vectors,
            importance=body.importance,
            memory_type=body.memory_type,
            tags=tags,
            metadata=None if body.metadata is None else self._check_metadata(body.metadata, "metadata"),
            event_time=parse_time(body.event_time, "event_time"),
            entities=await self._entities_after(shard, namespace, memory_id, body.content, tags),
        )
        memory = await shard.update(namespace, memory_id, changes)
        return render.memory_json(memory)

    async def _entities_after(self, shard: ShardCalls, namespace: str, memory_id: str,
                              content: str | None, tags: tuple[str, ...] | None
                              ) -> tuple[EntityRef, ...] | None:
        """The memory's entities once an update changes its content or its tags (None: it
        changes neither). They come from both, so the one the update keeps is read first:
        a `customer:jane-doe` tag keeps its link when only the text changes."""
        if content is None and tags is None:
            return None
        if content is None or tags is None:
            found = await shard.lookup(memory_id, Scope.of(namespace))
            if not found:
                return None  # the update itself answers 404
            content = found[0].content if content is None else content
            tags = tuple(found[0].tags) if tags is None else tags
        return self.entities_of(content, list(tags))

    async def forget(self, namespace: str, memory_ids: list[str]) -> dict[str, Any]:
        deleted = await self.shard(namespace).delete(Scope.of(namespace), memory_ids, namespace)
        return {"deleted_count": len(deleted), "deleted_ids": [m.id for m in deleted]}

    async def batch_recall(self, namespace: str, flt: BatchFilter, limit: int) -> dict[str, Any]:
        limit = min(limit, self.cfg.limits.max_page)
        shard = self.shard(namespace)
        memories, matched = await shard.listing(namespace, self._filter(batch=flt), limit, 0)
        _, total = await shard.listing(namespace, RecallFilter(), 0, 0)
        return {"memories": [render.memory_json(m) for m in memories], "total": total,
                "filtered": matched, "truncated": matched > len(memories), "warnings": []}

    async def batch_forget(self, namespace: str, flt: BatchFilter) -> dict[str, Any]:
        if flt.is_empty():
            raise bad_request("filter", "set at least one predicate; an empty filter would "
                              "delete the whole agent (use DELETE /v1/namespaces/{ns} for that)")
        deleted = await self.shard(namespace).forget_matching(namespace, self._filter(batch=flt))
        return {"deleted_count": len(deleted)}

    async def listing(self, namespace: str, memory_type: str | None, limit: int, offset: int,
                      preview: int | None) -> list[dict[str, Any]]:
        flt = RecallFilter(memory_types=(memory_type,) if memory_type else None, now=time.time())
        memories, _ = await self.shard(namespace).listing(namespace, flt, min(limit, self.cfg.limits.max_page), offset)
        return [render.memory_json(m, preview) for m in memories]

    # -- agents and namespaces ------------------------------------------------------------
    async def namespaces(self, scope: Scope) -> list[Any]:
        groups = await self._across(scope, lambda s: s.namespaces(scope))
        return sorted({n.name: n for g in groups for n in g}.values(), key=lambda n: n.name)

    async def create_agent(self, namespace: str, metadata: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
        created = await self.shard(namespace).ensure_namespace(namespace, metadata)
        out: dict[str, Any] = {
            "agent_id": namespace, "namespace": dakera_namespace(namespace), "created": created,
            "dimension": await self.dimension(), "model": render.model_name(self.cfg.embedder.model),
        }
        return out, created

    async def agent_stats(self, namespace: str) -> dict[str, Any]:
        info, stats = await self.shard(namespace).namespace_stats(namespace)
        avg = stats["avg_importance"]
        return {
            "agent_id": namespace, "total_memories": info.memory_count,
            "memories_by_type": stats["by_type"], "total_sessions": info.session_count,
            "active_sessions": info.active_session_count,
            "avg_importance": None if avg is None else round(avg, 6),
            "oldest_memory_at": None if stats["oldest"] is None else int(stats["oldest"]),
            "newest_memory_at": None if stats["newest"] is None else int(stats["newest"]),
        }

    async def drop_namespace(self, namespace: str) -> dict[str, Any]:
        deleted = await self.shard(namespace).drop_namespace(namespace)
        return {"deleted": True, "namespace": namespace, "deleted_memories": deleted}

    async def ready(self) -> list[Any]:
        return await self._fan_out(lambda s: s.stats())
