"""Exact search of small namespaces answers what the HNSW index answers, and never stale."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shards.config import EmbeddedStorageConfig, PostgresConfig
from shards.shard import Shard
from shards.types import MemoryChanges, RecallFilter, Scope
from tests.builders import DIM, FILTERS, exact_beside, mem, vec, vector_channel


@pytest.fixture()
def shards(tmp_path: Path) -> Iterator[tuple[Shard, Shard]]:
    yield from exact_beside(tmp_path, EmbeddedStorageConfig(data_dir=tmp_path / "hnsw",
                                                            exact_search_max_rows=0))


@pytest.mark.parametrize("flt", FILTERS)
def test_exact_search_matches_hnsw(shards, flt: RecallFilter) -> None:  # type: ignore[no-untyped-def]
    exact, hnsw = shards
    for seed in (3, 50, 101):
        got = vector_channel(exact, "ns1", seed, flt)
        assert got, "a query with admitted rows finds them"
        assert [s for _, s in got] == [s for _, s in vector_channel(hnsw, "ns1", seed, flt)]


@pytest.fixture()
def exact_on_postgres(tmp_path: Path, postgres: PostgresConfig) -> Iterator[tuple[Shard, Shard]]:
    """Exact search over SQLite records beside exact search over PostgreSQL records."""
    yield from exact_beside(tmp_path, EmbeddedStorageConfig(
        data_dir=tmp_path / "postgres", record_store="postgres", postgres=postgres))


@pytest.mark.postgres
@pytest.mark.parametrize("flt", FILTERS)
def test_exact_search_over_postgres_records_answers_as_over_sqlite(exact_on_postgres, flt: RecallFilter) -> None:  # type: ignore[no-untyped-def]
    on_sqlite, on_postgres = exact_on_postgres
    for seed in (3, 50, 101):
        got = vector_channel(on_postgres, "ns1", seed, flt)
        assert got and got == vector_channel(on_sqlite, "ns1", seed, flt)


@pytest.mark.parametrize("records", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_exact_search_sees_every_write(request: pytest.FixtureRequest, records: str) -> None:
    if records == "sqlite":
        exact, _ = request.getfixturevalue("shards")
    else:
        _, exact = request.getfixturevalue("exact_on_postgres")
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


# -- sentence vectors -------------------------------------------------------------------
def sentence_shard(tmp_path: Path, exact_search_max_rows: int) -> Shard:
    """Memories m0..m9, each its own vector; m7 also holds the sentence vectors vec(509) and
    vec(510), both far from every memory's own vector (DIM is small: seeds chosen so)."""
    shard = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(
        data_dir=tmp_path / f"s{exact_search_max_rows}", exact_search_max_rows=exact_search_max_rows))
    shard.write([mem(f"m{i}", "ns", f"memory {i}. it has two sentences.", seed=i,
                     sentence_vectors=(vec(509), vec(510)) if i == 7 else ())
                 for i in range(10)])
    return shard


@pytest.mark.parametrize("search", ["exact", "hnsw"])
def test_a_memory_is_found_by_its_best_sentence(tmp_path: Path, search: str) -> None:
    shard = sentence_shard(tmp_path, 20_000 if search == "exact" else 0)
    query = vec(509)
    got = vector_channel(shard, "ns", 509, RecallFilter())
    assert got[0][0] == "m7"
    # 0.3·cos(whole) + 0.7·max(cos(whole), cos(best sentence)), the sentence being the query
    whole = sum(a * b for a, b in zip(vec(7), query))
    assert got[0][1] == pytest.approx(0.3 * whole + 0.7 * 1.0, abs=1e-4)
    # A query for the whole still finds it first, at full score.
    assert vector_channel(shard, "ns", 7, RecallFilter())[0] == ("m7", 1.0)
    shard.close()


def test_exact_and_hnsw_agree_with_sentence_vectors(tmp_path: Path) -> None:
    exact, hnsw = sentence_shard(tmp_path, 20_000), sentence_shard(tmp_path, 0)
    for seed in (509, 510, 3, 7):
        assert vector_channel(exact, "ns", seed, RecallFilter()) == vector_channel(hnsw, "ns", seed, RecallFilter())
    exact.close()
    hnsw.close()


def test_sentence_vectors_follow_content_and_survive_a_reopen(tmp_path: Path) -> None:
    shard = sentence_shard(tmp_path, 20_000)
    # A new content brings its own sentences; the old ones go with the old content.
    shard.update("ns", "m7", MemoryChanges(content="other. words here.", vector=vec(7),
                                           sentence_vectors=(vec(520),)))
    assert vector_channel(shard, "ns", 509, RecallFilter())[0][0] != "m7"
    assert vector_channel(shard, "ns", 520, RecallFilter())[0][0] == "m7"
    # A change that is not content keeps them.
    shard.update("ns", "m7", MemoryChanges(importance=0.9))
    before = vector_channel(shard, "ns", 520, RecallFilter())
    assert before[0][0] == "m7"
    shard.close()
    reopened = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path / "s20000"))
    assert vector_channel(reopened, "ns", 520, RecallFilter()) == before
    reopened.close()
