"""What only the Milvus server backend has: its configuration, its probes of what the server
gets wrong, read-your-writes on a server, and a collection bound to its record store."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from shards.config import EmbeddedStorageConfig, MilvusServerConfig
from shards.errors import LayoutMismatch, StorageUnavailable
from shards.indexes.base import IndexFilter, IndexRow
from shards.indexes.milvus import MilvusServerVectorIndex, entities, server_version
from shards.shard import Shard
from shards.types import RecallFilter, Scope
from tests.builders import DIM, FILTERS, exact_beside, free_port, ids, mem, vec, vector_channel


def row(key: int, ns_id: int = 1, seed: int | None = None) -> IndexRow:
    return IndexRow(key=key, ns_id=ns_id, vector=vec(key if seed is None else seed), content="",
                    memory_type=0, session_key=0, event_time=0.0, importance=0.5)


def keys(index: MilvusServerVectorIndex, seed: int, ns_id: int = 1) -> list[int]:
    return [h.key for h in index.search(vec(seed), IndexFilter(ns_id=ns_id), 5)]


def test_config_defaults_work_and_name_the_token_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = EmbeddedStorageConfig.model_validate({"milvus_server": {}})
    assert cfg.milvus_server is not None and cfg.milvus_server.consistency_level == "Session"
    monkeypatch.setenv("MY_MILVUS_TOKEN", "root:secret")
    assert MilvusServerConfig(token_env="MY_MILVUS_TOKEN").token() == "root:secret"
    with pytest.raises(ValidationError):
        MilvusServerConfig(token="root:secret")  # type: ignore[call-arg]  # never the secret itself
    with pytest.raises(ValidationError):
        MilvusServerConfig(collection_prefix="bad-prefix")
    assert server_version("v2.3.5-lite") == (2, 3, 5) and server_version("master-abc") is None


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    cfg = EmbeddedStorageConfig(data_dir=tmp_path, milvus_server=MilvusServerConfig(uri=uri))
    with pytest.raises(StorageUnavailable, match=f"Milvus server at {uri}.*storage.milvus_server"):
        Shard.open_embedded(0, 1, DIM, cfg)
    Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path)).close()  # records freed


def test_a_missing_database_is_named(milvus_server: MilvusServerConfig) -> None:
    cfg = milvus_server.model_copy(update={"db_name": "no_such_db"})
    with pytest.raises(StorageUnavailable, match="database 'no_such_db'.*db_name"):
        MilvusServerVectorIndex(cfg, f"{cfg.collection_prefix}x", DIM, owner="test")


@pytest.fixture(params=["Session", "Strong", "Session-without-AllocTimestamp"])
def index(request: pytest.FixtureRequest, milvus_server: MilvusServerConfig,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[MilvusServerVectorIndex]:
    level = "Strong" if request.param == "Strong" else "Session"
    if request.param.endswith("without-AllocTimestamp"):  # as pymilvus answers for an old server
        monkeypatch.setattr(MilvusServerVectorIndex, "_allocate_timestamp", lambda self: 0)
    cfg = milvus_server.model_copy(update={"consistency_level": level})
    opened = MilvusServerVectorIndex(cfg, f"{cfg.collection_prefix}index", DIM, owner="test")
    assert opened.session_reads == (request.param == "Session")
    yield opened
    opened.close()


def test_reads_see_every_write_and_delete_at_once(index: MilvusServerVectorIndex) -> None:
    for key in range(1, 6):
        index.upsert([row(key)])
        assert keys(index, key)[0] == key and index.count() == 1
        index.upsert([row(key, seed=key + 100)])  # replaced, not added
        assert keys(index, key + 100)[0] == key and index.count() == 1
        index.delete([key])
        assert key not in keys(index, key + 100) and index.count() == 0


def test_replaced_rows_are_found_by_namespace(milvus_server: MilvusServerConfig) -> None:
    """Why the index never upserts on a server: Milvus 2.3.5 files an upserted row under its
    primary key's partition, not its namespace's, so a search by namespace misses most such
    rows. The index's replace (delete + insert) does not."""
    index = MilvusServerVectorIndex(milvus_server, f"{milvus_server.collection_prefix}p", DIM,
                                    owner="test")
    client = index._client
    client.upsert(index.collection, entities([row(k, ns_id=3) for k in range(100, 120)]))
    if server_version(client.get_server_version()) == (2, 3, 5):
        assert index.count() == 20 and len(keys(index, 100, ns_id=3)) < 5
    index.upsert([row(k, ns_id=3) for k in range(100, 120)])
    index.upsert([row(100, ns_id=3, seed=8)])
    assert keys(index, 8, ns_id=3)[0] == 100 and index.count() == 20
    index.close()


def test_a_new_process_reads_what_the_last_one_wrote(milvus_server: MilvusServerConfig) -> None:
    name = f"{milvus_server.collection_prefix}restart"
    first = MilvusServerVectorIndex(milvus_server, name, DIM, owner="test")
    first.upsert([row(k) for k in range(1, 30)])
    first.delete([5])
    first._client.close()  # gone without a flush or a close, as a killed process would be
    second = MilvusServerVectorIndex(milvus_server, name, DIM, owner="test")
    assert second.count() == 28 and keys(second, 9)[0] == 9 and 5 not in keys(second, 5)
    second.close()


def test_a_collection_of_another_record_store_is_refused(tmp_path: Path,
                                                         milvus_server: MilvusServerConfig) -> None:
    def cfg(data: str) -> EmbeddedStorageConfig:
        return EmbeddedStorageConfig(data_dir=tmp_path / data, milvus_server=milvus_server)

    shard = Shard.open_embedded(0, 1, DIM, cfg("a"))
    shard.write([mem("m1", "ns", "indexed for store a", seed=1)])
    shard.close()
    with pytest.raises(LayoutMismatch, match="another record store.*collection_prefix"):
        Shard.open_embedded(0, 1, DIM, cfg("b"))  # a fresh data directory, the same prefix
    Shard.open_embedded(0, 1, DIM, cfg("a")).close()  # its own store still opens


@pytest.fixture()
def exact_and_server(tmp_path: Path, milvus_server: MilvusServerConfig) -> Iterator[tuple[Shard, Shard]]:
    yield from exact_beside(tmp_path, EmbeddedStorageConfig(
        data_dir=tmp_path / "server", exact_search_max_rows=0, milvus_server=milvus_server))


def test_server_hnsw_matches_exact_search(exact_and_server: tuple[Shard, Shard]) -> None:
    exact, server = exact_and_server
    for flt in FILTERS:
        for seed in (3, 50, 101):
            got = vector_channel(exact, "ns1", seed, flt)
            assert got and [s for _, s in got] == [s for _, s in vector_channel(server, "ns1", seed, flt)]


SERVER_CRASH_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
from shards.config import EmbeddedStorageConfig
from shards.shard import Shard
from shards.types import Scope
from tests.builders import mem
shard = Shard.open_embedded(0, 1, {dim}, EmbeddedStorageConfig.model_validate_json({cfg!r}))
for i in range(20):
    shard.write([mem("w%d" % i, "ns", "acknowledged %d" % i, seed=i)])
shard.delete(Scope.of("ns"), ["w3"])
os._exit(0)  # no close, no checkpoint: as if the process were killed
"""


def test_a_crash_loses_nothing_acknowledged_on_the_server(tmp_path: Path,
                                                          milvus_server: MilvusServerConfig) -> None:
    cfg = EmbeddedStorageConfig(data_dir=tmp_path, exact_search_max_rows=0, milvus_server=milvus_server)
    root = str(Path(__file__).resolve().parents[2])
    script = SERVER_CRASH_SCRIPT.format(root=root, dim=DIM, cfg=cfg.model_dump_json())
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root)
    shard = Shard.open_embedded(0, 1, DIM, cfg)
    try:
        found = shard.recall_candidates("ns", vec(0), "", RecallFilter(), 100, graph=False, session=False)
        assert sorted(ids(found)) == sorted(f"w{i}" for i in range(20) if i != 3)
        assert shard.vectors.count() == 19 and shard.lookup("w3", Scope.of("ns")) == []
    finally:
        shard.close()
