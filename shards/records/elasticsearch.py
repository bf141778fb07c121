"""Elasticsearch record store: a shard's source of truth on an Elasticsearch cluster, the same
contract as the SQLite store (RecordStore, shards/records/base.py), so that a shard keeps
nothing on a local volume and its replica can run on any node.

One module, longer than the rest of shards/: it is only fitted to the RecordStore protocol,
not split by job, because the production-form issue replaces it (PostgreSQL, as
docs/architecture.md says).

Four indexes per shard (`<prefix>memories`, `sessions`, `namespaces`, `control`), explicit
strict mappings. Elasticsearch has no transaction across documents, so every write is
ordered for a crash at any step to be harmless:

- *logs first*: the index log (which keys the vector and keyword indexes must re-read) and,
  for a namespace being copied to another shard, the copy log are written before the data
  they name. A log entry whose write never happened re-reads an unchanged record.
- *one document per memory*: its text, scalars, vectors and entity links together, so a
  memory is written or deleted whole. Entities are not counted in a table of their own: a
  document frequency is an aggregation over the namespace's memories (always exact).
- *claims*: a control document per (namespace, memory id) names the memory's key; the
  memory's document is keyed by that integer key (the one the indexes hold), so hydrating
  index hits is a real-time multi-get. Claims (and idempotency keys) are written before the
  memories, deleted after them: a claim whose memory document is missing counts as absent
  and is taken over by the next write of that id.
- *checks before writes*: a batch refused (an id naming a different memory, an unknown
  session) writes nothing. What a crash can leave is a namespace created for a batch that
  then stored nothing: listed, empty, as a namespace whose memories were all forgotten.

Acknowledged writes are durable in Elasticsearch's translog. Reads by key are real time;
searches see what a refresh has published: this store refreshes an index before searching
it when it wrote to it since (read-your-writes for its own writes, no refresh per store), or
every write waits for a refresh (`write_refresh="wait_for"`).

One writer per shard, as with SQLite: keys are allocated in blocks from a counter document
(safe with several writers), but the copy-log switch and namespace ids are cached here.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from shards.errors import Conflict, LayoutMismatch, NotFound, StorageUnavailable
from shards.es_client import ensure_strict_index, guarded, scan
from shards.indexes.base import CONTEXT_TURNS, memory_type_code
from shards.records.base import pack_vectors, stats_by_type, unpack_vector
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

_KEYWORD = {"type": "keyword"}
_LONG = {"type": "long"}
_DOUBLE = {"type": "double"}
_OPAQUE = {"type": "object", "enabled": False}  # kept in _source, never indexed
_STORED_TEXT = {"type": "text", "index": False}

MAPPINGS: dict[str, dict[str, Any]] = {
    "memories": {
        "key": _LONG, "ns_id": _LONG, "namespace": _KEYWORD, "id": _KEYWORD,
        "content": _STORED_TEXT, "memory_type": _KEYWORD, "importance": _DOUBLE,
        "tags": _KEYWORD, "metadata": _OPAQUE, "session_id": _KEYWORD, "session_key": _LONG,
        "created_at": _DOUBLE, "updated_at": _DOUBLE, "event_time": _DOUBLE,
        "expires_at": _DOUBLE, "access_count": _LONG, "last_accessed_at": _DOUBLE,
        "vector": {"type": "binary"},  # pack_vectors, base64: the memory's, then its sentences'
        "entity_keys": _KEYWORD, "entity_ids": _LONG, "entities": _OPAQUE,
    },
    "sessions": {
        "id": _KEYWORD, "key": _LONG, "ns_id": _LONG, "namespace": _KEYWORD,
        "started_at": _DOUBLE, "last_active_at": _DOUBLE, "ended_at": _DOUBLE,
        "ended_reason": _KEYWORD, "summary": _STORED_TEXT, "metadata": _OPAQUE,
        "idle_timeout": _DOUBLE,
    },
    "namespaces": {
        "name": _KEYWORD, "ns_id": _LONG, "created_at": _DOUBLE, "metadata": _OPAQUE,
    },
    # meta, counters, claims, idempotency keys, index log, copy log, namespace states
    "control": {
        "kind": _KEYWORD, "ns_id": _LONG, "name": _KEYWORD,
        "value": {"type": "keyword", "index": False, "doc_values": False},
        "seq": _LONG, "key": _LONG, "memory_id": _KEYWORD, "idem_key": _KEYWORD, "next": _LONG,
    },
}

PAGE = 1000  # documents per search page when scanning
# What hydrating a memory reads: everything but its vectors and entity links.
_MEMORY_SOURCE = [f for f in MAPPINGS["memories"]
                  if f not in ("vector", "entity_keys", "entity_ids", "entities")]


def _h(*parts: object) -> str:
    """A document id from request values: fixed length, never parsed."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def _regex_literal(text: str) -> str:
    """`text` matched literally in Lucene's regular expressions (every symbol escaped)."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)


def entity_id(ns_id: int, key: str) -> int:
    """An entity's id: stable, per namespace (the SQLite store numbers them in a table)."""
    digest = hashlib.blake2b(f"{ns_id}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def _memory(src: dict[str, Any]) -> tuple[int, Memory]:
    return int(src["key"]), Memory(
        id=src["id"], namespace=src["namespace"], content=src["content"],
        memory_type=src["memory_type"], importance=float(src["importance"]),
        tags=tuple(src.get("tags") or ()), metadata=src.get("metadata") or {},
        session_id=src.get("session_id"), created_at=float(src["created_at"]),
        updated_at=float(src["updated_at"]), event_time=float(src["event_time"]),
        expires_at=_opt_float(src.get("expires_at")), access_count=int(src.get("access_count") or 0),
        last_accessed_at=_opt_float(src.get("last_accessed_at")))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _session(src: dict[str, Any], memory_count: int) -> Session:
    return Session(
        id=src["id"], namespace=src["namespace"], started_at=src["started_at"],
        last_active_at=src["last_active_at"], ended_at=src.get("ended_at"),
        ended_reason=src.get("ended_reason"), summary=src.get("summary"),
        metadata=src.get("metadata") or {}, memory_count=memory_count,
        idle_timeout=src.get("idle_timeout"))


def _blob(src: dict[str, Any]) -> bytes:
    return base64.b64decode(src["vector"])


def _entities(ns_id: int, entities: Iterable[EntityRef]) -> dict[str, Any]:
    unique = list({e.key: e for e in entities}.values())
    return {"entity_keys": [e.key for e in unique],
            "entity_ids": [entity_id(ns_id, e.key) for e in unique],
            "entities": [{"key": e.key, "type": e.type, "value": e.value, "score": e.score}
                         for e in unique]}


class ElasticsearchRecordStore:
    """One shard's records on Elasticsearch. Thread-safe: writes hold one lock."""

    def __init__(self, client: Any, prefix: str, *, write_refresh: str = "false",
                 shards: int = 1, replicas: int = 1) -> None:
        self._es = client
        self.prefix = prefix
        self.location = f"Elasticsearch indexes {prefix}*"
        self._index = {name: f"{prefix}{name}" for name in MAPPINGS}
        self._write_refresh = write_refresh
        self._lock = threading.RLock()
        self._dirty: set[str] = set()
        self._ns_ids: dict[str, int] = {}
        self._seen_log: dict[int, str] = {}  # index log entries read, by seq: mark_indexed trims these
        for name, properties in MAPPINGS.items():
            self._call(self._ensure_index, self._index[name], properties, shards, replicas)
        self._moving = {int(h["_source"]["ns_id"]) for h in self._scan(
            "control", {"term": {"kind": "moving"}}, [{"ns_id": "asc"}], ["ns_id"])}

    def _ensure_index(self, index: str, properties: dict[str, Any], shards: int, replicas: int) -> None:
        if not ensure_strict_index(self._es, index, properties, shards, replicas):
            raise LayoutMismatch(
                f"Elasticsearch index {index} holds another layout than this Engram's record "
                "store; it is the source of truth, so nothing deletes it: choose another "
                "elasticsearch.index_prefix, or migrate it", "records")

    def close(self) -> None:
        self._es.close()

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return guarded(f"record store {self.prefix}", "records", fn, *args, **kwargs)

    def _fresh(self, *names: str) -> None:
        """Publish this store's own writes to search before it searches (read-your-writes)."""
        with self._lock:
            stale = [self._index[n] for n in names if self._index[n] in self._dirty]
            if stale:
                self._call(self._es.indices.refresh, index=stale)
                self._dirty.difference_update(stale)

    def _bulk(self, actions: list[dict[str, Any]], *, conflicts_ok: bool = False) -> list[dict[str, Any]]:
        """Write in bulk; returns the items refused with 409 (a `create` that found its
        document) when `conflicts_ok`, and raises on any other failure: the caller's later
        writes must not run after an earlier one failed."""
        if not actions:
            return []
        from elasticsearch import helpers

        if self._write_refresh == "false":  # before the call: a bulk can partly succeed
            self._dirty.update(action["_index"] for action in actions)
        _, errors = self._call(helpers.bulk, self._es, actions, refresh=self._write_refresh,
                               max_retries=5, initial_backoff=0.5, raise_on_error=False)
        items: list[dict[str, Any]] = errors if isinstance(errors, list) else []
        refused: list[dict[str, Any]] = []
        failed = []
        for item in items:
            op, result = next(iter(item.items()))
            if op == "delete" and result.get("status") == 404:
                continue  # already gone
            if op == "update" and result.get("status") == 404:
                if result.get("_index") == self._index["memories"]:
                    continue  # an access count for a memory deleted since
                raise NotFound(f"{result.get('_id')} is gone from {result.get('_index')}", "id")
            if conflicts_ok and op == "create" and result.get("status") == 409:
                refused.append(result)
                continue
            failed.append(item)
        if failed:
            raise StorageUnavailable(f"record store {self.prefix}: {len(failed)} bulk items "
                                     f"failed, first: {failed[0]}", "records")
        return refused

    def _op(self, op: str, name: str, doc_id: str | int, source: dict[str, Any] | None = None,
            ) -> dict[str, Any]:
        action: dict[str, Any] = {"_op_type": op, "_index": self._index[name], "_id": str(doc_id)}
        if op == "update":
            action["doc"] = source
        elif source is not None:
            action["_source"] = source
        return action

    def _mget(self, name: str, ids: Sequence[str | int], source: Any = True) -> dict[str, dict[str, Any]]:
        """Documents by id, real time: id → _source of those found."""
        out: dict[str, dict[str, Any]] = {}
        ids = [str(i) for i in ids]
        for start in range(0, len(ids), PAGE):
            found = self._call(self._es.mget, index=self._index[name], ids=ids[start:start + PAGE],
                               source=source)
            out.update({d["_id"]: d.get("_source", {}) for d in found["docs"] if d.get("found")})
        return out

    def _search(self, name: str, query: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self._fresh(name)
        answer: dict[str, Any] = self._call(self._es.search, index=self._index[name], query=query,
                                            **kwargs)
        return answer

    def _scan(self, name: str, query: dict[str, Any], sort: list[dict[str, str]],
              source: Any = True, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every hit in `sort` order (which must end on a unique field), page by page."""
        self._fresh(name)
        yield from scan(self._call, self._es.search, sort, limit, PAGE, index=self._index[name],
                        query=query, source=source)

    def _count(self, name: str, query: dict[str, Any]) -> int:
        self._fresh(name)
        return int(self._call(self._es.count, index=self._index[name], query=query)["count"])

    def _allocate(self, counter: str, n: int) -> list[int]:
        """n new numbers of a counter (1, 2, …), unique across writers: Elasticsearch applies
        updates of one document one at a time."""
        if n <= 0:
            return []
        result = self._call(
            self._es.update, index=self._index["control"], id=f"counter:{counter}",
            script={"source": "ctx._source.next += params.n", "params": {"n": n}},
            upsert={"kind": "counter", "next": n}, source=True, retry_on_conflict=10)
        top = int(result["get"]["_source"]["next"])
        return list(range(top - n + 1, top + 1))

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        found = self._mget("control", [f"meta:{_h(key)}"])
        return next((str(d["value"]) for d in found.values()), None)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._bulk([self._op("index", "control", f"meta:{_h(key)}",
                                 {"kind": "meta", "name": key, "value": value})])

    # -- namespaces -----------------------------------------------------------------------
    def _ns_id(self, name: str, create: bool = False, now: float = 0.0,
               metadata: dict[str, Any] | None = None) -> int | None:
        with self._lock:
            if name in self._ns_ids:
                return self._ns_ids[name]
            found = self._mget("namespaces", [_h(name)], ["ns_id"])
            if found:
                self._ns_ids[name] = int(next(iter(found.values()))["ns_id"])
                return self._ns_ids[name]
            if not create:
                return None
            (ns_id,) = self._allocate("ns", 1)
            refused = self._bulk([self._op("create", "namespaces", _h(name), {
                "name": name, "ns_id": ns_id, "created_at": now, "metadata": metadata or {}})],
                conflicts_ok=True)
            if refused:  # another writer created it meanwhile: theirs stands
                return self._ns_id(name)
            self._ns_ids[name] = ns_id
            return ns_id

    def namespace_id(self, name: str) -> int | None:
        return self._ns_id(name)

    def ensure_namespace(self, name: str, now: float, metadata: dict[str, Any] | None = None) -> bool:
        with self._lock:
            existed = self._ns_id(name) is not None
            self._ns_id(name, create=True, now=now, metadata=metadata)
            if existed and metadata is not None:
                self._set_namespace_metadata(name, metadata)
            return not existed

    def _set_namespace_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replace (a partial update would merge the old metadata into the new)."""
        doc = self._mget("namespaces", [_h(name)])[_h(name)]
        self._bulk([self._op("index", "namespaces", _h(name), {**doc, "metadata": metadata})])

    def _namespace_docs(self) -> list[dict[str, Any]]:
        return [h["_source"] for h in self._scan("namespaces", {"match_all": {}}, [{"name": "asc"}])]

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        docs = [d for d in self._namespace_docs() if scope.covers(d["name"])]
        if not docs:
            return []
        per_ns = {ns: (int(b["doc_count"]), b["newest"]["value"]) for ns, b in self._per_namespace(
            "memories", {"newest": {"max": {"field": "created_at"}}})}
        per_ns_sessions = {ns: (int(b["doc_count"]), int(b["open"]["doc_count"])) for ns, b in
                           self._per_namespace("sessions", {"open": {"filter": {"bool": {
                               "must_not": {"exists": {"field": "ended_at"}}}}}})}
        out = []
        for d in docs:
            count, newest = per_ns.get(int(d["ns_id"]), (0, None))
            total, open_ = per_ns_sessions.get(int(d["ns_id"]), (0, 0))
            out.append(NamespaceInfo(name=d["name"], created_at=d["created_at"],
                                     metadata=d.get("metadata") or {}, memory_count=count,
                                     session_count=total, active_session_count=open_,
                                     last_memory_at=newest))
        return out

    def _per_namespace(self, name: str, aggs: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(ns_id, bucket with `aggs`) for every namespace with documents in this index, paged
        (a composite aggregation: no bucket limit however many namespaces a shard holds)."""
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": PAGE, "sources": [{"ns": {"terms": {"field": "ns_id"}}}]}
            if after is not None:
                composite["after"] = after
            result = self._search(name, {"match_all": {}}, size=0,
                                  aggs={"ns": {"composite": composite, "aggs": aggs}})["aggregations"]["ns"]
            for bucket in result["buckets"]:
                yield int(bucket["key"]["ns"]), bucket
            after = result.get("after_key")
            if after is None or len(result["buckets"]) < PAGE:
                return

    def memory_stats(self, namespace: str) -> dict[str, Any]:
        ns_id = self._ns_id(namespace)
        rows: list[tuple[str, int, float, float, float]] = []
        if ns_id is not None:
            result = self._search("memories", {"term": {"ns_id": ns_id}}, size=0, aggs={
                "types": {"terms": {"field": "memory_type", "size": 16}, "aggs": {
                    "importance": {"sum": {"field": "importance"}},
                    "oldest": {"min": {"field": "created_at"}},
                    "newest": {"max": {"field": "created_at"}}}}})
            rows = [(b["key"], int(b["doc_count"]), b["importance"]["value"], b["oldest"]["value"],
                     b["newest"]["value"]) for b in result["aggregations"]["types"]["buckets"]]
        return stats_by_type(rows)

    def drop_namespace(self, name: str) -> list[int]:
        """Delete a namespace with everything in it; returns the memory keys to unindex.
        The namespace document goes last: a drop cut short is finished by the next."""
        with self._lock:
            ns_id = self._ns_id(name)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            keys = self._keys_of(ns_id)
            self._log_for_index(keys)
            by_ns = {"term": {"ns_id": ns_id}}
            for index in ("memories", "sessions", "control"):
                self._delete_where(index, by_ns)
            self._bulk([self._op("delete", "namespaces", _h(name))])
            self._ns_ids.pop(name, None)
            self._moving.discard(ns_id)
            return keys

    def _delete_where(self, name: str, query: dict[str, Any]) -> None:
        """Delete every matching document, or raise: a document changed during the delete
        (a version conflict) survives it, so the delete runs again until none does."""
        self._fresh(name)
        # A namespace of millions takes minutes: no client timeout, and no re-send of a
        # delete still running on the cluster.
        es = self._es.options(request_timeout=3600, retry_on_timeout=False)
        for _ in range(5):
            result = self._call(es.delete_by_query, index=self._index[name], query=query,
                                conflicts="proceed", refresh=True)
            if result.get("failures") or result.get("timed_out"):
                raise StorageUnavailable(f"record store {self.prefix}: a delete in {name} failed "
                                         f"part way ({result.get('failures')}); run it again", "records")
            if not result.get("version_conflicts"):
                return
        raise StorageUnavailable(f"record store {self.prefix}: documents in {name} kept changing "
                                 "during a delete; run it again", "records")

    def _keys_of(self, ns_id: int) -> list[int]:
        return [int(h["_source"]["key"]) for h in self._scan(
            "memories", {"term": {"ns_id": ns_id}}, [{"key": "asc"}], ["key"])]

    # -- logs -----------------------------------------------------------------------------
    def _log_for_index(self, keys: Sequence[int]) -> None:
        """Name these keys for the indexes to re-read, before the writes that change them."""
        keys = list(dict.fromkeys(keys))
        seqs = self._allocate("index_log", len(keys))
        self._bulk([self._op("index", "control", f"log:{seq}", {"kind": "log", "seq": seq, "key": key})
                    for seq, key in zip(seqs, keys)])

    def _log_changes(self, ns_id: int, memory_ids: Iterable[str]) -> None:
        """For a namespace being copied: name the memories about to change, latest change
        last (one entry per memory, its seq renewed)."""
        if ns_id not in self._moving:
            return
        ids = list(dict.fromkeys(memory_ids))
        seqs = self._allocate("copy_log", len(ids))
        self._bulk([self._op("index", "control", f"copy:{ns_id}:{_h(mid)}",
                             {"kind": "copy", "ns_id": ns_id, "memory_id": mid, "seq": seq})
                    for seq, mid in zip(seqs, ids)])

    # -- memories -------------------------------------------------------------------------
    def _claimed(self, pairs: Sequence[tuple[int, str]], source: Any = _MEMORY_SOURCE
                 ) -> dict[tuple[int, str], tuple[int, dict[str, Any]]]:
        """(ns_id, memory id) → (key, memory source) of those stored."""
        claims = self._mget("control", [f"mid:{ns}:{_h(mid)}" for ns, mid in pairs], ["key"])
        keys = {pair: int(claims[f"mid:{pair[0]}:{_h(pair[1])}"]["key"]) for pair in pairs
                if f"mid:{pair[0]}:{_h(pair[1])}" in claims}
        docs = self._mget("memories", list(keys.values()), source)
        return {pair: (key, docs[str(key)]) for pair, key in keys.items()
                if str(key) in docs and docs[str(key)]["ns_id"] == pair[0]}

    def _get(self, ns_id: int, memory_id: str) -> tuple[int, Memory] | None:
        found = self._claimed([(ns_id, memory_id)]).get((ns_id, memory_id))
        return None if found is None else _memory(found[1])

    def insert(self, items: Sequence[NewMemory], now: float) -> list[tuple[int, Memory, bool]]:
        """Store memories; (key, memory, created) per item. Idempotent as the SQLite store:
        an existing (namespace, id) or (namespace, idempotency key) answers the memory already
        stored. Every check runs before the first write, so a refused batch writes nothing."""
        with self._lock:
            # A namespace not here yet gets a stand-in id (negative, matching nothing) until
            # the batch passes its checks: a refused batch creates no namespace either.
            ns_ids: dict[str, int] = {}
            for item in items:
                if item.namespace not in ns_ids:
                    found_id = self._ns_id(item.namespace)
                    ns_ids[item.namespace] = -1 - len(ns_ids) if found_id is None else found_id
            idem = self._mget("control", [f"idem:{ns_ids[i.namespace]}:{_h(i.idempotency_key)}"
                                          for i in items if i.idempotency_key is not None], ["memory_id"])
            wanted: list[tuple[int, str]] = []
            for item in items:
                ns_id = ns_ids[item.namespace]
                wanted.append((ns_id, item.id))
                if item.idempotency_key is not None:
                    doc = idem.get(f"idem:{ns_id}:{_h(item.idempotency_key)}")
                    if doc is not None:
                        wanted.append((ns_id, doc["memory_id"]))
            stored = {pair: _memory(src) for pair, (_, src) in self._claimed(wanted).items()}
            sessions = self._sessions_by_id({(ns_ids[i.namespace], i.session_id) for i in items
                                             if i.session_id is not None})
            # Plan: which items are new, which answer a stored (or an earlier item's) memory.
            new: list[tuple[NewMemory, int]] = []
            planned: dict[tuple[int, str], Memory] = {}
            planned_keys: dict[tuple[int, str], str] = {}  # idempotency keys this batch sets
            answers: list[tuple[str, tuple[int, str]]] = []
            for item in items:
                ns_id = ns_ids[item.namespace]
                existing_id = item.id
                if item.idempotency_key is not None:
                    doc = idem.get(f"idem:{ns_id}:{_h(item.idempotency_key)}")
                    if (ns_id, item.idempotency_key) in planned_keys:
                        existing_id = planned_keys[(ns_id, item.idempotency_key)]
                    elif doc is not None:
                        existing_id = doc["memory_id"]
                pair = (ns_id, existing_id)
                found = stored.get(pair)
                earlier = planned.get(pair)
                if found is not None or earlier is not None:
                    content = (found[1] if found is not None else earlier).content  # type: ignore[union-attr]
                    if content != item.content:
                        field = "id" if existing_id == item.id else "idempotency_key"
                        raise Conflict(f"{field} already names a different memory: {existing_id}", field)
                    answers.append(("old", pair))
                    continue
                if item.session_id is not None and (ns_id, item.session_id) not in sessions:
                    raise NotFound(f"session not found: {item.session_id}", "session_id")
                planned[(ns_id, item.id)] = Memory(
                    id=item.id, namespace=item.namespace, content=item.content,
                    memory_type=item.memory_type, importance=item.importance, tags=item.tags,
                    metadata=item.metadata, session_id=item.session_id, created_at=now,
                    updated_at=now, event_time=item.event_time, expires_at=item.expires_at)
                if item.idempotency_key is not None:
                    planned_keys[(ns_id, item.idempotency_key)] = item.id
                new.append((item, ns_id))
                answers.append(("new", (ns_id, item.id)))
            real = {ns: self._ns_id(name, create=True, now=now) or 0 for name, ns in ns_ids.items()
                    if ns < 0 and any(n == ns for _, n in new)}

            def really(pair: tuple[int, str]) -> tuple[int, str]:
                return real.get(pair[0], pair[0]), pair[1]

            new = [(item, real.get(ns, ns)) for item, ns in new]
            planned = {really(pair): memory for pair, memory in planned.items()}
            answers = [(kind, really(pair)) for kind, pair in answers]
            keys = dict(zip([(ns, i.id) for i, ns in new], self._allocate("memory", len(new))))
            # Logs first: the new keys, and the turns before each session's first new turn
            # (their keyword context now includes it).
            to_log = list(keys.values())
            for ns_id, session_id in dict.fromkeys((ns, i.session_id) for i, ns in new
                                                    if i.session_id is not None):
                session_key = int(sessions[(ns_id, session_id)]["key"])
                to_log += [int(s["key"]) for s in self._session_side(session_key, now, 2**62, "<",
                                                                      CONTEXT_TURNS, ["key"])]
            self._log_for_index(to_log)
            for ns_id in {ns for _, ns in new}:
                self._log_changes(ns_id, [i.id for i, ns in new if ns == ns_id])
            # Claims and idempotency keys next, the memories last: what a failure part way
            # can leave is a claim without its memory, which counts as absent.
            claims: list[dict[str, Any]] = []
            actions: list[dict[str, Any]] = []
            for item, ns_id in new:
                key = keys[(ns_id, item.id)]
                session = None if item.session_id is None else sessions[(ns_id, item.session_id)]
                claims.append(self._op("index", "control", f"mid:{ns_id}:{_h(item.id)}", {
                    "kind": "claim", "ns_id": ns_id, "memory_id": item.id, "key": key}))
                if item.idempotency_key is not None:
                    claims.append(self._op("index", "control", f"idem:{ns_id}:{_h(item.idempotency_key)}", {
                        "kind": "idem", "ns_id": ns_id, "idem_key": item.idempotency_key,
                        "memory_id": item.id}))
                actions.append(self._op("index", "memories", key, {
                    "key": key, "ns_id": ns_id, "namespace": item.namespace, "id": item.id,
                    "content": item.content, "memory_type": item.memory_type,
                    "importance": item.importance, "tags": list(item.tags), "metadata": item.metadata,
                    "session_id": item.session_id,
                    "session_key": None if session is None else int(session["key"]),
                    "created_at": now, "updated_at": now, "event_time": item.event_time,
                    "expires_at": item.expires_at, "access_count": 0, "last_accessed_at": None,
                    "vector": base64.b64encode(pack_vectors(item.vector, item.sentence_vectors)).decode(),
                    **_entities(ns_id, item.entities)}))
            touched = {_h(s["id"]) for i, ns in new if i.session_id is not None
                       for s in [sessions[(ns, i.session_id)]]}
            actions += [self._op("update", "sessions", sid, {"last_active_at": now}) for sid in touched]
            self._bulk(claims)
            self._bulk(actions)
            out: list[tuple[int, Memory, bool]] = []
            for kind, pair in answers:
                if kind == "new" and pair in keys:
                    out.append((keys[pair], planned[pair], True))
                    keys.pop(pair)  # a later duplicate in the batch answers as stored
                elif pair in stored:
                    out.append((stored[pair][0], stored[pair][1], False))
                else:
                    created = self._get(*pair)
                    assert created is not None
                    out.append((created[0], created[1], False))
            return out

    def find_all(self, memory_id: str, scope: Scope) -> list[tuple[int, Memory]]:
        hits = [h["_source"] for h in self._scan(
            "memories", {"term": {"id": memory_id}}, [{"namespace": "asc"}, {"key": "asc"}],
            _MEMORY_SOURCE)]
        # By the namespace's id, not only its name: a memory a cut-short drop left behind
        # belongs to no namespace, however the next one of that name is called.
        return [_memory(h) for h in hits if scope.covers(h["namespace"])
                and self._ns_id(h["namespace"]) == h["ns_id"]]

    def find(self, memory_id: str, scope: Scope) -> tuple[int, Memory] | None:
        found = self.find_all(memory_id, scope)
        return found[0] if found else None

    def by_keys(self, namespace: str, keys: Iterable[int]) -> dict[int, Memory]:
        """Hydrate index hits; keys outside `namespace` are dropped here, whatever the index said."""
        keys = list(keys)
        ns_id = self._ns_id(namespace) if keys else None
        if ns_id is None:
            return {}
        docs = self._mget("memories", keys, _MEMORY_SOURCE)
        return dict(_memory(d) for d in docs.values() if d["ns_id"] == ns_id)

    def vectors(self, keys: Sequence[int], dim: int) -> dict[int, tuple[int, tuple[float, ...], Memory]]:
        out = {}
        for d in self._mget("memories", keys).values():
            key, memory = _memory(d)
            out[key] = (int(d["ns_id"]), unpack_vector(_blob(d)[:dim * 4]), memory)
        return out

    def session_keys(self, keys: Sequence[int]) -> dict[int, int]:
        docs = self._mget("memories", keys, ["key", "session_key"])
        return {int(d["key"]): int(d["session_key"]) for d in docs.values()
                if d.get("session_key") is not None}

    def all_keys(self) -> list[int]:
        return [int(h["_source"]["key"]) for h in self._scan(
            "memories", {"match_all": {}}, [{"key": "asc"}], ["key"])]

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges, now: float) -> tuple[int, Memory]:
        with self._lock:
            ns_id = self._ns_id(namespace)
            found = None if ns_id is None else self._claimed([(ns_id, memory_id)]).get((ns_id, memory_id))
            if found is None or ns_id is None:
                raise NotFound(f"memory not found: {memory_id}", "id")
            key, _ = found
            doc = self._mget("memories", [key])[str(key)]
            fields: dict[str, Any] = {"updated_at": now}
            for name in ("content", "importance", "memory_type", "event_time", "expires_at"):
                value = getattr(changes, name)
                if value is not None:
                    fields[name] = value
            if changes.tags is not None:
                fields["tags"] = list(changes.tags)
            if changes.metadata is not None:
                fields["metadata"] = changes.metadata
            if changes.vector is not None:
                fields["vector"] = base64.b64encode(
                    pack_vectors(changes.vector, changes.sentence_vectors)).decode()
            if changes.entities is not None:
                fields.update(_entities(ns_id, changes.entities))
            near = ([k for k, _ in self.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)]
                    if changes.content is not None else [])
            self._log_for_index([key, *near])
            self._log_changes(ns_id, [memory_id])
            # The whole document: a partial update would merge the old metadata into the new.
            self._bulk([self._op("index", "memories", key, {**doc, **fields})])
            updated = self._get(ns_id, memory_id)
            assert updated is not None
            return updated

    def delete(self, scope: Scope, memory_ids: Sequence[str],
               namespace: str | None = None) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete memories by id within the scope (and one namespace when given); returns the
        deleted (key, memory) pairs and the keys of the memories to re-index."""
        with self._lock:
            doomed: list[tuple[int, Memory]] = []
            for memory_id in dict.fromkeys(memory_ids):
                doomed += [(k, m) for k, m in self.find_all(memory_id, scope)
                           if namespace is None or m.namespace == namespace]
            if not doomed:
                return [], []
            gone = {k for k, _ in doomed}
            reindex = [n for k, _ in doomed
                       for n, _ in self.session_neighbor_rows(k, CONTEXT_TURNS, CONTEXT_TURNS)
                       if n not in gone]
            self._log_for_index([*gone, *reindex])
            ns_ids = {m.namespace: self._ns_id(m.namespace) for _, m in doomed}
            for name, ns_id in ns_ids.items():
                if ns_id is not None:
                    self._log_changes(ns_id, [m.id for _, m in doomed if m.namespace == name])
            # the memory first, its claim after: a claim left behind counts as absent
            self._bulk([self._op("delete", "memories", k) for k in gone])
            self._bulk([self._op("delete", "control", f"mid:{ns_ids[m.namespace]}:{_h(m.id)}")
                        for _, m in doomed])
            return doomed, list(dict.fromkeys(reindex))

    def delete_matching(self, namespace: str, flt: RecallFilter) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete every memory of a namespace that matches the filter, expired ones included."""
        with self._lock:
            memories, _ = self.listing(namespace, replace(flt, now=None), limit=-1, offset=0)
            return self.delete(Scope.of(namespace), [m.id for m in memories], namespace)

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        hits = self._scan("memories", {"range": {"expires_at": {"lte": now}}},
                          [{"expires_at": "asc"}, {"key": "asc"}], ["namespace", "id"], limit=limit)
        return [(h["_source"]["namespace"], h["_source"]["id"]) for h in hits]

    def touch(self, accesses: Sequence[tuple[int, int, float]]) -> None:
        """Add (key, count, last time) accesses. Counts are a ranking hint, not a ledger: a
        bulk the client re-sends after a timeout counts those accesses twice."""
        if not accesses:
            return
        with self._lock:
            docs = self._mget("memories", [k for k, _, _ in accesses], ["ns_id", "id"])
            for ns_id in {int(d["ns_id"]) for d in docs.values()} & self._moving:
                self._log_changes(ns_id, [d["id"] for d in docs.values() if d["ns_id"] == ns_id])
            self._bulk([{"_op_type": "update", "_index": self._index["memories"], "_id": str(key),
                         "script": {"source": "ctx._source.access_count += params.c;"
                                              " ctx._source.last_accessed_at = params.t",
                                    "params": {"c": count, "t": when}}}
                        for key, count, when in accesses if str(key) in docs])

    def _filter_clauses(self, ns_id: int, flt: RecallFilter) -> list[dict[str, Any]]:
        where: list[dict[str, Any]] = [{"term": {"ns_id": ns_id}}]
        if flt.memory_types:
            where.append({"terms": {"memory_type": list(flt.memory_types)}})
        if flt.session_id is not None:
            where.append({"term": {"session_id": flt.session_id}})
        for field, op, value in (("event_time", "gte", flt.since), ("event_time", "lte", flt.until),
                                 ("importance", "gte", flt.min_importance),
                                 ("importance", "lte", flt.max_importance),
                                 ("created_at", "gte", flt.created_after),
                                 ("created_at", "lte", flt.created_before)):
            if value is not None:
                where.append({"range": {field: {op: value}}})
        if flt.now is not None:  # not expired: no expiry, or one still ahead
            where.append({"bool": {"should": [
                {"bool": {"must_not": {"exists": {"field": "expires_at"}}}},
                {"range": {"expires_at": {"gt": flt.now}}}], "minimum_should_match": 1}})
        for tag in flt.tags_all or ():
            where.append({"term": {"tags": tag}})
        if flt.tags_any:
            where.append({"terms": {"tags": list(flt.tags_any)}})
        return where

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        """A page of a namespace's memories matching the filter, and the total that match."""
        ns_id = self._ns_id(namespace)
        if ns_id is None:
            return [], 0
        query = {"bool": {"filter": self._filter_clauses(ns_id, flt)}}
        total = self._count("memories", query)
        order = "desc" if newest_first else "asc"
        hits = self._scan("memories", query, [{"created_at": order}, {"key": order}], _MEMORY_SOURCE,
                          limit=None if limit < 0 else offset + limit)
        return [_memory(h["_source"])[1] for i, h in enumerate(hits) if i >= offset], total

    # -- sessions -------------------------------------------------------------------------
    def _sessions_by_id(self, pairs: Iterable[tuple[int, str]]) -> dict[tuple[int, str], dict[str, Any]]:
        """(ns_id, session id) → session source, of those in that namespace."""
        pairs = list(pairs)
        docs = self._mget("sessions", [_h(sid) for _, sid in pairs])
        return {(ns, sid): docs[_h(sid)] for ns, sid in pairs
                if _h(sid) in docs and docs[_h(sid)]["ns_id"] == ns}

    def _memory_counts(self, session_keys: Sequence[int]) -> dict[int, int]:
        if not session_keys:
            return {}
        result = self._search("memories", {"terms": {"session_key": list(session_keys)}}, size=0,
                              aggs={"s": {"terms": {"field": "session_key", "size": len(session_keys)}}})
        return {int(b["key"]): int(b["doc_count"]) for b in result["aggregations"]["s"]["buckets"]}

    def _sessions(self, docs: Sequence[dict[str, Any]]) -> list[Session]:
        counts = self._memory_counts([int(d["key"]) for d in docs])
        return [_session(d, counts.get(int(d["key"]), 0)) for d in docs]

    def session_key(self, namespace: str, session_id: str) -> int | None:
        ns_id = self._ns_id(namespace)
        found = None if ns_id is None else self._sessions_by_id([(ns_id, session_id)])
        return int(next(iter(found.values()))["key"]) if found else None

    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      now: float, idle_timeout: float | None = None) -> Session:
        with self._lock:
            if self._mget("sessions", [_h(session_id)], ["key"]):  # before creating anything
                raise Conflict(f"session already exists: {session_id}", "session_id")
            ns_id = self._ns_id(namespace, create=True, now=now)
            (key,) = self._allocate("session", 1)
            refused = self._bulk([self._op("create", "sessions", _h(session_id), {
                "id": session_id, "key": key, "ns_id": ns_id, "namespace": namespace,
                "started_at": now, "last_active_at": now, "ended_at": None, "ended_reason": None,
                "summary": None, "metadata": metadata, "idle_timeout": idle_timeout})],
                conflicts_ok=True)
            if refused:  # ours when the client re-sent a create that had landed (a timeout)
                theirs = self._mget("sessions", [_h(session_id)], ["key"]).get(_h(session_id))
                if theirs is None or int(theirs["key"]) != key:
                    raise Conflict(f"session already exists: {session_id}", "session_id")
        found = self.get_session(session_id, Scope.of(namespace))
        assert found is not None
        return found

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        doc = self._mget("sessions", [_h(session_id)]).get(_h(session_id))
        if doc is None or not scope.covers(doc["namespace"]):
            return None
        return self._sessions([doc])[0]

    def end_session(self, session_id: str, scope: Scope, now: float, summary: str | None,
                    reason: str) -> Session:
        with self._lock:
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                change: dict[str, Any] = {"ended_at": now, "ended_reason": reason, "summary": summary}
            else:
                change = {} if summary is None else {"summary": summary}
            if change:
                self._bulk([self._op("update", "sessions", _h(session_id), change)])
        ended = self.get_session(session_id, scope)
        assert ended is not None
        return ended

    def touch_session(self, session_id: str, scope: Scope, now: float) -> Session:
        with self._lock:
            found = self.get_session(session_id, scope)
            if found is None:
                raise NotFound(f"session not found: {session_id}", "session_id")
            if found.ended_at is None:
                self._bulk([self._op("update", "sessions", _h(session_id), {"last_active_at": now})])
        touched = self.get_session(session_id, scope)
        assert touched is not None
        return touched

    def sessions(self, namespace: str, active_only: bool, limit: int, offset: int) -> list[Session]:
        ns_id = self._ns_id(namespace)
        if ns_id is None:
            return []
        query = self._session_query({"term": {"ns_id": ns_id}}, active_only)
        hits = list(self._scan("sessions", query, [{"started_at": "desc"}, {"key": "desc"}],
                               limit=offset + limit))[offset:]
        return self._sessions([h["_source"] for h in hits])

    @staticmethod
    def _session_query(base: dict[str, Any], active_only: bool) -> dict[str, Any]:
        if not active_only:
            return base
        return {"bool": {"filter": [base], "must_not": [{"exists": {"field": "ended_at"}}]}}

    def all_sessions(self, scope: Scope, active_only: bool, limit: int) -> list[Session]:
        picked: list[dict[str, Any]] = []
        for hit in self._scan("sessions", self._session_query({"match_all": {}}, active_only),
                              [{"started_at": "desc"}, {"key": "desc"}]):
            if len(picked) >= limit:
                break
            if scope.covers(hit["_source"]["namespace"]):
                picked.append(hit["_source"])
        return self._sessions(picked)

    def end_idle_sessions(self, default_timeout: float, now: float) -> int:
        """End every open session idle longer than its own timeout (or the default; 0 = never),
        except in a namespace being moved (its copy on the new shard would miss the change)."""
        with self._lock:
            held = set(self.namespace_states())
            ended = []
            for hit in self._scan("sessions", self._session_query({"match_all": {}}, True),
                                  [{"key": "asc"}], ["id", "namespace", "last_active_at", "idle_timeout"]):
                s = hit["_source"]
                timeout = s.get("idle_timeout")
                timeout = default_timeout if timeout is None else timeout
                if timeout > 0 and s["last_active_at"] + timeout < now and s["namespace"] not in held:
                    ended.append(self._op("update", "sessions", hit["_id"],
                                          {"ended_at": now, "ended_reason": "idle"}))
            self._bulk(ended)
            return len(ended)

    def session_neighbor_rows(self, key: int, before: int, after: int) -> list[tuple[int, Memory]]:
        earlier, later = self.session_sides(key, before, after)
        return earlier + later

    def session_sides(self, key: int, before: int, after: int
                      ) -> tuple[list[tuple[int, Memory]], list[tuple[int, Memory]]]:
        """The memories before this one in its session (nearest last) and after it (nearest
        first), in session order."""
        doc = self._mget("memories", [key], ["session_key", "created_at"]).get(str(key))
        if doc is None or doc.get("session_key") is None:
            return [], []
        sk, created = int(doc["session_key"]), doc["created_at"]
        earlier = self._session_side(sk, created, key, "<", before, _MEMORY_SOURCE)
        later = self._session_side(sk, created, key, ">", after, _MEMORY_SOURCE)
        return [_memory(s) for s in reversed(earlier)], [_memory(s) for s in later]

    def session_side_keys(self, keys: Sequence[int], before: int, after: int
                          ) -> dict[int, tuple[list[int], list[int]]]:
        """session_sides for many keys, keys only (keys outside a session are left out): one
        multi-search for all of them."""
        docs = self._mget("memories", keys, ["key", "session_key", "created_at"])
        places = [(int(d["key"]), int(d["session_key"]), d["created_at"]) for d in docs.values()
                  if d.get("session_key") is not None]
        if not places:
            return {}
        searches: list[dict[str, Any]] = []
        for key, sk, created in places:
            for op, limit in (("<", before), (">", after)):
                searches += [{"index": self._index["memories"]},
                             self._side_body(sk, created, key, op, max(limit, 0), ["key"])]
        self._fresh("memories")
        answers = self._call(self._es.msearch, searches=searches)["responses"]
        out: dict[int, tuple[list[int], list[int]]] = {}
        for i, (key, _, _) in enumerate(places):
            earlier, later = (self._hits(answers[2 * i]), self._hits(answers[2 * i + 1]))
            out[key] = ([int(s["key"]) for s in reversed(earlier)], [int(s["key"]) for s in later])
        return out

    def _hits(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in answer:
            raise StorageUnavailable(f"record store {self.prefix}: {answer['error']}", "records")
        return [h["_source"] for h in answer["hits"]["hits"]]

    def session_neighbor_keys(self, keys: Sequence[int], before: int, after: int) -> dict[int, list[int]]:
        return {k: earlier + later for k, (earlier, later) in self.session_side_keys(keys, before, after).items()}

    @staticmethod
    def _side_body(session_key: int, created: float, key: int, op: str, limit: int,
                   source: Any) -> dict[str, Any]:
        """Up to `limit` turns on one side of (created, key) in session order."""
        rng = "lt" if op == "<" else "gt"
        order = "desc" if op == "<" else "asc"
        return {"query": {"bool": {"filter": [{"term": {"session_key": session_key}}, {"bool": {
            "should": [{"range": {"created_at": {rng: created}}},
                       {"bool": {"filter": [{"term": {"created_at": created}},
                                            {"range": {"key": {rng: key}}}]}}],
            "minimum_should_match": 1}}]}},
            "sort": [{"created_at": order}, {"key": order}], "size": limit, "_source": source,
            "track_total_hits": False}

    def _session_side(self, session_key: int, created: float, key: int, op: str, limit: int,
                      source: Any) -> list[dict[str, Any]]:
        if not limit:
            return []
        body = self._side_body(session_key, created, key, op, limit, source)
        hits = self._search("memories", body["query"], sort=body["sort"], size=limit,
                            source=source, track_total_hits=False)["hits"]["hits"]
        return [h["_source"] for h in hits]

    # -- knowledge graph ------------------------------------------------------------------
    def entities_of(self, key: int) -> list[EntityRef]:
        doc = self._mget("memories", [key], ["entities"]).get(str(key))
        refs = [EntityRef(key=e["key"], type=e["type"], value=e["value"], score=e["score"])
                for e in (doc or {}).get("entities") or ()]
        return sorted(refs, key=lambda e: (e.type, e.key))

    def namespace_vector_rows(self, ns_id: int) -> list[tuple[int, bytes, int, int, float, float]]:
        return [(int(s["key"]), _blob(s), memory_type_code(s["memory_type"]),
                 int(s.get("session_key") or 0), s["event_time"], s["importance"])
                for s in (h["_source"] for h in self._scan(
                    "memories", {"term": {"ns_id": ns_id}}, [{"key": "asc"}],
                    ["key", "vector", "memory_type", "session_key", "event_time", "importance"]))]

    def vector_stacks(self, ns_id: int, keys: Sequence[int]) -> dict[int, bytes]:
        docs = self._mget("memories", keys, ["key", "ns_id", "vector"])
        return {int(d["key"]): _blob(d) for d in docs.values() if d["ns_id"] == ns_id}

    def namespace_count(self, ns_id: int) -> int:
        return self._count("memories", {"term": {"ns_id": ns_id}})

    def namespace_size(self, namespace: str) -> int:
        ns_id = self._ns_id(namespace)
        return 0 if ns_id is None else self.namespace_count(ns_id)

    def match_entities(self, namespace: str, keys: Sequence[str]) -> dict[int, tuple[str, int]]:
        """Entities of a namespace named by these keys → (key, doc_freq); a one-word person
        also matches the full names it is part of, as in the SQLite store."""
        ns_id = self._ns_id(namespace)
        if ns_id is None or not keys:
            return {}
        keys = list(dict.fromkeys(keys))
        should: list[dict[str, Any]] = [{"terms": {"entity_keys": keys}}]
        # Only the wanted keys become buckets (exact frequencies, however many other entities
        # the matched memories mention): the exact keys, and each one-word person's full names.
        aggs: dict[str, Any] = {"exact": {"terms": {"field": "entity_keys", "include": keys,
                                                    "size": len(keys)}}}
        names = []
        for key in keys:
            kind, _, name = key.partition(":")
            if kind == "person" and name and " " not in name:
                names.append(_regex_literal(name))
                should.append({"prefix": {"entity_keys": f"person:{name} "}})
                pattern = "".join("\\" + c if c in "\\*?" else c for c in name)
                should.append({"wildcard": {"entity_keys": {"value": f"person:* {pattern}"}}})
        if names:
            either = "|".join(names)
            aggs["people"] = {"terms": {"field": "entity_keys", "size": 10_000,
                                        "include": f"person:(({either}) .*|.* ({either}))"}}
        result = self._search("memories", {"bool": {"filter": [{"term": {"ns_id": ns_id}}],
                                                    "should": should, "minimum_should_match": 1}},
                              size=0, aggs=aggs)["aggregations"]
        buckets = [b for agg in result.values() for b in agg["buckets"]]
        return {entity_id(ns_id, b["key"]): (b["key"], int(b["doc_count"])) for b in buckets}

    def memories_of_entities(self, ent_ids: Sequence[int]) -> list[tuple[int, int]]:
        if not ent_ids:
            return []
        wanted = set(ent_ids)
        return [(int(s["key"]), e) for h in self._scan(
                    "memories", {"terms": {"entity_ids": list(wanted)}}, [{"key": "asc"}],
                    ["key", "entity_ids"])
                for s in [h["_source"]] for e in s["entity_ids"] if e in wanted]

    def entity_links(self, mem_keys: Sequence[int], max_doc_freq: int) -> list[tuple[int, int, int, str, int]]:
        """Links out of these memories: (from key, to key, entity id, entity key, doc_freq),
        hubs (entities in more than `max_doc_freq` memories) skipped."""
        if not mem_keys:
            return []
        docs = self._mget("memories", mem_keys, ["key", "ns_id", "entities"])
        mentions: dict[int, list[int]] = {}  # entity id → source keys
        names: dict[int, str] = {}
        for d in docs.values():
            for e in d.get("entities") or ():
                ent = entity_id(int(d["ns_id"]), e["key"])
                mentions.setdefault(ent, []).append(int(d["key"]))
                names[ent] = e["key"]
        if not mentions:
            return []
        freq = self._search("memories", {"terms": {"entity_ids": list(mentions)}}, size=0,
                            aggs={"e": {"terms": {"field": "entity_ids", "size": len(mentions),
                                                  "include": list(mentions)}}})
        df = {int(b["key"]): int(b["doc_count"]) for b in freq["aggregations"]["e"]["buckets"]}
        kept = [e for e in mentions if df.get(e, 0) <= max_doc_freq]
        holders: dict[int, list[int]] = {}
        for key, ent in self.memories_of_entities(kept):
            holders.setdefault(ent, []).append(key)
        return [(src, dst, ent, names[ent], df[ent]) for ent in kept for src in mentions[ent]
                for dst in holders.get(ent, ()) if dst != src]

    # -- moving a namespace to another shard (cluster/reshard.py) -------------------------
    def namespace_states(self) -> dict[str, str]:
        return {h["_source"]["name"]: h["_source"]["value"] for h in self._scan(
            "control", {"term": {"kind": "state"}}, [{"name": "asc"}], ["name", "value"])}

    def set_namespace_state(self, name: str, state: str | None) -> None:
        with self._lock:
            doc_id = f"state:{_h(name)}"
            self._bulk([self._op("delete", "control", doc_id) if state is None else
                        self._op("index", "control", doc_id, {"kind": "state", "name": name, "value": state})])

    def namespace_names(self) -> list[str]:
        return [d["name"] for d in self._namespace_docs()]

    def export_head(self, name: str) -> dict[str, Any]:
        """Everything of a namespace but its memories, in the SQLite store's export format."""
        ns_id = self._ns_id(name)
        if ns_id is None:
            raise NotFound(f"namespace not found: {name}", "namespace")
        ns = self._mget("namespaces", [_h(name)])[_h(name)]
        sessions = [h["_source"] for h in self._scan("sessions", {"term": {"ns_id": ns_id}}, [{"key": "asc"}])]
        entities: dict[str, list[Any]] = {}
        for h in self._scan("memories", {"term": {"ns_id": ns_id}}, [{"key": "asc"}], ["entities"]):
            for e in h["_source"].get("entities") or ():
                entities.setdefault(e["key"], [e["key"], e["type"], e["value"], 0])[3] += 1
        idem = [(h["_source"]["idem_key"], h["_source"]["memory_id"]) for h in self._scan(
            "control", {"bool": {"filter": [{"term": {"kind": "idem"}}, {"term": {"ns_id": ns_id}}]}},
            [{"idem_key": "asc"}], ["idem_key", "memory_id"])]
        return {
            "name": name,
            "namespace": (ns["created_at"], json.dumps(ns.get("metadata") or {})),
            "sessions": [(s["id"], s["started_at"], s["last_active_at"], s.get("ended_at"),
                          s.get("ended_reason"), s.get("summary"), json.dumps(s.get("metadata") or {}),
                          s.get("idle_timeout")) for s in sessions],
            "entities": [tuple(e) for e in entities.values()],
            "idempotency": idem,
            "memories": self.namespace_count(ns_id),
        }

    @staticmethod
    def _exported(s: dict[str, Any]) -> tuple[Any, ...]:
        """An export row, as the SQLite store writes it: columns after the key, entity links."""
        return (s["id"], s["content"], s["memory_type"], s["importance"], json.dumps(s.get("tags") or []),
                json.dumps(s.get("metadata") or {}), s.get("session_id"), s["created_at"],
                s["updated_at"], s["event_time"], s.get("expires_at"), int(s.get("access_count") or 0),
                s.get("last_accessed_at"), _blob(s),
                [(e["key"], e["value"], e["score"]) for e in s.get("entities") or ()])

    def export_memories(self, name: str, after_key: int, limit: int) -> tuple[list[tuple[Any, ...]], int]:
        ns_id = self._ns_id(name)
        if ns_id is None:
            raise NotFound(f"namespace not found: {name}", "namespace")
        query = {"bool": {"filter": [{"term": {"ns_id": ns_id}}, {"range": {"key": {"gt": after_key}}}]}}
        page = [h["_source"] for h in self._scan("memories", query, [{"key": "asc"}], limit=limit)]
        return [self._exported(s) for s in page], (int(page[-1]["key"]) if len(page) == limit else -1)

    def start_change_log(self, name: str) -> None:
        with self._lock:
            ns_id = self._ns_id(name)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            self._clear_copy_log(ns_id)
            self._bulk([self._op("index", "control", f"moving:{ns_id}", {"kind": "moving", "ns_id": ns_id})])
            self._moving.add(ns_id)

    def stop_change_log(self, name: str) -> None:
        with self._lock:
            ns_id = self._ns_id(name)
            if ns_id is not None:
                self._bulk([self._op("delete", "control", f"moving:{ns_id}")])
                self._moving.discard(ns_id)
                self._clear_copy_log(ns_id)

    def _clear_copy_log(self, ns_id: int) -> None:
        self._delete_where("control", {"bool": {"filter": [{"term": {"kind": "copy"}},
                                                           {"term": {"ns_id": ns_id}}]}})

    def export_changes(self, name: str, after_seq: int, limit: int
                       ) -> tuple[list[tuple[Any, ...]], list[str], int]:
        """A page of the memories changed since start_change_log, oldest change first after
        `after_seq`: (export rows of those that exist now, ids of those deleted, next seq)."""
        with self._lock:  # not between a write's copy log and its data
            return self._export_changes(name, after_seq, limit)

    def _export_changes(self, name: str, after_seq: int, limit: int
                        ) -> tuple[list[tuple[Any, ...]], list[str], int]:
        ns_id = self._ns_id(name)
        if ns_id is None:
            raise NotFound(f"namespace not found: {name}", "namespace")
        query = {"bool": {"filter": [{"term": {"kind": "copy"}}, {"term": {"ns_id": ns_id}},
                                     {"range": {"seq": {"gt": after_seq}}}]}}
        logged = [(h["_source"]["memory_id"], int(h["_source"]["seq"])) for h in self._scan(
            "control", query, [{"seq": "asc"}], ["memory_id", "seq"], limit=limit)]
        present = self._claimed([(ns_id, mid) for mid, _ in logged], source=True)
        found = sorted((present[(ns_id, mid)] for mid, _ in logged if (ns_id, mid) in present),
                       key=lambda kv: kv[0])  # storage order, as the SQLite store
        rows = [self._exported(doc) for _, doc in found]
        deleted = [mid for mid, _ in logged if (ns_id, mid) not in present]
        return rows, deleted, (logged[-1][1] if logged else after_seq)

    def _put_sessions(self, ns_id: int, name: str, sessions: Sequence[Sequence[Any]]) -> None:
        """Add or overwrite sessions from an export head (keeping the keys of those here).
        Session ids are unique per shard, as in SQLite: one of another namespace is refused."""
        docs = self._mget("sessions", [_h(s[0]) for s in sessions], ["ns_id", "key"])
        for sid, *_ in sessions:
            other = docs.get(_h(sid))
            if other is not None and other["ns_id"] != ns_id:
                raise Conflict(f"session id {sid} is taken by another agent on this shard", "session_id")
        here = {(ns_id, sid): docs[_h(sid)] for sid, *_ in sessions if _h(sid) in docs}
        new_keys = iter(self._allocate("session", sum((ns_id, s[0]) not in here for s in sessions)))
        self._bulk([self._op("index", "sessions", _h(sid), {
            "id": sid, "key": int(here[(ns_id, sid)]["key"]) if (ns_id, sid) in here else next(new_keys),
            "ns_id": ns_id, "namespace": name, "started_at": started, "last_active_at": last,
            "ended_at": ended, "ended_reason": reason, "summary": summary,
            "metadata": json.loads(meta or "{}"), "idle_timeout": idle})
            for sid, started, last, ended, reason, summary, meta, idle in sessions])

    def _put_idempotency(self, ns_id: int, pairs: Sequence[Sequence[str]]) -> None:
        self._bulk([self._op("index", "control", f"idem:{ns_id}:{_h(k)}", {
            "kind": "idem", "ns_id": ns_id, "idem_key": k, "memory_id": mid}) for k, mid in pairs])

    def refresh_head(self, head: dict[str, Any]) -> None:
        """Bring a copy's namespace, sessions and idempotency keys up to the source's (entity
        frequencies here are counted from the memories, so they are already right)."""
        name = head["name"]
        with self._lock:
            ns_id = self._ns_id(name)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            self._set_namespace_metadata(name, json.loads(head["namespace"][1] or "{}"))
            self._put_sessions(ns_id, name, head["sessions"])
            self._put_idempotency(ns_id, head["idempotency"])

    def import_head(self, head: dict[str, Any]) -> None:
        """Start a namespace's copy here (absent until now)."""
        name = head["name"]
        with self._lock:
            if self._ns_id(name) is not None:
                raise Conflict(f"namespace already here: {name}", "namespace")
            created_at, metadata = head["namespace"]
            ns_id = self._ns_id(name, create=True, now=created_at, metadata=json.loads(metadata or "{}"))
            assert ns_id is not None
            self._put_sessions(ns_id, name, head["sessions"])
            self._put_idempotency(ns_id, head["idempotency"])

    def import_memories(self, name: str, rows: Sequence[tuple[Any, ...]], replace: bool = False
                        ) -> tuple[list[tuple[int, Memory, bool]], list[int]]:
        """Add a page of exported memories (after import_head), logged for the indexes; a
        replaced memory keeps its key (its place in session order), as in the SQLite store."""
        with self._lock:
            ns_id = self._ns_id(name)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            old = self._claimed([(ns_id, row[0]) for row in rows])
            if old and not replace:
                raise Conflict(f"memory already imported: {next(iter(old))[1]}", "id")
            missing = {row[6] for row in rows if row[6] is not None}
            sessions = self._sessions_by_id((ns_id, sid) for sid in missing)
            bare = [(sid, created, created, None, None, None, "{}", None)
                    for sid, created in {row[6]: row[7] for row in rows
                                         if row[6] is not None and (ns_id, row[6]) not in sessions}.items()]
            if bare:  # sessions begun after the head was taken: refresh_head fills them in
                self._put_sessions(ns_id, name, bare)
                sessions = self._sessions_by_id((ns_id, sid) for sid in missing)
            reindex = [n for key, _ in old.values()
                       for n, _ in self.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)]
            fresh = iter(self._allocate("memory", sum((ns_id, row[0]) not in old for row in rows)))
            keys = [old[(ns_id, row[0])][0] if (ns_id, row[0]) in old else next(fresh) for row in rows]
            self._log_for_index([*keys, *reindex])
            claims, actions = [], []
            for key, (mid, content, mtype, imp, tags, meta, sid, created, updated, event, expires,
                      access, last_access, vector, links) in zip(keys, rows):
                refs = [EntityRef(key=k, type=k.split(":", 1)[0], value=v, score=s) for k, v, s in links]
                claims.append(self._op("index", "control", f"mid:{ns_id}:{_h(mid)}", {
                    "kind": "claim", "ns_id": ns_id, "memory_id": mid, "key": key}))
                actions.append(self._op("index", "memories", key, {
                    "key": key, "ns_id": ns_id, "namespace": name, "id": mid, "content": content,
                    "memory_type": mtype, "importance": imp, "tags": json.loads(tags),
                    "metadata": json.loads(meta), "session_id": sid,
                    "session_key": None if sid is None else int(sessions[(ns_id, sid)]["key"]),
                    "created_at": created, "updated_at": updated, "event_time": event,
                    "expires_at": expires, "access_count": access, "last_accessed_at": last_access,
                    "vector": base64.b64encode(vector).decode(), **_entities(ns_id, refs)}))
            self._bulk(claims)  # first, as in insert
            self._bulk(actions)
            stored = self.by_keys(name, keys)
            out = [(key, stored[key], True) for key in keys]
        imported = set(keys)
        return out, [k for k in dict.fromkeys(reindex) if k not in imported]

    # -- index log ------------------------------------------------------------------------
    def log_all_for_reindex(self) -> list[int]:
        with self._lock:
            keys = self.all_keys()
            self._log_for_index(keys)
            return keys

    def pending_index_keys(self) -> tuple[int, list[int]]:
        """(highest seq, distinct memory keys) the indexes have not durably absorbed yet."""
        with self._lock:
            rows = [(int(h["_source"]["seq"]), int(h["_source"]["key"]), h["_id"]) for h in self._scan(
                "control", {"term": {"kind": "log"}}, [{"seq": "asc"}], ["seq", "key"])]
            self._seen_log.update({seq: doc_id for seq, _, doc_id in rows})
        if not rows:
            return 0, []
        return rows[-1][0], list(dict.fromkeys(key for _, key, _ in rows))

    def mark_indexed(self, up_to_seq: int) -> None:
        """Forget the log entries read by pending_index_keys up to this seq (only those: an
        entry another writer adds meanwhile, under a lower seq, stays)."""
        with self._lock:
            done = [seq for seq in self._seen_log if seq <= up_to_seq]
            self._bulk([self._op("delete", "control", self._seen_log.pop(seq)) for seq in done])

    def counts(self) -> tuple[int, int, int, int]:
        return (self._count("memories", {"match_all": {}}), self._count("namespaces", {"match_all": {}}),
                self._count("sessions", {"match_all": {}}), self._count("control", {"term": {"kind": "log"}}))
