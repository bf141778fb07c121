"""Control data in SQLite (embedded): one file in data_dir, which the routers and the reshard
job share."""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from shards.control.base import ApiKey, KeyLimits, MapState, hash_key
from shards.control.rules import ControlRules
from shards.errors import NotFound
from shards.sqlite_schema import migrate

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    namespaces TEXT,            -- JSON list of grants; NULL means every namespace
    created_at REAL NOT NULL,
    expires_at REAL,
    created_by TEXT
);
CREATE TABLE IF NOT EXISTS moved_namespaces (name TEXT PRIMARY KEY);
"""

# migrations[i] takes the schema from version i to i + 1 (shards/sqlite_schema.py); a change
# appends one, never edits. Version 1 is the layout stores had before versions were kept.
# Version 2: per-key limits (KeyLimits as JSON; NULL: none). One transaction, the version
# inside it: a migration cut short leaves version 1 as it was.
LIMITS_V2 = """
BEGIN;
ALTER TABLE api_keys ADD COLUMN limits TEXT;
PRAGMA user_version = 2;
COMMIT;
"""
MIGRATIONS: list[str] = [SCHEMA, LIMITS_V2]
KEY_COLUMNS = "key_id, name, scope, namespaces, created_at, expires_at, created_by, limits"


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (routers and the reshard job share the file)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SQLiteControlStore(ControlRules):
    """Control data in one SQLite file, which the routers and the reshard job share."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.location = str(path.parent)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        migrate(self._db, "control store", self.location, MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    # The state keeps its existing layout: meta rows and one row per moved namespace.
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                             " DO UPDATE SET value = excluded.value", (key, value))

    def _load(self) -> MapState:
        count, target = self._meta("shard_count"), self._meta("reshard_target")
        return MapState(
            count=None if count is None else int(count),
            target=None if target is None else int(target),
            moved={r[0] for r in self._db.execute("SELECT name FROM moved_namespaces")},
            version=int(self._meta("shard_map_version") or 0),
            epoch=int(self._meta("shard_map_epoch") or 0),
            aborting=self._meta("reshard_aborting") is not None,
            job=self._meta("reshard_job"),
            lease_until=float(self._meta("reshard_lease_until") or 0))

    def _read(self) -> MapState:
        with self._lock:
            self._db.execute("BEGIN")  # one read transaction: readers never queue
            try:
                return self._load()
            finally:
                self._db.execute("COMMIT")

    def _change(self, rule: Callable[[MapState], None]) -> MapState:
        with self._lock, _immediate(self._db):
            before = self._load()
            state = replace(before, moved=set(before.moved))
            rule(state)
            for key, old, new in (
                ("shard_count", before.count, state.count),
                ("reshard_target", before.target, state.target),
                ("shard_map_version", before.version, state.version),
                ("shard_map_epoch", before.epoch, state.epoch),
                ("reshard_aborting", before.aborting or None, state.aborting or None),
                ("reshard_job", before.job, state.job),
                ("reshard_lease_until", before.lease_until or None, state.lease_until or None),
            ):
                if old != new:
                    self._set_meta(key, _meta_text(new))
            self._db.executemany("INSERT OR IGNORE INTO moved_namespaces (name) VALUES (?)",
                                 [(n,) for n in state.moved - before.moved])
            self._db.executemany("DELETE FROM moved_namespaces WHERE name = ?",
                                 [(n,) for n in before.moved - state.moved])
            return state

    def _put_key(self, key: ApiKey, key_hash: str) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}, key_hash) VALUES (?,?,?,?,?,?,?,?,?)",
                (*_key_row(key), key_hash))

    def update_key(self, key: ApiKey) -> ApiKey:
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET name = ?, namespaces = ?, limits = ? WHERE key_id = ?",
                (key.name, _key_row(key)[3], key.limits.to_json(), key.key_id))
        if cur.rowcount == 0:
            raise NotFound(f"api key not found: {key.key_id}", "key_id")
        return self.get_key(key.key_id)

    def by_secret(self, secret: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?",
                (hash_key(secret),),
            ).fetchone()
        return None if row is None else _key(row)

    def keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [_key(r) for r in rows]

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        if cur.rowcount == 0:
            raise NotFound(f"api key not found: {key_id}", "key_id")

    def export_keys(self) -> list[tuple[ApiKey, str]]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {KEY_COLUMNS}, key_hash FROM api_keys ORDER BY created_at").fetchall()
        return [(_key(r[:8]), str(r[8])) for r in rows]


def _meta_text(value: object) -> str | None:
    """A MapState value as the meta table has always held it (None: no row)."""
    if value is None:
        return None
    if value is True:
        return "1"
    return repr(value) if isinstance(value, float) else str(value)


def _key_row(key: ApiKey) -> tuple[object, ...]:
    """A key as KEY_COLUMNS hold it."""
    return (key.key_id, key.name, key.scope,
            None if key.namespaces is None else json.dumps(list(key.namespaces)),
            key.created_at, key.expires_at, key.created_by, key.limits.to_json())


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, scope, namespaces, created, expires, created_by, limits = row
    return ApiKey(
        key_id=str(key_id), name=str(name), scope=str(scope),
        namespaces=None if namespaces is None else tuple(json.loads(str(namespaces))),
        created_at=float(created), expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        created_by=None if created_by is None else str(created_by),
        limits=KeyLimits.from_json(None if limits is None else str(limits)),
    )
