"""The Shard: one record store (the truth) and its vector and keyword indexes, split into one
module per job (core.py builds it; placement.py holds what every job shares)."""
from __future__ import annotations

from shards.records.base import RecordStore
from shards.records.factory import open_record_store
from shards.shard.core import Shard
from shards.shard.opening import shard_dir

__all__ = ["RecordStore", "Shard", "open_record_store", "shard_dir"]
