"""Control data that is not sharded: API keys (hashed) and the recorded shard layout."""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shards.errors import LayoutMismatch, NotFound

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
"""


def hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so one SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scope: str
    namespaces: tuple[str, ...] | None  # None: every namespace
    created_at: float
    expires_at: float | None = None
    created_by: str | None = None


class SQLiteControlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def check_shard_count(self, shard_count: int) -> None:
        """Record the shard count on first start; refuse any other count afterwards."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('shard_count', ?)",
                (str(shard_count),),
            )
            stored = int(self._db.execute(
                "SELECT value FROM meta WHERE key = 'shard_count'").fetchone()[0])
        if stored != shard_count:
            raise LayoutMismatch(
                f"the data under {self.path.parent} is split over {stored} shards but the "
                f"config asks for {shard_count}; set shard_count: {stored} (existing data cannot "
                "be moved to another shard count yet: that needs a resharding job)",
                "shard_count",
            )

    def create_key(self, name: str, scope: str, namespaces: list[str] | None,
                   expires_at: float | None, created_by: str | None,
                   secret: str | None = None, key_id: str | None = None) -> tuple[ApiKey, str]:
        secret = secret or "ek_" + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id or "key_" + secrets.token_hex(8), name=name, scope=scope,
            namespaces=None if namespaces is None else tuple(namespaces),
            created_at=time.time(), expires_at=expires_at, created_by=created_by,
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_id, key_hash, name, scope, namespaces, created_at,"
                " expires_at, created_by) VALUES (?,?,?,?,?,?,?,?)",
                (key.key_id, hash_key(secret), name, scope,
                 None if namespaces is None else json.dumps(namespaces), key.created_at,
                 expires_at, created_by),
            )
        return key, secret

    def ensure_root_key(self, secret: str) -> ApiKey:
        """The root key from the environment: created or re-pointed to this secret."""
        with self._lock:
            self._db.execute("DELETE FROM api_keys WHERE key_id = 'root'")
        key, _ = self.create_key("root", "super_admin", None, None, None, secret=secret,
                                 key_id="root")
        return key

    def by_secret(self, secret: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key_id, name, scope, namespaces, created_at, expires_at, created_by"
                " FROM api_keys WHERE key_hash = ?",
                (hash_key(secret),),
            ).fetchone()
        return None if row is None else _key(row)

    def keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, scope, namespaces, created_at, expires_at, created_by"
                " FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [_key(r) for r in rows]

    def get_key(self, key_id: str) -> ApiKey:
        for key in self.keys():
            if key.key_id == key_id:
                return key
        raise NotFound(f"api key not found: {key_id}", "key_id")

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        if cur.rowcount == 0:
            raise NotFound(f"api key not found: {key_id}", "key_id")


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, scope, namespaces, created, expires, created_by = row
    return ApiKey(
        key_id=str(key_id), name=str(name), scope=str(scope),
        namespaces=None if namespaces is None else tuple(json.loads(str(namespaces))),
        created_at=float(created), expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        created_by=None if created_by is None else str(created_by),
    )
