"""Shard backends under one contract: every backend runs the same assertions."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster.local_servers.milvus_server import MilvusTestServer
from cluster.local_servers.postgres_server import PostgresTestServer
from shards.config import ElasticsearchConfig, EmbeddedStorageConfig, MilvusServerConfig, PostgresConfig
from shards.control.base import ControlStore
from shards.control.factory import open_control_store
from shards.shard import Shard
from tests.builders import DIM, ES_URL, NEEDS_ELASTICSEARCH, OpenShard


def _opener(cfg: EmbeddedStorageConfig) -> OpenShard:
    # One shard: every namespace is at home (routing across shards has tests of its own).
    def open_shard(shard_count: int = 1, dim: int = DIM, index: int = 0) -> Shard:
        return Shard.open_embedded(index, shard_count, dim, cfg)
    return open_shard


@pytest.fixture(scope="session")
def milvus_uri() -> Iterator[str]:
    """ENGRAM_MILVUS_URI's server, or a Milvus 2.3.5 started on loopback for the session.
    The server backend is part of the contract: where none can start, the suite fails and
    says what is missing, rather than passing without it."""
    given = os.environ.get("ENGRAM_MILVUS_URI")
    if given:
        yield given
        return
    missing = MilvusTestServer.unavailable()
    if missing:
        pytest.fail(missing)
    with MilvusTestServer() as uri:
        yield uri


@pytest.fixture()
def milvus_server(milvus_uri: str) -> Iterator[MilvusServerConfig]:
    """A collection prefix of the test's own, so it sees no other test's vectors; its
    collections are dropped after."""
    from pymilvus import MilvusClient

    cfg = MilvusServerConfig(uri=milvus_uri, collection_prefix=f"t{uuid.uuid4().hex[:12]}_")
    yield cfg
    client = MilvusClient(uri=cfg.uri, token=cfg.token(), db_name=cfg.db_name)
    for name in client.list_collections():
        if name.startswith(cfg.collection_prefix):
            client.drop_collection(name)
    client.close()


@pytest.fixture()
def elasticsearch() -> Iterator[ElasticsearchConfig]:
    """ENGRAM_ES_URL's cluster (credentials in the URL or $ENGRAM_ES_API_KEY, its CA in
    $ENGRAM_ES_CA_CERTS), an index prefix of the test's own; its indexes deleted after."""
    from shards.es_client import connect

    cfg = ElasticsearchConfig(url=str(ES_URL), index_prefix=f"engram_test_{uuid.uuid4().hex[:12]}_",
                              number_of_replicas=0, ca_certs=os.environ.get("ENGRAM_ES_CA_CERTS"))
    yield cfg
    client = connect(cfg.url, cfg.api_key(), ca_certs=cfg.ca_certs)
    # By name: Elasticsearch 8 refuses wildcard deletes (action.destructive_requires_name).
    for name in client.indices.get(index=f"{cfg.index_prefix}*", allow_no_indices=True):
        client.indices.delete(index=name)
    client.close()


@pytest.fixture()
def es_emulator(es_emulator_url: str) -> Iterator[ElasticsearchConfig]:
    """The Elasticsearch-API emulator (cluster/local_servers/es_emulator.py), an index prefix of the test's
    own; its indexes deleted after."""
    from shards.es_client import connect

    cfg = ElasticsearchConfig(url=es_emulator_url, index_prefix=f"engram_emu_{uuid.uuid4().hex[:12]}_",
                              number_of_replicas=0)
    yield cfg
    client = connect(cfg.url, None)
    for name in client.indices.get(index=f"{cfg.index_prefix}*", allow_no_indices=True):
        client.indices.delete(index=name)
    client.close()


@pytest.fixture()
def postgres(postgres_server: PostgresTestServer) -> Iterator[PostgresConfig]:
    """The session's PostgreSQL server, a schema prefix of the test's own (so it sees no
    other test's records); its schemas dropped after."""
    cfg = PostgresConfig(dsn=postgres_server.dsn, schema_prefix=f"t{uuid.uuid4().hex[:12]}_",
                         pool_max_size=4)
    yield cfg
    with postgres_server.connect() as conn:  # type: ignore[attr-defined]
        schemas = [row[0] for row in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (cfg.schema_prefix,))]
        for schema in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# The storage setting a server fixture fills, where its name is not the setting's.
SETTING_OF = {"es_emulator": "elasticsearch"}
POSTGRES = [pytest.mark.postgres]
EMULATOR = [pytest.mark.emulator]

@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"),
                        pytest.param("postgres", id="postgres", marks=POSTGRES)])
def control_storage(request: pytest.FixtureRequest, tmp_path: Path) -> EmbeddedStorageConfig:
    """Where the control store keeps its data: SQLite in a directory, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return EmbeddedStorageConfig(data_dir=tmp_path)
    return EmbeddedStorageConfig(data_dir=tmp_path, record_store="postgres",
                                 postgres=request.getfixturevalue("postgres"))


@pytest.fixture()
def control(control_storage: EmbeddedStorageConfig) -> Iterator[ControlStore]:
    store = open_control_store(control_storage)
    yield store
    store.close()


@pytest.fixture()
def reopen_control(control_storage: EmbeddedStorageConfig) -> Iterator[ControlStore]:
    """A second store over the same data, as a second router has."""
    store = open_control_store(control_storage)
    yield store
    store.close()


@dataclass(frozen=True)
class Backend:
    """One row of the shard suite: the storage settings a shard opens with. `servers` name
    the settings that point a part at a server (`postgres`: records and control data, with
    record_store="postgres"; `milvus_server`: vectors; `elasticsearch`: BM25), each set from
    the fixture of the same name; what is on no server is embedded in the test's directory."""

    record_store: str = "sqlite"
    servers: tuple[str, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()  # any other storage settings, (name, value)

    def config(self, tmp: Path, request: pytest.FixtureRequest) -> EmbeddedStorageConfig:
        fields = {SETTING_OF.get(name, name): request.getfixturevalue(name) for name in self.servers}
        fields.update(self.settings)
        cfg = EmbeddedStorageConfig(data_dir=tmp, record_store=self.record_store, **fields)
        if cfg.all_remote:  # every part on a server: the suite checks nothing lands on disk
            cfg = EmbeddedStorageConfig(data_dir=tmp / "unused", record_store=self.record_store,
                                        **fields)
        return cfg


# Every backend runs this suite: a new record store (or index) is one row here. No
# Elasticsearch server can be installed on the development machines: its rows run where
# ENGRAM_ES_URL points at one and are skipped, saying so, elsewhere.
BACKENDS = [
    pytest.param(Backend(), id="embedded"),
    # No exact search of small namespaces from SQLite: every recall goes through the server's HNSW.
    pytest.param(Backend(servers=("milvus_server",), settings=(("exact_search_max_rows", 0),)),
                 id="milvus-server"),
    # records in SQLite, BM25 on the Elasticsearch-API emulator (not Elasticsearch)
    pytest.param(Backend(servers=("es_emulator",)), id="es-emulator", marks=EMULATOR),
    # records in SQLite, BM25 on the cluster
    pytest.param(Backend(servers=("elasticsearch",)), id="elasticsearch", marks=NEEDS_ELASTICSEARCH),
    # records on PostgreSQL, the indexes embedded
    pytest.param(Backend(record_store="postgres", servers=("postgres",)), id="postgres", marks=POSTGRES),
    # the production form, emulated BM25: records on PostgreSQL, vectors on Milvus, BM25 on the emulator
    pytest.param(Backend(record_store="postgres", servers=("postgres", "milvus_server", "es_emulator")),
                 id="production-emulated", marks=POSTGRES + EMULATOR),
    # the production form: records on PostgreSQL, vectors on Milvus, BM25 on Elasticsearch
    pytest.param(Backend(record_store="postgres", servers=("postgres", "milvus_server", "elasticsearch")),
                 id="production", marks=POSTGRES + NEEDS_ELASTICSEARCH),
]


@pytest.fixture(params=BACKENDS)
def open_shard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenShard]:
    opened: list[Shard] = []
    cfg = request.param.config(tmp_path, request)
    open_configured = _opener(cfg)

    def opener(*args: object, **kwargs: object) -> Shard:
        shard = open_configured(*args, **kwargs)
        opened.append(shard)
        return shard

    yield opener
    for shard in opened:
        try:
            shard.close()
        except Exception:
            pass
    if cfg.all_remote:  # every part of a shard on a server: nothing on local disk
        assert not cfg.data_dir.exists()
