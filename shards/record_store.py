"""SQLite record store: the shard's source of truth for memories, sessions and namespaces.

Every write commits (WAL, synchronous=FULL) before it is acknowledged, and appends the
memory's key to `index_log` in the same transaction; the indexes catch up from that log,
so a crash between the commit and the index update is repaired on the next start.
"""
from __future__ import annotations

import json
import sqlite3
import struct
import threading
from dataclasses import replace
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shards.errors import Conflict, NotFound
from shards.indexes import CONTEXT_TURNS, memory_type_code
from shards.types import (
    EntityRef,
    Memory,
    MemoryChanges,
    NamespaceInfo,
    NewMemory,
    RecallFilter,
    Scope,
    Session,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    ns_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS memories (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    ns_id INTEGER NOT NULL REFERENCES namespaces(ns_id),
    id TEXT NOT NULL,
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    importance REAL NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    session_id TEXT,
    session_key INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    event_time REAL NOT NULL,
    expires_at REAL,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed_at REAL,
    vector BLOB NOT NULL,
    UNIQUE (ns_id, id)
);
CREATE INDEX IF NOT EXISTS memories_by_ns_time ON memories (ns_id, created_at);
-- Session order (created_at, key) within a session: a turn's neighbours in O(log n), however
-- long the session (it replaced memories_by_session, an index on session_key alone).
CREATE INDEX IF NOT EXISTS memories_by_session_order ON memories (session_key, created_at, key);
DROP INDEX IF EXISTS memories_by_session;
CREATE INDEX IF NOT EXISTS memories_by_id ON memories (id);
CREATE INDEX IF NOT EXISTS memories_expiring ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ns_id INTEGER NOT NULL REFERENCES namespaces(ns_id),
    started_at REAL NOT NULL,
    last_active_at REAL NOT NULL,
    ended_at REAL,
    ended_reason TEXT,
    summary TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    idle_timeout REAL
);
CREATE INDEX IF NOT EXISTS sessions_by_ns ON sessions (ns_id, started_at);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (ended_at, last_active_at);
CREATE TABLE IF NOT EXISTS idempotency (
    ns_id INTEGER NOT NULL,
    idem_key TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (ns_id, idem_key)
);
CREATE TABLE IF NOT EXISTS entities (
    ent_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ns_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    doc_freq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (ns_id, key)
);
CREATE TABLE IF NOT EXISTS memory_entities (
    mem_key INTEGER NOT NULL,
    ent_id INTEGER NOT NULL,
    value TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (mem_key, ent_id)
);
CREATE INDEX IF NOT EXISTS memory_entities_by_entity ON memory_entities (ent_id);
CREATE TABLE IF NOT EXISTS index_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL);
-- Namespaces a resharding job is moving in or out (shards/shard.py says what each state
-- allows). A namespace with no row here is simply live on this shard, or absent.
CREATE TABLE IF NOT EXISTS namespace_states (name TEXT PRIMARY KEY, state TEXT NOT NULL);
-- Each namespace's vectors and filter columns, clustered by namespace: exact vector search
-- reads a namespace as one range (1k rows of a 1M-row shard: 4 ms, against 55 ms scattered
-- across the memories table). Kept in step by triggers, inside each write's transaction.
CREATE TABLE IF NOT EXISTS namespace_vectors (
    ns_id INTEGER NOT NULL,
    key INTEGER NOT NULL,
    memory_type TEXT NOT NULL,
    session_key INTEGER NOT NULL,
    event_time REAL NOT NULL,
    importance REAL NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (ns_id, key)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_insert AFTER INSERT ON memories BEGIN
    INSERT INTO namespace_vectors VALUES (NEW.ns_id, NEW.key, NEW.memory_type,
        COALESCE(NEW.session_key, 0), NEW.event_time, NEW.importance, NEW.vector);
END;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_update
AFTER UPDATE OF vector, memory_type, session_key, event_time, importance ON memories BEGIN
    UPDATE namespace_vectors SET memory_type = NEW.memory_type,
        session_key = COALESCE(NEW.session_key, 0), event_time = NEW.event_time,
        importance = NEW.importance, vector = NEW.vector
    WHERE ns_id = OLD.ns_id AND key = OLD.key;
END;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_delete AFTER DELETE ON memories BEGIN
    DELETE FROM namespace_vectors WHERE ns_id = OLD.ns_id AND key = OLD.key;
END;
-- A namespace copied while it takes writes (a reshard's live copy) has a row in `moving`;
-- every memory written, changed or deleted in it meanwhile is named in `copy_log` with a
-- sequence number (the latest change of each memory), so that the copy can catch up with
-- exactly those: in rounds while writes go on, then once more after they stop. Triggers,
-- not code in each write path: no path can forget to log (access counts, purges included).
CREATE TABLE IF NOT EXISTS moving (ns_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS copy_log (
    ns_id INTEGER NOT NULL,
    memory_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (ns_id, memory_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copy_log_by_seq ON copy_log (ns_id, seq);
CREATE TRIGGER IF NOT EXISTS copy_log_insert AFTER INSERT ON memories
WHEN NEW.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (NEW.ns_id, NEW.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = NEW.ns_id));
END;
CREATE TRIGGER IF NOT EXISTS copy_log_update AFTER UPDATE ON memories
WHEN NEW.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (NEW.ns_id, NEW.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = NEW.ns_id));
END;
CREATE TRIGGER IF NOT EXISTS copy_log_delete AFTER DELETE ON memories
WHEN OLD.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (OLD.ns_id, OLD.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = OLD.ns_id));
END;
"""

_MEMORY_COLUMNS = (
    "m.key, m.id, n.name, m.content, m.memory_type, m.importance, m.tags, m.metadata, "
    "m.session_id, m.created_at, m.updated_at, m.event_time, m.expires_at, "
    "m.access_count, m.last_accessed_at"
)


_EXPORT_COLUMNS = (
    "key, id, content, memory_type, importance, tags, metadata, session_id, created_at,"
    " updated_at, event_time, expires_at, access_count, last_accessed_at, vector")


def pack_vector(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def pack_vectors(vector: Sequence[float], sentence_vectors: Sequence[Sequence[float]]) -> bytes:
    """A memory's vector column: its own vector, then one per sentence (none for a memory of
    one sentence). One column keeps every copy of a memory (triggers, export and import for
    resharding) carrying its sentences with no schema of their own; a column written before
    sentence vectors existed is simply a stack of one."""
    return pack_vector(vector) + b"".join(pack_vector(v) for v in sentence_vectors)


def unpack_vector(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 4}f", blob)


def stats_by_type(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A namespace's memory stats from (type, count, importance sum, oldest, newest) rows."""
    total = sum(r[1] for r in rows)
    return {
        "by_type": {r[0]: r[1] for r in rows},
        "avg_importance": (sum(r[2] for r in rows) / total) if total else None,
        "oldest": min((r[3] for r in rows), default=None),
        "newest": max((r[4] for r in rows), default=None),
    }


def _memory(row: sqlite3.Row | tuple[Any, ...]) -> tuple[int, Memory]:
    (key, mid, ns, content, mtype, imp, tags, meta, sid, created, updated, event, expires,
     access, last_access) = row
    return key, Memory(
        id=mid, namespace=ns, content=content, memory_type=mtype, importance=imp,
        tags=tuple(json.loads(tags)), metadata=json.loads(meta), session_id=sid,
        created_at=created, updated_at=updated, event_time=event, expires_at=expires,
        access_count=access, last_accessed_at=last_access,
    )


def _session(row: tuple[Any, ...]) -> Session:
    sid, ns, started, last, ended, reason, summary, meta, idle, count = row
    return Session(
        id=sid, namespace=ns, started_at=started, last_active_at=last, ended_at=ended,
        ended_reason=reason, summary=summary, metadata=json.loads(meta), memory_count=count,
        idle_timeout=idle,
    )


_SESSION_COLUMNS = (
    "s.id, n.name, s.started_at, s.last_active_at, s.ended_at, s.ended_reason, s.summary, "
    "s.metadata, s.idle_timeout, (SELECT COUNT(*) FROM memories m WHERE m.session_key = s.key)"
)


class SQLiteRecordStore:
    """One shard's records. Thread-safe: one connection, one lock (the shard is one writer)."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.location = str(path.parent)  # where the records are, for messages
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._fill_namespace_vectors()

    def _fill_namespace_vectors(self) -> None:
        """Once, for a store written before namespace_vectors existed: copy, in key order."""
        with self._lock, self._tx():
            if self.get_meta("namespace_vectors") is not None:
                return
            self._db.execute(
                "INSERT OR IGNORE INTO namespace_vectors SELECT ns_id, key, memory_type,"
                " COALESCE(session_key, 0), event_time, importance, vector FROM memories"
                " ORDER BY ns_id, key")
            self.set_meta("namespace_vectors", "1")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- namespaces ---------------------------------------------------------------------
    def _ns_id(self, name: str, create: bool, now: float = 0.0) -> int | None:
        row = self._db.execute("SELECT ns_id FROM namespaces WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        cur = self._db.execute(
            "INSERT INTO namespaces (name, created_at) VALUES (?, ?)", (name, now)
        )
        return int(cur.lastrowid or 0)

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
                "SELECT n.name, n.created_at, n.metadata,"
                " (SELECT COUNT(*) FROM memories m WHERE m.ns_id = n.ns_id),"
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

    def drop_namespace(self, name: str) -> list[int]:
        """Delete a namespace with everything in it; returns the memory keys to unindex."""
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
            return keys

    # -- memories -----------------------------------------------------------------------
    def insert(self, items: Sequence[NewMemory], now: float) -> list[tuple[int, Memory, bool]]:
        """Store memories in one transaction. Returns (key, memory, created) per item.

        Idempotent: an existing (namespace, id) or (namespace, idempotency key) answers the
        memory already stored and changes nothing.
        """
        out: list[tuple[int, Memory, bool]] = []
        appended: set[int] = set()  # sessions this call has already added a turn to
        with self._lock, self._tx():
            for item in items:
                ns_id = self._ns_id(item.namespace, create=True, now=now)
                assert ns_id is not None
                existing_id = item.id
                if item.idempotency_key is not None:
                    row = self._db.execute(
                        "SELECT memory_id FROM idempotency WHERE ns_id = ? AND idem_key = ?",
                        (ns_id, item.idempotency_key),
                    ).fetchone()
                    if row is not None:
                        existing_id = row[0]
                found = self._get(ns_id, existing_id)
                if found is not None:
                    # A retry answers what was stored; a different memory under the same
                    # id or key is a client bug that must not pass silently.
                    if found[1].content != item.content:
                        field = "id" if existing_id == item.id else "idempotency_key"
                        raise Conflict(f"{field} already names a different memory: "
                                       f"{existing_id}", field)
                    out.append((found[0], found[1], False))
                    continue
                session_key = None
                if item.session_id is not None:
                    session_key = self._session_key(ns_id, item.session_id)
                    if session_key is None:
                        raise NotFound(f"session not found: {item.session_id}", "session_id")
                    self._db.execute(
                        "UPDATE sessions SET last_active_at = ? WHERE key = ?", (now, session_key)
                    )
                cur = self._db.execute(
                    "INSERT INTO memories (ns_id, id, content, memory_type, importance, tags,"
                    " metadata, session_id, session_key, created_at, updated_at, event_time,"
                    " expires_at, vector) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (ns_id, item.id, item.content, item.memory_type, item.importance,
                     json.dumps(list(item.tags)), json.dumps(item.metadata), item.session_id,
                     session_key, now, now, item.event_time, item.expires_at,
                     pack_vectors(item.vector, item.sentence_vectors)),
                )
                key = int(cur.lastrowid or 0)
                self._db.execute("INSERT INTO index_log (key) VALUES (?)", (key,))
                if session_key is not None and session_key not in appended:
                    # The turns before a session's first new turn now have it as context (the
                    # ones after it in this batch are new and logged anyway).
                    appended.add(session_key)
                    self._log_session_neighbors(key, CONTEXT_TURNS, 0)
                self._link_entities(ns_id, key, item.entities)
                if item.idempotency_key is not None:
                    # REPLACE: the key may still name a memory deleted since (its retry
                    # stores it again), and a second INSERT would fail the whole batch.
                    self._db.execute(
                        "INSERT OR REPLACE INTO idempotency (ns_id, idem_key, memory_id)"
                        " VALUES (?,?,?)",
                        (ns_id, item.idempotency_key, item.id),
                    )
                memory = Memory(
                    id=item.id, namespace=item.namespace, content=item.content,
                    memory_type=item.memory_type, importance=item.importance, tags=item.tags,
                    metadata=item.metadata, session_id=item.session_id, created_at=now,
                    updated_at=now, event_time=item.event_time, expires_at=item.expires_at,
                )
                out.append((key, memory, True))
        return out

    def _get(self, ns_id: int, memory_id: str) -> tuple[int, Memory] | None:
        row = self._db.execute(
            f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
            " WHERE m.ns_id = ? AND m.id = ?",
            (ns_id, memory_id),
        ).fetchone()
        return None if row is None else _memory(row)

    def find_all(self, memory_id: str, scope: Scope) -> list[tuple[int, Memory]]:
        """Every memory with this id in a namespace the scope covers, by namespace name."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE m.id = ? ORDER BY n.name",
                (memory_id,),
            ).fetchall()
        found = [_memory(row) for row in rows]
        return [(key, memory) for key, memory in found if scope.covers(memory.namespace)]

    def find(self, memory_id: str, scope: Scope) -> tuple[int, Memory] | None:
        found = self.find_all(memory_id, scope)
        return found[0] if found else None

    def by_keys(self, namespace: str, keys: Iterable[int]) -> dict[int, Memory]:
        """Hydrate index hits; keys outside `namespace` are dropped here, whatever the index said."""
        keys = list(keys)
        if not keys:
            return {}
        out: dict[int, Memory] = {}
        with self._lock:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return {}
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                    f" WHERE m.ns_id = ? AND m.key IN ({marks})",
                    (ns_id, *chunk),
                ):
                    key, memory = _memory(row)
                    out[key] = memory
        return out

    def vectors(self, keys: Sequence[int], dim: int) -> dict[int, tuple[int, tuple[float, ...], Memory]]:
        """For indexing: key → (ns_id, the memory's own vector, memory) of the keys that still
        exist (its sentences' vectors, after it in the column, are not indexed)."""
        out: dict[int, tuple[int, tuple[float, ...], Memory]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT {_MEMORY_COLUMNS}, m.ns_id, m.vector, m.session_key"
                    f" FROM memories m JOIN namespaces n USING (ns_id) WHERE m.key IN ({marks})",
                    chunk,
                ):
                    key, memory = _memory(row[:15])
                    out[key] = (row[15], unpack_vector(row[16][:dim * 4]), memory)
        return out

    def session_keys(self, keys: Sequence[int]) -> dict[int, int]:
        with self._lock:
            marks = ",".join("?" * len(keys))
            rows = self._db.execute(
                f"SELECT key, session_key FROM memories WHERE key IN ({marks})"
                " AND session_key IS NOT NULL",
                list(keys),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def all_keys(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT key FROM memories ORDER BY key")]

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges, now: float) -> tuple[int, Memory]:
        with self._lock, self._tx():
            ns_id = self._ns_id(namespace, create=False)
            found = None if ns_id is None else self._get(ns_id, memory_id)
            if found is None or ns_id is None:
                raise NotFound(f"memory not found: {memory_id}", "id")
            key = found[0]
            sets: list[str] = ["updated_at = ?"]
            values: list[Any] = [now]
            for column, value in (
                ("content", changes.content),
                ("importance", changes.importance),
                ("memory_type", changes.memory_type),
                ("event_time", changes.event_time),
                ("expires_at", changes.expires_at),
            ):
                if value is not None:
                    sets.append(f"{column} = ?")
                    values.append(value)
            if changes.tags is not None:
                sets.append("tags = ?")
                values.append(json.dumps(list(changes.tags)))
            if changes.metadata is not None:
                sets.append("metadata = ?")
                values.append(json.dumps(changes.metadata))
            if changes.vector is not None:
                sets.append("vector = ?")
                values.append(pack_vectors(changes.vector, changes.sentence_vectors))
            self._db.execute(f"UPDATE memories SET {', '.join(sets)} WHERE key = ?", (*values, key))
            self._db.execute("INSERT INTO index_log (key) VALUES (?)", (key,))
            if changes.content is not None:
                self._log_session_neighbors(key)
            if changes.entities is not None:
                self._unlink_entities(key)
                self._link_entities(ns_id, key, changes.entities)
            updated = self._get(ns_id, memory_id)
            assert updated is not None
            return updated

    def _log_session_neighbors(self, key: int, before: int = CONTEXT_TURNS,
                               after: int = CONTEXT_TURNS) -> list[int]:
        """The keyword index holds each turn with the turns around it; when one changes, comes
        or goes, its neighbours must be re-indexed too (logged here, in the same transaction,
        so that a crash before the re-index is caught up on start)."""
        near = [k for k, _ in self.session_neighbor_rows(key, before, after)]
        self._db.executemany("INSERT INTO index_log (key) VALUES (?)", [(k,) for k in near])
        return near

    def delete(self, scope: Scope, memory_ids: Sequence[str],
               namespace: str | None = None) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete memories by id within the scope (and one namespace when given).

        Returns the deleted (key, memory) pairs and the keys of memories to re-index.
        """
        deleted: list[tuple[int, Memory]] = []
        reindex: list[int] = []
        with self._lock, self._tx():
            for memory_id in memory_ids:
                rows = self._db.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                    " WHERE m.id = ?",
                    (memory_id,),
                ).fetchall()
                for row in rows:
                    key, memory = _memory(row)
                    if not scope.covers(memory.namespace):
                        continue
                    if namespace is not None and memory.namespace != namespace:
                        continue
                    reindex += self._log_session_neighbors(key)
                    self._db.execute("DELETE FROM memories WHERE key = ?", (key,))
                    self._db.execute("INSERT INTO index_log (key) VALUES (?)", (key,))
                    self._unlink_entities(key)
                    deleted.append((key, memory))
        gone = {k for k, _ in deleted}
        return deleted, [k for k in dict.fromkeys(reindex) if k not in gone]

    def delete_matching(self, namespace: str, flt: RecallFilter) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete every memory of a namespace that matches the filter (batch forget),
        expired ones included: an expired memory is hidden from recall, not gone, and a
        forget of "every memory tagged pii" must not leave it behind."""
        with self._lock, self._tx():
            memories, _ = self.listing(namespace, replace(flt, now=None), limit=-1, offset=0)
            return self.delete(Scope.of(namespace), [m.id for m in memories], namespace)

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        """(namespace, memory id) of up to `limit` memories whose expiry has passed."""
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute(
                "SELECT n.name, m.id FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE m.expires_at IS NOT NULL AND m.expires_at <= ? ORDER BY m.expires_at"
                " LIMIT ?", (now, limit))]

    def touch(self, accesses: Sequence[tuple[int, int, float]]) -> None:
        """Add (key, count, last time) accesses; recall boosts frequently used memories."""
        if not accesses:
            return
        with self._lock, self._tx():
            self._db.executemany(
                "UPDATE memories SET access_count = access_count + ?, last_accessed_at = ?"
                " WHERE key = ?",
                [(count, when, key) for key, count, when in accesses],
            )

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        """A page of a namespace's memories matching the filter, and the total that match."""
        with self._lock:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return [], 0
            where = ["m.ns_id = ?"]
            params: list[Any] = [ns_id]
            if flt.memory_types:
                where.append(f"m.memory_type IN ({','.join('?' * len(flt.memory_types))})")
                params.extend(flt.memory_types)
            if flt.session_id is not None:
                where.append("m.session_id = ?")
                params.append(flt.session_id)
            if flt.since is not None:
                where.append("m.event_time >= ?")
                params.append(flt.since)
            if flt.until is not None:
                where.append("m.event_time <= ?")
                params.append(flt.until)
            if flt.min_importance is not None:
                where.append("m.importance >= ?")
                params.append(flt.min_importance)
            if flt.now is not None:
                where.append("(m.expires_at IS NULL OR m.expires_at > ?)")
                params.append(flt.now)
            if flt.max_importance is not None:
                where.append("m.importance <= ?")
                params.append(flt.max_importance)
            if flt.created_after is not None:
                where.append("m.created_at >= ?")
                params.append(flt.created_after)
            if flt.created_before is not None:
                where.append("m.created_at <= ?")
                params.append(flt.created_before)
            for tag in flt.tags_all or ():
                where.append("EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?)")
                params.append(tag)
            if flt.tags_any:
                marks = ",".join("?" * len(flt.tags_any))
                where.append(
                    f"EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value IN ({marks}))")
                params.extend(flt.tags_any)
            clause = " AND ".join(where)
            total = self._db.execute(
                f"SELECT COUNT(*) FROM memories m WHERE {clause}", params
            ).fetchone()[0]
            order = "DESC" if newest_first else "ASC"
            rows = self._db.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                f" WHERE {clause} ORDER BY m.created_at {order}, m.key {order} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_memory(r)[1] for r in rows], int(total)

    # -- sessions -----------------------------------------------------------------------
    def _session_key(self, ns_id: int, session_id: str) -> int | None:
        row = self._db.execute(
            "SELECT key FROM sessions WHERE id = ? AND ns_id = ?", (session_id, ns_id)
        ).fetchone()
        return None if row is None else int(row[0])

    def session_key(self, namespace: str, session_id: str) -> int | None:
        with self._lock:
            ns_id = self._ns_id(namespace, create=False)
            return None if ns_id is None else self._session_key(ns_id, session_id)

    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      now: float, idle_timeout: float | None = None) -> Session:
        with self._lock, self._tx():
            ns_id = self._ns_id(namespace, create=True, now=now)
            try:
                self._db.execute(
                    "INSERT INTO sessions (id, ns_id, started_at, last_active_at, metadata,"
                    " idle_timeout) VALUES (?,?,?,?,?,?)",
                    (session_id, ns_id, now, now, json.dumps(metadata), idle_timeout),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"session already exists: {session_id}", "session_id") from exc
        found = self.get_session(session_id, Scope.of(namespace))
        assert found is not None
        return found

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                " WHERE s.id = ?",
                (session_id,),
            ).fetchone()
        if row is None:
            return None
        session = _session(row)
        return session if scope.covers(session.namespace) else None

    def end_session(self, session_id: str, scope: Scope, now: float, summary: str | None,
                    reason: str) -> Session:
        with self._lock, self._tx():
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                self._db.execute(
                    "UPDATE sessions SET ended_at = ?, ended_reason = ?, summary = ?"
                    " WHERE id = ?",
                    (now, reason, summary, session_id),
                )
            elif summary is not None:
                self._db.execute("UPDATE sessions SET summary = ? WHERE id = ?", (summary, session_id))
        ended = self.get_session(session_id, scope)
        assert ended is not None
        return ended

    def touch_session(self, session_id: str, scope: Scope, now: float) -> Session:
        with self._lock, self._tx():
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                self._db.execute(
                    "UPDATE sessions SET last_active_at = ? WHERE id = ?", (now, session_id)
                )
        touched = self.get_session(session_id, scope)
        assert touched is not None
        return touched

    def sessions(self, namespace: str, active_only: bool, limit: int, offset: int) -> list[Session]:
        with self._lock:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return []
            extra = " AND s.ended_at IS NULL" if active_only else ""
            rows = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                f" WHERE s.ns_id = ?{extra} ORDER BY s.started_at DESC, s.key DESC LIMIT ? OFFSET ?",
                (ns_id, limit, offset),
            ).fetchall()
        return [_session(r) for r in rows]

    def all_sessions(self, scope: Scope, active_only: bool, limit: int) -> list[Session]:
        with self._lock:
            extra = " WHERE s.ended_at IS NULL" if active_only else ""
            rows = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s JOIN namespaces n USING (ns_id)"
                f"{extra} ORDER BY s.started_at DESC, s.key DESC"
            ).fetchall()
        sessions = [_session(r) for r in rows]
        return [s for s in sessions if scope.covers(s.namespace)][:limit]

    def end_idle_sessions(self, default_timeout: float, now: float) -> int:
        """End every open session idle longer than its own timeout (or the default; 0 = never)."""
        with self._lock, self._tx():
            # Not in a namespace being moved: its copy on the new shard would miss the change.
            cur = self._db.execute(
                "UPDATE sessions SET ended_at = ?, ended_reason = 'idle'"
                " WHERE ended_at IS NULL AND COALESCE(idle_timeout, ?) > 0"
                " AND last_active_at + COALESCE(idle_timeout, ?) < ?"
                " AND ns_id NOT IN (SELECT n.ns_id FROM namespaces n"
                "                   JOIN namespace_states s ON s.name = n.name)",
                (now, default_timeout, default_timeout, now),
            )
            return cur.rowcount

    def session_neighbor_rows(self, key: int, before: int, after: int) -> list[tuple[int, Memory]]:
        """(key, memory) of the memories just before and after this one in its session."""
        earlier, later = self.session_sides(key, before, after)
        return earlier + later

    def session_sides(self, key: int, before: int, after: int
                      ) -> tuple[list[tuple[int, Memory]], list[tuple[int, Memory]]]:
        """The memories before this one in its session (nearest last) and after it (nearest
        first), in session order."""
        with self._lock:
            row = self._db.execute(
                "SELECT session_key, created_at FROM memories WHERE key = ?", (key,)).fetchone()
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
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                places = self._db.execute(
                    f"SELECT key, session_key, created_at FROM memories WHERE key IN ({marks})"
                    " AND session_key IS NOT NULL", chunk).fetchall()
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
            f" WHERE m.session_key = ? AND (m.created_at, m.key) {op} (?, ?)"
            f" ORDER BY m.created_at {order}, m.key {order} LIMIT ?",
            (session_key, created, key, limit),
        ).fetchall()

    # -- knowledge graph ----------------------------------------------------------------
    def _link_entities(self, ns_id: int, key: int, entities: Sequence[EntityRef]) -> None:
        for e in {e.key: e for e in entities}.values():
            self._db.execute(
                "INSERT INTO entities (ns_id, key, type, value) VALUES (?,?,?,?)"
                " ON CONFLICT (ns_id, key) DO NOTHING",
                (ns_id, e.key, e.type, e.value),
            )
            ent_id = self._db.execute(
                "SELECT ent_id FROM entities WHERE ns_id = ? AND key = ?", (ns_id, e.key)
            ).fetchone()[0]
            self._db.execute(
                "INSERT OR IGNORE INTO memory_entities (mem_key, ent_id, value, score)"
                " VALUES (?,?,?,?)", (key, ent_id, e.value, e.score))
            self._db.execute("UPDATE entities SET doc_freq = doc_freq + 1 WHERE ent_id = ?", (ent_id,))

    def _unlink_entities(self, key: int) -> None:
        self._db.execute(
            "UPDATE entities SET doc_freq = doc_freq - 1 WHERE ent_id IN"
            " (SELECT ent_id FROM memory_entities WHERE mem_key = ?)", (key,))
        self._db.execute("DELETE FROM memory_entities WHERE mem_key = ?", (key,))

    def entities_of(self, key: int) -> list[EntityRef]:
        with self._lock:
            rows = self._db.execute(
                "SELECT e.key, e.type, me.value, me.score FROM memory_entities me"
                " JOIN entities e USING (ent_id) WHERE me.mem_key = ? ORDER BY e.type, e.key",
                (key,),
            ).fetchall()
        return [EntityRef(key=r[0], type=r[1], value=r[2], score=r[3]) for r in rows]

    def namespace_vector_rows(self, ns_id: int) -> list[tuple[int, bytes, int, int, float, float]]:
        """(key, vector stack blob, type code, session key or 0, event time, importance) of
        every memory in a namespace: what exact vector search needs, nothing more."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, vector, memory_type, session_key, event_time, importance"
                " FROM namespace_vectors WHERE ns_id = ?", (ns_id,)).fetchall()
        return [(k, v, memory_type_code(t), sk, ev, imp) for k, v, t, sk, ev, imp in rows]

    def vector_stacks(self, ns_id: int, keys: Sequence[int]) -> dict[int, bytes]:
        """key → vector stack blob (pack_vectors) of these memories of one namespace."""
        out: dict[int, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                out.update(self._db.execute(
                    f"SELECT key, vector FROM namespace_vectors WHERE ns_id = ? AND key IN ({marks})",
                    (ns_id, *chunk)).fetchall())
        return out

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

    def match_entities(self, namespace: str, keys: Sequence[str]) -> dict[int, tuple[str, int]]:
        """Entities of a namespace named by these keys → (key, doc_freq).

        A one-word person ("person:jane") also matches the full names it is part of
        ("person:jane doe"): queries use first names where memories have full ones.
        """
        out: dict[int, tuple[str, int]] = {}
        with self._lock:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None or not keys:
                return out
            for key in dict.fromkeys(keys):
                params: list[Any] = [ns_id, key]
                clause = "key = ?"
                kind, _, name = key.partition(":")
                if kind == "person" and name and " " not in name:
                    esc = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    clause += " OR key LIKE ? ESCAPE '\\' OR key LIKE ? ESCAPE '\\'"
                    params += [f"person:{esc} %", f"person:% {esc}"]
                for ent_id, k, df in self._db.execute(
                    f"SELECT ent_id, key, doc_freq FROM entities WHERE ns_id = ? AND ({clause})",
                    params,
                ):
                    out[int(ent_id)] = (str(k), int(df))
        return out

    def memories_of_entities(self, ent_ids: Sequence[int]) -> list[tuple[int, int]]:
        """(memory key, entity id) for every memory linked to these entities."""
        if not ent_ids:
            return []
        with self._lock:
            marks = ",".join("?" * len(ent_ids))
            return [(int(r[0]), int(r[1])) for r in self._db.execute(
                f"SELECT mem_key, ent_id FROM memory_entities WHERE ent_id IN ({marks})",
                list(ent_ids),
            )]

    def entity_links(self, mem_keys: Sequence[int], max_doc_freq: int) -> list[tuple[int, int, int, str, int]]:
        """Links out of these memories: (from key, to key, entity id, entity key, doc_freq).

        Entities in more than `max_doc_freq` memories are hubs (a speaker's own name, say):
        they link everything to everything and carry no information, so they are skipped.
        """
        if not mem_keys:
            return []
        with self._lock:
            marks = ",".join("?" * len(mem_keys))
            rows = self._db.execute(
                "SELECT a.mem_key, b.mem_key, e.ent_id, e.key, e.doc_freq"
                " FROM memory_entities a JOIN entities e ON e.ent_id = a.ent_id"
                " JOIN memory_entities b ON b.ent_id = a.ent_id"
                f" WHERE a.mem_key IN ({marks}) AND b.mem_key != a.mem_key AND e.doc_freq <= ?",
                (*mem_keys, max_doc_freq),
            ).fetchall()
        return [(int(r[0]), int(r[1]), int(r[2]), str(r[3]), int(r[4])) for r in rows]

    # -- moving a namespace to another shard (cluster/reshard.py) -------------------------
    def namespace_states(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT name, state FROM namespace_states").fetchall())

    def set_namespace_state(self, name: str, state: str | None) -> None:
        with self._lock:
            if state is None:
                self._db.execute("DELETE FROM namespace_states WHERE name = ?", (name,))
            else:
                self._db.execute(
                    "INSERT INTO namespace_states (name, state) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET state = excluded.state", (name, state))

    def namespace_names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM namespaces ORDER BY name")]

    def export_head(self, name: str) -> dict[str, Any]:
        """Everything of a namespace but its memories: the namespace row, sessions, entities
        (with their final document frequencies) and idempotency keys."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            q = self._db.execute
            return {
                "name": name,
                "namespace": q("SELECT created_at, metadata FROM namespaces WHERE ns_id = ?",
                               (ns_id,)).fetchone(),
                "sessions": q("SELECT id, started_at, last_active_at, ended_at, ended_reason,"
                              " summary, metadata, idle_timeout FROM sessions WHERE ns_id = ?"
                              " ORDER BY key", (ns_id,)).fetchall(),
                "entities": q("SELECT key, type, value, doc_freq FROM entities WHERE ns_id = ?"
                              " ORDER BY ent_id", (ns_id,)).fetchall(),
                "idempotency": q("SELECT idem_key, memory_id FROM idempotency WHERE ns_id = ?",
                                 (ns_id,)).fetchall(),
                "memories": q("SELECT COUNT(*) FROM memories WHERE ns_id = ?", (ns_id,)).fetchone()[0],
            }

    def export_memories(self, name: str, after_key: int, limit: int) -> tuple[list[tuple[Any, ...]], int]:
        """A page of a namespace's memories in key (= storage) order, each with its entity
        links, and the cursor for the next page (-1: done)."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            rows = self._db.execute(
                f"SELECT {_EXPORT_COLUMNS} FROM memories WHERE ns_id = ? AND key > ?"
                " ORDER BY key LIMIT ?", (ns_id, after_key, limit)).fetchall()
            out = [self._exported(row) for row in rows]
        return out, (rows[-1][0] if len(rows) == limit else -1)

    def _exported(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """An export row: the memory's columns after its key, then its entity links."""
        links = self._db.execute(
            "SELECT e.key, me.value, me.score FROM memory_entities me"
            " JOIN entities e USING (ent_id) WHERE me.mem_key = ?", (row[0],)).fetchall()
        return (*row[1:], links)

    # -- live copies (a reshard moving a namespace that keeps taking writes) ---------------
    def start_change_log(self, name: str) -> None:
        """Name every memory of this namespace that changes from now on (afresh: a copy
        started again forgets what its earlier try logged)."""
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            self._db.execute("DELETE FROM copy_log WHERE ns_id = ?", (ns_id,))
            self._db.execute("INSERT OR IGNORE INTO moving (ns_id) VALUES (?)", (ns_id,))

    def stop_change_log(self, name: str) -> None:
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is not None:
                self._db.execute("DELETE FROM moving WHERE ns_id = ?", (ns_id,))
                self._db.execute("DELETE FROM copy_log WHERE ns_id = ?", (ns_id,))

    def export_changes(self, name: str, after_seq: int, limit: int
                       ) -> tuple[list[tuple[Any, ...]], list[str], int]:
        """A page of the memories changed since start_change_log, oldest change first after
        `after_seq`: (export rows of those that exist now, ids of those deleted, the seq to
        ask after next). Fewer than `limit` changes: the log is drained, for now."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            logged = self._db.execute(
                "SELECT memory_id, seq FROM copy_log WHERE ns_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?", (ns_id, after_seq, limit)).fetchall()
            found, deleted = [], []
            for memory_id, _ in logged:
                row = self._db.execute(
                    f"SELECT {_EXPORT_COLUMNS} FROM memories WHERE ns_id = ? AND id = ?",
                    (ns_id, memory_id)).fetchone()
                if row is None:
                    deleted.append(memory_id)
                else:
                    found.append(row)
            # In storage order: memories stored together (one created_at) reach the copy in
            # the order they were stored, which is how a session orders its turns.
            rows = [self._exported(row) for row in sorted(found, key=lambda r: r[0])]
        return rows, deleted, (logged[-1][1] if logged else after_seq)

    def refresh_head(self, head: dict[str, Any]) -> None:
        """Bring a copy's namespace row, sessions, entities (with their document
        frequencies) and idempotency keys up to the source's, after its memories caught up."""
        name = head["name"]
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            self._db.execute("UPDATE namespaces SET metadata = ? WHERE ns_id = ?",
                             (head["namespace"][1], ns_id))
            self._db.executemany(
                "INSERT INTO sessions (id, ns_id, started_at, last_active_at, ended_at,"
                " ended_reason, summary, metadata, idle_timeout) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at,"
                " last_active_at = excluded.last_active_at, ended_at = excluded.ended_at,"
                " ended_reason = excluded.ended_reason, summary = excluded.summary,"
                " metadata = excluded.metadata, idle_timeout = excluded.idle_timeout",
                [(s[0], ns_id, *s[1:]) for s in head["sessions"]])
            self._db.executemany(
                "INSERT INTO entities (ns_id, key, type, value, doc_freq) VALUES (?,?,?,?,?)"
                " ON CONFLICT (ns_id, key) DO UPDATE SET type = excluded.type,"
                " value = excluded.value, doc_freq = excluded.doc_freq",
                [(ns_id, *e) for e in head["entities"]])
            self._db.executemany(
                "INSERT OR REPLACE INTO idempotency (ns_id, idem_key, memory_id) VALUES (?,?,?)",
                [(ns_id, *i) for i in head["idempotency"]])

    def import_head(self, head: dict[str, Any]) -> None:
        """Start a namespace's copy here (absent until now), in one transaction."""
        name = head["name"]
        with self._lock, self._tx():
            if self._ns_id(name, create=False) is not None:
                raise Conflict(f"namespace already here: {name}", "namespace")
            created_at, metadata = head["namespace"]
            cur = self._db.execute("INSERT INTO namespaces (name, created_at, metadata)"
                                   " VALUES (?, ?, ?)", (name, created_at, metadata))
            ns_id = int(cur.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO sessions (id, ns_id, started_at, last_active_at, ended_at,"
                " ended_reason, summary, metadata, idle_timeout) VALUES (?,?,?,?,?,?,?,?,?)",
                [(s[0], ns_id, *s[1:]) for s in head["sessions"]])
            self._db.executemany(
                "INSERT INTO entities (ns_id, key, type, value, doc_freq) VALUES (?,?,?,?,?)",
                [(ns_id, *e) for e in head["entities"]])
            self._db.executemany(
                "INSERT INTO idempotency (ns_id, idem_key, memory_id) VALUES (?,?,?)",
                [(ns_id, *i) for i in head["idempotency"]])

    def import_memories(self, name: str, rows: Sequence[tuple[Any, ...]], replace: bool = False
                        ) -> tuple[list[tuple[int, Memory, bool]], list[int]]:
        """Add a page of exported memories (after import_head), logged for the indexes like
        any write; returns (key, memory, True) per row, as insert does, and the keys of the
        turns around the memories they replaced, whose keyword context changed (`replace`: a
        live copy catching up with changed memories).

        A replaced memory keeps its key here: a session orders its turns by (created_at, key),
        and a turn re-inserted under a new key would jump behind the turns stored with it.
        A live copy's pages may name sessions and entities begun after its head was taken:
        they are added bare here, and refresh_head fills them in."""
        out: list[tuple[int, Memory, bool]] = []
        reindex: list[int] = []
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            entity_ids = dict(self._db.execute(
                "SELECT key, ent_id FROM entities WHERE ns_id = ?", (ns_id,)).fetchall())
            for (mid, content, mtype, imp, tags, meta, sid, created, updated, event, expires,
                 access, last_access, vector, links) in rows:
                old = self._get(ns_id, mid)
                if old is not None:
                    if not replace:
                        raise Conflict(f"memory already imported: {mid}", "id")
                    reindex += self._log_session_neighbors(old[0])
                    self._db.execute("DELETE FROM memory_entities WHERE mem_key = ?", (old[0],))
                    self._db.execute("DELETE FROM memories WHERE key = ?", (old[0],))
                for ent_key, value, _ in links:
                    if ent_key not in entity_ids:
                        cur = self._db.execute(
                            "INSERT INTO entities (ns_id, key, type, value) VALUES (?,?,?,?)",
                            (ns_id, ent_key, ent_key.split(":", 1)[0], value))
                        entity_ids[ent_key] = int(cur.lastrowid or 0)
                if sid is not None and self._session_key(ns_id, sid) is None:
                    self._db.execute(
                        "INSERT INTO sessions (id, ns_id, started_at, last_active_at)"
                        " VALUES (?,?,?,?)", (sid, ns_id, created, created))
                session_key = None if sid is None else self._session_key(ns_id, sid)
                cur = self._db.execute(
                    "INSERT INTO memories (key, ns_id, id, content, memory_type, importance,"
                    " tags, metadata, session_id, session_key, created_at, updated_at,"
                    " event_time, expires_at, access_count, last_accessed_at, vector)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (None if old is None else old[0], ns_id, mid, content, mtype, imp, tags,
                     meta, sid, session_key, created, updated, event, expires, access,
                     last_access, vector))
                key = int(cur.lastrowid or 0)
                self._db.execute("INSERT INTO index_log (key) VALUES (?)", (key,))
                self._db.executemany(
                    "INSERT INTO memory_entities (mem_key, ent_id, value, score) VALUES (?,?,?,?)",
                    [(key, entity_ids[ent_key], value, score) for ent_key, value, score in links])
                found = self._get(ns_id, mid)
                assert found is not None
                out.append((key, found[1], True))
        imported = {key for key, _, _ in out}
        return out, [k for k in dict.fromkeys(reindex) if k not in imported]

    # -- index log ----------------------------------------------------------------------
    def log_all_for_reindex(self) -> list[int]:
        """Log every memory for the indexes, before they are cleared for a rebuild: a
        rebuild cut short (a crash, an index server failing) is then finished by the next
        catch-up, where without the log the memories not yet re-added would stay unfound."""
        with self._lock, self._tx():
            self._db.execute("INSERT INTO index_log (key) SELECT key FROM memories")
            return [r[0] for r in self._db.execute("SELECT key FROM memories ORDER BY key")]

    def pending_index_keys(self) -> tuple[int, list[int]]:
        """(highest seq, distinct memory keys) the indexes have not durably absorbed yet."""
        with self._lock:
            rows = self._db.execute("SELECT seq, key FROM index_log ORDER BY seq").fetchall()
        if not rows:
            return 0, []
        return rows[-1][0], list(dict.fromkeys(r[1] for r in rows))

    def mark_indexed(self, up_to_seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM index_log WHERE seq <= ?", (up_to_seq,))

    def counts(self) -> tuple[int, int, int, int]:
        with self._lock:
            memories, namespaces, sessions, pending = (
                int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("memories", "namespaces", "sessions", "index_log")
            )
        return memories, namespaces, sessions, pending

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, re-entrant (nested use joins the outer transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
