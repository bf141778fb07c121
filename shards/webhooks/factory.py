"""Picks the webhook store from the config: beside the control data."""
from __future__ import annotations

from shards.config import EmbeddedStorageConfig
from shards.webhooks.base import WebhookStore


def open_webhook_store(storage: EmbeddedStorageConfig) -> WebhookStore:
    """webhooks.db in data_dir (SQLite records), or the control schema on the PostgreSQL
    server (PostgreSQL records), as the control store is chosen (shards/control/factory.py)."""
    if storage.record_store == "sqlite":
        from shards.webhooks.sqlite import SQLiteWebhookStore

        return SQLiteWebhookStore(storage.data_dir / "webhooks.db")
    assert storage.postgres is not None  # EmbeddedStorageConfig refuses postgres records without it
    from shards.webhooks.postgres import PostgresWebhookStore

    return PostgresWebhookStore.from_config(storage.postgres)
