"""Vector index on Milvus: Milvus Lite (a local `.db` path) or a Milvus server.

Milvus Lite searches its growing (unflushed) segment by brute force in Python, ~30 µs a
vector, so we flush after `flush_every` pending rows to keep recall fast; a flush is also
the point from which the shard treats the vectors as durable.

A server (MilvusServerVectorIndex) keeps one collection per shard with the namespace as its
partition key. What a server version lacks or gets wrong is checked or avoided, not assumed:
its version (`_connect`), AllocTimestamp (`_read_options`), upsert under a partition key
(`upsert`), and when it makes writes durable (`flush`).
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

from shards.config import MilvusServerConfig
from shards.errors import LayoutMismatch, StorageUnavailable
from shards.indexes.base import IndexFilter, IndexRow
from shards.types import Hit

log = logging.getLogger(__name__)

# COSINE HNSW and count(*) need 2.3.
MIN_SERVER_VERSION = (2, 3, 0)


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


def milvus_client_class() -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("the Milvus vector index needs `pip install pymilvus milvus-lite`") from exc
    return MilvusClient


def entities(rows: Sequence[IndexRow]) -> list[dict[str, Any]]:
    return [
        {"key": r.key, "ns_id": r.ns_id, "memory_type": r.memory_type,
         "session_key": r.session_key, "event_time": r.event_time,
         "importance": r.importance, "vector": list(r.vector)}
        for r in rows
    ]


class MilvusVectorIndex:
    """Milvus Lite: one `.db` file in the shard's directory."""

    def __init__(self, uri: str, collection: str, dim: int, *, flush_every: int = 256,
                 hnsw_m: int = 16, hnsw_ef_construction: int = 128, search_ef: int = 96) -> None:
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.flush_every = flush_every
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.search_ef = search_ef
        self._pending = 0
        self._lock = threading.RLock()
        self._client = self._connect()
        if self._call(self._client.has_collection, collection):
            self._check_collection(self._call(self._client.describe_collection, collection))
        else:
            self._create_collection()
        self._call(self._client.load_collection, collection)

    # -- what a server does differently ---------------------------------------------------
    def _connect(self) -> Any:
        return milvus_client_class()(uri=self.uri)

    def _collection_options(self) -> dict[str, Any]:
        return {}

    def _namespace_options(self) -> dict[str, Any]:
        return {}

    def _description(self) -> str:
        return ""

    def _read_options(self) -> dict[str, Any]:
        return {}

    def _where(self) -> str:
        return f"vector index {self.collection}"

    # -- the collection -------------------------------------------------------------------
    def _create_collection(self) -> None:
        from pymilvus import DataType

        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description=self._description())
        schema.add_field("key", DataType.INT64, is_primary=True)
        schema.add_field("ns_id", DataType.INT64, **self._namespace_options())
        schema.add_field("memory_type", DataType.INT64)
        schema.add_field("session_key", DataType.INT64)
        schema.add_field("event_time", DataType.DOUBLE)
        schema.add_field("importance", DataType.FLOAT)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        index = self._client.prepare_index_params()
        index.add_index(
            field_name="vector", index_type="HNSW", metric_type="COSINE",
            params={"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction},
        )
        self._call(self._client.create_collection, self.collection, schema=schema,
                   index_params=index, **self._collection_options())

    def _check_collection(self, described: dict[str, Any]) -> None:
        for f in described.get("fields", []):
            if f.get("name") == "vector":
                dim = int(f.get("params", {}).get("dim", self.dim))
                if dim != self.dim:
                    raise LayoutMismatch(
                        f"{self._where()} holds {dim}-d vectors but the embedder "
                        f"makes {self.dim}-d ones; use the model the data was stored with, or "
                        "re-embed into a new data directory", "embedding"
                    )

    # -- the VectorIndex protocol ---------------------------------------------------------
    def upsert(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        with self._lock:
            self._call(self._client.upsert, self.collection, entities(rows))
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
                **self._read_options(),
            )
        return [Hit(key=int(h["key"]), score=float(h["distance"])) for h in result[0]]

    def others_wrote(self) -> None:
        """Milvus Lite: one process owns the file, so there are no other writers."""

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._call(self._client.flush, self.collection)
                self._pending = 0

    def count(self) -> int:
        with self._lock:
            rows = self._call(self._client.query, self.collection, filter="key >= 0",
                              output_fields=["count(*)"], **self._read_options())
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

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import grpc
        from pymilvus.exceptions import MilvusException

        try:
            return fn(*args, **kwargs)
        except (MilvusException, grpc.RpcError) as exc:  # an RPC the server lacks is a bare RpcError
            raise StorageUnavailable(f"{self._where()} failed: {exc}", "vector") from exc


def server_version(text: str) -> tuple[int, ...] | None:
    """(2, 3, 5) from "v2.3.5-lite"; None for a build that names no release."""
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(g) for g in found.groups()) if found else None


class MilvusServerVectorIndex(MilvusVectorIndex):
    """One shard's collection on a Milvus server; `owner` names the record store it indexes."""

    def __init__(self, cfg: MilvusServerConfig, collection: str, dim: int, *, owner: str,
                 hnsw_m: int = 16, hnsw_ef_construction: int = 128, search_ef: int = 96) -> None:
        self.cfg = cfg
        self.owner = owner
        self._read_ts = 0
        self._stale = True  # the first read waits for writes made before this index opened
        super().__init__(cfg.uri, collection, dim, hnsw_m=hnsw_m,
                         hnsw_ef_construction=hnsw_ef_construction, search_ef=search_ef)
        self.session_reads = cfg.consistency_level == "Session" and self._allocate_timestamp() > 0
        if cfg.consistency_level == "Session" and not self.session_reads:
            log.warning("the Milvus server has no AllocTimestamp: reads use Strong consistency",
                        extra={"collection": collection})

    def _connect(self) -> Any:
        import grpc
        from pymilvus.exceptions import MilvusException

        client_class = milvus_client_class()
        try:
            client = client_class(uri=self.uri, token=self.cfg.token(), db_name=self.cfg.db_name)
            version = client.get_server_version()
            client.list_collections()  # a database that is missing fails here, not later
        except (MilvusException, grpc.RpcError) as exc:
            raise StorageUnavailable(
                f"cannot use the Milvus server at {self.uri} (database {self.cfg.db_name!r}): "
                f"{exc}; start it, or fix storage.milvus_server (uri, db_name, and the token in "
                f"${self.cfg.token_env})", "vector") from exc
        found = server_version(str(version))
        if found is not None and found < MIN_SERVER_VERSION:
            raise StorageUnavailable(
                f"the Milvus server at {self.uri} is {version}; the vector index needs "
                f"{'.'.join(map(str, MIN_SERVER_VERSION))} or later: upgrade it, or unset "
                "storage.milvus_server to keep vectors in Milvus Lite", "vector")
        return client

    def _collection_options(self) -> dict[str, Any]:
        return {"consistency_level": self.cfg.consistency_level,
                "num_partitions": self.cfg.num_partitions}

    def _namespace_options(self) -> dict[str, Any]:
        # Each namespace's rows sit in one of num_partitions partitions, and a search filtered
        # by namespace (every search is) reads only that one.
        return {"is_partition_key": True}

    def _description(self) -> str:
        return f"Engram vectors of record store {self.owner}"

    def _where(self) -> str:
        return f"vector index {self.collection} on the Milvus server at {self.uri}"

    def _check_collection(self, described: dict[str, Any]) -> None:
        """A collection outlives the data directory it indexed: one left by another record
        store (or another deployment using the same prefix) would map its keys onto ours."""
        super()._check_collection(described)
        if described.get("description") != self._description():
            raise LayoutMismatch(
                f"{self._where()} indexes another record store "
                f"({described.get('description')!r}, not {self._description()!r}): if that "
                "store is gone, drop the collection (the shard rebuilds it from its records); "
                "otherwise give this deployment its own storage.milvus_server.collection_prefix",
                "milvus_server")

    def _allocate_timestamp(self) -> int:
        """A timestamp from the server, later than every write it has acknowledged; 0 where
        it lacks AllocTimestamp (pymilvus answers 0 for it then). MilvusClient has no public
        call for it; its connection handler has."""
        alloc = getattr(self._client._get_connection(), "alloc_timestamp", None)
        return int(self._call(alloc)) if alloc is not None else 0

    def _read_options(self) -> dict[str, Any]:
        """Read-your-writes. pymilvus's own Session level guarantees the timestamps that write
        responses carry, but a 2.3.5 server's delete response carries none (a read just after
        a delete still finds the row) and a new process starts with none. So a read waits
        for a timestamp allocated after this index's last write (the shard is the only
        writer of its collection): only reads that follow writes wait, for about a time
        tick. A server without AllocTimestamp gets Strong, which makes every read wait."""
        if not self.session_reads:
            return {"consistency_level": "Strong"}
        if self._stale:
            self._read_ts = self._allocate_timestamp()
            self._stale = False
        return {"consistency_level": "Customized", "guarantee_timestamp": self._read_ts}

    def others_wrote(self) -> None:
        # A timestamp allocated from now on is later than every write the server has
        # acknowledged, another replica's included: the next read waits for it.
        self._stale = True

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        # Not an upsert: Milvus 2.3.5 files an upserted row under its primary key's partition,
        # not its namespace's (milvus#30607), where a search by namespace misses it. Delete +
        # insert is what an upsert does inside Milvus anyway, and no read comes in between
        # (the lock is held across both); a crash in between is caught up on open.
        with self._lock:
            self._call(self._client.delete, self.collection, ids=[r.key for r in rows])
            self._call(self._client.insert, self.collection, entities(rows))
            self._stale = True

    def delete(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        with self._lock:
            self._call(self._client.delete, self.collection, ids=[int(k) for k in keys])
            self._stale = True

    def flush(self) -> None:
        """Nothing to do: a server acknowledges a write once it is in its write-ahead log (the
        message queue, replayed after a restart) and persists segments on its own schedule.
        A manual flush at every checkpoint would hold the shard for 0.5-3 s (2.3.5) and
        leave the server many tiny segments to compact."""

    def clear(self) -> None:
        """Drop and recreate: a delete by expression would first have to find every row."""
        with self._lock:
            self._call(self._client.drop_collection, self.collection)
            self._create_collection()
            self._call(self._client.load_collection, self.collection)
            self._stale = True
