"""After a memory is forgotten (or its namespace deleted, or its text replaced) and the next
checkpoint, no file of the shard's directory holds its text: the records (SQLite, its WAL
included), the vectors (Milvus Lite holds no text), the BM25 index (tantivy stores none).
The scan reads every byte of every file."""
from __future__ import annotations

import uuid
from pathlib import Path

from shards.config import EmbeddedStorageConfig
from shards.shard import Shard
from shards.types import MemoryChanges, RecallFilter, Scope
from tests.builders import DIM, files_holding, mem, vec


def secret(label: str) -> str:
    return f"{label}: the vault code is {uuid.uuid4().hex} behind the blue door"


def open_shard(tmp_path: Path) -> Shard:
    return Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path))


def test_a_forgotten_memory_leaves_no_text_after_the_checkpoint(tmp_path: Path) -> None:
    shard = open_shard(tmp_path)
    try:
        gone, kept = secret("forgotten"), secret("kept")
        shard.write([mem("a", "ns", gone, seed=1), mem("b", "ns", kept, seed=2)]
                    + [mem(f"filler{n}", "ns", f"an ordinary memory {n}", seed=n) for n in range(20)])
        shard.checkpoint()
        assert files_holding(tmp_path, gone)  # the scan does find stored text
        shard.delete(Scope.of("ns"), ["a"], "ns")
        shard.checkpoint()
        assert files_holding(tmp_path, gone) == []
        assert files_holding(tmp_path, kept)  # what was not forgotten is still there
    finally:
        shard.close()


def test_forgetting_by_filter_and_deleting_a_namespace_leave_no_text(tmp_path: Path) -> None:
    shard = open_shard(tmp_path)
    try:
        by_filter, in_namespace = secret("by filter"), secret("in a deleted namespace")
        shard.write([mem("t", "ns", by_filter, tags=("secret",)), mem("u", "ns", "stays")])
        shard.write([mem(f"d{n}", "doomed", f"{in_namespace} #{n}", seed=n) for n in range(5)])
        shard.checkpoint()
        shard.forget_matching("ns", RecallFilter(tags_any=("secret",)))
        shard.drop_namespace("doomed")
        shard.checkpoint()
        assert files_holding(tmp_path, by_filter) == []
        assert files_holding(tmp_path, in_namespace) == []
    finally:
        shard.close()


def test_replaced_text_leaves_no_trace(tmp_path: Path) -> None:
    shard = open_shard(tmp_path)
    try:
        old = secret("replaced")
        shard.write([mem("m", "ns", old)])
        shard.checkpoint()
        shard.update("ns", "m", MemoryChanges(content="nothing to see here", vector=vec(5)))
        shard.checkpoint()
        assert files_holding(tmp_path, old) == []
    finally:
        shard.close()


def test_nothing_deleted_comes_back_after_a_restart(tmp_path: Path) -> None:
    gone = secret("forgotten before a restart")
    shard = open_shard(tmp_path)
    shard.write([mem("a", "ns", gone), mem("b", "ns", "stays")])
    shard.delete(Scope.of("ns"), ["a"], "ns")
    shard.close()  # close checkpoints
    assert files_holding(tmp_path, gone) == []
    shard = open_shard(tmp_path)
    try:
        assert shard.lookup("a", Scope.of("ns")) == []
        assert files_holding(tmp_path, gone) == []
    finally:
        shard.close()
