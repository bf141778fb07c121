"""Opening a shard's parts from the config: where its files live, its record store, its
vector and keyword indexes, and the check that its data has this layout."""
from __future__ import annotations

import uuid
from pathlib import Path

from shards.config import EmbeddedStorageConfig
from shards.errors import LayoutMismatch
from shards.indexes.base import KeywordIndex, VectorIndex
from shards.indexes.milvus import MilvusServerVectorIndex, MilvusVectorIndex
from shards.indexes.tantivy import TantivyKeywordIndex
from shards.records.base import RecordStore


def shard_dir(data_dir: Path, index: int) -> Path:
    return data_dir / "shards" / f"shard-{index:03d}"


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
    from shards.indexes.elasticsearch import ElasticsearchKeywordIndex

    client = connect_config(es)
    return ElasticsearchKeywordIndex(
        client, f"{es.index_prefix}shard_{index:03d}_keywords", owner=record_store_id(records),
        write_refresh=es.write_refresh, shards=es.number_of_shards, replicas=es.number_of_replicas)
