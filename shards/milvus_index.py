"""Vector index on Milvus: Milvus Lite (a local `.db` path) or a Milvus server (a URI).

Milvus Lite searches its growing (unflushed) segment by brute force in Python, ~30 µs a
vector, so we flush after `flush_every` pending rows to keep recall fast; a flush is also
the point from which the shard treats the vectors as durable.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from shards.errors import LayoutMismatch, StorageUnavailable
from shards.indexes import IndexFilter, IndexRow
from shards.types import Hit

log = logging.getLogger(__name__)


def filter_expression(flt: IndexFilter) -> str:
    """A Milvus boolean expression from numbers only (ints and floats we produced)."""
    parts = [f"ns_id == {int(flt.ns_id)}"]
    if flt.memory_types:
        parts.append(f"memory_type in [{', '.join(str(int(c)) for c in flt.memory_types)}]")
    if flt.session_key is not None:
        parts.append(f"session_key == {int(flt.session_key)}")
    if flt.since is not None:
        parts.append(f"event_time >= {float(flt.since)!r}")
    if flt.until is not None:
        parts.append(f"event_time <= {float(flt.until)!r}")
    if flt.min_importance is not None:
        parts.append(f"importance >= {float(flt.min_importance)!r}")
    return " and ".join(parts)


class MilvusVectorIndex:
    def __init__(self, uri: str, collection: str, dim: int, *, token: str = "",
                 flush_every: int = 256, hnsw_m: int = 16, hnsw_ef_construction: int = 128,
                 search_ef: int = 96) -> None:
        try:
            from pymilvus import DataType, MilvusClient
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("the Milvus vector index needs `pip install pymilvus milvus-lite`") from exc
        self.collection = collection
        self.dim = dim
        self.flush_every = flush_every
        self.search_ef = search_ef
        self._pending = 0
        self._lock = threading.RLock()
        self._client = MilvusClient(uri=uri, token=token)
        if self._client.has_collection(collection):
            self._check_dim()
        else:
            schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.INT64, is_primary=True)
            schema.add_field("ns_id", DataType.INT64)
            schema.add_field("memory_type", DataType.INT64)
            schema.add_field("session_key", DataType.INT64)
            schema.add_field("event_time", DataType.DOUBLE)
            schema.add_field("importance", DataType.FLOAT)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index = self._client.prepare_index_params()
            index.add_index(
                field_name="vector", index_type="HNSW", metric_type="COSINE",
                params={"M": hnsw_m, "efConstruction": hnsw_ef_construction},
            )
            self._client.create_collection(collection, schema=schema, index_params=index)
        self._client.load_collection(collection)

    def _check_dim(self) -> None:
        described: dict[str, Any] = self._client.describe_collection(self.collection)
        for f in described.get("fields", []):
            if f.get("name") == "vector":
                dim = int(f.get("params", {}).get("dim", self.dim))
                if dim != self.dim:
                    raise LayoutMismatch(
                        f"vector index {self.collection} holds {dim}-d vectors but the embedder "
                        f"makes {self.dim}-d ones; use the model the data was stored with, or "
                        "re-embed into a new data directory", "embedding"
                    )

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        data = [
            {"key": r.key, "ns_id": r.ns_id, "memory_type": r.memory_type,
             "session_key": r.session_key, "event_time": r.event_time,
             "importance": r.importance, "vector": list(r.vector)}
            for r in rows
        ]
        with self._lock:
            self._call(self._client.upsert, self.collection, data)
            self._pending += len(rows)
            if self._pending >= self.flush_every:
                self.flush()

    def delete(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        with self._lock:
            self._call(self._client.delete, self.collection, ids=[int(k) for k in keys])
            self._pending += len(keys)

    def search(self, vector: Sequence[float], flt: IndexFilter, limit: int) -> list[Hit]:
        with self._lock:
            result = self._call(
                self._client.search, self.collection, data=[list(vector)], limit=limit,
                filter=filter_expression(flt), output_fields=["key"],
                search_params={"metric_type": "COSINE", "params": {"ef": max(self.search_ef, limit)}},
            )
        return [Hit(key=int(h["key"]), score=float(h["distance"])) for h in result[0]]

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._call(self._client.flush, self.collection)
                self._pending = 0

    def count(self) -> int:
        with self._lock:
            rows = self._call(self._client.query, self.collection, filter="key >= 0",
                              output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def clear(self) -> None:
        with self._lock:
            self._call(self._client.delete, self.collection, filter="key >= 0")
            self._call(self._client.flush, self.collection)
            self._pending = 0

    def close(self) -> None:
        with self._lock:
            try:
                self.flush()
            finally:
                self._client.close()

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        from pymilvus.exceptions import MilvusException

        try:
            return fn(*args, **kwargs)
        except MilvusException as exc:
            raise StorageUnavailable(f"vector index failed: {exc}", "vector") from exc
