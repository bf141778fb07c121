"""SQLite record store: namespaces, their counts and stats, and dropping one whole."""
from __future__ import annotations

import json
import time
from typing import Any

from shards.errors import NotFound
from shards.events import NAMESPACE_DELETED
from shards.records.formats import stats_by_type
from shards.records.sqlite.core import SQLiteCore
from shards.types import NamespaceInfo, Scope


class NamespacesMixin(SQLiteCore):
    """Namespaces: created on first use, listed with their counts, dropped whole."""

    def namespace_id(self, name: str) -> int | None:
        with self._lock:
            return self._ns_id(name, create=False)

    def ensure_namespace(self, name: str, now: float, metadata: dict[str, Any] | None = None) -> bool:
        """Create the namespace if missing; returns True when it was created."""
        with self._lock, self._tx():
            existed = self._ns_id(name, create=False) is not None
            ns_id = self._ns_id(name, create=True, now=now)
            if metadata is not None:
                self._db.execute(
                    "UPDATE namespaces SET metadata = ? WHERE ns_id = ?",
                    (json.dumps(metadata), ns_id),
                )
            return not existed

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT n.name, n.created_at, n.metadata, n.memory_count,"
                " (SELECT COUNT(*) FROM sessions s WHERE s.ns_id = n.ns_id),"
                " (SELECT COUNT(*) FROM sessions s WHERE s.ns_id = n.ns_id AND s.ended_at IS NULL),"
                " (SELECT MAX(created_at) FROM memories m WHERE m.ns_id = n.ns_id)"
                " FROM namespaces n ORDER BY n.name"
            ).fetchall()
        return [
            NamespaceInfo(
                name=r[0], created_at=r[1], metadata=json.loads(r[2]), memory_count=r[3],
                session_count=r[4], active_session_count=r[5], last_memory_at=r[6],
            )
            for r in rows
            if scope.covers(r[0])
        ]

    def usage(self, scope: Scope) -> dict[str, tuple[int, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, memory_count, content_bytes FROM namespaces").fetchall()
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows if scope.covers(str(r[0]))}

    def memory_stats(self, namespace: str) -> dict[str, Any]:
        """Counts by memory type, mean importance, oldest and newest creation time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.memory_type, COUNT(*), SUM(m.importance), MIN(m.created_at),"
                " MAX(m.created_at) FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE n.name = ? GROUP BY m.memory_type",
                (namespace,),
            ).fetchall()
        return stats_by_type(rows)

    def drop_namespace(self, name: str, announce: bool = True) -> list[int]:
        """Delete a namespace with everything in it; returns the memory keys to unindex.
        announce: send namespace.deleted (not for the copy a reshard left behind)."""
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            keys = [r[0] for r in self._db.execute(
                "SELECT key FROM memories WHERE ns_id = ?", (ns_id,))]
            self._db.executemany("INSERT INTO index_log (key) VALUES (?)", [(k,) for k in keys])
            self._db.execute(
                "DELETE FROM memory_entities WHERE ent_id IN"
                " (SELECT ent_id FROM entities WHERE ns_id = ?)", (ns_id,))
            self._db.execute("DELETE FROM entities WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM memories WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM sessions WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM idempotency WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM moving WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM copy_log WHERE ns_id = ?", (ns_id,))
            self._db.execute("DELETE FROM namespaces WHERE ns_id = ?", (ns_id,))
            if announce:
                self._redact_events(name, None)
                self._emit(NAMESPACE_DELETED, name, {"namespace": name, "memories": len(keys)}, time.time())
            return keys

    def namespace_count(self, ns_id: int) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM memories WHERE ns_id = ?", (ns_id,)).fetchone()
        return int(row[0])

    def namespace_size(self, namespace: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM memories m JOIN namespaces n USING (ns_id) WHERE n.name = ?",
                (namespace,),
            ).fetchone()
        return int(row[0])
