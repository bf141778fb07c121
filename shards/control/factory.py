"""Picks the control store from the config: it lives beside the records."""
from __future__ import annotations

from shards.config import EmbeddedStorageConfig
from shards.control.base import ControlStore
from shards.control.sqlite import SQLiteControlStore
from shards.errors import LayoutMismatch


def open_control_store(storage: EmbeddedStorageConfig) -> ControlStore:
    """The control data beside the records: SQLite in data_dir, or on the PostgreSQL server
    when the records are there (storage.record_store)."""
    if storage.record_store == "sqlite":
        return SQLiteControlStore(storage.data_dir / "control.db")
    if (storage.data_dir / "control.db").exists():
        raise LayoutMismatch(
            f"{storage.data_dir} holds the control data (API keys, shard map) in SQLite, but "
            f"storage.record_store is {storage.record_store}: set record_store: sqlite back, or "
            "copy the data with `python -m cluster.migrate_records` and point data_dir elsewhere",
            "record_store")
    pg = storage.postgres
    assert pg is not None  # EmbeddedStorageConfig refuses postgres records without it
    from shards.control.postgres import PostgresControlStore

    return PostgresControlStore.from_config(pg)
