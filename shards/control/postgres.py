"""Control data on PostgreSQL (production, beside the PostgreSQL record store): the same rules
as the SQLite control store, in schema `<schema_prefix>control` on `postgres.dsn`.

The shard map and the reshard lease are one row. Every change reads it `FOR UPDATE` and
writes it back in the same transaction, so any number of routers (and their replicas) and
reshard jobs change it one at a time: of two racing for the same lease, exactly one wins and
the other sees its write. API keys are rows keyed by id, their secret's hash unique.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from shards.config import PostgresConfig
from shards.control.base import ApiKey, KeyLimits, MapState, hash_key
from shards.control.rules import ControlRules
from shards.errors import Conflict, NotFound, StorageUnavailable
from shards.postgres_pool import open_migrated, unavailable_as

V1_SQL = """
CREATE TABLE shard_map (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),  -- one row
    count INTEGER,                  -- NULL: no shard count recorded yet
    target INTEGER,                 -- NULL: no reshard in progress
    moved TEXT[] NOT NULL DEFAULT '{}',
    version BIGINT NOT NULL DEFAULT 0,
    epoch BIGINT NOT NULL DEFAULT 0,
    aborting BOOLEAN NOT NULL DEFAULT FALSE,
    job TEXT,
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
INSERT INTO shard_map (id) VALUES (TRUE);
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    namespaces TEXT[],              -- grants; NULL means every namespace
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    created_by TEXT
);
CREATE INDEX api_keys_created ON api_keys (created_at, key_id);
"""
# Version 2: per-key limits (KeyLimits as JSON text; NULL: none).
V2_SQL = "ALTER TABLE api_keys ADD COLUMN limits TEXT;"
MIGRATIONS = [V1_SQL, V2_SQL]

MAP_COLUMNS = "count, target, moved, version, epoch, aborting, job, lease_until"
KEY_COLUMNS = "key_id, name, scope, namespaces, created_at, expires_at, created_by, limits"


class PostgresControlStore(ControlRules):
    """API keys and the shard map in one PostgreSQL schema, shared by every router."""

    remote = True  # every call is a network round trip (serve/control_calls.py)

    def __init__(self, pool: Any, location: str) -> None:
        self._pool = pool
        self.location = location

    @classmethod
    def from_config(cls, cfg: PostgresConfig) -> PostgresControlStore:
        """Open a pool on the control schema, migrated to this code's version (a newer schema
        is refused, naming both versions)."""
        pool, location = open_migrated(cfg, f"{cfg.schema_prefix}control", "control", MIGRATIONS, "control")
        return cls(pool, location)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A connection inside one transaction; a lost server is StorageUnavailable."""
        with unavailable_as("control", self.location), self._pool.connection() as conn, conn.transaction():
            yield conn

    # -- the shard map --------------------------------------------------------------------
    def _read(self) -> MapState:
        with self._transaction() as conn:
            return _state(conn.execute(f"SELECT {MAP_COLUMNS} FROM shard_map").fetchone())

    def _change(self, rule: Callable[[MapState], None]) -> MapState:
        with self._transaction() as conn:
            # The row lock queues every other writer until this transaction ends.
            before = _state(conn.execute(f"SELECT {MAP_COLUMNS} FROM shard_map FOR UPDATE").fetchone())
            state = replace(before, moved=set(before.moved))
            rule(state)  # raises: the transaction rolls back, nothing written
            if state != before:
                conn.execute(
                    "UPDATE shard_map SET count = %s, target = %s, moved = %s, version = %s,"
                    " epoch = %s, aborting = %s, job = %s, lease_until = %s",
                    (state.count, state.target, sorted(state.moved), state.version, state.epoch,
                     state.aborting, state.job, state.lease_until))
            return state

    # -- API keys -------------------------------------------------------------------------
    def _put_key(self, key: ApiKey, key_hash: str) -> None:
        import psycopg

        try:
            with self._transaction() as conn:
                conn.execute(f"INSERT INTO api_keys ({KEY_COLUMNS}, key_hash)"
                             " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", (*_key_row(key), key_hash))
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("an API key with this id or secret exists already", "key") from exc

    def ensure_root_key(self, secret: str) -> ApiKey:
        """Every Router replica runs this as it starts, at once: one upsert, so there is no
        window without a root key, and one replica at a time (racing upserts on the key id
        would collide on the secret's unique hash instead). The same secret keeps the key as
        it was."""
        key = ApiKey(key_id="root", name="root", scope="super_admin", namespaces=None,
                     created_at=time.time())
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':root_key'))")
            row = conn.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}, key_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key_id) DO UPDATE SET key_hash = excluded.key_hash,"
                " name = excluded.name, scope = excluded.scope, namespaces = NULL, limits = NULL,"
                " expires_at = NULL, created_by = NULL, created_at = CASE"
                " WHEN api_keys.key_hash = excluded.key_hash THEN api_keys.created_at"
                f" ELSE excluded.created_at END RETURNING {KEY_COLUMNS}",
                (*_key_row(key), hash_key(secret))).fetchone()
        return _key(row)

    def update_key(self, key: ApiKey) -> ApiKey:
        with self._transaction() as conn:
            row = conn.execute(
                f"UPDATE api_keys SET name = %s, namespaces = %s, limits = %s WHERE key_id = %s"
                f" RETURNING {KEY_COLUMNS}",
                (key.name, _key_row(key)[3], key.limits.to_json(), key.key_id)).fetchone()
        if row is None:
            raise NotFound(f"api key not found: {key.key_id}", "key_id")
        return _key(row)

    def get_key(self, key_id: str) -> ApiKey:
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = %s",
                               (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"api key not found: {key_id}", "key_id")
        return _key(row)

    def by_secret(self, secret: str) -> ApiKey | None:
        with self._transaction() as conn:
            row = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = %s",
                               (hash_key(secret),)).fetchone()
        return None if row is None else _key(row)

    def keys(self) -> list[ApiKey]:
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [_key(r) for r in rows]

    def delete_key(self, key_id: str) -> None:
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM api_keys WHERE key_id = %s", (key_id,)).rowcount
        if deleted == 0:
            raise NotFound(f"api key not found: {key_id}", "key_id")

    def export_keys(self) -> list[tuple[ApiKey, str]]:
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {KEY_COLUMNS}, key_hash FROM api_keys"
                                " ORDER BY created_at, key_id").fetchall()
        return [(_key(r[:8]), str(r[8])) for r in rows]

    def import_keys(self, keys: list[tuple[ApiKey, str]]) -> int:
        """Add the keys this store lacks (by key id), all in one transaction."""
        import psycopg

        added = 0
        try:
            with self._transaction() as conn:
                for key, key_hash in keys:
                    added += conn.execute(
                        f"INSERT INTO api_keys ({KEY_COLUMNS}, key_hash)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (key_id) DO NOTHING",
                        (*_key_row(key), key_hash)).rowcount
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict("the target holds another API key with the secret of one copied: "
                           "copy into an empty store", "key") from exc
        return added


def _state(row: tuple[Any, ...] | None) -> MapState:
    if row is None:  # V1 inserts the row; only a hand-edited schema lacks it
        raise StorageUnavailable("control store: the shard_map row is missing", "control")
    count, target, moved, version, epoch, aborting, job, lease_until = row
    return MapState(count=count, target=target, moved=set(moved), version=int(version),
                    epoch=int(epoch), aborting=bool(aborting), job=job,
                    lease_until=float(lease_until))


def _key_row(key: ApiKey) -> tuple[Any, ...]:
    return (key.key_id, key.name, key.scope,
            None if key.namespaces is None else list(key.namespaces),
            key.created_at, key.expires_at, key.created_by, key.limits.to_json())


def _key(row: tuple[Any, ...]) -> ApiKey:
    key_id, name, scope, namespaces, created, expires, created_by, limits = row
    return ApiKey(key_id=key_id, name=name, scope=scope,
                  namespaces=None if namespaces is None else tuple(namespaces),
                  created_at=float(created), expires_at=None if expires is None else float(expires),
                  created_by=created_by, limits=KeyLimits.from_json(limits))
