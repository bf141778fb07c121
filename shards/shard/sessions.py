"""A shard's sessions: started, read, kept alive, ended."""
from __future__ import annotations

import time
from typing import Any

from shards.shard.placement import ShardBase
from shards.types import Scope, Session


class SessionsMixin(ShardBase):
    """Sessions, scoped like every request; the record store keeps them."""

    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      idle_timeout: float | None = None, now: float | None = None) -> Session:
        self._check(namespace, write=True)
        return self.records.start_session(namespace, session_id, metadata,
                                          time.time() if now is None else now, idle_timeout)

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        self._check_scope(scope)
        found = self.records.get_session(session_id, scope)
        return found if found is not None and self._visible(found.namespace) else None

    def end_session(self, session_id: str, scope: Scope, summary: str | None = None,
                    reason: str = "client", now: float | None = None) -> Session:
        self._check_scope(scope, write=True)
        return self.records.end_session(session_id, scope, time.time() if now is None else now,
                                        summary, reason)

    def touch_session(self, session_id: str, scope: Scope, now: float | None = None) -> Session:
        self._check_scope(scope, write=True)
        return self.records.touch_session(session_id, scope, time.time() if now is None else now)

    def sessions(self, namespace: str, active_only: bool = False, limit: int = 100,
                 offset: int = 0) -> list[Session]:
        self._check(namespace, write=False)
        return self.records.sessions(namespace, active_only, limit, offset)

    def all_sessions(self, scope: Scope, active_only: bool = False, limit: int = 100) -> list[Session]:
        return [s for s in self.records.all_sessions(scope, active_only, limit)
                if self._visible(s.namespace)]

    def end_idle_sessions(self, default_timeout: float, now: float | None = None) -> int:
        return self.records.end_idle_sessions(default_timeout, time.time() if now is None else now)
