"""Several replicas of one shard over the production form's shared parts (PostgreSQL records,
a Milvus server, BM25 on the Elasticsearch-API emulator or a real cluster): every write path
stays correct with replicas writing at once, and a store acknowledged by one replica is
recalled by any other. Each replica here is a Shard of its own, opened as a Serve replica
opens it, called as Serve calls it (call_at_epoch), from threads of its own."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shards.errors import NamespaceMoving, PlacementChanged
from shards.shard import Shard
from shards.shard import indexing
from shards.types import RecallFilter, Scope
from tests.builders import DIM, NEEDS_ELASTICSEARCH, mem, vec
from tests.contract.conftest import EMULATOR, POSTGRES, Backend

SHARED_BACKENDS = [
    pytest.param(Backend(record_store="postgres", servers=("postgres", "milvus_server", "es_emulator")),
                 id="production-emulated", marks=POSTGRES + EMULATOR),
    # HNSW on the Milvus server for every namespace, not the exact search of small ones
    pytest.param(Backend(record_store="postgres", servers=("postgres", "milvus_server", "es_emulator"),
                         settings=(("exact_search_max_rows", 0),)),
                 id="production-emulated-hnsw", marks=POSTGRES + EMULATOR),
    pytest.param(Backend(record_store="postgres", servers=("postgres", "milvus_server", "elasticsearch")),
                 id="production", marks=POSTGRES + NEEDS_ELASTICSEARCH),
]


@pytest.fixture(params=SHARED_BACKENDS)
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Shard, Shard]]:
    cfg = request.param.config(tmp_path, request)
    assert cfg.all_remote
    first = Shard.open_embedded(0, 1, DIM, cfg)
    second = Shard.open_embedded(0, 1, DIM, cfg)
    yield first, second
    for shard in (first, second):
        shard.close()


def call(shard: Shard, method: str, *args: Any, **kwargs: Any) -> Any:
    return shard.call_at_epoch(None, method, *args, **kwargs)


def recall(shard: Shard, ns: str, text: str | None, seed: int | None) -> list[str]:
    """The candidates' ids, best first by their better rank in the vector or BM25 channel."""
    found = call(shard, "recall_candidates", ns, None if seed is None else vec(seed), text or "",
                 RecallFilter(now=time.time()), 20, graph=False, session=False)
    return [c.memory.id for c in sorted(found, key=lambda c: (min(c.ranks.values()), c.memory.id))]


def stored_ids(shard: Shard, ns: str) -> list[str]:
    memories, total = call(shard, "listing", ns, RecallFilter(now=time.time()), 10_000, 0)
    assert total == len(memories)
    return [m.id for m in memories]


def test_two_replicas_storing_into_one_namespace_at_once_keep_each_memory_once(
        replicas: tuple[Shard, Shard]) -> None:
    # Each replica stores 150 memories in batches of 10, at once; 100 of them both store (a
    # client retrying through another replica): the same ids, or the same idempotency keys.
    ns = "tenant"
    plan = {0: range(0, 150), 1: range(50, 200)}
    errors: list[BaseException] = []

    def store(which: int) -> None:
        try:
            numbers = list(plan[which])
            for start in range(0, len(numbers), 10):
                batch = [mem(f"m{n}", ns, f"memory number {n} about topic{n}", seed=n) if n % 2 else
                         mem(f"generated-{which}-{n}", ns, f"memory number {n} about topic{n}", seed=n,
                             idempotency_key=f"k{n}")
                         for n in numbers[start:start + 10]]
                call(replicas[which], "write", batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=store, args=(which,)) for which in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    for shard in replicas:
        found = stored_ids(shard, ns)
        assert len(found) == len(set(found)) == 200  # every memory exactly once
        contents = {m.content for m in call(shard, "listing", ns, RecallFilter(now=time.time()),
                                             10_000, 0)[0]}
        assert contents == {f"memory number {n} about topic{n}" for n in range(200)}
    # Both replicas index what they wrote: each one finds any memory by meaning and by words.
    for n in (3, 60, 120, 199):
        for shard in replicas:
            for hits in (recall(shard, ns, f"topic{n}", seed=None), recall(shard, ns, None, seed=n)):
                assert hits and call(shard, "lookup", hits[0], Scope.of(ns))[0].content.endswith(f"topic{n}")


def test_a_store_acknowledged_by_one_replica_is_recalled_by_the_other(
        replicas: tuple[Shard, Shard]) -> None:
    writer, reader = replicas
    ns = "tenant"
    call(writer, "write", [mem(f"old{n}", ns, f"an older memory {n}", seed=n) for n in range(5)])
    # The reader has searched this namespace (its cached vectors, its index reads) before
    # the writer's next store.
    assert recall(reader, ns, "older memory", seed=1)
    for round_ in range(5):
        content = f"zebra{round_} crossing at the harbour"
        call(writer, "write", [mem(f"new{round_}", ns, content, seed=40 + round_)])
        assert recall(reader, ns, None, seed=40 + round_)[:1] == [f"new{round_}"]  # by meaning
        assert recall(reader, ns, f"zebra{round_}", seed=None) == [f"new{round_}"]  # by words
        # and a forget through the reader is gone from the writer's next recall
        call(reader, "delete", Scope.of(ns), [f"new{round_}"], ns)
        assert f"new{round_}" not in recall(writer, ns, f"zebra{round_}", seed=40 + round_)


def test_a_move_step_taken_through_one_replica_binds_the_other_at_once(
        replicas: tuple[Shard, Shard]) -> None:
    first, second = replicas
    ns = "tenant"
    call(second, "write", [mem("a", ns, "before the move")])
    assert call(first, "begin_copy", ns)
    call(second, "write", [mem("b", ns, "while it is copied")])  # copying: writes go on
    assert call(first, "freeze", ns) == 2
    with pytest.raises(NamespaceMoving):
        call(second, "write", [mem("c", ns, "while it is frozen")])
    assert sorted(stored_ids(second, ns)) == ["a", "b"]  # frozen: reads go on
    call(first, "handoff", ns)
    with pytest.raises(NamespaceMoving):
        call(second, "listing", ns, RecallFilter(now=time.time()), 10, 0)
    call(second, "thaw", ns)  # called off, through the other replica
    call(first, "write", [mem("c", ns, "after the move was called off")])
    assert sorted(stored_ids(second, ns)) == ["a", "b", "c"]


def test_no_write_through_one_replica_lands_after_a_freeze_through_the_other(
        replicas: tuple[Shard, Shard]) -> None:
    # The race a single writer cannot have: the writing replica checked the namespace
    # before the freeze committed, and writes after it. Its write must then be refused, or
    # the copy would miss it: every acknowledged store is counted in the frozen size.
    first, second = replicas
    ns = "tenant"
    call(second, "write", [mem("seed", ns, "the first memory")])
    acknowledged = ["seed"]
    refused = threading.Event()
    stop = threading.Event()

    def keep_storing() -> None:
        n = 0
        while not stop.is_set():
            try:
                call(second, "write", [mem(f"w{n}", ns, f"written while freezing {n}")])
                acknowledged.append(f"w{n}")
            except (NamespaceMoving, PlacementChanged):
                refused.set()
            n += 1

    writer = threading.Thread(target=keep_storing)
    writer.start()
    time.sleep(1.0)
    frozen_size = call(first, "freeze", ns)
    time.sleep(1.0)
    stop.set()
    writer.join(60)
    assert refused.is_set()
    assert frozen_size == len(acknowledged)
    assert sorted(stored_ids(first, ns)) == sorted(acknowledged)


def test_entries_a_dead_replica_left_are_indexed_by_another(
        replicas: tuple[Shard, Shard], monkeypatch: pytest.MonkeyPatch) -> None:
    dead, alive = replicas
    ns = "tenant"
    call(alive, "write", [mem("live", ns, "an ordinary memory", seed=1)])
    # The dead replica committed its store, then died before indexing it.
    dead.records.insert([mem("orphan", ns, "quokka sightings on the island", seed=7)], time.time())
    call(alive, "checkpoint")  # within the grace period: its writer may still be indexing it
    assert recall(alive, ns, "quokka", seed=None) == []
    monkeypatch.setattr(indexing, "UNABSORBED_GRACE_S", 0.0)
    call(alive, "checkpoint")
    assert recall(alive, ns, "quokka", seed=None) == ["orphan"]
    assert recall(alive, ns, None, seed=7)[:1] == ["orphan"]
    assert alive.records.counts()[3] == 0  # the index log is empty


def test_access_counts_from_both_replicas_add_up(replicas: tuple[Shard, Shard]) -> None:
    first, second = replicas
    ns = "tenant"
    call(first, "write", [mem("m", ns, "a memory recalled often")])
    for _ in range(3):
        call(first, "record_access", ns, ["m"])
        call(second, "record_access", ns, ["m"])
    call(first, "checkpoint")
    call(second, "checkpoint")
    assert call(first, "lookup", "m", Scope.of(ns))[0].access_count == 6


def test_a_session_started_through_one_replica_takes_turns_through_the_other(
        replicas: tuple[Shard, Shard]) -> None:
    first, second = replicas
    ns = "tenant"
    call(first, "start_session", ns, "s1", {})
    call(second, "write", [mem("t1", ns, "first turn", session_id="s1")])
    call(first, "write", [mem("t2", ns, "second turn", session_id="s1")])
    call(second, "end_session", "s1", Scope.of(ns))
    session = call(first, "get_session", "s1", Scope.of(ns))
    assert session is not None and session.ended_at is not None
    assert sorted(stored_ids(first, ns)) == ["t1", "t2"]


def test_a_retry_of_a_store_a_dead_replica_committed_is_recallable_when_acknowledged(
        replicas: tuple[Shard, Shard]) -> None:
    dead, alive = replicas
    ns = "tenant"
    call(alive, "write", [mem("live", ns, "an ordinary memory", seed=1)])
    assert recall(alive, ns, None, seed=1) == ["live"]  # its cached vectors and index reads
    item = mem("x", ns, "wombat burrows under the fence", seed=9, idempotency_key="k1")
    dead.records.insert([item], time.time())  # committed; the replica died before indexing
    (memory, created), = call(alive, "write", [item]).memories  # the client's retry
    assert not created and memory.id == "x"
    assert recall(alive, ns, "wombat", seed=None) == ["x"]
    assert recall(alive, ns, None, seed=9)[:1] == ["x"]
