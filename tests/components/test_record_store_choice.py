"""storage.record_store picks where records and control data live; data of the other kind
is refused, never silently left behind (cluster/migrate_records.py copies it, offline).
These refusals come before any connection, so no server is needed."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shards.config import EmbeddedStorageConfig, PostgresConfig
from shards.control.factory import open_control_store
from shards.control.sqlite import SQLiteControlStore
from shards.errors import LayoutMismatch
from shards.shard import Shard

# Never contacted: every refusal below happens before a client connects.
UNREACHABLE_PG = PostgresConfig(dsn="postgresql://engram@127.0.0.1:9/engram")


def test_postgres_records_need_the_server_configured(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs storage.postgres"):
        EmbeddedStorageConfig(data_dir=tmp_path, record_store="postgres")


def test_records_never_live_on_elasticsearch(tmp_path: Path) -> None:
    # BM25 only since PostgreSQL took the records: an old config is refused, naming the field.
    with pytest.raises(ValidationError, match="record_store"):
        EmbeddedStorageConfig(data_dir=tmp_path, record_store="elasticsearch")  # type: ignore[arg-type]


def test_sqlite_data_refuses_to_open_on_a_server(tmp_path: Path) -> None:
    Shard.open_embedded(0, 1, 8, EmbeddedStorageConfig(data_dir=tmp_path)).close()
    SQLiteControlStore(tmp_path / "control.db").close()
    switched = EmbeddedStorageConfig(data_dir=tmp_path, record_store="postgres", postgres=UNREACHABLE_PG)
    with pytest.raises(LayoutMismatch, match="record_store is postgres.*migrate_records"):
        Shard.open_embedded(0, 1, 8, switched)
    with pytest.raises(LayoutMismatch, match="migrate_records"):
        open_control_store(switched)
