"""PostgreSQL record store: memories, written, read, changed, deleted and listed."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from shards.errors import Conflict, NotFound, QuotaExceeded
from shards.events import MEMORY_FORGOTTEN, MEMORY_STORED, MEMORY_UPDATED, forgotten_data, stored_data
from shards.indexes.base import CONTEXT_TURNS, memory_type_code
from shards.records.formats import changed_columns, pack_vectors, unpack_vector
from shards.records.postgres.graph import GraphMixin
from shards.records.postgres.schema import _MEMORY_COLUMNS, _memory
from shards.records.postgres.sessions import SessionsMixin, _limit
from shards.types import Memory, MemoryChanges, NewMemory, RecallFilter, Scope


class MemoriesMixin(SessionsMixin, GraphMixin):
    """Memories: each write logs its key (and its session neighbours') for the indexes."""

    def insert(self, items: Sequence[NewMemory], now: float,
               memory_limit: int | None = None) -> list[tuple[int, Memory, bool]]:
        """Store memories in one transaction. Returns (key, memory, created) per item.

        Idempotent: an existing (namespace, id) or (namespace, idempotency key) answers the
        memory already stored and changes nothing. memory_limit: the most memories a
        namespace may hold once the write is in; past it nothing is stored (QuotaExceeded).
        """
        out: list[tuple[int, Memory, bool]] = []
        appended: set[int] = set()  # sessions this call has already added a turn to
        for item in items:
            self._refuse_nul(namespace=item.namespace, id=item.id, content=item.content,
                             memory_type=item.memory_type, session_id=item.session_id,
                             idempotency_key=item.idempotency_key)
            for entity in item.entities:
                self._refuse_nul(entities=entity.key + entity.type + entity.value)
        with self._tx() as db:
            for item in items:
                ns_id = self._ns_id(item.namespace, create=True, now=now)
                assert ns_id is not None
                existing_id = item.id
                if item.idempotency_key is not None:
                    row = db.execute(
                        "SELECT memory_id FROM idempotency WHERE ns_id = %s AND idem_key = %s",
                        (ns_id, item.idempotency_key)).fetchone()
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
                    db.execute("UPDATE sessions SET last_active_at = %s WHERE key = %s",
                               (now, session_key))
                key = int(self._scalar(
                    "INSERT INTO memories (ns_id, id, content, memory_type, importance, tags,"
                    " metadata, session_id, session_key, created_at, updated_at, event_time,"
                    " expires_at, vector) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                    " RETURNING key",
                    (ns_id, item.id, item.content, item.memory_type, item.importance,
                     json.dumps(list(item.tags)), json.dumps(item.metadata), item.session_id,
                     session_key, now, now, item.event_time, item.expires_at,
                     pack_vectors(item.vector, item.sentence_vectors))))
                db.execute("INSERT INTO index_log (key) VALUES (%s)", (key,))
                if session_key is not None and session_key not in appended:
                    # The turns before a session's first new turn now have it as context (the
                    # ones after it in this batch are new and logged anyway).
                    appended.add(session_key)
                    self._log_session_neighbors(key, CONTEXT_TURNS, 0)
                self._link_entities(ns_id, key, item.entities)
                if item.idempotency_key is not None:
                    # Replace: the key may still name a memory deleted since (its retry
                    # stores it again), and a plain INSERT would fail the whole batch.
                    db.execute(
                        "INSERT INTO idempotency (ns_id, idem_key, memory_id) VALUES (%s,%s,%s)"
                        " ON CONFLICT (ns_id, idem_key) DO UPDATE SET memory_id = excluded.memory_id",
                        (ns_id, item.idempotency_key, item.id))
                memory = Memory(
                    id=item.id, namespace=item.namespace, content=item.content,
                    memory_type=item.memory_type, importance=item.importance, tags=item.tags,
                    metadata=item.metadata, session_id=item.session_id, created_at=now,
                    updated_at=now, event_time=item.event_time, expires_at=item.expires_at,
                )
                self._emit(MEMORY_STORED, item.namespace, stored_data(memory), now, item.id)
                out.append((key, memory, True))
            if memory_limit is not None:
                # Inside the transaction (under the shard's write lock): raising rolls it back.
                for name in sorted({m.namespace for _, m, created in out if created}):
                    row = db.execute("SELECT memory_count FROM namespaces WHERE name = %s",
                                     (name,)).fetchone()
                    if row is not None and int(row[0]) > memory_limit:
                        raise QuotaExceeded(name, memory_limit, int(row[0]))
        return out

    def find_all(self, memory_id: str, scope: Scope) -> list[tuple[int, Memory]]:
        """Every memory with this id in a namespace the scope covers, by namespace name."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE m.id = %s ORDER BY n.name", (memory_id,)).fetchall()
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
        with self._read() as db:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return {}
            for row in db.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                    " WHERE m.ns_id = %s AND m.key = ANY(%s)", (ns_id, keys)):
                key, memory = _memory(row)
                out[key] = memory
        return out

    def vectors(self, keys: Sequence[int], dim: int) -> dict[int, tuple[int, tuple[float, ...], Memory]]:
        """For indexing: key → (ns_id, the memory's own vector, memory) of the keys that still
        exist (its sentences' vectors, after it in the column, are not indexed)."""
        out: dict[int, tuple[int, tuple[float, ...], Memory]] = {}
        if not keys:
            return out
        with self._read() as db:
            for start in range(0, len(keys), 1000):
                chunk = list(keys[start:start + 1000])
                for row in db.execute(
                        f"SELECT {_MEMORY_COLUMNS}, m.ns_id, substring(m.vector FROM 1 FOR %s)"
                        " FROM memories m JOIN namespaces n USING (ns_id) WHERE m.key = ANY(%s)",
                        (dim * 4, chunk)):
                    key, memory = _memory(row[:15])
                    out[key] = (int(row[15]), unpack_vector(bytes(row[16])), memory)
        return out

    def session_keys(self, keys: Sequence[int]) -> dict[int, int]:
        if not keys:
            return {}
        with self._read() as db:
            rows = db.execute(
                "SELECT key, session_key FROM memories WHERE key = ANY(%s)"
                " AND session_key IS NOT NULL", (list(keys),)).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def all_keys(self) -> list[int]:
        with self._read() as db:
            return [int(r[0]) for r in db.execute("SELECT key FROM memories ORDER BY key")]

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges, now: float) -> tuple[int, Memory]:
        self._refuse_nul(content=changes.content, memory_type=changes.memory_type)
        for entity in changes.entities or ():
            self._refuse_nul(entities=entity.key + entity.type + entity.value)
        with self._tx() as db:
            ns_id = self._ns_id(namespace, create=False)
            found = None if ns_id is None else self._get(ns_id, memory_id)
            if found is None or ns_id is None:
                raise NotFound(f"memory not found: {memory_id}", "id")
            key = found[0]
            columns = changed_columns(changes, now)
            sets = [f"{column} = %s" for column, _ in columns]
            values = [value for _, value in columns]
            db.execute(f"UPDATE memories SET {', '.join(sets)} WHERE key = %s", (*values, key))
            db.execute("INSERT INTO index_log (key) VALUES (%s)", (key,))
            if changes.content is not None:
                self._log_session_neighbors(key)
            if changes.entities is not None:
                self._unlink_entities(key)
                self._link_entities(ns_id, key, changes.entities)
            updated = self._get(ns_id, memory_id)
            assert updated is not None
            data = stored_data(updated[1])
            self._refresh_events(namespace, memory_id, data)  # replaced text waits nowhere
            self._emit(MEMORY_UPDATED, namespace, data, now, memory_id)
            return updated

    def delete(self, scope: Scope, memory_ids: Sequence[str], namespace: str | None = None,
               reason: str | None = "forget") -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete memories by id within the scope (and one namespace when given).

        Returns the deleted (key, memory) pairs and the keys of memories to re-index.
        reason: the memory.forgotten events' ("forget", "expired"); None: no event (a
        namespace's copy following its original, whose own delete sent one).
        """
        deleted: list[tuple[int, Memory]] = []
        reindex: list[int] = []
        with self._tx() as db:
            for memory_id in memory_ids:
                rows = db.execute(
                    f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                    " WHERE m.id = %s", (memory_id,)).fetchall()
                for row in rows:
                    key, memory = _memory(row)
                    if not scope.covers(memory.namespace):
                        continue
                    if namespace is not None and memory.namespace != namespace:
                        continue
                    reindex += self._log_session_neighbors(key)
                    db.execute("DELETE FROM memories WHERE key = %s", (key,))
                    db.execute("INSERT INTO index_log (key) VALUES (%s)", (key,))
                    self._unlink_entities(key)
                    deleted.append((key, memory))
                    if reason is not None:
                        self._redact_events(memory.namespace, [memory.id])
                        self._emit(MEMORY_FORGOTTEN, memory.namespace, forgotten_data(memory, reason),
                                   time.time(), memory.id)
        gone = {k for k, _ in deleted}
        return deleted, [k for k in dict.fromkeys(reindex) if k not in gone]

    def delete_matching(self, namespace: str, flt: RecallFilter) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete every memory of a namespace that matches the filter (batch forget),
        expired ones included: an expired memory is hidden from recall, not gone, and a
        forget of "every memory tagged pii" must not leave it behind."""
        with self._tx():
            memories, _ = self.listing(namespace, replace(flt, now=None), limit=-1, offset=0)
            return self.delete(Scope.of(namespace), [m.id for m in memories], namespace)

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        """(namespace, memory id) of up to `limit` memories whose expiry has passed."""
        with self._read() as db:
            return [(r[0], r[1]) for r in db.execute(
                "SELECT n.name, m.id FROM memories m JOIN namespaces n USING (ns_id)"
                " WHERE m.expires_at IS NOT NULL AND m.expires_at <= %s ORDER BY m.expires_at"
                " LIMIT %s", (now, _limit(limit)))]

    def touch(self, accesses: Sequence[tuple[int, int, float]]) -> None:
        """Add (key, count, last time) accesses; recall boosts frequently used memories."""
        if not accesses:
            return
        with self._tx():
            self._many(
                "UPDATE memories SET access_count = access_count + %s, last_accessed_at = %s"
                " WHERE key = %s", [(count, when, key) for key, count, when in accesses])

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        """A page of a namespace's memories matching the filter, and the total that match."""
        with self._read() as db:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None:
                return [], 0
            clause, params = _filter_clause(ns_id, flt)
            total = self._scalar(f"SELECT COUNT(*) FROM memories m WHERE {clause}", params)
            order = "DESC" if newest_first else "ASC"
            rows = db.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories m JOIN namespaces n USING (ns_id)"
                f" WHERE {clause} ORDER BY m.created_at {order}, m.key {order} LIMIT %s OFFSET %s",
                (*params, _limit(limit), offset)).fetchall()
        return [_memory(r)[1] for r in rows], int(total)

    def namespace_vector_rows(self, ns_id: int) -> list[tuple[int, bytes, int, int, float, float]]:
        """(key, vector stack blob, type code, session key or 0, event time, importance) of
        every memory in a namespace: what exact vector search needs, nothing more."""
        with self._read() as db:
            rows = db.execute(
                "SELECT key, vector, memory_type, COALESCE(session_key, 0), event_time, importance"
                " FROM memories WHERE ns_id = %s ORDER BY key", (ns_id,)).fetchall()
        return [(int(k), bytes(v), memory_type_code(t), int(sk), ev, imp) for k, v, t, sk, ev, imp in rows]

    def vector_stacks(self, ns_id: int, keys: Sequence[int]) -> dict[int, bytes]:
        """key → vector stack blob (pack_vectors) of these memories of one namespace."""
        if not keys:
            return {}
        with self._read() as db:
            return {int(k): bytes(v) for k, v in db.execute(
                "SELECT key, vector FROM memories WHERE ns_id = %s AND key = ANY(%s)",
                (ns_id, list(keys)))}


def _filter_clause(ns_id: int, flt: RecallFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a listing (memories as m) and its parameters: values only ever
    travel as parameters. Tags are a JSON array of strings, as SQLite's json_each reads them."""
    where = ["m.ns_id = %s"]
    params: list[Any] = [ns_id]
    if flt.memory_types:
        where.append("m.memory_type = ANY(%s)")
        params.append(list(flt.memory_types))
    for condition, value in (
        ("m.session_id = %s", flt.session_id),
        ("m.event_time >= %s", flt.since),
        ("m.event_time <= %s", flt.until),
        ("m.importance >= %s", flt.min_importance),
        ("(m.expires_at IS NULL OR m.expires_at > %s)", flt.now),
        ("m.importance <= %s", flt.max_importance),
        ("m.created_at >= %s", flt.created_after),
        ("m.created_at <= %s", flt.created_before),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    # Each tag is compared as the JSON text json.dumps wrote (json, not jsonb, keeps an
    # element's text as written): exact, and a NUL in a tag (\u0000, which jsonb and text
    # refuse) breaks no query.
    tag_in = "EXISTS (SELECT 1 FROM json_array_elements(m.tags::json) t WHERE t::text = {})"
    for tag in flt.tags_all or ():
        where.append(tag_in.format("%s"))
        params.append(json.dumps(tag))
    if flt.tags_any:
        where.append(tag_in.format("ANY(%s::text[])"))
        params.append([json.dumps(tag) for tag in flt.tags_any])
    return " AND ".join(where), params
