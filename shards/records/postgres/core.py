"""PostgreSQL record store, its core: the connection pool, the transactions, the error
mapping and the meta table, which every job module (a mixin of PostgresRecordStore) builds on.

Each shard is one schema (`<schema_prefix>shard_<index>`) on its server, versioned
(schema.MIGRATIONS, applied by shards/postgres_pool.migrate). Every write commits before
it is acknowledged and appends the keys it touched to `index_log` in the same transaction,
so indexes that missed it catch up after a crash, as with SQLite.

Several replicas of a shard may write at once. Every write transaction first takes a
transaction-scoped advisory lock on a key of this shard's schema (`pg_advisory_xact_lock`),
the equivalent of SQLite's BEGIN IMMEDIATE: writers of one shard serialize, readers never
wait. The write paths read before they write (an idempotency key or an id already stored,
a session's neighbours to re-index, an entity's doc_freq, a copy log's next seq), and under
READ COMMITTED two writers could each read "absent" and both write; under SERIALIZABLE every
path would need a retry loop. With the lock, each write sees every earlier one committed, and
`index_log` sequence numbers are handed out in commit order, so marking the log up to a seq
never skips an entry still in flight. Reads take no lock: each is a plain snapshot.
Each write transaction also names its writer (this store's random token, as the transaction's
`engram.writer` setting, which index_log's default records) and, inside a placement guard,
checks the placement version once it holds the lock (replicas.py).

Nested use joins the thread's open read or transaction (a write path calls the reads it
needs, as on SQLite); the thread's connection is kept in a thread-local.
"""
from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from shards.config import PostgresConfig
from shards.errors import InvalidInput, PlacementChanged, StorageUnavailable
from shards.events import CARRY_TEXT, new_event_id, refreshed
from shards.events import redacted as redacted_event
from shards.postgres_pool import migrate, open_pool, redacted
from shards.records.postgres.schema import _MEMORY_COLUMNS, MIGRATIONS, _memory
from shards.types import Memory

STORE = "records"  # this store's name in the schema_version table


def shard_schema(cfg: PostgresConfig, index: int) -> str:
    return f"{cfg.schema_prefix}shard_{index:03d}"


class PostgresCore:
    """One shard's records in one schema. Thread-safe: a pool of connections, one per call."""

    def __init__(self, cfg: PostgresConfig, index: int) -> None:
        dsn = cfg.dsn_for(index)
        self.schema = shard_schema(cfg, index)
        self.location = f"PostgreSQL schema {self.schema} at {redacted(dsn)}"  # for messages
        # A 64-bit key of this schema (not Python's salted hash): the same on every replica.
        digest = hashlib.blake2b(f"engram records {self.schema}".encode(), digest_size=8).digest()
        self._write_lock_key = int.from_bytes(digest, "big", signed=True)
        self._local = threading.local()
        self.writer = uuid.uuid4().hex  # this replica's name in index_log.writer
        self._pool = open_pool(cfg, dsn, self.schema, f"records {self.schema}")
        try:
            with self._unavailable_on_loss():
                migrate(self._pool, STORE, MIGRATIONS)
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        self._pool.close()

    # -- connections and transactions ------------------------------------------------------
    @property
    def _db(self) -> psycopg.Connection[Any]:
        """The connection of the read or transaction this thread is in."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        assert conn is not None, "a query outside _read() or _tx()"
        return conn

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for reads: the thread's own when it is already in one, else a pooled
        one for the length of the block (no lock: a plain snapshot)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._unavailable_on_loss(), self._pool.connection() as conn:
            self._local.conn, self._local.locked = conn, False
            try:
                yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction holding the shard's write lock until it commits; nested use
        joins the thread's open one (and takes the lock there if a read began it)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            if not self._local.locked:
                self._lock_for_write(conn)
                self._local.locked = True
            yield conn
            return
        with self._unavailable_on_loss(), self._pool.connection() as conn, conn.transaction():
            self._lock_for_write(conn)
            self._local.conn, self._local.locked = conn, True
            try:
                yield conn
            finally:
                self._local.conn = None

    def _lock_for_write(self, conn: psycopg.Connection[Any]) -> None:
        """Take the shard's write lock, name this writer, and check the thread's placement
        guard (one check per guarded call: its first write transaction)."""
        conn.execute("SELECT pg_advisory_xact_lock(%s), set_config('engram.writer', %s, true)",
                     (self._write_lock_key, self.writer))
        guard: list[int] | None = getattr(self._local, "guard", None)
        if guard:
            # A statement of its own: its snapshot is taken after the lock was granted, so it
            # sees every placement change committed before this transaction may write.
            row = conn.execute("SELECT value FROM meta WHERE key = 'placement_version'").fetchone()
            found = int(row[0]) if row is not None else 0
            read = guard.pop()
            if found != read:
                raise PlacementChanged(read, found)

    @contextmanager
    def _unavailable_on_loss(self) -> Iterator[None]:
        """A lost or unreachable server, an exhausted pool or a statement past its timeout:
        StorageUnavailable, which callers retry. A value PostgreSQL cannot hold (text with
        NUL characters, which the write paths refuse first, naming the field): InvalidInput."""
        try:
            yield
        except psycopg.OperationalError as exc:  # psycopg_pool's PoolTimeout is one too
            raise StorageUnavailable(f"PostgreSQL records unavailable ({self.location}): {exc}") from exc
        except psycopg.DataError as exc:
            raise InvalidInput(f"a value PostgreSQL cannot store: {exc}") from exc

    @staticmethod
    def _refuse_nul(**texts: str | None) -> None:
        """PostgreSQL text holds no NUL character (SQLite's does): refuse it, naming the field.
        Tags and metadata travel as JSON, where a NUL is escaped and stored as it came."""
        for field, text in texts.items():
            if text is not None and "\x00" in text:
                raise InvalidInput(f"{field} must not contain NUL characters", field)

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._db.cursor() as cur:
                cur.executemany(sql, rows)

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._db.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def scrub(self) -> None:
        """Nothing this process can do: a deleted row's text stays in its dead tuple until
        VACUUM reuses the space, and in the WAL and its archive until they are recycled
        (docs/operations.md, Deletes, gives the procedure)."""

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (%s, %s) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    # -- what every job module uses: namespace ids, memory rows -------------------------
    def _ns_id(self, name: str, create: bool, now: float = 0.0) -> int | None:
        row = self._db.execute("SELECT ns_id FROM namespaces WHERE name = %s", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        return int(self._scalar(
            "INSERT INTO namespaces (name, created_at) VALUES (%s, %s) RETURNING ns_id", (name, now)))

    # -- the outbox (shards/events.py): written inside the change's own transaction --------
    def _emit(self, kind: str, namespace: str, data: dict[str, Any], now: float,
              memory_id: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO events (id, type, namespace, memory_id, occurred_at, data)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (new_event_id(), kind, namespace, memory_id, now, json.dumps(data)))

    def _redact_events(self, namespace: str, memory_ids: list[str] | None) -> None:
        """What the outbox holds of forgotten memories (None: of the whole namespace)."""
        self._rewrite_events(namespace, memory_ids, redacted_event)

    def _refresh_events(self, namespace: str, memory_id: str, now: dict[str, Any]) -> None:
        """Waiting events of an updated memory: as it is now."""
        self._rewrite_events(namespace, [memory_id], lambda old: refreshed(old, now))

    def _rewrite_events(self, namespace: str, memory_ids: list[str] | None,
                        rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        if memory_ids is not None and not memory_ids:
            return
        rows = self._db.execute(
            "SELECT seq, data FROM events WHERE type = ANY(%s) AND namespace = %s"
            + ("" if memory_ids is None else " AND memory_id = ANY(%s)"),
            (list(CARRY_TEXT), namespace) + (() if memory_ids is None else (memory_ids,))).fetchall()
        self._many("UPDATE events SET data = %s WHERE seq = %s",
                   [(json.dumps(rewrite(json.loads(data))), seq) for seq, data in rows])

    def _get(self, ns_id: int, memory_id: str) -> tuple[int, Memory] | None:
        row = self._db.execute(
            f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
            " WHERE m.ns_id = %s AND m.id = %s", (ns_id, memory_id)).fetchone()
        return None if row is None else _memory(row)
