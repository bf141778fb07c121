"""BM25 keyword index on Elasticsearch: one index per shard, the same contract as tantivy.

Documents are keyed by the record store's internal key; they carry only the text and the
typed scalars the filters need (no request value reaches a query except as a term value of
a typed field, which Elasticsearch never parses as syntax). Writes go in bulk without a
refresh; this process refreshes before its next search, so a shard reads its own writes
without paying a refresh per store. `write_refresh="wait_for"` makes every write visible to
every reader before it is acknowledged, for deployments with several replicas per shard.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from shards.es_client import ensure_index, guarded
from shards.errors import LayoutMismatch, StorageUnavailable
from shards.indexes.base import IndexFilter, IndexRow
from shards.indexes.tantivy import CONTEXT_BOOST, query_terms
from shards.types import Hit

log = logging.getLogger(__name__)

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",  # a typo in a field name fails loudly instead of mapping a new field
    "properties": {
        "key": {"type": "long"},
        "ns_id": {"type": "long"},
        "memory_type": {"type": "byte"},
        "session_key": {"type": "long"},
        # english: lower-case, stop words, Porter stemming (tantivy's en_stem does the same)
        "content": {"type": "text", "analyzer": "english"},
        "context": {"type": "text", "analyzer": "english"},
    },
}


class ElasticsearchKeywordIndex:
    def __init__(self, client: Any, index: str, *, owner: str = "", write_refresh: str = "false",
                 shards: int = 1, replicas: int = 1) -> None:
        """owner: the id of the record store whose keys this index holds; an index written
        for another store (a data directory wiped and started afresh) is refused."""
        self._es = client
        self.index = index
        self.owner = owner
        self._write_refresh = write_refresh
        self._dirty = False
        self._lock = threading.RLock()
        self.recreated = False  # the shard re-indexes from its record store when True
        self._shards, self._replicas = shards, replicas
        self._call(self._ensure_index, shards, replicas)

    def _ensure_index(self, shards: int, replicas: int) -> None:
        mappings = {**MAPPINGS, "_meta": {"engram_store_id": self.owner}}
        mapped = ensure_index(self._es, self.index, mappings, {
            "number_of_shards": shards, "number_of_replicas": replicas,
            "similarity": {"default": {"type": "BM25"}}})
        if mapped is None:
            self.recreated = True
            return
        theirs = mapped.get("_meta", {}).get("engram_store_id", "")
        if mapped.get("properties") != MAPPINGS["properties"] or theirs != self.owner:
            raise LayoutMismatch(
                f"Elasticsearch index {self.index} was written by another Engram store or "
                "version; delete it (it is derived data: the shard re-indexes from its "
                "record store) or choose another elasticsearch.index_prefix", "keywords")

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        actions = [{"_op_type": "index", "_index": self.index, "_id": str(r.key), "_source": {
            "key": r.key, "ns_id": r.ns_id, "memory_type": r.memory_type,
            "session_key": r.session_key, "content": r.content, "context": r.context}}
            for r in rows]
        self._bulk(actions)

    def delete(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        self._bulk([{"_op_type": "delete", "_index": self.index, "_id": str(int(k))} for k in keys])

    def _bulk(self, actions: list[dict[str, Any]]) -> None:
        from elasticsearch import helpers

        def run() -> None:
            # Per-document 429s (a full write queue) are retried by the helper with backoff;
            # a delete of a document that is not there is no error.
            _, errors = helpers.bulk(self._es, actions, refresh=self._write_refresh,
                                     max_retries=5, initial_backoff=0.5, raise_on_error=False)
            items: list[dict[str, Any]] = errors if isinstance(errors, list) else []
            failed = [e for e in items if not ("delete" in e and e["delete"].get("status") == 404)]
            if failed:
                raise StorageUnavailable(f"keyword index {self.index}: {len(failed)} bulk "
                                         f"items failed, first: {failed[0]}", "keywords")

        with self._lock:
            self._dirty = self._write_refresh == "false"  # before: a bulk can partly succeed
            self._call(run)

    def search(self, text: str, flt: IndexFilter, limit: int) -> list[Hit]:
        terms = query_terms(text)
        if not terms:
            return []
        filters: list[dict[str, Any]] = [{"term": {"ns_id": flt.ns_id}}]
        if flt.memory_types:
            filters.append({"terms": {"memory_type": list(flt.memory_types)}})
        if flt.session_key is not None:
            filters.append({"term": {"session_key": flt.session_key}})
        query = {"bool": {
            "must": {"multi_match": {"query": " ".join(terms), "type": "most_fields",
                                     "fields": ["content", f"context^{CONTEXT_BOOST}"]}},
            "filter": filters}}  # filters narrow; they add nothing to the score
        with self._lock:
            self.flush()
            result = self._call(self._es.search, index=self.index, query=query, size=limit,
                                source=False, track_total_hits=False)
        return [Hit(key=int(h["_id"]), score=float(h["_score"])) for h in result["hits"]["hits"]]

    def others_wrote(self) -> None:
        with self._lock:
            self._dirty = True  # the next search refreshes first, making their writes visible

    def flush(self) -> None:
        """Acknowledged writes are durable in Elasticsearch's translog already; what this
        adds is visibility: a refresh, when this process wrote since the last one."""
        with self._lock:
            if self._dirty:
                self._call(self._es.indices.refresh, index=self.index)
                self._dirty = False

    def count(self) -> int:
        with self._lock:
            self.flush()
            return int(self._call(self._es.count, index=self.index)["count"])

    def clear(self) -> None:
        """Delete and recreate: cheaper than deleting every document by query."""
        with self._lock:
            self._call(self._es.indices.delete, index=self.index)
            self._call(self._ensure_index, self._shards, self._replicas)
            self._dirty = False

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            finally:
                self._es.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return guarded(f"keyword index {self.index}", "keywords", fn, *args, **kwargs)
