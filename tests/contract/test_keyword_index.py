"""The keyword (BM25) index contract: tantivy; Elasticsearch's API on an emulator; and
Elasticsearch itself where ENGRAM_ES_URL points at a cluster.

No Elasticsearch server can be installed on the development machines. The emulator rows
run everywhere against noida-db (cluster/local_servers/es_emulator.py), which speaks
Elasticsearch's API but is not Elasticsearch: they show that our requests, mappings and
queries are accepted and answered as the API documents, not Lucene's scoring, refresh timing
or behaviour under load.
The Elasticsearch rows are skipped, saying so, where no cluster is configured; CI with one
sets ENGRAM_ES_URL (and, if it needs one, ENGRAM_ES_API_KEY) and runs the same assertions.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shards.indexes.base import IndexFilter, IndexRow, memory_type_code
from tests.builders import ES_URL, NEEDS_ELASTICSEARCH

ES_ROWS = [pytest.param("es-emulator", marks=pytest.mark.emulator),
           pytest.param("elasticsearch", marks=NEEDS_ELASTICSEARCH)]


def es_client(kind: str, request: pytest.FixtureRequest) -> Any:
    """A client of the emulator or of ENGRAM_ES_URL's cluster."""
    from shards.es_client import connect

    if kind == "es-emulator":
        return connect(request.getfixturevalue("es_emulator_url"), None)
    return connect(str(ES_URL), os.environ.get("ENGRAM_ES_API_KEY"), ca_certs=os.environ.get("ENGRAM_ES_CA_CERTS"))


@pytest.fixture(params=["tantivy", *ES_ROWS])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "tantivy":
        from shards.indexes.tantivy import TantivyKeywordIndex

        idx: Any = TantivyKeywordIndex(tmp_path / "keywords")
        yield idx
        idx.close()
        return
    from shards.indexes.elasticsearch import ElasticsearchKeywordIndex

    client = es_client(request.param, request)
    name = f"engram_test_{uuid.uuid4().hex[:12]}"
    idx = ElasticsearchKeywordIndex(client, name, replicas=0)
    try:
        yield idx
    finally:
        idx.close()
        cleaner = es_client(request.param, request)
        cleaner.indices.delete(index=name)
        cleaner.close()


def row(key: int, content: str, ns_id: int = 1, *, context: str = "", memory_type: str = "episodic",
        session_key: int = 0) -> IndexRow:
    return IndexRow(key=key, ns_id=ns_id, vector=(), content=content, memory_type=memory_type_code(memory_type),
                    session_key=session_key, event_time=0.0, importance=0.5, context=context)


def keys(index: Any, text: str, **flt: Any) -> list[int]:
    return [h.key for h in index.search(text, IndexFilter(**{"ns_id": 1, **flt}), 10)]


def test_reads_its_own_writes_scoped_by_namespace(index: Any) -> None:
    index.upsert([row(1, "the espresso machine leaks"), row(2, "espresso beans ordered", ns_id=2)])
    assert keys(index, "espresso") == [1]
    assert keys(index, "espresso", ns_id=2) == [2]
    assert index.count() == 2


def test_stems_and_drops_function_words(index: Any) -> None:
    index.upsert([row(1, "She was running marathons in Boston"), row(2, "the weather was fine")])
    assert keys(index, "what marathon did she run") == [1]


def test_filters_narrow_without_scoring(index: Any) -> None:
    index.upsert([row(1, "refund approved", memory_type="semantic", session_key=7),
                  row(2, "refund denied", memory_type="episodic", session_key=8)])
    assert keys(index, "refund", memory_types=(memory_type_code("semantic"),)) == [1]
    assert keys(index, "refund", session_key=8) == [2]


def test_context_counts_less_than_the_memory_itself(index: Any) -> None:
    index.upsert([row(1, "thanks, that helps", context="the harbour regatta"),
                  row(2, "the regatta at the harbour was great")])
    assert keys(index, "regatta harbour") == [2, 1]


def test_upsert_replaces_and_delete_removes(index: Any) -> None:
    index.upsert([row(1, "blue bicycle")])
    index.upsert([row(1, "red scooter")])
    assert keys(index, "bicycle") == [] and keys(index, "scooter") == [1]
    assert index.count() == 1
    index.delete([1, 99])  # a key that was never indexed is no error
    assert keys(index, "scooter") == [] and index.count() == 0


@pytest.mark.parametrize("text", ['acme" OR 1==1', "content:foo AND (bar", "*", "~!@#$%^&()[]{}"])
def test_query_syntax_is_only_words(index: Any, text: str) -> None:
    index.upsert([row(1, "acme content foo bar")])
    index.search(text, IndexFilter(ns_id=1), 10)  # no error, whatever it finds


def test_clear_empties_it(index: Any) -> None:
    index.upsert([row(k, f"memory number {k}") for k in range(1, 6)])
    index.clear()
    assert index.count() == 0 and keys(index, "memory") == []


@pytest.mark.parametrize("kind", ES_ROWS)
def test_an_existing_index_reopens_for_its_store_only(kind: str, request: pytest.FixtureRequest) -> None:
    from shards.errors import LayoutMismatch
    from shards.indexes.elasticsearch import ElasticsearchKeywordIndex

    client = es_client(kind, request)
    name = f"engram_test_{uuid.uuid4().hex[:12]}"
    try:
        first = ElasticsearchKeywordIndex(client, name, owner="store-a", replicas=0)
        assert first.recreated
        first.upsert([row(1, "kept across reopening")])
        first.flush()
        again = ElasticsearchKeywordIndex(client, name, owner="store-a", replicas=0)
        assert not again.recreated and keys(again, "reopening") == [1]
        with pytest.raises(LayoutMismatch):
            ElasticsearchKeywordIndex(client, name, owner="store-b", replicas=0)
    finally:
        client.indices.delete(index=name)
        client.close()
