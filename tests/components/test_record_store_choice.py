"""storage.record_store picks where records and control data live; data of the other kind
is refused, never silently left behind (cluster/migrate_records.py copies it, offline).
These refusals come before any connection, so no server is needed."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shards.config import ElasticsearchConfig, EmbeddedStorageConfig, PostgresConfig
from shards.control.factory import open_control_store
from shards.control.sqlite import SQLiteControlStore
from shards.errors import LayoutMismatch
from shards.shard import Shard

# Never contacted: every refusal below happens before a client connects.
UNREACHABLE = ElasticsearchConfig(url="http://127.0.0.1:9")
UNREACHABLE_PG = PostgresConfig(dsn="postgresql://engram@127.0.0.1:9/engram")


def test_elasticsearch_records_need_the_cluster_configured(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs storage.elasticsearch"):
        EmbeddedStorageConfig(data_dir=tmp_path, record_store="elasticsearch")


def test_postgres_records_need_the_server_configured(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs storage.postgres"):
        EmbeddedStorageConfig(data_dir=tmp_path, record_store="postgres")


@pytest.mark.parametrize("record_store", ["elasticsearch", "postgres"])
def test_sqlite_data_refuses_to_open_on_a_server(tmp_path: Path, record_store: str) -> None:
    Shard.open_embedded(0, 1, 8, EmbeddedStorageConfig(data_dir=tmp_path)).close()
    SQLiteControlStore(tmp_path / "control.db").close()
    switched = EmbeddedStorageConfig(data_dir=tmp_path, record_store=record_store,
                                     elasticsearch=UNREACHABLE, postgres=UNREACHABLE_PG)
    with pytest.raises(LayoutMismatch, match=f"record_store is {record_store}.*migrate_records"):
        Shard.open_embedded(0, 1, 8, switched)
    with pytest.raises(LayoutMismatch, match="migrate_records"):
        open_control_store(switched)
