"""What MemoryService's parts share: its config and shards, the fan-outs, the checks on a request."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from models.entities import EntityExtractor
from serve.auth import canonical_namespace
from serve.config import EngramConfig
from serve.errors import bad_request, too_large
from serve.shard_calls import ShardCalls
from serve.shard_routing import ShardRouter
from shards.types import Scope

T = TypeVar("T")


class ServiceBase:
    """The state MemoryService sets up (serve/service.py) that its parts use, and their helpers."""

    cfg: EngramConfig
    shards: list[ShardCalls]
    router: ShardRouter
    extractor: EntityExtractor

    # -- helpers ------------------------------------------------------------------------
    def shard(self, namespace: str) -> ShardCalls:
        """The shard of this namespace, found again by each call (a reshard may move it)."""
        return ShardCalls(self.router.for_namespace(namespace))

    def namespace_of(self, agent_id: str | None, namespace: str | None, field: str = "agent_id") -> str:
        """The one namespace a request names (agent_id and namespace are the same thing)."""
        if agent_id is not None and namespace is not None and \
                canonical_namespace(agent_id) != canonical_namespace(namespace):
            raise bad_request(field, "agent_id and namespace name different namespaces")
        name = agent_id if agent_id is not None else namespace
        if name is None:
            raise bad_request(field, "required: the agent (namespace) this request is for")
        return self.check_namespace(canonical_namespace(name), field)

    def check_namespace(self, name: str, field: str = "agent_id") -> str:
        if not name:
            raise bad_request(field, "must not be empty")
        if len(name.encode("utf-8")) > self.cfg.limits.max_namespace_bytes:
            raise bad_request(field, f"longer than {self.cfg.limits.max_namespace_bytes} bytes")
        if "\x00" in name:
            raise bad_request(field, "must not contain NUL characters")
        return name

    def check_content(self, content: str, field: str = "content") -> None:
        limit = self.cfg.limits.max_content_bytes
        size = len(content.encode("utf-8"))
        if size > limit:
            raise too_large(field, f"{size} bytes is over the limit of {limit} UTF-8 bytes")
        if not content.strip():
            raise bad_request(field, "must not be empty")

    def _check_tags(self, tags: list[str] | None, field: str) -> tuple[str, ...]:
        tags = tags or []
        if len(tags) > self.cfg.limits.max_tags:
            raise bad_request(field, f"at most {self.cfg.limits.max_tags} tags")
        for tag in tags:
            if not tag or len(tag.encode("utf-8")) > self.cfg.limits.max_tag_bytes:
                raise bad_request(field, f"each tag must be 1 to {self.cfg.limits.max_tag_bytes} bytes")
        return tuple(dict.fromkeys(tags))

    def _check_metadata(self, metadata: dict[str, Any] | None, field: str) -> dict[str, Any]:
        metadata = metadata or {}
        if len(metadata) > self.cfg.limits.max_metadata_fields:
            raise bad_request(field, f"at most {self.cfg.limits.max_metadata_fields} fields")
        size = len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        if size > self.cfg.limits.max_metadata_bytes:
            raise too_large(field, f"{size} bytes of JSON is over the limit of "
                            f"{self.cfg.limits.max_metadata_bytes}: keep large data elsewhere "
                            "and store a reference to it")
        return metadata

    async def _fan_out(self, call: Callable[[ShardCalls], Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(call(s) for s in self.shards)))

    async def _across(self, scope: Scope, call: Callable[[ShardCalls], Awaitable[T]]) -> list[T]:
        """One answer per shard that may hold namespaces of the scope (which the call passes
        on): the namespace's own shard when the scope names just one."""
        only = scope.single()
        if only is not None:
            return [await call(self.shard(only))]
        return await self._fan_out(call)
