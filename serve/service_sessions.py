"""MemoryService's sessions: start, end, touch and list them, and a session's memories."""
from __future__ import annotations

import uuid
from typing import Any

from serve import render
from serve.auth import Principal
from serve.errors import bad_request, not_found
from serve.service_base import ServiceBase
from shards.types import RecallFilter, Scope, Session


class SessionMethods(ServiceBase):
    """Sessions: started in a namespace, found by id on the shards the caller's scope reaches."""

    # -- sessions -----------------------------------------------------------------------
    async def locate_session(self, principal: Principal, session_id: str, needed: str) -> Session:
        found = [s for s in await self._across(
            principal.scope, lambda s: s.get_session(session_id, principal.scope)) if s]
        if not found:
            raise not_found("session", session_id)
        principal.require(found[0].namespace, needed)
        return found[0]

    def session_json(self, s: Session) -> dict[str, Any]:
        return render.session_json(s, self.cfg.sessions.idle_timeout_seconds)

    async def start_session(self, namespace: str, metadata: dict[str, Any] | None,
                            idle_timeout: int | None) -> dict[str, Any]:
        if idle_timeout is not None and idle_timeout > self.cfg.sessions.max_idle_timeout_seconds:
            raise bad_request("idle_timeout_secs",
                              f"at most {int(self.cfg.sessions.max_idle_timeout_seconds)} seconds")
        session = await self.shard(namespace).start_session(namespace, f"sess_{uuid.uuid4().hex}",
            self._check_metadata(metadata, "metadata"), idle_timeout)
        return {"session": self.session_json(session)}

    async def end_session(self, principal: Principal, session_id: str, summary: str | None) -> dict[str, Any]:
        session = await self.locate_session(principal, session_id, "write")
        if summary is not None:
            self.check_content(summary, "summary")
        ended = await self.shard(session.namespace).end_session(session_id, Scope.of(session.namespace), summary, "client")
        return {"session": self.session_json(ended), "memory_count": ended.memory_count}

    async def touch_session(self, principal: Principal, session_id: str) -> dict[str, Any]:
        session = await self.locate_session(principal, session_id, "write")
        touched = await self.shard(session.namespace).touch_session(session_id, Scope.of(session.namespace))
        return {"session": self.session_json(touched),
                "session_state": "active" if touched.active else "ended",
                "idle_deadline_at": render.idle_deadline(touched, self.cfg.sessions.idle_timeout_seconds)}

    async def list_sessions(self, principal: Principal, namespace: str | None, active_only: bool,
                            limit: int, offset: int) -> list[dict[str, Any]]:
        limit = min(max(limit, 1), self.cfg.limits.max_page)
        if namespace is not None:
            principal.require(namespace, "read")
            sessions = await self.shard(namespace).sessions(namespace, active_only, limit, offset)
        else:
            principal.require_level("read")
            groups = await self._across(
                principal.scope, lambda s: s.all_sessions(principal.scope, active_only, limit + offset))
            unique = {s.id: s for g in groups for s in g}.values()
            merged = sorted(unique, key=lambda s: (-s.started_at, s.id))
            sessions = merged[offset:offset + limit]
        return [self.session_json(s) for s in sessions]

    async def session_memories(self, principal: Principal, session_id: str, limit: int,
                               offset: int, preview: int | None) -> dict[str, Any]:
        session = await self.locate_session(principal, session_id, "read")
        memories, total = await self.shard(session.namespace).listing(session.namespace, RecallFilter(session_id=session_id),
            min(limit, 500), offset, False)
        return {"session": self.session_json(session),
                "memories": [render.memory_json(m, preview) for m in memories], "total": total}
