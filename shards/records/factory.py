"""Picks the record store from the config (storage.record_store); a backend that needs a
server is imported only when configured."""
from __future__ import annotations

from pathlib import Path

from shards.config import EmbeddedStorageConfig
from shards.errors import LayoutMismatch
from shards.records.base import RecordStore
from shards.records.sqlite import SQLiteRecordStore


def open_record_store(cfg: EmbeddedStorageConfig, root: Path, index: int) -> RecordStore:
    """SQLite in the shard's directory, or the shard's schema on PostgreSQL."""
    if cfg.record_store == "sqlite":
        return SQLiteRecordStore(root / "records.db", synchronous=cfg.sqlite_synchronous)
    if (root / "records.db").exists():
        raise LayoutMismatch(
            f"{root} holds this shard's records in SQLite, but storage.record_store is "
            f"{cfg.record_store}: set record_store: sqlite back, or copy the records with "
            "`python -m cluster.migrate_records` and point data_dir elsewhere", "record_store")
    assert cfg.postgres is not None  # EmbeddedStorageConfig refuses postgres records without it
    from shards.records.postgres import PostgresRecordStore

    return PostgresRecordStore(cfg.postgres, index)
