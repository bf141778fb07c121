"""Moving a namespace between two shards, step by step, as cluster/reshard.py drives it:
what each step allows, that everything travels, and that every step can run again."""
from __future__ import annotations

import asyncio

import pytest

from cluster.namespace_copy import NamespaceCopy
from serve.clients import LocalShardClient
from serve.shard_calls import ShardCalls

from shards.errors import Conflict, NamespaceMoved, NamespaceMoving
from shards.routing import shard_for
from shards.shard import Shard
from shards.types import EntityRef, MemoryChanges, RecallFilter, Scope
from tests.builders import OpenShard, ids, mem, vec

# Under 1 shard everything lives on shard 0; under 2, these move to shard 1 or stay.
MOVING = next(f"agent-{i}" for i in range(100) if shard_for(f"agent-{i}", 2) == 1)
STAYING = next(f"agent-{i}" for i in range(100) if shard_for(f"agent-{i}", 2) == 0)
NEW_THERE = next(f"new-{i}" for i in range(100) if shard_for(f"new-{i}", 2) == 1)


def order(n: int) -> EntityRef:
    return EntityRef(key=f"order:{n}", type="order", value=f"#{n}", score=1.0)


def fill(source: Shard) -> None:
    source.start_session(MOVING, "sess-1", {"channel": "chat"}, now=100.0)
    source.write([
        mem("m1", MOVING, "customer reported order #4521 arrived cracked", seed=1,
            session_id="sess-1", entities=(order(4521),), idempotency_key="idem-1"),
        mem("m2", MOVING, "refund approved for #4521", seed=2, session_id="sess-1",
            entities=(order(4521),)),
    ] + [mem(f"f{i}", MOVING, f"filler note {i} about the weather", seed=10 + i) for i in range(5)],
        now=200.0)
    source.write([mem("s1", STAYING, "this agent stays on shard 0", seed=3)])
    source.record_access(MOVING, ["m1"])
    source.checkpoint()


def job_copy(source: Shard, dest: Shard, page: int) -> NamespaceCopy:
    """The resharding job's own copy sequence (cluster/namespace_copy.py), over these shards."""
    return NamespaceCopy(ShardCalls(LocalShardClient(source)), ShardCalls(LocalShardClient(dest)),
                         MOVING, page)


def copy(source: Shard, dest: Shard, page: int = 3, replace_live: bool = False) -> int | None:
    """Freeze, then carry the head and every page over, as the job does."""
    moving = job_copy(source, dest, page)
    expected = asyncio.run(moving.freeze())
    asyncio.run(moving.copy_pages(replace_live))
    return expected


def test_a_namespace_moves_whole(open_shard: OpenShard) -> None:
    source, dest = open_shard(index=0), open_shard(index=1)
    fill(source)
    before = source.recall_candidates(MOVING, vec(1), "order 4521", RecallFilter(), 10)
    for shard in (source, dest):
        shard.set_routing(1, 2)

    expected = copy(source, dest)
    assert expected == 7
    # Frozen: reads go on, writes wait; the copy is invisible and serves nothing yet.
    assert ids(source.recall_candidates(MOVING, vec(1), "order", RecallFilter(), 10))
    with pytest.raises(NamespaceMoving):
        source.write([mem("late", MOVING, "too late", seed=4)])
    with pytest.raises(NamespaceMoving):
        dest.recall_candidates(MOVING, vec(1), "order", RecallFilter(), 10)
    assert MOVING not in {n.name for n in dest.namespaces(Scope(everything=True))}
    # New namespaces go straight to their new home during the reshard.
    with pytest.raises(NamespaceMoved):
        source.ensure_namespace(NEW_THERE)
    assert dest.ensure_namespace(NEW_THERE)

    source.handoff(MOVING)
    with pytest.raises(NamespaceMoving):
        source.recall_candidates(MOVING, vec(1), "order", RecallFilter(), 10)
    with pytest.raises(Conflict, match="holds 7 of 8"):
        dest.activate(MOVING, 8)
    dest.activate(MOVING, expected)
    assert source.release(MOVING) == 7
    assert source.release(MOVING) == 0 and dest.activate(MOVING, expected) is None  # again: no-op

    # A stale router reaching the old shard is told to look again, for reads and writes.
    with pytest.raises(NamespaceMoved):
        source.recall_candidates(MOVING, vec(1), "order", RecallFilter(), 10)
    with pytest.raises(NamespaceMoved):
        source.write([mem("late", MOVING, "too late", seed=4)])
    assert source.lookup("m1", Scope(everything=True)) == []

    # Everything travelled: memories (times, access counts), ranking, session, graph, keys.
    after = dest.recall_candidates(MOVING, vec(1), "order 4521", RecallFilter(), 10)
    assert ids(after) == ids(before)
    [m1] = dest.lookup("m1", Scope.of(MOVING))
    assert (m1.created_at, m1.access_count, m1.session_id) == (200.0, 1, "sess-1")
    session = dest.get_session("sess-1", Scope.of(MOVING))
    assert session is not None and session.memory_count == 2 and session.metadata == {"channel": "chat"}
    nodes, _ = dest.memory_graph("m1", Scope.of(MOVING), depth=1)  # type: ignore[misc]
    assert {n.memory.id for n in nodes} == {"m1", "m2"}
    assert [e.key for e in dest.memory_entities("m1", Scope.of(MOVING))[1]] == ["order:4521"]  # type: ignore[index]
    [(retry, created)] = dest.write([mem("other-id", MOVING, m1.content, seed=1, idempotency_key="idem-1")]).memories
    assert retry.id == "m1" and not created
    assert ids(dest.recall_candidates(MOVING, vec(30), "weather", RecallFilter(), 10))
    # The staying agent never moved.
    assert ids(source.recall_candidates(STAYING, vec(3), "stays", RecallFilter(), 10)) == ["s1"]


def everything(shard: Shard) -> tuple[object, ...]:
    """A namespace's whole state as one shard serves it: memories with every field, their
    entity links, its sessions."""
    memories, _ = shard.listing(MOVING, RecallFilter(), 1000, 0)
    links = {m.id: shard.memory_entities(m.id, Scope.of(MOVING))[1] for m in memories}  # type: ignore[index]
    sessions = shard.sessions(MOVING, False, 100, 0)
    return sorted(memories, key=lambda m: m.id), links, sorted(sessions, key=lambda x: x.id)


def copy_live(source: Shard, dest: Shard, page: int) -> None:
    """Begin a live copy (again, if begun before) and carry every page over, as the job does."""
    assert source.begin_copy(MOVING)
    asyncio.run(job_copy(source, dest, page).copy_pages(replace_live=True))


def drain(source: Shard, dest: Shard, seq: int) -> tuple[int, set[str]]:
    """Carry the changes logged after `seq` over, two per page, as the job does: the seq
    reached and the ids carried."""
    carried: set[str] = set()
    while True:
        rows, deleted, seq = source.export_changes(MOVING, seq, 2)
        dest.import_changes(MOVING, rows, deleted)
        carried |= {r[0] for r in rows} | set(deleted)
        if len(rows) + len(deleted) < 2:
            return seq, carried


def test_a_namespace_takes_writes_while_it_is_copied(open_shard: OpenShard) -> None:
    """A live copy: the namespace is written, changed and read between the pages; the
    freeze waits only for the catch-up, and the copy ends equal to the source."""
    source, dest = open_shard(index=0), open_shard(index=1)
    fill(source)
    for shard in (source, dest):
        shard.set_routing(1, 2)
    assert source.begin_copy(MOVING)
    dest.import_head(source.export_head(MOVING), True)
    rows, cursor = source.export_memories(MOVING, 0, 3)  # m1, m2, f0 travel first
    dest.import_memories(MOVING, rows)

    source.start_session(MOVING, "sess-2", {"channel": "mail"})
    source.write([mem("late", MOVING, "order #9999 arrived late", seed=20, session_id="sess-2",
                      entities=(order(9999),), idempotency_key="idem-late")]).memories
    source.update(MOVING, "m1", MemoryChanges(
        content="customer reported order #4521 arrived dented", vector=vec(21),
        importance=0.9, entities=(order(4521),)))
    source.delete(Scope.of(MOVING), ["f0", "f4"], MOVING)  # one copied already, one not yet
    # Forgotten and stored again under its id: its next page carries it while m2 is here.
    source.delete(Scope.of(MOVING), ["m2"], MOVING)
    source.write([mem("m2", MOVING, "refund approved for #4521", seed=2, session_id="sess-1",
                      entities=(order(4521),))])
    source.record_access(MOVING, ["m2"])
    source.end_session("sess-1", Scope.of(MOVING), summary="closed")
    assert "late" in ids(source.recall_candidates(MOVING, vec(20), "late 9999", RecallFilter(), 10))

    while cursor != -1:
        rows, cursor = source.export_memories(MOVING, cursor, 3)
        dest.import_memories(MOVING, rows)
    # A first catch-up while writes go on: everything logged so far.
    seq, live = drain(source, dest, 0)
    assert live == {"late", "m1", "m2", "f0", "f4"}
    source.write([mem("after", MOVING, "written after the first catch-up", seed=22)])
    source.update(MOVING, "late", MemoryChanges(importance=0.1))
    expected = source.freeze(MOVING)
    assert expected == 7
    with pytest.raises(NamespaceMoving):
        source.write([mem("later", MOVING, "too late", seed=4)])
    want = everything(source)
    # Frozen: only what changed since (m2's access count is written at the freeze).
    _, last = drain(source, dest, seq)
    assert last == {"after", "late", "m2"}
    dest.refresh_head(source.export_head(MOVING))
    source.handoff(MOVING)
    dest.activate(MOVING, expected)
    assert source.release(MOVING) == 7

    assert everything(dest) == want
    session = dest.get_session("sess-2", Scope.of(MOVING))
    assert session is not None and session.metadata == {"channel": "mail"} and session.memory_count == 1
    assert "late" in ids(dest.recall_candidates(MOVING, None, "late 9999", RecallFilter(), 10))
    # m1's new words, and m2 (the next turn of its session) with them as context.
    assert sorted(ids(dest.recall_candidates(MOVING, None, "dented", RecallFilter(), 10))) == ["m1", "m2"]
    assert not {"f0", "f4"} & set(ids(dest.recall_candidates(MOVING, vec(10), "weather", RecallFilter(), 10)))
    nodes, _ = dest.memory_graph("m1", Scope.of(MOVING), depth=1)  # type: ignore[misc]
    assert {n.memory.id for n in nodes} == {"m1", "m2"}
    [(retry, created)] = dest.write([mem("x", MOVING, "order #9999 arrived late", seed=20,
                                         idempotency_key="idem-late")]).memories
    assert retry.id == "late" and not created


def test_a_live_copy_begun_again_starts_afresh(open_shard: OpenShard) -> None:
    source, dest = open_shard(index=0), open_shard(index=1)
    fill(source)
    for shard in (source, dest):
        shard.set_routing(1, 2)
    assert source.begin_copy(MOVING)
    source.write([mem("early", MOVING, "written during the first try", seed=30)])
    # The job died; its next run begins again and copies everything from the top.
    copy_live(source, dest, page=4)
    with pytest.raises(NamespaceMoving):  # dropping it now would bring its copy back to life
        source.drop_namespace(MOVING)
    expected = source.freeze(MOVING)
    # A source a killed run left frozen is not copied live: the job copies it whole, frozen.
    assert not source.begin_copy(MOVING)
    rows, deleted, _ = source.export_changes(MOVING, 0, 100)
    assert (rows, deleted) == ([], [])  # the first try's log is gone
    dest.refresh_head(source.export_head(MOVING))
    source.handoff(MOVING)
    dest.activate(MOVING, expected)
    assert expected == 8 and dest.lookup("early", Scope.of(MOVING))


def test_every_step_runs_again_after_a_crash(open_shard: OpenShard) -> None:
    source, dest = open_shard(index=0), open_shard(index=1)
    fill(source)
    for shard in (source, dest):
        shard.set_routing(1, 2)
    # A run killed halfway through the copy leaves a partial, invisible copy: redone whole.
    source.freeze(MOVING)
    dest.import_head(source.export_head(MOVING))
    rows, _ = source.export_memories(MOVING, 0, 2)
    dest.import_memories(MOVING, rows)
    with pytest.raises(Conflict, match="holds 2 of 7"):
        dest.activate(MOVING, 7)
    expected = copy(source, dest)
    # A run killed after activating, before the map recorded the move: rebuilt from the
    # frozen source when told so, refused otherwise.
    source.handoff(MOVING)
    dest.activate(MOVING, expected)
    with pytest.raises(Conflict, match="live"):
        dest.import_head(source.export_head(MOVING))
    expected = copy(source, dest, replace_live=True)
    source.handoff(MOVING)
    dest.activate(MOVING, expected)
    assert source.release(MOVING) == 7
    assert sorted(m.id for m in dest.listing(MOVING, RecallFilter(), 100, 0)[0]) == \
        sorted(["m1", "m2"] + [f"f{i}" for i in range(5)])
    # Nothing of the moved namespace is left in the old shard's indexes either.
    source.set_routing(2, None)
    assert ids(source.recall_candidates(STAYING, vec(1), "order 4521 refund", RecallFilter(), 20)) == ["s1"]
    # A live namespace is never exported or released by mistake.
    with pytest.raises(Conflict, match="freeze"):
        source.export_head(STAYING)
    with pytest.raises(Conflict, match="live"):
        source.release(STAYING)


def test_routing_survives_a_restart(open_shard: OpenShard) -> None:
    shard = open_shard(index=0)
    shard.write([mem("a", MOVING, "an agent about to move", seed=1)])
    shard.set_routing(1, 2)
    shard.freeze(MOVING)
    shard.close()
    reopened = open_shard(index=0)
    assert reopened.routing() == (1, 2)
    with pytest.raises(NamespaceMoving):
        reopened.write([mem("b", MOVING, "a write during the move", seed=2)])
    reopened.set_routing(2, None)
    assert reopened.routing() == (2, None)


def test_a_live_copy_keeps_session_order_and_keyword_context(open_shard: OpenShard) -> None:
    """Turns stored together keep their order on the copy when one changes during it, and
    the turns around a replaced one lose its old words as context there too."""
    source, dest = open_shard(index=0), open_shard(index=1)
    source.start_session(MOVING, "s", {}, now=100.0)
    source.write([mem(f"t{i}", MOVING, f"turn {i} word{i}", seed=i, session_id="s")
                  for i in range(6)], now=200.0)
    for shard in (source, dest):
        shard.set_routing(1, 2)
    copy_live(source, dest, page=2)
    source.update(MOVING, "t0", MemoryChanges(importance=0.9))
    source.delete(Scope.of(MOVING), ["t2"], MOVING)
    source.write([mem("t2", MOVING, "turn 2 said again", seed=2, session_id="s")], now=300.0)
    # Stored together during the copy, the second changed after: order must still hold.
    source.write([mem("u1", MOVING, "first of a pair", seed=7, session_id="s"),
                  mem("u2", MOVING, "second of a pair", seed=8, session_id="s")], now=400.0)
    source.update(MOVING, "u1", MemoryChanges(importance=0.8))
    expected = source.freeze(MOVING)
    def around(shard: Shard) -> dict[str, list[str]]:
        near = shard.neighborhood(MOVING, ["t0", "t3", "u1"], 2, 2)
        return {k: [m.id for m in v] for k, v in near.items()}
    def word2(shard: Shard) -> list[str]:
        return sorted(ids(shard.recall_candidates(MOVING, None, "word2", RecallFilter(), 10)))
    want_around, want_word2 = around(source), word2(source)
    assert want_word2 == []  # t2's old words are gone, context around it included
    drain(source, dest, 0)
    dest.refresh_head(source.export_head(MOVING))
    source.handoff(MOVING)
    dest.activate(MOVING, expected or 0)
    assert around(dest) == want_around
    assert word2(dest) == want_word2


def test_a_move_sends_no_events(open_shard: OpenShard) -> None:
    """The webhook outbox (shards/events.py) hears of changes, not of where they live: the
    copy arriving, the original released and a leftover discarded write no event."""
    source, dest = open_shard(index=0), open_shard(index=1)
    fill(source)
    source.drop_events([e.seq for e in source.pending_events(1000)])  # fill's own events
    for shard in (source, dest):
        shard.set_routing(1, 2)
    expected = copy(source, dest)
    source.handoff(MOVING)
    dest.activate(MOVING, expected)
    assert source.release(MOVING) == 7
    assert source.pending_events(10) == [] and dest.pending_events(10) == []
