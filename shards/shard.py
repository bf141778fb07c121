"""One shard: the record store (truth) plus its vector and keyword indexes.

Write path: record store first (durable, logged), then the indexes. Reads hydrate every
index hit from the record store, scoped to the namespace, so an index that lags or still
holds a deleted key can never leak or resurrect a memory.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from shards.config import EmbeddedStorageConfig
from shards.errors import (
    Conflict,
    LayoutMismatch,
    NamespaceMoved,
    NamespaceMoving,
    NotFound,
    StaleShardMap,
)
from shards.exact_vectors import ExactVectorCache, NamespaceVectors, score_stacks
from shards.indexed_text import indexed_text
from shards.indexes import (
    CONTEXT_TURNS,
    KEYWORD_CONTEXT_FORMAT,
    IndexFilter,
    IndexRow,
    KeywordIndex,
    VectorIndex,
    memory_type_code,
)
from shards.milvus_index import MilvusServerVectorIndex, MilvusVectorIndex
from shards.record_store import SQLiteRecordStore
from shards.routing import shard_for
from shards.tantivy_index import TantivyKeywordIndex
from shards.types import (
    Candidate,
    EntityRef,
    GraphEdge,
    GraphNode,
    Hit,
    Memory,
    MemoryChanges,
    NamespaceInfo,
    NewMemory,
    RecallFilter,
    Scope,
    Session,
    ShardStats,
    WriteResult,
)

if TYPE_CHECKING:
    from shards.es_record_store import ElasticsearchRecordStore

# Both keep one contract (tests/contract): SQLite embedded, Elasticsearch in production.
RecordStore = Union[SQLiteRecordStore, "ElasticsearchRecordStore"]

log = logging.getLogger(__name__)

# HNSW answers by whole vectors; sentence vectors re-rank a wider set (see _rescored_hnsw).
HNSW_OVERFETCH = 2


def shard_dir(data_dir: Path, index: int) -> Path:
    return data_dir / "shards" / f"shard-{index:03d}"


def open_record_store(cfg: EmbeddedStorageConfig, root: Path, index: int) -> RecordStore:
    """SQLite in the shard's directory, or the shard's indexes on the Elasticsearch cluster."""
    if cfg.record_store == "sqlite":
        return SQLiteRecordStore(root / "records.db", synchronous=cfg.sqlite_synchronous)
    if (root / "records.db").exists():
        raise LayoutMismatch(
            f"{root} holds this shard's records in SQLite, but storage.record_store is "
            "elasticsearch: set record_store: sqlite back, or copy the records with `python -m "
            "cluster.migrate_records` and point data_dir elsewhere", "record_store")
    es = cfg.elasticsearch
    assert es is not None  # EmbeddedStorageConfig refuses elasticsearch records without it
    from shards.es_client import connect_config
    from shards.es_record_store import ElasticsearchRecordStore

    client = connect_config(es)
    try:
        return ElasticsearchRecordStore(
            client, f"{es.index_prefix}shard_{index:03d}_", write_refresh=es.write_refresh,
            shards=es.number_of_shards, replicas=es.number_of_replicas)
    except Exception:
        client.close()
        raise


def check_layout(records: RecordStore, index: int, dim: int) -> None:
    """Refuse data written as another shard or with another embedding size (first use
    records them). The shard count is not checked here: the shard map (control data) says
    where each namespace lives, and a resharding job changes it."""
    expected = {"shard_index": str(index), "embedding_dim": str(dim)}
    for key, value in expected.items():
        stored = records.get_meta(key)
        if stored is None:
            records.set_meta(key, value)
        elif stored != value:
            raise LayoutMismatch(
                f"shard {index} in {records.location} was written with {key}={stored}, "
                f"but the config asks for {value}; set it back to {stored} (data cannot be "
                "moved to another layout in place)", key,
            )


def record_store_id(records: RecordStore) -> str:
    """A random id kept with the records: an index on a server names the store it indexes."""
    stored = records.get_meta("store_id")
    if stored is None:
        stored = uuid.uuid4().hex
        records.set_meta("store_id", stored)
    return stored


def open_vector_index(cfg: EmbeddedStorageConfig, root: Path, index: int, dim: int,
                      records: RecordStore) -> VectorIndex:
    """Milvus Lite in the shard's directory, or the shard's collection on a Milvus server."""
    hnsw = {"hnsw_m": cfg.hnsw_m, "hnsw_ef_construction": cfg.hnsw_ef_construction,
            "search_ef": cfg.search_ef}
    server = cfg.milvus_server
    if server is None:
        return MilvusVectorIndex(str(root / "vectors.db"), "memories", dim,
                                 flush_every=cfg.milvus_flush_every, **hnsw)
    return MilvusServerVectorIndex(server, f"{server.collection_prefix}shard_{index:03d}", dim,
                                   owner=record_store_id(records), **hnsw)


def open_keyword_index(cfg: EmbeddedStorageConfig, root: Path, index: int,
                       records: RecordStore) -> KeywordIndex:
    """tantivy in the shard's directory, or the shard's index on an Elasticsearch cluster."""
    es = cfg.elasticsearch
    if es is None:
        return TantivyKeywordIndex(root / "keywords")
    from shards.es_client import connect_config
    from shards.es_keyword_index import ElasticsearchKeywordIndex

    client = connect_config(es)
    return ElasticsearchKeywordIndex(
        client, f"{es.index_prefix}shard_{index:03d}_keywords", owner=record_store_id(records),
        write_refresh=es.write_refresh, shards=es.number_of_shards, replicas=es.number_of_replicas)


class Shard:
    # The methods a router may call across a process boundary (the Serve wrapper enforces it).
    REMOTE_METHODS = frozenset({
        "write", "lookup", "update", "delete", "forget_matching", "recall_candidates",
        "listing", "record_access", "start_session", "get_session", "end_session",
        "touch_session", "sessions", "all_sessions", "ensure_namespace", "namespaces",
        "namespace_stats", "drop_namespace", "stats", "catch_up_indexes", "rebuild_indexes",
        "checkpoint", "memory_graph", "associated", "memory_entities", "neighborhood",
        "record_accesses", "stored_status", "layout", "purge_expired",
        # resharding (cluster/reshard.py)
        "routing", "set_routing", "namespace_table", "freeze", "handoff", "export_head",
        "export_memories", "import_head", "import_memories", "activate", "release",
        "begin_copy", "export_changes", "import_changes", "refresh_head", "thaw", "discard",
    })
    # A namespace on its way in or out (record store `namespace_states`):
    #   copying  (source) being copied live: reads and writes served, its changes logged
    #   frozen   (source) being copied or caught up: reads served, writes wait (NamespaceMoving)
    #   handoff  (source) copied: everything waits until the router's map points elsewhere
    #   incoming (destination) being filled: invisible, nothing served
    COPYING, FROZEN, HANDOFF, INCOMING = "copying", "frozen", "handoff", "incoming"
    LEAVING = (COPYING, FROZEN, HANDOFF)  # the states of a namespace on its way out

    def __init__(self, index: int, shard_count: int, dim: int, records: RecordStore,
                 vectors: VectorIndex, keywords: KeywordIndex, *, exact_search_max_rows: int = 20_000,
                 exact_cache_bytes: int = 2**30) -> None:
        self.index = index
        self.dim = dim
        self.records = records
        self.vectors = vectors
        self.keywords = keywords
        self._lock = threading.RLock()
        self._accesses: dict[tuple[str, str], tuple[int, float]] = {}
        self.exact_search_max_rows = exact_search_max_rows
        self._exact = ExactVectorCache(
            lambda ns_id: NamespaceVectors.from_rows(self.records.namespace_vector_rows(ns_id), dim),
            exact_cache_bytes)
        self._indexes_behind = False  # an index write failed since the last checkpoint
        self.graph_seeds = 5  # top hits per channel whose entities the graph channel follows
        self.hub_fraction = 0.05  # entities in more of a namespace's memories are hubs
        self.hub_min = 20
        # The session channel: turns within this many of a strong hit, fading with distance.
        self.session_window = 3
        self.session_decay = 0.8
        check_layout(records, index, dim)
        # Where namespaces live: the count this shard was placed under (recorded on first
        # use, then set by a resharding job) and, during a reshard, the count it moves to.
        if records.get_meta("shard_count") is None:
            records.set_meta("shard_count", str(shard_count))
        self.routing_count = int(records.get_meta("shard_count") or shard_count)
        target = records.get_meta("reshard_target")
        self.reshard_target = int(target) if target else None
        self.map_epoch = int(records.get_meta("map_epoch") or 0)
        self._states = records.namespace_states()
        # Indexes are derived data: one that is missing, empty, from an older schema or built
        # under another context rule is rebuilt from the record store.
        stored = self.records.counts()[0]
        stale_context = self.records.get_meta("keyword_context") != KEYWORD_CONTEXT_FORMAT
        if stored and (getattr(keywords, "recreated", False) or keywords.count() == 0
                       or vectors.count() == 0 or stale_context):
            log.warning("rebuilding indexes from the record store", extra={"shard": index})
            # Logged, not applied here: the catch-up below applies the log, and a crash in
            # between leaves it logged for the next start (the new context format included).
            self.records.log_all_for_reindex()
        self.records.set_meta("keyword_context", KEYWORD_CONTEXT_FORMAT)
        self.catch_up_indexes()

    @classmethod
    def open_embedded(cls, index: int, shard_count: int, dim: int,
                      cfg: EmbeddedStorageConfig) -> Shard:
        root = shard_dir(cfg.data_dir, index)
        if not cfg.all_remote:
            root.mkdir(parents=True, exist_ok=True)
        records = open_record_store(cfg, root, index)
        try:
            check_layout(records, index, dim)  # before the indexes lock anything
        except LayoutMismatch:
            records.close()
            raise
        try:
            vectors = open_vector_index(cfg, root, index, dim, records)
        except Exception:
            records.close()
            raise
        try:
            keywords = open_keyword_index(cfg, root, index, records)
        except Exception:
            vectors.close()
            records.close()
            raise
        return cls(index, shard_count, dim, records, vectors, keywords,
                   exact_search_max_rows=cfg.exact_search_max_rows,
                   exact_cache_bytes=cfg.exact_cache_bytes)

    # -- which namespaces this shard serves -----------------------------------------------
    def _is_home(self, namespace: str) -> bool:
        """Under the shard map, would a new namespace of this name be created here?"""
        return shard_for(namespace, self.reshard_target or self.routing_count) == self.index

    def _check(self, namespace: str, write: bool) -> None:
        """Serve this namespace, or say why not: NamespaceMoving (retry shortly) while a
        reshard has it frozen or handed off, NamespaceMoved (re-read the map) when it lives elsewhere. A
        router with a stale map can therefore never read or write the wrong copy."""
        state = self._states.get(namespace)
        if state is not None and state != self.COPYING:
            if state != self.FROZEN or write:
                raise NamespaceMoving(namespace)
            return
        if not self._is_home(namespace) and self.records.namespace_id(namespace) is None:
            raise NamespaceMoved(namespace, write)

    def _check_scope(self, scope: Scope, write: bool = False) -> None:
        """A scope of exactly one namespace is that namespace's request: check it. (Wider
        scopes are fan-outs to every shard, which answer what they hold.)"""
        only = scope.single()
        if only is not None:
            self._check(only, write)

    def _takes_writes(self, namespace: str) -> bool:
        return self._states.get(namespace) in (None, self.COPYING)

    def _visible(self, namespace: str) -> bool:
        """Fan-out answers (lists, lookups by id) leave out a copy still being filled and a
        copy handed off (its successor may already have changed): a namespace may be missing
        from a list for the moment of a hand-off, never shown stale."""
        return self._states.get(namespace) not in (self.INCOMING, self.HANDOFF)

    # -- index maintenance --------------------------------------------------------------
    def _index_rows(self, keys: Sequence[int]) -> tuple[list[IndexRow], list[int]]:
        found = self.records.vectors(keys, self.dim)
        session_keys = self.records.session_keys(list(found)) if found else {}
        rows = [
            IndexRow(
                key=k, ns_id=ns_id, vector=vector, content=indexed_text(memory),
                context=self._conversation_context(k) if k in session_keys else "",
                memory_type=memory_type_code(memory.memory_type),
                session_key=session_keys.get(k, 0), event_time=memory.event_time,
                importance=memory.importance,
            )
            for k, (ns_id, vector, memory) in found.items()
        ]
        return rows, [k for k in keys if k not in found]

    def _conversation_context(self, key: int) -> str:
        """The turns around this one in its session, for BM25's lower-weight context field."""
        near = self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)
        return "\n".join(memory.content for _, memory in near)

    def _apply_rows(self, rows: Sequence[IndexRow], keyword_rows: Sequence[IndexRow] = ()) -> None:
        """Index rows a write has just built from what it wrote (no read back): both indexes
        for `rows`, the keyword index alone for `keyword_rows`."""
        try:
            self._exact.invalidate(list({r.ns_id for r in rows}))
            self.vectors.upsert(rows)
            self.keywords.upsert([*rows, *keyword_rows])
        except Exception:
            self._indexes_behind = True  # as in _apply: the keys are in the index log
            raise

    def _apply(self, keys: Sequence[int], keywords_only: Sequence[int] = ()) -> None:
        """Bring both indexes in line with the record store for these keys (and the keyword
        index alone for `keywords_only`: turns whose context changed, not their vector).
        Reads every row back: the path of repairs, updates, deletes and imports."""
        try:
            for start in range(0, len(keys), 1000):
                chunk = keys[start:start + 1000]
                rows, gone = self._index_rows(chunk)
                self._exact.invalidate(list({r.ns_id for r in rows}))
                self._exact.invalidate_keys(gone)
                self.vectors.delete(gone)
                self.keywords.delete(gone)
                self.vectors.upsert(rows)
                self.keywords.upsert(rows)
            if keywords_only:
                rows, gone = self._index_rows(keywords_only)
                self.keywords.delete(gone)
                self.keywords.upsert(rows)
        except Exception:
            # The write is durable and its keys are in the index log; the next checkpoint
            # must re-apply them before it trims the log, or an index server's failure
            # here would leave them unindexed for good.
            self._indexes_behind = True
            raise

    def catch_up_indexes(self) -> int:
        """Re-index whatever the record store logged that the indexes may have missed."""
        with self._lock:
            _, keys = self.records.pending_index_keys()
            if keys:
                log.info("catching up indexes", extra={"shard": self.index, "keys": len(keys)})
                self._apply(keys)
            self.checkpoint()
            return len(keys)

    def checkpoint(self) -> None:
        """Make the indexes durable, then forget the log entries they now hold."""
        with self._lock:
            self._flush_accesses()
            seq, keys = self.records.pending_index_keys()
            if not keys:
                return
            if self._indexes_behind:
                self._apply(keys)  # raises again while the index is still down: the log stays
                self._indexes_behind = False
            self.vectors.flush()
            self.keywords.flush()
            self.records.mark_indexed(seq)

    def rebuild_indexes(self) -> int:
        """Drop both indexes and rebuild them from the record store alone."""
        with self._lock:
            keys = self.records.log_all_for_reindex()  # first: a rebuild cut short resumes
            self._exact.clear()
            self.vectors.clear()
            self.keywords.clear()
            self._apply(keys)
            self.vectors.flush()
            self.keywords.flush()
            seq, _ = self.records.pending_index_keys()
            self.records.mark_indexed(seq)
            return len(keys)

    # -- memories -----------------------------------------------------------------------
    def write(self, items: Sequence[NewMemory], now: float | None = None) -> WriteResult:
        """Store durably, then index. Answers (memory, created) per item, in order, and the
        sessions the items are turns of, as they stand after the write (a session the
        namespace lacks is a NotFound on field session_id, and nothing is stored)."""
        now = time.time() if now is None else now
        with self._lock:
            for namespace in {item.namespace for item in items}:
                self._check(namespace, write=True)
            stored = self.records.insert(items, now)
            self._index_written(items, stored)
            sessions = []
            for namespace, session_id in sorted({(i.namespace, i.session_id) for i in items
                                                 if i.session_id is not None}):
                session = self.records.get_session(session_id, Scope.of(namespace))
                if session is not None:
                    sessions.append(session)
        return WriteResult(memories=tuple((memory, created) for _, memory, created in stored),
                           sessions=tuple(sessions))

    def _index_written(self, items: Sequence[NewMemory],
                       stored: Sequence[tuple[int, Memory, bool]]) -> None:
        """Index what a write created from the items themselves: the vectors and contents
        are in hand, so nothing just written is read back. Reads left: each namespace's id
        and each session's key (point reads), and the turns before a session's first new one
        (their context now holds it, and they hold the new turns' context). A crash before
        this ends leaves the keys in the record store's index log for _apply to repair."""
        new = [(key, item, memory) for item, (key, memory, created) in zip(items, stored) if created]
        if not new:
            return
        ns_ids: dict[str, int] = {}
        for namespace in {item.namespace for _, item, _ in new}:
            ns_id = self.records.namespace_id(namespace)
            assert ns_id is not None  # the write has just created it
            ns_ids[namespace] = ns_id
        by_session: dict[tuple[str, str], list[tuple[int, Memory]]] = {}
        for key, item, memory in new:
            if item.session_id is not None:
                by_session.setdefault((item.namespace, item.session_id), []).append((key, memory))
        context: dict[int, str] = {}
        session_keys: dict[int, int] = {}
        keyword_rows: list[IndexRow] = []
        for (namespace, session_id), turns in by_session.items():
            session_key = self.records.session_key(namespace, session_id) or 0
            # The new turns come after every stored one (they are the newest), so a session
            # reads in order as its stored tail, then the batch's turns. Two turns of context
            # for each of the two stored turns before the first new one: four read.
            tail, _ = self.records.session_sides(turns[0][0], 2 * CONTEXT_TURNS, 0)
            sequence = tail + turns
            first_new = len(tail)
            for at in range(max(0, first_new - CONTEXT_TURNS), len(sequence)):
                key, memory = sequence[at]
                near = sequence[max(0, at - CONTEXT_TURNS):at] + sequence[at + 1:at + 1 + CONTEXT_TURNS]
                text = "\n".join(m.content for _, m in near)
                if at >= first_new:
                    context[key], session_keys[key] = text, session_key
                else:  # a stored turn: its vector is unchanged, only its keyword context
                    keyword_rows.append(self._row(key, ns_ids[namespace], (), memory, text, session_key))
        rows = [self._row(key, ns_ids[item.namespace], item.vector, memory, context.get(key, ""),
                          session_keys.get(key, 0)) for key, item, memory in new]
        self._apply_rows(rows, keyword_rows)

    @staticmethod
    def _row(key: int, ns_id: int, vector: Sequence[float], memory: Memory, context: str,
             session_key: int) -> IndexRow:
        return IndexRow(key=key, ns_id=ns_id, vector=tuple(vector), content=indexed_text(memory),
                        context=context, memory_type=memory_type_code(memory.memory_type),
                        session_key=session_key, event_time=memory.event_time,
                        importance=memory.importance)

    def _index_new(self, stored: Sequence[tuple[int, Memory, bool]]) -> None:
        """Index what an import created (rows read back: an import carries no vectors in
        the form the indexes take)."""
        created = [key for key, _, was_created in stored if was_created]
        if not created:
            return
        # The turns before each session's first new turn now have it as context (the record
        # store logged them too, for a crash before this line). New turns come after every
        # stored one, so the later new turns' neighbours are new as well.
        first_new: dict[str, int] = {}
        for key, memory, was_created in stored:
            if was_created and memory.session_id is not None:
                first_new.setdefault(memory.session_id, key)
        earlier = [k for key in first_new.values()
                   for k, _ in self.records.session_neighbor_rows(key, CONTEXT_TURNS, 0)]
        self._apply(created, keywords_only=earlier)

    def stored_status(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """For each (namespace, id, content): "absent"; "same" (already stored with this
        content: writing it again is a retry); or "different" (the id names another memory,
        which a write would refuse). Lets a bulk load skip what it stored before, unembedded."""
        out = []
        for namespace in {namespace for namespace, _, _ in items}:
            self._check(namespace, write=False)
        for namespace, memory_id, content in items:
            found = self.records.find(memory_id, Scope.of(namespace))
            out.append("absent" if found is None else
                       "same" if found[1].content == content else "different")
        return out

    def lookup(self, memory_id: str, scope: Scope) -> list[Memory]:
        """Every memory with this id that the scope reaches (ids are unique per namespace)."""
        self._check_scope(scope)
        return [m for _, m in self.records.find_all(memory_id, scope) if self._visible(m.namespace)]

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges,
               now: float | None = None) -> Memory:
        now = time.time() if now is None else now
        with self._lock:
            self._check(namespace, write=True)
            key, memory = self.records.update(namespace, memory_id, changes, now)
            # Neighbours hold this turn's words as context: only new words change them.
            near = (self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)
                    if changes.content is not None else [])
            self._apply([key], keywords_only=[k for k, _ in near])
        return memory

    def delete(self, scope: Scope, memory_ids: Sequence[str],
               namespace: str | None = None) -> list[Memory]:
        with self._lock:
            if namespace is not None:
                self._check(namespace, write=True)
            self._check_scope(scope, write=True)
            deleted, reindex = self.records.delete(scope, memory_ids, namespace)
            self._apply([k for k, _ in deleted] + reindex)
        return [m for _, m in deleted]

    def purge_expired(self, now: float | None = None, limit: int = 1000) -> int:
        """Delete up to `limit` memories whose expiry has passed (the maintenance loop calls
        this). Recall already leaves them out, but left in the indexes they would take
        candidate places from live memories. A namespace being moved keeps them until it
        has arrived: its copy is counted."""
        now = time.time() if now is None else now
        with self._lock:
            due: dict[str, list[str]] = {}
            for namespace, memory_id in self.records.expired(now, limit):
                if namespace not in self._states:
                    due.setdefault(namespace, []).append(memory_id)
            purged = 0
            for namespace, ids in due.items():
                try:
                    purged += len(self.delete(Scope.of(namespace), ids, namespace))
                except (NamespaceMoved, NamespaceMoving):  # not this shard's to change now
                    continue
            return purged

    def recall_candidates(self, namespace: str, vector: Sequence[float] | None, text: str,
                          flt: RecallFilter, limit: int, query_entities: Sequence[str] = (),
                          graph: bool = True, session: bool = True, *,
                          neighbors: tuple[int, int] | None = None,
                          touch_session: str | None = None) -> list[Candidate]:
        """Vector, keyword, graph and session candidates, hydrated and filtered.

        The graph channel finds memories that name the query's entities, and memories that
        share rare entities with the best vector/keyword hits (what similarity misses). The
        session channel brings the turns just before and after the best hits: an answer is
        often the reply to the message that matched.

        neighbors=(before, after): each candidate carries its session neighbours as
        `context`, so the router shows the results' conversational context without a
        second call once it has ranked them. touch_session: the recall is activity in that
        session (Dakera), which keeps it from idling.
        """
        self._check(namespace, write=False)
        if touch_session is not None:
            self._keep_alive(namespace, touch_session)
        ns_id = self.records.namespace_id(namespace)
        if ns_id is None:
            return []
        session_key = None
        if flt.session_id is not None:
            session_key = self.records.session_key(namespace, flt.session_id)
            if session_key is None:
                return []
        index_filter = IndexFilter(
            ns_id=ns_id,
            memory_types=tuple(memory_type_code(t) for t in flt.memory_types) if flt.memory_types else None,
            session_key=session_key, since=flt.since, until=flt.until,
            min_importance=flt.min_importance,
        )
        # Tags and expiry are checked on the record store: over-fetch so filters leave enough.
        fetch = limit * 4 if flt.has_tags else limit
        channels: dict[str, list[Any]] = {}
        with self._lock:
            if vector is not None:
                channels["vector"] = self._vector_search(vector, index_filter, fetch)
            if text:
                channels["bm25"] = self.keywords.search(text, index_filter, fetch)
        seeds: dict[int, float] = {}
        for hits in channels.values():
            for rank, h in enumerate(hits[:self.graph_seeds], start=1):
                seeds[h.key] = max(seeds.get(h.key, 0.0), 1.0 / rank)
        if session and seeds:
            channels["session"] = self._session_hits(seeds)
        if graph:
            channels["graph"] = self._graph_hits(namespace, query_entities, dict(seeds), fetch)
        ranks: dict[int, dict[str, int]] = {}
        scores: dict[int, dict[str, float]] = {}
        for channel, hits in channels.items():
            for rank, hit in enumerate(hits, start=1):
                ranks.setdefault(hit.key, {})[channel] = rank
                scores.setdefault(hit.key, {})[channel] = hit.score
        admitted = {k: m for k, m in self.records.by_keys(namespace, ranks).items() if flt.admits(m)}
        context = self._session_context(namespace, admitted, *neighbors) if neighbors else {}
        return [Candidate(memory=m, ranks=ranks[k], scores=scores[k], context=context.get(k, ()))
                for k, m in admitted.items()]

    def _vector_search(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """Exact search for a namespace small enough (the usual tenant), HNSW otherwise."""
        cached = self._exact.cached(flt.ns_id)
        if cached is not None or self.records.namespace_count(flt.ns_id) <= self.exact_search_max_rows:
            return (cached or self._exact.get(flt.ns_id)).search(vector, flt, limit)
        return self._rescored_hnsw(vector, flt, limit)

    def _rescored_hnsw(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        """HNSW holds each memory's whole vector only: over-fetch, then score the hits with
        their sentence vectors too, as exact search does. (A memory only one of whose
        sentences matches is found when its whole is near enough to be fetched.)"""
        hits = self.vectors.search(vector, flt, limit * HNSW_OVERFETCH)
        if not hits:
            return hits
        stacks = self.records.vector_stacks(flt.ns_id, [h.key for h in hits])
        hits = [h for h in hits if h.key in stacks]  # deleted since the index answered
        if not hits:
            return hits
        scores = score_stacks([stacks[h.key] for h in hits], self.dim, vector)
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].key))[:limit]
        return [Hit(key=hits[i].key, score=float(scores[i])) for i in order]

    def forget_matching(self, namespace: str, flt: RecallFilter) -> list[Memory]:
        with self._lock:
            self._check(namespace, write=True)
            deleted, reindex = self.records.delete_matching(namespace, flt)
            self._apply([k for k, _ in deleted] + reindex)
        return [m for _, m in deleted]

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        self._check(namespace, write=False)
        return self.records.listing(namespace, flt, limit, offset, newest_first)

    def record_access(self, namespace: str, memory_ids: Sequence[str], now: float | None = None) -> None:
        """Count recalls of these memories. Buffered: written at the next checkpoint, so a
        recall never waits for an fsync (a crash loses at most a few access counts)."""
        now = time.time() if now is None else now
        if not self._takes_writes(namespace):
            return  # being moved: its copy is taken; a few access counts are not worth a wait
        with self._lock:
            for mid in memory_ids:
                count, _ = self._accesses.get((namespace, mid), (0, now))
                self._accesses[(namespace, mid)] = (count + 1, now)

    def _flush_accesses(self) -> None:
        pending, self._accesses = self._accesses, {}
        touched = [(found[0], count, when) for (ns, mid), (count, when) in pending.items()
                   if (found := self.records.find(mid, Scope.of(ns))) is not None]
        self.records.touch(touched)

    def record_accesses(self, accesses: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Access counts a router gathered over its recalls, in one call. A namespace this
        shard no longer serves (moved meanwhile) is skipped, as record_access skips one in a
        move: a few access counts are not worth a retry."""
        for namespace, memory_ids in accesses:
            try:
                self._check(namespace, write=False)
            except (NamespaceMoved, NamespaceMoving):
                continue
            self.record_access(namespace, memory_ids)

    def neighborhood(self, namespace: str, memory_ids: Sequence[str], before: int = 1,
                     after: int = 1) -> dict[str, list[Memory]]:
        """Session-adjacent memories of each given memory (its conversational context)."""
        self._check(namespace, write=False)
        scope = Scope.of(namespace)
        found = dict(f for mid in memory_ids if (f := self.records.find(mid, scope)) is not None)
        context = self._session_context(namespace, found, before, after)
        return {m.id: list(context.get(k, ())) for k, m in found.items()}

    def _session_context(self, namespace: str, known: dict[int, Memory], before: int,
                         after: int) -> dict[int, tuple[Memory, ...]]:
        """key → its live session neighbours (before, after), hydrated once for all keys. A
        neighbour that is itself in `known` is that same object, so a reply pickles it once."""
        around = self.records.session_neighbor_keys(list(known), before, after)
        missing = {n for keys in around.values() for n in keys} - known.keys()
        pool = {**known, **self.records.by_keys(namespace, missing)}
        live = RecallFilter(now=time.time())  # an expired turn is context no more
        return {k: tuple(pool[n] for n in keys if n in pool and live.admits(pool[n]))
                for k, keys in around.items()}

    def _keep_alive(self, namespace: str, session_id: str) -> None:
        if not self._takes_writes(namespace):
            return  # frozen for a move: the session's clock is not worth a wait
        try:
            self.touch_session(session_id, Scope.of(namespace))
        except NotFound:  # nothing to recall there and nothing to keep alive
            pass

    # -- knowledge graph ----------------------------------------------------------------
    def _max_doc_freq(self, namespace_size: int) -> int:
        return max(self.hub_min, int(namespace_size * self.hub_fraction))

    @staticmethod
    def entity_weight(doc_freq: int, namespace_size: int) -> float:
        """Rarer entities weigh more (an IDF): one shared order number says more than a city."""
        return math.log(1.0 + namespace_size / (1.0 + max(doc_freq, 1)))

    def _graph_hits(self, namespace: str, query_entities: Sequence[str], seeds: dict[int, float],
                    limit: int) -> list[Hit]:
        size = self.records.namespace_size(namespace)
        if size == 0:
            return []
        max_df = self._max_doc_freq(size)
        scores: dict[int, float] = {}
        matched = {e: kd for e, kd in self.records.match_entities(namespace, query_entities).items()
                   if kd[1] <= max_df}
        for key, ent_id in self.records.memories_of_entities(list(matched)):
            scores[key] = scores.get(key, 0.0) + self.entity_weight(matched[ent_id][1], size)
        if scores:  # memories naming the query's entities are seeds too, as strong as the best hit
            top = max(scores.values())
            for key, score in sorted(scores.items(), key=lambda kv: -kv[1])[:self.graph_seeds]:
                seeds[key] = max(seeds.get(key, 0.0), score / top)
        for src, dst, _, _, df in self.records.entity_links(list(seeds), max_df):
            # A seed spreads its weight over the memories sharing the entity (as in personalised
            # PageRank): an order number shared by two memories links them far more than a
            # name shared by twenty. One hop away counts half: a neighbour is evidence, not a match.
            share = self.entity_weight(df, size) / max(df - 1, 1)
            scores[dst] = scores.get(dst, 0.0) + 0.5 * seeds[src] * share
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [Hit(key=k, score=v) for k, v in ranked]

    def _session_hits(self, seeds: dict[int, float]) -> list[Hit]:
        """Turns near the strong hits in their session, half as strong as the hit at distance
        1 and fading by `session_decay` per turn beyond (an answer is often a few turns on)."""
        scores: dict[int, float] = {}
        window = self.session_window
        sides = self.records.session_side_keys(list(seeds), window, window)
        for key, strength in seeds.items():
            earlier, later = sides.get(key, ([], []))
            for distance, neighbor in [*enumerate(reversed(earlier), 1), *enumerate(later, 1)]:
                score = 0.5 * strength * self.session_decay ** (distance - 1)
                scores[neighbor] = max(scores.get(neighbor, 0.0), score)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Hit(key=k, score=v) for k, v in ranked]

    def traverse(self, namespace: str, root_keys: Sequence[int], depth: int, max_nodes: int,
                 min_weight: float = 0.0) -> tuple[dict[int, tuple[int, float]], list[tuple[int, int, float, tuple[str, ...]]]]:
        """Breadth-first over shared-entity links: key → (depth, weight) and the edges walked.

        Edge weight is 1 − e^(−Σ rarity of the shared entities), in [0, 1).
        """
        size = self.records.namespace_size(namespace)
        max_df = self._max_doc_freq(size)
        nodes: dict[int, tuple[int, float]] = {k: (0, 1.0) for k in root_keys}
        edges: list[tuple[int, int, float, tuple[str, ...]]] = []
        frontier = list(root_keys)
        for level in range(1, depth + 1):
            if not frontier or len(nodes) >= max_nodes:
                break
            links: dict[tuple[int, int], tuple[float, list[str]]] = {}
            for src, dst, _, ent_key, df in self.records.entity_links(frontier, max_df):
                weight, shared = links.get((src, dst), (0.0, []))
                links[(src, dst)] = (weight + self.entity_weight(df, size), shared + [ent_key])
            nxt: list[int] = []
            for (src, dst), (raw, shared) in sorted(links.items(), key=lambda kv: -kv[1][0]):
                weight = 1.0 - math.exp(-raw)
                if weight < min_weight:
                    continue
                if dst not in nodes:
                    if len(nodes) >= max_nodes:
                        continue
                    nodes[dst] = (level, weight * nodes[src][1])
                    nxt.append(dst)
                if nodes[dst][0] >= nodes[src][0]:  # edges outward or across a level, once
                    edges.append((src, dst, weight, tuple(sorted(set(shared)))))
            frontier = nxt
        return nodes, edges

    def memory_graph(self, memory_id: str, scope: Scope, depth: int, max_nodes: int = 50,
                     min_weight: float = 0.0) -> tuple[list[GraphNode], list[GraphEdge]] | None:
        """The neighbourhood of one memory in its namespace's graph (None: not in scope)."""
        self._check_scope(scope)
        found = self.records.find(memory_id, scope)
        if found is None or not self._visible(found[1].namespace):
            return None
        root_key, root = found
        nodes, edges = self.traverse(root.namespace, [root_key], depth, max_nodes, min_weight)
        memories = self.records.by_keys(root.namespace, nodes)
        graph_nodes = [GraphNode(memory=memories[k], depth=d, weight=w)
                       for k, (d, w) in sorted(nodes.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
                       if k in memories]
        graph_edges = [GraphEdge(source=memories[a].id, target=memories[b].id, weight=w, shared=sh)
                       for a, b, w, sh in edges if a in memories and b in memories]
        return graph_nodes, graph_edges

    def associated(self, namespace: str, memory_ids: Sequence[str], depth: int, cap: int,
                   min_weight: float, flt: RecallFilter) -> list[GraphNode]:
        """Memories linked to these (recalled) ones, nearest and strongest first."""
        self._check(namespace, write=False)
        scope = Scope.of(namespace)
        roots = [f[0] for mid in memory_ids if (f := self.records.find(mid, scope)) is not None]
        nodes, _ = self.traverse(namespace, roots, depth, len(roots) + cap * 4, min_weight)
        memories = self.records.by_keys(namespace, [k for k in nodes if k not in roots])
        ordered = sorted((k for k in memories if flt.admits(memories[k])),
                         key=lambda k: (nodes[k][0], -nodes[k][1]))
        return [GraphNode(memory=memories[k], depth=nodes[k][0], weight=nodes[k][1])
                for k in ordered[:cap]]

    def memory_entities(self, memory_id: str, scope: Scope) -> tuple[Memory, list[EntityRef]] | None:
        self._check_scope(scope)
        found = self.records.find(memory_id, scope)
        if found is None or not self._visible(found[1].namespace):
            return None
        return found[1], self.records.entities_of(found[0])

    # -- sessions -----------------------------------------------------------------------
    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      idle_timeout: float | None = None, now: float | None = None) -> Session:
        self._check(namespace, write=True)
        return self.records.start_session(namespace, session_id, metadata,
                                          time.time() if now is None else now, idle_timeout)

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        self._check_scope(scope)
        found = self.records.get_session(session_id, scope)
        return found if found is not None and self._visible(found.namespace) else None

    def end_session(self, session_id: str, scope: Scope, summary: str | None = None,
                    reason: str = "client", now: float | None = None) -> Session:
        self._check_scope(scope, write=True)
        return self.records.end_session(session_id, scope, time.time() if now is None else now,
                                        summary, reason)

    def touch_session(self, session_id: str, scope: Scope, now: float | None = None) -> Session:
        self._check_scope(scope, write=True)
        return self.records.touch_session(session_id, scope, time.time() if now is None else now)

    def sessions(self, namespace: str, active_only: bool = False, limit: int = 100,
                 offset: int = 0) -> list[Session]:
        self._check(namespace, write=False)
        return self.records.sessions(namespace, active_only, limit, offset)

    def all_sessions(self, scope: Scope, active_only: bool = False, limit: int = 100) -> list[Session]:
        return [s for s in self.records.all_sessions(scope, active_only, limit)
                if self._visible(s.namespace)]

    def end_idle_sessions(self, default_timeout: float, now: float | None = None) -> int:
        return self.records.end_idle_sessions(default_timeout, time.time() if now is None else now)

    # -- namespaces ---------------------------------------------------------------------
    def ensure_namespace(self, namespace: str, metadata: dict[str, Any] | None = None,
                         now: float | None = None) -> bool:
        self._check(namespace, write=True)
        return self.records.ensure_namespace(namespace, time.time() if now is None else now, metadata)

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        return [n for n in self.records.namespaces(scope) if self._visible(n.name)]

    def namespace_stats(self, namespace: str) -> tuple[NamespaceInfo, dict[str, Any]]:
        self._check(namespace, write=False)
        found = [n for n in self.records.namespaces(Scope.of(namespace)) if n.name == namespace]
        if not found:
            raise NotFound(f"agent not found: {namespace}", "agent")
        return found[0], self.records.memory_stats(namespace)

    def drop_namespace(self, namespace: str) -> int:
        with self._lock:
            self._check(namespace, write=True)
            if self._states.get(namespace) == self.COPYING:
                # Its copy would come back to life on the new shard: wait for the move.
                raise NamespaceMoving(namespace)
            return self._drop(namespace)

    def _drop(self, namespace: str) -> int:
        with self._lock:
            keys = self.records.drop_namespace(namespace)
            # Counts buffered for these memories must not land on a namespace of the same
            # name created later.
            self._accesses = {k: v for k, v in self._accesses.items() if k[0] != namespace}
            self._apply(keys)  # all gone from the records: removed from both indexes
            return len(keys)

    # -- resharding: moving a namespace between shards (cluster/reshard.py) ---------------
    # The job drives each move: source.begin_copy → export → destination.import_head and
    # import_memories (the namespace still takes writes, logged) → export_changes →
    # destination.import_changes until the log is drained → source.freeze → the last
    # changes → destination.refresh_head (writes wait only for this last catch-up) →
    # source.handoff → destination.activate → the shard map records the
    # move → source.release. Every step is idempotent, so a killed job re-runs from the top
    # (a source it left frozen is copied whole while frozen).
    def routing(self) -> tuple[int, int | None]:
        return self.routing_count, self.reshard_target

    def check_epoch(self, caller_epoch: int | None) -> None:
        """A router whose map predates the current reshard (or its end) re-reads it first:
        within one epoch every router agrees on the counts and differs only in which
        namespaces it knows have moved, which the shards' own checks cover."""
        if caller_epoch is not None and caller_epoch < self.map_epoch:
            raise StaleShardMap(caller_epoch, self.map_epoch)

    def call_at_epoch(self, caller_epoch: int | None, method: str, *args: Any, **kwargs: Any) -> Any:
        """`method` for a caller whose shard map has this epoch (None: no map, e.g. a test).
        Run on the thread that runs every call, so no set_routing comes between the two."""
        self.check_epoch(caller_epoch)
        return getattr(self, method)(*args, **kwargs)

    def set_routing(self, count: int, target: int | None, epoch: int = 0) -> None:
        """The shard map's count, reshard target and epoch, as the job moves through it."""
        with self._lock:
            self.records.set_meta("map_epoch", str(epoch))
            self.map_epoch = epoch
            self.records.set_meta("shard_count", str(count))
            self.records.set_meta("reshard_target", "" if target is None else str(target))
            self.routing_count, self.reshard_target = count, target

    def namespace_table(self) -> list[tuple[str, str | None]]:
        """(name, move state or None) of every namespace this shard holds or is moving."""
        names = dict.fromkeys(self.records.namespace_names())
        return sorted({**names, **self._states}.items())

    def _set_state(self, namespace: str, state: str | None) -> None:
        self.records.set_namespace_state(namespace, state)
        if state is None:
            self._states.pop(namespace, None)
        else:
            self._states[namespace] = state

    def begin_copy(self, namespace: str) -> bool:
        """Start copying a namespace while it goes on taking writes, each change logged for
        the catch-up after the freeze. False: there is nothing to copy live (it is gone, or
        a killed run left it frozen: it is then copied whole, frozen)."""
        with self._lock:
            state = self._states.get(namespace)
            if state not in (None, self.COPYING):
                return False
            if self.records.namespace_id(namespace) is None:
                return False
            self.records.start_change_log(namespace)  # afresh, also for a copy begun again
            self._set_state(namespace, self.COPYING)
            return True

    def freeze(self, namespace: str) -> int | None:
        """Stop writes to a namespace (reads go on) so that it can be copied, or its copy
        caught up; returns its memory count. Pending access counts are written first, to
        travel with it."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None and self.records.namespace_id(namespace) is None:
                return None  # deleted since the job listed it: nothing to move
            if state is not None and state not in self.LEAVING:
                raise Conflict(f"cannot move {namespace} from shard {self.index}: "
                               f"{'it is not here' if state is None else state}", "namespace")
            if state in (None, self.COPYING):
                self._set_state(namespace, self.FROZEN)
            self._flush_accesses()
            return self.records.namespace_size(namespace)

    def handoff(self, namespace: str) -> None:
        """The copy is complete: stop reads too, until the map sends them to the new shard."""
        with self._lock:
            if self._states.get(namespace) not in (self.FROZEN, self.HANDOFF):
                raise Conflict(f"{namespace} is not frozen on shard {self.index}", "namespace")
            self.records.stop_change_log(namespace)  # the copy has caught up
            self._set_state(namespace, self.HANDOFF)

    def _check_exportable(self, namespace: str) -> None:
        if self._states.get(namespace) not in self.LEAVING:
            raise Conflict(f"begin_copy or freeze {namespace} before exporting it (writes "
                           "would be lost)", "namespace")

    def export_head(self, namespace: str) -> dict[str, Any]:
        self._check_exportable(namespace)
        return self.records.export_head(namespace)

    def export_memories(self, namespace: str, after_key: int, limit: int) -> tuple[list[Any], int]:
        self._check_exportable(namespace)
        return self.records.export_memories(namespace, after_key, limit)

    def import_head(self, head: dict[str, Any], replace_live: bool = False) -> None:
        """Begin (or begin again) a namespace's copy here; it stays invisible until activate.

        replace_live: a live copy here is one that a killed run activated before the map
        recorded the move (the source still holds the namespace, frozen, so nothing can have
        written here since); the job says so only then."""
        namespace = head["name"]
        with self._lock:
            state = self._states.get(namespace)
            present = self.records.namespace_id(namespace) is not None
            if present and state != self.INCOMING and not replace_live:
                raise Conflict(f"{namespace} is live on shard {self.index}: refusing to "
                               "overwrite it with a copy", "namespace")
            self._set_state(namespace, self.INCOMING)
            if present:
                self._drop(namespace)
            self.records.import_head(head)

    def import_memories(self, namespace: str, rows: Sequence[tuple[Any, ...]]) -> int:
        with self._lock:
            self._check_incoming(namespace)
            # replace: during a live copy a memory forgotten and stored again under its id
            # comes back in a later page (its new key is higher) while the first is here.
            stored, context_changed = self.records.import_memories(namespace, rows, replace=True)
            self._index_new(stored)
            self._apply([], keywords_only=context_changed)
            return len(stored)

    def _check_incoming(self, namespace: str) -> None:
        if self._states.get(namespace) != self.INCOMING:
            raise Conflict(f"{namespace} is not being imported on shard {self.index}",
                           "namespace")

    def export_changes(self, namespace: str, after_seq: int, limit: int
                       ) -> tuple[list[Any], list[str], int]:
        """A page of what changed in a namespace since begin_copy, after `after_seq`:
        (changed memories as export rows, deleted ids, the seq to ask after next). While it
        still takes writes more can follow; once frozen, a short page is the end."""
        if self._states.get(namespace) not in self.LEAVING:
            raise Conflict(f"begin_copy {namespace} before exporting its changes", "namespace")
        return self.records.export_changes(namespace, after_seq, limit)

    def import_changes(self, namespace: str, rows: Sequence[tuple[Any, ...]],
                       deleted_ids: Sequence[str]) -> int:
        """Catch a live copy up: changed memories replace their copies, deleted ones go."""
        with self._lock:
            self._check_incoming(namespace)
            stored, context_changed = self.records.import_memories(namespace, rows, replace=True)
            deleted, reindex = self.records.delete(Scope.of(namespace), deleted_ids, namespace)
            touched = [k for k, _, _ in stored]
            # Turns around a changed one hold its words as BM25 context: where it is now, and
            # (context_changed, reindex) where it or a deleted one was.
            near = [k for key in touched
                    for k, _ in self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)]
            fresh = set(touched) | {k for k, _ in deleted}
            self._apply(touched + [k for k, _ in deleted],
                        keywords_only=[k for k in dict.fromkeys(near + context_changed + reindex)
                                       if k not in fresh])
            return len(stored) + len(deleted)

    def refresh_head(self, head: dict[str, Any]) -> None:
        """After import_changes: sessions, entities and keys as the frozen source has them."""
        with self._lock:
            self._check_incoming(head["name"])
            self.records.refresh_head(head)

    def activate(self, namespace: str, expected_memories: int) -> None:
        """Serve the imported copy, once it holds every memory the source had."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None and self.records.namespace_id(namespace) is not None:
                return  # activated before
            held = self.records.namespace_size(namespace)
            if state != self.INCOMING or held != expected_memories:
                raise Conflict(f"copy of {namespace} on shard {self.index} holds {held} of "
                               f"{expected_memories} memories; import it again", "namespace")
            self._set_state(namespace, None)

    # -- undoing a move (cluster/reshard.py --abort) ---------------------------------------
    def thaw(self, namespace: str) -> None:
        """A move of this namespace is called off: it is live here again, as before it began
        (the map still points here). Idempotent."""
        with self._lock:
            if self._states.get(namespace) not in self.LEAVING:
                return
            self.records.stop_change_log(namespace)
            self._set_state(namespace, None)

    def discard(self, namespace: str, unrouted: bool = False) -> int:
        """Drop a copy that a called-off move left here: one being filled, or (`unrouted`,
        which only the job can know from the map) one activated that the map never
        pointed to, so nothing has written to it. Idempotent."""
        with self._lock:
            state = self._states.get(namespace)
            present = self.records.namespace_id(namespace) is not None
            if state == self.INCOMING or (state is None and present and unrouted):
                dropped = self._drop(namespace) if present else 0
                self._set_state(namespace, None)
                return dropped
            if state is None and not present:
                return 0
            raise Conflict(f"{namespace} is {state or 'live'} on shard {self.index}: not a "
                           "copy to discard", "namespace")

    def release(self, namespace: str) -> int:
        """Delete the source's copy once the map points at the new shard."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None:
                if self.records.namespace_id(namespace) is not None:
                    raise Conflict(f"{namespace} is live on shard {self.index}: not releasing",
                                   "namespace")
                return 0  # released before
            if state != self.HANDOFF:
                raise Conflict(f"{namespace} is {state} on shard {self.index}, not handed off",
                               "namespace")
            dropped = self._drop(namespace) if self.records.namespace_id(namespace) else 0
            self._set_state(namespace, None)
            return dropped

    # -- lifecycle ----------------------------------------------------------------------
    def layout(self) -> tuple[int, int, int]:
        """(index, shard count it places namespaces under, embedding dim)."""
        return self.index, self.routing_count, self.dim

    def stats(self) -> ShardStats:
        memories, namespaces, sessions, pending = self.records.counts()
        return ShardStats(memories, namespaces, sessions, pending)

    def close(self) -> None:
        with self._lock:
            self.checkpoint()
            self.vectors.close()
            self.keywords.close()
            self.records.close()
