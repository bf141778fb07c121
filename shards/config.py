"""Typed storage configuration of a shard (one part of Engram's config tree)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbeddedStorageConfig(BaseModel):
    """SQLite + Milvus Lite + tantivy under one data directory: no server needed."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["embedded"] = "embedded"
    data_dir: Path = Path("data")
    # FULL fsyncs every commit: an acknowledged store survives power loss, not only a crash.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    milvus_flush_every: int = Field(256, ge=1)
    hnsw_m: int = Field(16, ge=4, le=64)
    hnsw_ef_construction: int = Field(128, ge=8)
    search_ef: int = Field(96, ge=8)
    checkpoint_seconds: float = Field(2.0, gt=0)
    # Namespaces up to this many memories are searched exactly from a cache of their vectors
    # (shards/exact_vectors.py): filtered HNSW is slow and lossy when a namespace is a small
    # slice of the shard. Bigger namespaces use the HNSW index.
    exact_search_max_rows: int = Field(20_000, ge=0)
    # 1 GiB holds ~700 namespaces of 1k MiniLM vectors; a miss reads one range of SQLite.
    exact_cache_bytes: int = Field(2**30, ge=0)


StorageConfig = EmbeddedStorageConfig
