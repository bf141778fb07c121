"""Typed storage configuration of a shard (one part of Engram's config tree)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MilvusServerConfig(BaseModel):
    """A Milvus server (standalone or cluster) holding the shards' vectors, one collection
    per shard (`<collection_prefix>shard_<index>`), the namespace as its partition key."""

    model_config = ConfigDict(extra="forbid")

    uri: str = "http://127.0.0.1:19530"
    # The name of the environment variable that holds the token ("user:password" or an API
    # key), never the secret itself: config files are committed and logged. Unset: no auth.
    token_env: str = "ENGRAM_MILVUS_TOKEN"
    db_name: str = "default"
    # Deployments sharing a server need prefixes of their own.
    collection_prefix: str = Field("engram_", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)
    # Both keep read-your-writes. Session: a read waits only for this shard's own writes (it is
    # the only writer of its collection); Strong: for every write on the server, which costs up
    # to a time tick (~200 ms) on every read.
    consistency_level: Literal["Session", "Strong"] = "Session"
    # How many partitions the namespaces hash into; fixed when a collection is created.
    num_partitions: int = Field(16, ge=1, le=1024)

    def token(self) -> str:
        return os.environ.get(self.token_env, "")


class ElasticsearchConfig(BaseModel):
    """An Elasticsearch cluster holding the shards' BM25 indexes, one index per shard
    (`<index_prefix>shard_<index>_keywords`, explicit mappings). BM25 only: the records and
    the control data live in the record store (SQLite or PostgreSQL)."""

    model_config = ConfigDict(extra="forbid")

    # One node or several (the client spreads requests and retries across them).
    url: str | list[str] = "http://127.0.0.1:9200"
    # The CA that signed the cluster's certificate (Elasticsearch 8 turns TLS on by default
    # with its own CA); None: the system's trust store.
    ca_certs: str | None = None
    # The name of the environment variable holding an API key, never the key itself.
    api_key_env: str = "ENGRAM_ES_API_KEY"
    index_prefix: str = Field("engram_", pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    # false: bulk writes without a refresh, and this shard refreshes before its next search
    # (read-your-writes for a shard's own replica, no refresh per store); wait_for: every
    # write waits until all readers see it (up to 1 s a store).
    write_refresh: Literal["false", "wait_for"] = "false"
    number_of_shards: int = Field(1, ge=1)
    number_of_replicas: int = Field(1, ge=0)
    request_timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0)  # on 429/502/503/504 and timeouts, with backoff

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


class PostgresConfig(BaseModel):
    """A PostgreSQL server (or several) holding the records, one schema per shard
    (`<schema_prefix>shard_<index>`), and the control data (`<schema_prefix>control`, on `dsn`)."""

    model_config = ConfigDict(extra="forbid")

    # A libpq URI or key=value string without the password, which comes from the variable
    # named by password_env (or libpq's own PGPASSWORD and ~/.pgpass): config files are
    # committed and logged.
    dsn: str = "postgresql://engram@127.0.0.1:5432/engram"
    password_env: str = "ENGRAM_POSTGRES_PASSWORD"
    # Shards spread over several servers: shard index -> its DSN; a shard not named uses `dsn`.
    shard_dsns: dict[int, str] = Field(default_factory=dict)
    # Deployments sharing a database need prefixes of their own.
    schema_prefix: str = Field("engram_", pattern=r"^[a-z_][a-z0-9_]*$", max_length=40)
    # Connections per shard replica (and per control store): writes hold one for a transaction.
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(8, ge=1)
    connect_timeout_s: float = Field(10.0, gt=0)
    # A statement running longer is cancelled (the request fails and can be retried).
    statement_timeout_s: float = Field(30.0, gt=0)

    def dsn_for(self, shard: int) -> str:
        return self.shard_dsns.get(shard, self.dsn)

    def password(self) -> str | None:
        return os.environ.get(self.password_env) or None


class EmbeddedStorageConfig(BaseModel):
    """SQLite + Milvus Lite + tantivy under one data directory: no server needed. Each part
    can move to a server by configuration: records and control data to `postgres`
    (`record_store: postgres`), vectors to `milvus_server`, BM25 to `elasticsearch`; with all
    three a shard keeps nothing on local disk (data_dir then holds only what is still local)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["embedded"] = "embedded"
    data_dir: Path = Path("data")
    # The source of truth (memories, sessions, graph) and the control data (API keys, shard
    # map): SQLite in data_dir, or PostgreSQL (shards/records/postgres/, shards/control/postgres.py),
    # the production source of truth. Switching does not move data: a data_dir that holds SQLite
    # records refuses to start with `postgres`; cluster/migrate_records.py copies it.
    record_store: Literal["sqlite", "postgres"] = "sqlite"
    # Set with record_store: postgres.
    postgres: PostgresConfig | None = None
    # FULL fsyncs every commit: an acknowledged store survives power loss, not only a crash.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    milvus_flush_every: int = Field(256, ge=1)  # Milvus Lite: a server persists on its own
    milvus_server: MilvusServerConfig | None = None
    # Set: BM25 lives in this Elasticsearch cluster instead of tantivy (BM25 only).
    elasticsearch: ElasticsearchConfig | None = None
    hnsw_m: int = Field(16, ge=4, le=64)
    hnsw_ef_construction: int = Field(128, ge=8)
    search_ef: int = Field(96, ge=8)
    checkpoint_seconds: float = Field(2.0, gt=0)
    # Namespaces up to this many memories are searched exactly from a cache of their vectors
    # (shards/indexes/exact.py): filtered HNSW is slow and lossy when a namespace is a small
    # slice of the shard. Bigger namespaces use the HNSW index.
    exact_search_max_rows: int = Field(20_000, ge=0)
    # 1 GiB holds ~700 namespaces of 1k MiniLM vectors; a miss reads one range of SQLite.
    exact_cache_bytes: int = Field(2**30, ge=0)

    @model_validator(mode="after")
    def _records_need_their_server(self) -> EmbeddedStorageConfig:
        if self.record_store == "postgres" and self.postgres is None:
            raise ValueError("storage.record_store: postgres needs storage.postgres "
                             "(the server's dsn, password_env and schema_prefix)")
        return self

    @property
    def all_remote(self) -> bool:
        """Whether every part of a shard lives on a server (nothing in data_dir)."""
        return (self.record_store == "postgres" and self.milvus_server is not None
                and self.elasticsearch is not None)


StorageConfig = EmbeddedStorageConfig
