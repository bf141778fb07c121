"""One shard: the record store (truth) plus its vector and keyword indexes.

Write path: record store first (durable, logged), then the indexes. Reads hydrate every
index hit from the record store, scoped to the namespace, so an index that lags or still
holds a deleted key can never leak or resurrect a memory.

The Shard is built here, opened and closed; each job is a mixin in a module of its own
(indexing, memories, recall, graph, sessions, namespaces, moves), over ShardBase
(placement.py): the parts they share and the checks every request passes.
"""
from __future__ import annotations

import logging
import threading

from shards.config import EmbeddedStorageConfig
from shards.errors import LayoutMismatch
from shards.indexes.base import KEYWORD_CONTEXT_FORMAT, KeywordIndex, VectorIndex
from shards.indexes.exact import ExactVectorCache, NamespaceVectors
from shards.records.base import RecordStore, SharedRecordStore
from shards.records.factory import open_record_store
from shards.shard.memories import MemoriesMixin
from shards.shard.moves import MovesMixin
from shards.shard.opening import check_layout, open_keyword_index, open_vector_index, shard_dir
from shards.shard.recall import RecallMixin
from shards.types import ShardStats

log = logging.getLogger(__name__)


class Shard(MovesMixin, MemoriesMixin, RecallMixin):
    """One shard: built over its parts, or opened from the config (open_embedded), and closed."""

    # The methods a router may call across a process boundary (the Serve wrapper enforces it).
    REMOTE_METHODS = frozenset({
        "write", "lookup", "update", "delete", "forget_matching", "recall_candidates",
        "listing", "record_access", "start_session", "get_session", "end_session",
        "touch_session", "sessions", "all_sessions", "ensure_namespace", "namespaces",
        "namespace_stats", "drop_namespace", "stats", "catch_up_indexes", "rebuild_indexes",
        "checkpoint", "memory_graph", "associated", "memory_entities", "neighborhood",
        "record_accesses", "stored_status", "layout", "purge_expired", "usage",
        # resharding (cluster/reshard.py)
        "routing", "set_routing", "namespace_table", "freeze", "handoff", "export_head",
        "export_memories", "import_head", "import_memories", "activate", "release",
        "begin_copy", "export_changes", "import_changes", "refresh_head", "thaw", "discard",
        # a live namespace's copy (engram export; engram import uses import_head ... activate)
        "dump_head", "dump_memories",
        # the outbox of change events (the webhook dispatcher, serve/webhooks/)
        "pending_events", "drop_events",
    })

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
        self._scrub_due = False
        self.graph_seeds = 5  # top hits per channel whose entities the graph channel follows
        self.hub_fraction = 0.05  # entities in more of a namespace's memories are hubs
        self.hub_min = 20
        # The session channel: turns within this many of a strong hit, fading with distance.
        self.session_window = 3
        self.session_decay = 0.8
        self._shared = records if isinstance(records, SharedRecordStore) and records.shared else None
        self._placement_version = 0
        self._seen_versions = {}
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
        if self._shared is not None:
            self._read_placement()
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
