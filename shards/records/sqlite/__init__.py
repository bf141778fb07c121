"""SQLite record store: the shard's source of truth for memories, sessions and namespaces,
embedded in the shard's directory. One mixin per job over one core (core.py), which holds
the connection, the lock and the transactions; schema.py holds the tables."""
from __future__ import annotations

from shards.records.sqlite.index_log import IndexLogMixin
from shards.records.sqlite.memories import MemoriesMixin
from shards.records.sqlite.moves import MovesMixin
from shards.records.sqlite.namespaces import NamespacesMixin
from shards.records.sqlite.outbox import OutboxMixin


class SQLiteRecordStore(MemoriesMixin, MovesMixin, NamespacesMixin, IndexLogMixin, OutboxMixin):
    """One shard's records. Thread-safe: one connection, one lock (the shard is one writer)."""


__all__ = ["SQLiteRecordStore"]
