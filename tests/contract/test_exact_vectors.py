"""Exact search of small namespaces answers what the HNSW index answers, and never stale."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shards.config import EmbeddedStorageConfig
from shards.shard import Shard
from shards.types import MemoryChanges, RecallFilter, Scope
from tests.contract.conftest import DIM
from tests.contract.test_shard_contract import mem, vec

FILTERS = [
    RecallFilter(),
    RecallFilter(memory_types=("semantic",)),
    RecallFilter(since=1_700_000_050.0, until=1_700_000_150.0),
    RecallFilter(min_importance=0.6),
]


def exact_beside(tmp_path: Path, other: EmbeddedStorageConfig) -> Iterator[tuple[Shard, Shard]]:
    """The same 200 memories in a shard with exact search and in one configured otherwise."""
    exact = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path / "exact"))
    hnsw = Shard.open_embedded(0, 1, DIM, other)
    items = [mem(f"m{i}", f"ns{i % 3}", f"memory number {i}", seed=i,
                 memory_type="semantic" if i % 2 else "episodic", importance=(i % 10) / 10,
                 event_time=1_700_000_000.0 + i)
             for i in range(200)]
    for shard in (exact, hnsw):
        shard.write(items)
        shard.checkpoint()
    yield exact, hnsw
    exact.close()
    hnsw.close()


@pytest.fixture()
def shards(tmp_path: Path) -> Iterator[tuple[Shard, Shard]]:
    yield from exact_beside(tmp_path, EmbeddedStorageConfig(data_dir=tmp_path / "hnsw",
                                                            exact_search_max_rows=0))


def vector_channel(shard: Shard, ns: str, seed: int, flt: RecallFilter) -> list[tuple[str, float]]:
    found = shard.recall_candidates(ns, vec(seed), "", flt, 10, graph=False, session=False)
    ranked = sorted(found, key=lambda c: c.ranks["vector"])
    return [(c.memory.id, round(c.scores["vector"], 4)) for c in ranked]


@pytest.mark.parametrize("flt", FILTERS)
def test_exact_search_matches_hnsw(shards, flt: RecallFilter) -> None:  # type: ignore[no-untyped-def]
    exact, hnsw = shards
    for seed in (3, 50, 101):
        got = vector_channel(exact, "ns1", seed, flt)
        assert got, "a query with admitted rows finds them"
        assert [s for _, s in got] == [s for _, s in vector_channel(hnsw, "ns1", seed, flt)]


def test_exact_search_sees_every_write(shards) -> None:  # type: ignore[no-untyped-def]
    exact, _ = shards
    probe = vec(999)
    assert vector_channel(exact, "ns1", 999, RecallFilter())[0][0] != "new"  # now cached
    exact.write([mem("new", "ns1", "fresh memory", seed=999)])
    assert vector_channel(exact, "ns1", 999, RecallFilter())[0] == ("new", 1.0)
    exact.update("ns1", "new", MemoryChanges(content="moved", vector=vec(5)))
    assert vector_channel(exact, "ns1", 999, RecallFilter())[0][0] != "new"
    exact.delete(Scope.of("ns1"), ["m1"])
    assert "m1" not in dict(vector_channel(exact, "ns1", 1, RecallFilter()))
    exact.drop_namespace("ns1")
    assert exact.recall_candidates("ns1", probe, "", RecallFilter(), 10) == []


def test_a_store_from_before_namespace_vectors_is_filled_on_open(tmp_path: Path) -> None:
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shard = Shard.open_embedded(0, 1, DIM, cfg)
    shard.write([mem(f"m{i}", "ns", f"memory {i}", seed=i) for i in range(20)])
    before = vector_channel(shard, "ns", 7, RecallFilter())
    # As an older version left it: no namespace_vectors rows, no marker.
    shard.records._db.execute("DELETE FROM namespace_vectors")
    shard.records._db.execute("DELETE FROM meta WHERE key = 'namespace_vectors'")
    shard.close()
    reopened = Shard.open_embedded(0, 1, DIM, cfg)
    assert vector_channel(reopened, "ns", 7, RecallFilter()) == before
    reopened.close()
