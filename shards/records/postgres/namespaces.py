"""PostgreSQL record store: namespaces, their counts and stats, and dropping one whole."""
from __future__ import annotations

import json
import time
from typing import Any

from shards.errors import NotFound
from shards.events import NAMESPACE_DELETED
from shards.records.formats import stats_by_type
from shards.records.postgres.core import PostgresCore
from shards.types import NamespaceInfo, Scope


class NamespacesMixin(PostgresCore):
    """Namespaces: created on first use, listed with their counts, dropped whole."""

    def namespace_id(self, name: str) -> int | None:
        with self._read():
            return self._ns_id(name, create=False)

    def ensure_namespace(self, name: str, now: float, metadata: dict[str, Any] | None = None) -> bool:
        """Create the namespace if missing; returns True when it was created."""
        with self._tx() as db:
            existed = self._ns_id(name, create=False) is not None
            ns_id = self._ns_id(name, create=True, now=now)
            if metadata is not None:
                db.execute("UPDATE namespaces SET metadata = %s WHERE ns_id = %s",
                           (json.dumps(metadata), ns_id))
            return not existed

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        with self._read() as db:
            rows = db.execute(
                "SELECT n.name, n.created_at, n.metadata, n.memory_count,"
                " (SELECT COUNT(*) FROM sessions s WHERE s.ns_id = n.ns_id),"
                " (SELECT COUNT(*) FROM sessions s WHERE s.ns_id = n.ns_id AND s.ended_at IS NULL),"
                " (SELECT MAX(created_at) FROM memories m WHERE m.ns_id = n.ns_id)"
                " FROM namespaces n ORDER BY n.name").fetchall()
        return [
            NamespaceInfo(
                name=r[0], created_at=r[1], metadata=json.loads(r[2]), memory_count=int(r[3]),
                session_count=int(r[4]), active_session_count=int(r[5]), last_memory_at=r[6],
            )
            for r in rows
            if scope.covers(r[0])
        ]

    def usage(self, scope: Scope) -> dict[str, tuple[int, int]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT name, memory_count, content_bytes FROM namespaces").fetchall()
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows if scope.covers(str(r[0]))}

    def memory_stats(self, namespace: str) -> dict[str, Any]:
        """Counts by memory type, mean importance, oldest and newest creation time."""
        with self._read() as db:
            rows = db.execute(
                "SELECT m.memory_type, COUNT(*), SUM(m.importance), MIN(m.created_at),"
                " MAX(m.created_at) FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE n.name = %s GROUP BY m.memory_type", (namespace,)).fetchall()
        return stats_by_type([(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows])

    def drop_namespace(self, name: str, announce: bool = True) -> list[int]:
        """Delete a namespace with everything in it; returns the memory keys to unindex.
        announce: send namespace.deleted (not for the copy a reshard left behind)."""
        with self._tx() as db:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            keys = sorted(int(r[0]) for r in db.execute(
                "INSERT INTO index_log (key) SELECT key FROM memories WHERE ns_id = %s"
                " ORDER BY key RETURNING key", (ns_id,)))
            db.execute("DELETE FROM memory_entities WHERE ent_id IN"
                       " (SELECT ent_id FROM entities WHERE ns_id = %s)", (ns_id,))
            for table in ("entities", "memories", "sessions", "idempotency", "moving",
                          "copy_log", "namespaces"):
                db.execute(f"DELETE FROM {table} WHERE ns_id = %s", (ns_id,))
            if announce:
                self._redact_events(name, None)
                self._emit(NAMESPACE_DELETED, name, {"namespace": name, "memories": len(keys)}, time.time())
            return keys

    def namespace_count(self, ns_id: int) -> int:
        with self._read():
            return int(self._scalar("SELECT COUNT(*) FROM memories WHERE ns_id = %s", (ns_id,)))

    def namespace_size(self, namespace: str) -> int:
        with self._read():
            return int(self._scalar(
                "SELECT COUNT(*) FROM memories m JOIN namespaces n USING (ns_id) WHERE n.name = %s",
                (namespace,)))
