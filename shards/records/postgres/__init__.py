"""PostgreSQL record store: a shard's source of truth in one schema of a PostgreSQL server
(the production form). One mixin per job over one core (core.py), which holds the pool, the
transactions and the write lock; schema.py holds the tables, as versioned migrations."""
from __future__ import annotations

from shards.records.postgres.index_log import IndexLogMixin
from shards.records.postgres.memories import MemoriesMixin
from shards.records.postgres.moves import MovesMixin
from shards.records.postgres.namespaces import NamespacesMixin
from shards.records.postgres.outbox import OutboxMixin
from shards.records.postgres.replicas import ReplicasMixin


class PostgresRecordStore(MemoriesMixin, MovesMixin, NamespacesMixin, IndexLogMixin, ReplicasMixin,
                          OutboxMixin):
    """One shard's records. Thread-safe, and safe with several replicas writing at once:
    writers of a shard serialize on its advisory lock, readers never wait (core.py); what
    they share to keep no unchecked state of their own is in replicas.py."""


__all__ = ["PostgresRecordStore"]
