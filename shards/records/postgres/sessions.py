"""PostgreSQL record store: sessions, and the order of their turns (a turn's neighbours)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from shards.errors import Conflict, NotFound
from shards.indexes.base import CONTEXT_TURNS
from shards.records.formats import announce_ended
from shards.records.postgres.core import PostgresCore
from shards.records.postgres.schema import _MEMORY_COLUMNS, _SESSION_COLUMNS, _memory, _session
from shards.types import Memory, Scope, Session


class SessionsMixin(PostgresCore):
    """Sessions, and each turn's neighbours in session order (the keyword context)."""

    def _session_key(self, ns_id: int, session_id: str) -> int | None:
        row = self._db.execute(
            "SELECT key FROM sessions WHERE id = %s AND ns_id = %s", (session_id, ns_id)).fetchone()
        return None if row is None else int(row[0])

    def session_key(self, namespace: str, session_id: str) -> int | None:
        with self._read():
            ns_id = self._ns_id(namespace, create=False)
            return None if ns_id is None else self._session_key(ns_id, session_id)

    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      now: float, idle_timeout: float | None = None) -> Session:
        try:
            with self._tx() as db:
                ns_id = self._ns_id(namespace, create=True, now=now)
                db.execute(
                    "INSERT INTO sessions (id, ns_id, started_at, last_active_at, metadata,"
                    " idle_timeout) VALUES (%s,%s,%s,%s,%s,%s)",
                    (session_id, ns_id, now, now, json.dumps(metadata), idle_timeout))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(f"session already exists: {session_id}", "session_id") from exc
        found = self.get_session(session_id, Scope.of(namespace))
        assert found is not None
        return found

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                " WHERE s.id = %s", (session_id,)).fetchone()
        if row is None:
            return None
        session = _session(row)
        return session if scope.covers(session.namespace) else None

    def end_session(self, session_id: str, scope: Scope, now: float, summary: str | None,
                    reason: str) -> Session:
        with self._tx() as db:
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                db.execute("UPDATE sessions SET ended_at = %s, ended_reason = %s, summary = %s"
                           " WHERE id = %s", (now, reason, summary, session_id))
                announce_ended(self, [session_id], now)
            elif summary is not None:
                db.execute("UPDATE sessions SET summary = %s WHERE id = %s", (summary, session_id))
        ended = self.get_session(session_id, scope)
        assert ended is not None
        return ended

    def touch_session(self, session_id: str, scope: Scope, now: float) -> Session:
        with self._tx() as db:
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                db.execute("UPDATE sessions SET last_active_at = %s WHERE id = %s", (now, session_id))
        touched = self.get_session(session_id, scope)
        assert touched is not None
        return touched

    def sessions(self, namespace: str, active_only: bool, limit: int, offset: int) -> list[Session]:
        with self._read() as db:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return []
            extra = " AND s.ended_at IS NULL" if active_only else ""
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                f" WHERE s.ns_id = %s{extra} ORDER BY s.started_at DESC, s.key DESC"
                " LIMIT %s OFFSET %s", (ns_id, _limit(limit), offset)).fetchall()
        return [_session(r) for r in rows]

    def all_sessions(self, scope: Scope, active_only: bool, limit: int) -> list[Session]:
        with self._read() as db:
            extra = " WHERE s.ended_at IS NULL" if active_only else ""
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                f"{extra} ORDER BY s.started_at DESC, s.key DESC").fetchall()
        sessions = [_session(r) for r in rows]
        return [s for s in sessions if scope.covers(s.namespace)][:limit]

    def end_idle_sessions(self, default_timeout: float, now: float) -> int:
        """End every open session idle longer than its own timeout (or the default; 0 = never)."""
        with self._tx() as db:
            # Not in a namespace being moved: its copy on the new shard would miss the change.
            ended = [str(r[0]) for r in db.execute(
                "UPDATE sessions SET ended_at = %s, ended_reason = 'idle'"
                " WHERE ended_at IS NULL AND COALESCE(idle_timeout, %s) > 0"
                " AND last_active_at + COALESCE(idle_timeout, %s) < %s"
                " AND ns_id NOT IN (SELECT n.ns_id FROM namespaces n"
                "                   JOIN namespace_states s ON s.name = n.name) RETURNING id",
                (now, float(default_timeout), float(default_timeout), now)).fetchall()]
            announce_ended(self, ended, now)
            return len(ended)

    def session_neighbor_rows(self, key: int, before: int, after: int) -> list[tuple[int, Memory]]:
        """(key, memory) of the memories just before and after this one in its session."""
        earlier, later = self.session_sides(key, before, after)
        return earlier + later

    def session_sides(self, key: int, before: int, after: int
                      ) -> tuple[list[tuple[int, Memory]], list[tuple[int, Memory]]]:
        """The memories before this one in its session (nearest last) and after it (nearest
        first), in session order."""
        with self._read() as db:
            row = db.execute(
                "SELECT session_key, created_at FROM memories WHERE key = %s", (key,)).fetchone()
            if row is None or row[0] is None:
                return [], []
            earlier = self._session_side(row[0], row[1], key, "<", before, _MEMORY_COLUMNS)
            later = self._session_side(row[0], row[1], key, ">", after, _MEMORY_COLUMNS)
        return [_memory(r) for r in reversed(earlier)], [_memory(r) for r in later]

    def session_side_keys(self, keys: Sequence[int], before: int, after: int
                          ) -> dict[int, tuple[list[int], list[int]]]:
        """session_sides for many keys, keys only: key → (up to `before` keys before it,
        nearest last; up to `after` after it, nearest first). Keys outside a session are
        left out."""
        out: dict[int, tuple[list[int], list[int]]] = {}
        if not keys:
            return out
        with self._read() as db:
            places = db.execute(
                "SELECT key, session_key, created_at FROM memories WHERE key = ANY(%s)"
                " AND session_key IS NOT NULL", (list(keys),)).fetchall()
            for key, session_key, created in places:
                earlier = self._session_side(session_key, created, key, "<", before, "m.key")
                later = self._session_side(session_key, created, key, ">", after, "m.key")
                out[key] = ([r[0] for r in reversed(earlier)], [r[0] for r in later])
        return out

    def session_neighbor_keys(self, keys: Sequence[int], before: int, after: int) -> dict[int, list[int]]:
        """Each key's session neighbours in session order (a recall hydrates them once for
        all its results)."""
        return {k: earlier + later for k, (earlier, later) in self.session_side_keys(keys, before, after).items()}

    def _session_side(self, session_key: int, created: float, key: int, op: str, limit: int,
                      columns: str) -> list[Any]:
        """Up to `limit` turns of the session on one side of this one (op "<": before it,
        nearest first; ">": after it), as `columns` of memories m and namespaces n."""
        if not limit:
            return []
        order = "DESC" if op == "<" else "ASC"
        return self._db.execute(
            f"SELECT {columns} FROM memories m JOIN namespaces n USING (ns_id)"
            f" WHERE m.session_key = %s AND (m.created_at, m.key) {op} (%s, %s)"
            f" ORDER BY m.created_at {order}, m.key {order} LIMIT %s",
            (session_key, created, key, _limit(limit))).fetchall()

    def _log_session_neighbors(self, key: int, before: int = CONTEXT_TURNS,
                               after: int = CONTEXT_TURNS) -> list[int]:
        """The keyword index holds each turn with the turns around it; when one changes, comes
        or goes, its neighbours must be re-indexed too (logged here, in the same transaction,
        so that a crash before the re-index is caught up on start)."""
        near = [k for k, _ in self.session_neighbor_rows(key, before, after)]
        self._many("INSERT INTO index_log (key) VALUES (%s)", [(k,) for k in near])
        return near


def _limit(limit: int) -> int | None:
    """SQLite's LIMIT -1 (no limit) is PostgreSQL's LIMIT NULL."""
    return None if limit < 0 else limit
