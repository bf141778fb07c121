"""A shard's namespaces: created, listed, counted, dropped."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shards.errors import NamespaceMoving, NotFound
from shards.events import Event
from shards.shard.indexing import IndexingMixin
from shards.types import NamespaceInfo, Scope


class NamespacesMixin(IndexingMixin):
    """Namespaces: created on first use, listed, counted, dropped with their memories."""

    def ensure_namespace(self, namespace: str, metadata: dict[str, Any] | None = None,
                         now: float | None = None) -> bool:
        self._check(namespace, write=True)
        return self.records.ensure_namespace(namespace, time.time() if now is None else now, metadata)

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        return [n for n in self.records.namespaces(scope) if self._visible(n.name)]

    def usage(self, scope: Scope) -> dict[str, tuple[int, int]]:
        """(memories, content bytes) per namespace of the scope held here (quotas)."""
        return {name: u for name, u in self.records.usage(scope).items() if self._visible(name)}

    def namespace_stats(self, namespace: str) -> tuple[NamespaceInfo, dict[str, Any]]:
        self._check(namespace, write=False)
        found = [n for n in self.records.namespaces(Scope.of(namespace)) if n.name == namespace]
        if not found:
            raise NotFound(f"agent not found: {namespace}", "agent")
        return found[0], self.records.memory_stats(namespace)

    def drop_namespace(self, namespace: str) -> int:
        with self._lock:
            self._check(namespace, write=True)
            if self._states.get(namespace) == self.COPYING:
                # Its copy would come back to life on the new shard: wait for the move.
                raise NamespaceMoving(namespace)
            return self._drop(namespace, announce=True)

    def _drop(self, namespace: str, announce: bool) -> int:
        """announce: namespace.deleted goes out (a reshard's leftover copy goes quietly)."""
        with self._lock:
            keys = self.records.drop_namespace(namespace, announce)
            # Counts buffered for these memories must not land on a namespace of the same
            # name created later.
            self._accesses = {k: v for k, v in self._accesses.items() if k[0] != namespace}
            self._apply(keys)  # all gone from the records: removed from both indexes
            return len(keys)

    # -- the outbox of change events, for the webhook dispatcher (serve/webhooks/) ---------
    def pending_events(self, limit: int = 500) -> list[Event]:
        return self.records.pending_events(limit)

    def drop_events(self, seqs: Sequence[int]) -> int:
        return self.records.drop_events(seqs)
