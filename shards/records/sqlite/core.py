"""SQLite record store, its core: the connection, the lock, the transactions and the meta
table, which every job module (a mixin of SQLiteRecordStore) builds on.

Every write commits (WAL, synchronous=FULL) before it is acknowledged, and appends the
memory's key to `index_log` in the same transaction; the indexes catch up from that log,
so a crash between the commit and the index update is repaired on the next start.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
import threading
from pathlib import Path
from typing import Any

from shards.events import CARRY_TEXT, new_event_id, redacted, refreshed
from shards.records.sqlite.schema import _MEMORY_COLUMNS, MIGRATIONS, _memory
from shards.sqlite_schema import migrate
from shards.types import Memory


class SQLiteCore:
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
        # A forgotten memory's text must not stay readable in the file: deleted rows' bytes
        # are overwritten with zeros (the WAL's old page images go at scrub()).
        self._db.execute("PRAGMA secure_delete=ON")
        migrate(self._db, "record store", self.location, MIGRATIONS)
        self._fill_namespace_vectors()

    def scrub(self) -> None:
        """Copy the WAL into the database and truncate it to nothing: the WAL still holds
        the page images written before a delete (a forgotten memory's text among them)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    # -- what every job module uses: namespace ids, memory rows, transactions ----------
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

    def _get(self, ns_id: int, memory_id: str) -> tuple[int, Memory] | None:
        row = self._db.execute(
            f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
            " WHERE m.ns_id = ? AND m.id = ?",
            (ns_id, memory_id),
        ).fetchone()
        return None if row is None else _memory(row)

    # -- the outbox (shards/events.py): written inside the change's own transaction --------
    def _emit(self, kind: str, namespace: str, data: dict[str, Any], now: float,
              memory_id: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO events (id, type, namespace, memory_id, occurred_at, data) VALUES (?,?,?,?,?,?)",
            (new_event_id(), kind, namespace, memory_id, now, json.dumps(data)))

    def _redact_events(self, namespace: str, memory_ids: list[str] | None) -> None:
        """What the outbox holds of forgotten memories (None: of the whole namespace)."""
        self._rewrite_events(namespace, memory_ids, redacted)

    def _refresh_events(self, namespace: str, memory_id: str, now: dict[str, Any]) -> None:
        """Waiting events of an updated memory: as it is now."""
        self._rewrite_events(namespace, [memory_id], lambda old: refreshed(old, now))

    def _rewrite_events(self, namespace: str, memory_ids: list[str] | None,
                        rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        sql = f"SELECT seq, data FROM events WHERE type IN ({','.join('?' * len(CARRY_TEXT))}) AND namespace = ?"
        params: list[Any] = [*CARRY_TEXT, namespace]
        if memory_ids is not None:
            if not memory_ids:
                return
            sql += f" AND memory_id IN ({','.join('?' * len(memory_ids))})"
            params += memory_ids
        rows = self._db.execute(sql, params).fetchall()
        self._db.executemany("UPDATE events SET data = ? WHERE seq = ?",
                             [(json.dumps(rewrite(json.loads(data))), seq) for seq, data in rows])

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
