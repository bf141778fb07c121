"""One shard's contract: durable writes, read-your-writes, scoping, deletes, repair."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shards.errors import Conflict, LayoutMismatch, NotFound, QuotaExceeded
from shards.shard import Shard
from shards.types import MemoryChanges, RecallFilter, Scope
from tests.builders import DIM, OpenShard, ids, mem, vec

HOSTILE = [
    'acme" or 1==1',
    "back\\slash\\",
    "it's a 'quote'",
    "new\nline\r\n",
    "emoji 🚀🧠",
    "content:foo AND (bar OR \"baz",
    "x" * 3000,
]


def test_read_your_writes_in_both_channels(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("m1", "ns", "refund approved for order 4521", seed=1),
                 mem("m2", "ns", "the weather was nice", seed=2)])
    found = shard.recall_candidates("ns", vec(1), "refund", RecallFilter(), 10)
    by_id = {c.memory.id: c for c in found}
    assert by_id["m1"].ranks == {"vector": 1, "bm25": 1}
    assert "bm25" not in by_id["m2"].ranks


def test_namespaces_are_scoped_inside_the_shard(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("same-id", "acme-1", "acme secret plan", seed=3),
                 mem("same-id", "bolt-1", "bolt secret plan", seed=3)])
    assert ids(shard.recall_candidates("acme-1", vec(3), "secret plan", RecallFilter(), 10)) == ["same-id"]
    [only] = shard.recall_candidates("acme-1", vec(3), "secret plan", RecallFilter(), 10)
    assert only.memory.content == "acme secret plan"
    assert [m.namespace for m in shard.lookup("same-id", Scope(prefixes=("acme-",)))] == ["acme-1"]
    assert shard.lookup("same-id", Scope.of("carl")) == []
    assert shard.delete(Scope.of("acme-1"), ["same-id"]) and shard.lookup("same-id", Scope.of("bolt-1"))


def test_writes_are_idempotent(open_shard: OpenShard) -> None:
    shard = open_shard()
    first = shard.write([mem("m1", "ns", "once")]).memories
    again = shard.write([mem("m1", "ns", "once")]).memories
    assert first[0][1] is True and again[0][1] is False and again[0][0].content == "once"
    a = shard.write([mem("gen-1", "ns", "keyed", idempotency_key="k1")]).memories
    b = shard.write([mem("gen-2", "ns", "keyed", idempotency_key="k1")]).memories
    assert a[0][0].id == b[0][0].id == "gen-1"
    with pytest.raises(Conflict):  # the same id for other content is refused, not ignored
        shard.write([mem("m1", "ns", "something else")])
    with pytest.raises(Conflict):
        shard.write([mem("gen-3", "ns", "other", idempotency_key="k1")])
    assert shard.stats().memories == 2
    assert len(shard.recall_candidates("ns", vec(0), "once keyed", RecallFilter(), 10)) == 2


def test_delete_is_immediate_and_survives_reopen_and_rebuild(open_shard: OpenShard, tmp_path: Path) -> None:
    shard = open_shard()
    shard.write([mem("keep", "ns", "keep this memory", seed=4), mem("drop", "ns", "drop this memory", seed=5)])
    assert [m.id for m in shard.delete(Scope.of("ns"), ["drop"])] == ["drop"]
    assert ids(shard.recall_candidates("ns", vec(5), "drop memory", RecallFilter(), 10)) == ["keep"]
    shard.close()
    reopened = open_shard()
    assert ids(reopened.recall_candidates("ns", vec(5), "drop memory", RecallFilter(), 10)) == ["keep"]
    assert reopened.rebuild_indexes() == 1
    assert ids(reopened.recall_candidates("ns", vec(5), "drop memory", RecallFilter(), 10)) == ["keep"]
    assert reopened.vectors.count() == 1 and reopened.keywords.count() == 1


CRASH_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
from pathlib import Path
from shards.config import EmbeddedStorageConfig
from shards.shard import Shard
from tests.builders import mem
shard = Shard.open_embedded(0, 1, {dim}, EmbeddedStorageConfig(data_dir=Path({data!r})))
if {records_only}:
    shard.records.insert([mem("r%d" % i, "ns", "logged only %d" % i, seed=i) for i in range(20)], 1.0)
else:
    for i in range(20):
        shard.write([mem("w%d" % i, "ns", "acknowledged %d" % i, seed=i)])
    shard.delete(__import__("shards.types").types.Scope.of("ns"), ["w3"])
os._exit(0)  # no close, no flush, no checkpoint: as if the process were killed
"""


@pytest.mark.parametrize("records_only", [True, False], ids=["crash-before-indexing", "crash-after-ack"])
def test_a_crash_loses_nothing_acknowledged(tmp_path: Path, records_only: bool) -> None:
    from shards.config import EmbeddedStorageConfig
    from shards.shard import Shard

    root = str(Path(__file__).resolve().parents[2])
    script = CRASH_SCRIPT.format(root=root, dim=DIM, data=str(tmp_path), records_only=records_only)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root)
    shard = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path))
    try:
        prefix = "r" if records_only else "w"
        expected = {f"{prefix}{i}" for i in range(20)} - (set() if records_only else {"w3"})
        found = shard.recall_candidates("ns", vec(0), "logged only acknowledged", RecallFilter(), 100)
        assert sorted(ids(found)) == sorted(expected)  # each exactly once, the deleted one gone
        assert {c.memory.id for c in found if "bm25" in c.ranks} == expected
        assert shard.stats().pending_index_changes == 0
    finally:
        shard.close()


def test_filters(open_shard: OpenShard) -> None:
    shard = open_shard()
    s = shard.start_session("ns", "sess-1", {}, None)
    shard.write([
        mem("a", "ns", "alpha note", memory_type="semantic", importance=0.9, tags=("x", "y"),
            event_time=1_000.0, session_id=s.id),
        mem("b", "ns", "alpha note", memory_type="working", importance=0.2, tags=("y",), event_time=2_000.0),
        mem("c", "ns", "alpha note", expires_at=time.time() - 1),
    ])
    def q(**kw: object) -> list[str]:
        return sorted(ids(shard.recall_candidates("ns", vec(0), "alpha", RecallFilter(now=time.time(), **kw), 10)))  # type: ignore[arg-type]
    assert q() == ["a", "b"]  # c expired
    assert q(memory_types=("semantic",)) == ["a"]
    assert q(session_id="sess-1") == ["a"]
    assert q(session_id="no-such-session") == []
    assert q(since=1_500.0) == ["b"] and q(until=1_500.0) == ["a"]
    assert q(min_importance=0.5) == ["a"]
    assert q(tags_any=("x", "zzz")) == ["a"] and q(tags_all=("x", "y")) == ["a"] and q(tags_any=("y",)) == ["a", "b"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_are_stored_and_matched_literally(open_shard: OpenShard, value: str) -> None:
    shard = open_shard()
    other = "plain-namespace"
    shard.write([mem("h1", value, "hostile namespace memory", seed=6, tags=(value,), metadata={value: value}),
                 mem("h2", other, "hostile namespace memory", seed=6)])
    found = shard.recall_candidates(value, vec(6), value + " hostile", RecallFilter(tags_any=(value,)), 10)
    assert ids(found) == ["h1"]
    assert found[0].memory.namespace == value and found[0].memory.tags == (value,)
    assert found[0].memory.metadata == {value: value}
    assert ids(shard.recall_candidates(other, vec(6), value, RecallFilter(), 10)) == ["h2"]
    assert shard.recall_candidates(value + "x", vec(6), value, RecallFilter(), 10) == []


def test_update_reindexes(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("u", "ns", "original words", seed=7)])
    shard.update("ns", "u", MemoryChanges(content="replacement text", vector=vec(8), importance=0.9))
    assert ids(shard.recall_candidates("ns", None, "original", RecallFilter(), 10)) == []
    [c] = shard.recall_candidates("ns", vec(8), "replacement", RecallFilter(), 10)
    assert c.ranks == {"vector": 1, "bm25": 1} and c.memory.importance == 0.9


def test_sessions_end_by_idle_timeout(open_shard: OpenShard) -> None:
    shard = open_shard()
    quick = shard.start_session("ns", "quick", {"k": "v"}, idle_timeout=1, now=100.0)
    default = shard.start_session("ns", "default", {}, now=100.0)
    forever = shard.start_session("ns", "forever", {}, idle_timeout=0, now=100.0)
    assert quick.active and default.active and forever.active
    assert shard.end_idle_sessions(default_timeout=3600, now=102.0) == 1
    ended = shard.get_session("quick", Scope.of("ns"))
    assert ended is not None and ended.ended_reason == "idle" and not ended.active
    assert shard.end_idle_sessions(default_timeout=3600, now=100.0 + 7200) == 1  # default, not forever
    assert shard.get_session("forever", Scope.of("ns")).active  # type: ignore[union-attr]
    assert shard.get_session("quick", Scope.of("other")) is None


def test_layout_mismatch_refuses_to_open(open_shard: OpenShard) -> None:
    open_shard().close()
    # The shard count is the shard map's business (control data), not the shard's: a shard
    # opened by an app deploying more shards keeps the count it was placed under.
    reopened = open_shard(shard_count=3)
    assert reopened.layout()[1] == 1
    reopened.close()
    with pytest.raises(LayoutMismatch, match="embedding_dim"):
        open_shard(dim=DIM * 2)


def test_accesses_are_counted_at_checkpoint(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("a", "ns", "accessed memory")])
    for _ in range(3):
        shard.record_access("ns", ["a"], now=123.0)
    shard.record_access("other", ["a"])  # another namespace's id reaches nothing
    shard.checkpoint()
    [m] = shard.lookup("a", Scope.of("ns"))
    assert m.access_count == 3 and m.last_accessed_at == 123.0


def test_candidates_carry_their_session_neighbours_and_touch_the_session(open_shard: OpenShard) -> None:
    """One call serves a recall: each candidate comes with its session context, and a
    recall in a session keeps it alive."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None, now=100.0)
    shard.write([mem(f"t{i}", "ns", f"turn {i} about kites" if i == 2 else f"turn {i}",
                     session_id=s.id, seed=i) for i in range(1, 5)]
                + [mem("loose", "ns", "kites without a session", seed=9)])
    found = shard.recall_candidates("ns", None, "kites", RecallFilter(), 10, graph=False,
                                    session=False, neighbors=(1, 1), touch_session=s.id)
    context = {c.memory.id: [m.id for m in c.context] for c in found}
    # (The other turns match too: a turn's indexed text carries its neighbours' words.)
    assert (context["t2"], context["t1"], context["loose"]) == (["t1", "t3"], ["t2"], [])
    assert shard.get_session(s.id, Scope.of("ns")).last_active_at > 100.0  # type: ignore[union-attr]
    wider = shard.recall_candidates("ns", None, "kites", RecallFilter(), 10, graph=False,
                                    session=False, neighbors=(2, 0))
    assert {c.memory.id: [m.id for m in c.context] for c in wider}["t2"] == ["t1"]
    assert all(c.context == () for c in shard.recall_candidates(
        "ns", None, "kites", RecallFilter(), 10, graph=False, session=False))  # not asked
    # A missing session is no error, and another namespace's session is not touched.
    shard.recall_candidates("ns", None, "kites", RecallFilter(), 10, touch_session="sess_missing")
    before = shard.get_session(s.id, Scope.of("ns")).last_active_at  # type: ignore[union-attr]
    shard.recall_candidates("other", None, "kites", RecallFilter(), 10, touch_session=s.id)
    assert shard.get_session(s.id, Scope.of("ns")).last_active_at == before  # type: ignore[union-attr]


def test_gathered_accesses_count_only_where_the_namespace_is(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("a", "ns", "accessed memory"), mem("b", "ns", "another")])
    shard.record_accesses([("ns", ["a", "b", "a"]), ("other", ["a"]), ("ghost", ["x"])])
    shard.checkpoint()
    counts = {m.id: m.access_count for i in ("a", "b") for m in shard.lookup(i, Scope.of("ns"))}
    assert counts == {"a": 2, "b": 1}


def test_a_failed_index_write_is_reapplied_before_the_log_is_trimmed(open_shard: OpenShard,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An index server that fails after the record commits (client retries spent): the
    store is durable and answered with an error; the next checkpoint indexes it."""
    from shards.errors import StorageUnavailable

    shard = open_shard()
    real_upsert = shard.keywords.upsert

    def down(rows: object) -> None:
        raise StorageUnavailable("keyword index down", "keywords")

    monkeypatch.setattr(shard.keywords, "upsert", down)
    with pytest.raises(StorageUnavailable):
        shard.write([mem("a", "ns", "the harbour regatta")])
    monkeypatch.setattr(shard.keywords, "upsert", real_upsert)
    shard.checkpoint()
    assert shard.records.pending_index_keys()[1] == []
    assert ids(shard.recall_candidates("ns", None, "regatta", RecallFilter(), 10, graph=False, session=False)) == ["a"]


def test_forgotten_words_leave_the_next_turns_context(open_shard: OpenShard) -> None:
    """Turns are indexed with the turns around them; forgetting a turn re-indexes the next."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    shard.write([mem("t1", "ns", "my secret word is xylophone", session_id=s.id, seed=1),
                 mem("t2", "ns", "noted, thanks", session_id=s.id, seed=2)])
    assert "t2" in ids(shard.recall_candidates("ns", None, "xylophone", RecallFilter(), 10, graph=False, session=False))
    shard.delete(Scope.of("ns"), ["t1"])
    assert shard.recall_candidates("ns", None, "xylophone", RecallFilter(), 10, graph=False, session=False) == []


def test_a_turn_of_a_session_the_namespace_lacks_is_refused_and_nothing_is_stored(open_shard: OpenShard) -> None:
    """The write checks the session itself (the Router does not ask first), for every item:
    a retry of a stored memory naming a session that is not there is refused too."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    shard.write([mem("t1", "ns", "the boat is blue", session_id=s.id, seed=1)])
    for batch in ([mem("new", "ns", "a new turn", session_id="ghost", seed=2)],
                  [mem("ok", "ns", "fine alone", seed=3), mem("t1", "ns", "the boat is blue",
                                                            session_id="ghost", seed=1)]):
        with pytest.raises(NotFound) as refused:
            shard.write(batch)
        assert refused.value.field == "session_id"
    assert shard.lookup("new", Scope.of("ns")) == [] and shard.lookup("ok", Scope.of("ns")) == []
    assert shard.start_session("other", "ghost", {}, None)  # another namespace's session is no help
    with pytest.raises(NotFound):
        shard.write([mem("new", "ns", "a new turn", session_id="ghost", seed=2)])


def keyword_ids(shard: Shard, text: str) -> set[str]:
    return set(ids(shard.recall_candidates("ns", None, text, RecallFilter(), 10, graph=False, session=False)))


def test_a_turn_is_found_by_the_follow_up_written_later(open_shard: OpenShard) -> None:
    """A statement is found by words of the turns after it, even when those come in later
    writes; editing and forgetting the follow-up re-index the turns before it."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    shard.write([mem("t1", "ns", "I painted it last weekend", session_id=s.id, seed=1)])
    shard.write([mem("t2", "ns", "nice!", session_id=s.id, seed=2)])
    shard.write([mem("t3", "ns", "the sunset over the lake looks wonderful", session_id=s.id, seed=3)])
    shard.write([mem("t4", "ns", "thanks", session_id=s.id, seed=4)])
    assert {"t1", "t2", "t3", "t4"} >= keyword_ids(shard, "lake") >= {"t1", "t2", "t3"}
    shard.update("ns", "t3", MemoryChanges(content="the sunrise over the sea looks wonderful"))
    assert keyword_ids(shard, "lake") == set()
    assert "t1" in keyword_ids(shard, "sea")
    shard.delete(Scope.of("ns"), ["t3"])
    assert keyword_ids(shard, "sea") == set()


def test_context_survives_a_crash_before_indexing(open_shard: OpenShard) -> None:
    """The record store logs the earlier turns whose context a write changes, in the write's
    own transaction: a shard that dies before indexing catches them up on open."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    shard.write([mem("t1", "ns", "we met at the harbour", session_id=s.id, seed=1)])
    shard.checkpoint()
    shard.records.insert([mem("t2", "ns", "the regatta was the best part", session_id=s.id, seed=2)],
                         now=time.time())  # durable, never indexed: as if the shard died here
    assert keyword_ids(shard, "regatta") == set()
    shard.catch_up_indexes()  # what opening a shard does first
    assert keyword_ids(shard, "regatta") == {"t1", "t2"}


def test_session_channel_reaches_turns_a_few_steps_away(open_shard: OpenShard) -> None:
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    turns = ["where should the team go next month?", "somewhere new", "any ideas?",
             "Edinburgh would be magical", "unrelated five", "unrelated six"]
    shard.write([mem(f"t{i}", "ns", text, session_id=s.id, seed=i) for i, text in enumerate(turns)])
    found = shard.recall_candidates("ns", None, "team trip next month", RecallFilter(), 10, graph=False)
    session = {c.memory.id: c.scores["session"] for c in found if "session" in c.scores}
    assert {"t1", "t2", "t3"} <= set(session)  # three turns on: the answer to the question
    assert session["t1"] > session["t2"] > session["t3"]


def test_a_forget_by_filter_reaches_expired_memories(open_shard: OpenShard) -> None:
    """Expired is hidden, not gone: "forget every memory tagged pii" must leave none."""
    shard = open_shard()
    shard.write([mem("live", "ns", "pii one", tags=("pii",)),
                 mem("lapsed", "ns", "pii two", tags=("pii",), expires_at=time.time() - 1),
                 mem("other", "ns", "keep", tags=("ok",))])
    gone = shard.forget_matching("ns", RecallFilter(tags_all=("pii",), now=time.time()))
    assert sorted(m.id for m in gone) == ["lapsed", "live"]
    assert [m.id for m in shard.lookup("lapsed", Scope.of("ns"))] == []


def test_an_idempotency_key_outlives_its_deleted_memory(open_shard: OpenShard) -> None:
    """A retry after a delete stores the memory again instead of failing its whole batch."""
    shard = open_shard()
    shard.write([mem("m1", "ns", "keyed", idempotency_key="k1")])
    shard.delete(Scope.of("ns"), ["m1"], "ns")
    [(again, created)] = shard.write([mem("m1", "ns", "keyed", idempotency_key="k1")]).memories
    assert created and again.id == "m1"
    [(retry, created)] = shard.write([mem("m2", "ns", "keyed", idempotency_key="k1")]).memories
    assert not created and retry.id == "m1"  # the key names the stored memory again


def test_expired_memories_are_purged_from_records_and_indexes(open_shard: OpenShard) -> None:
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None)
    shard.write([mem("t1", "ns", "beta first turn", session_id=s.id, seed=1),
                 mem("t2", "ns", "beta lapsed turn", session_id=s.id, seed=2,
                     expires_at=time.time() - 1),
                 mem("t3", "ns", "beta third turn", session_id=s.id, seed=3)])
    # Before the purge, an expired turn is no longer context either.
    assert [m.id for m in shard.neighborhood("ns", ["t1"], 0, 1)["t1"]] == []
    assert shard.purge_expired() == 1 and shard.purge_expired() == 0
    assert shard.lookup("t2", Scope.of("ns")) == []
    unfiltered = ids(shard.recall_candidates("ns", vec(2), "beta lapsed", RecallFilter(), 10))
    assert "t2" not in unfiltered and {"t1", "t3"} <= set(unfiltered)
    assert [m.id for m in shard.neighborhood("ns", ["t1"], 0, 1)["t1"]] == ["t3"]


def test_a_rebuild_cut_short_is_finished_by_the_next_catch_up(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem(f"m{i}", "ns", f"gamma note {i}", seed=i) for i in range(5)])
    shard.checkpoint()
    real_upsert = shard.keywords.upsert

    def failing_upsert(rows: object) -> None:
        raise ConnectionError("keyword index went away mid-rebuild")
    shard.keywords.upsert = failing_upsert  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        shard.rebuild_indexes()
    shard.keywords.upsert = real_upsert  # type: ignore[method-assign]
    shard.catch_up_indexes()
    found = shard.recall_candidates("ns", None, "gamma note", RecallFilter(), 10)
    assert sorted(c.memory.id for c in found if "bm25" in c.ranks) == [f"m{i}" for i in range(5)]


def test_a_dropped_namespace_leaves_no_access_counts_behind(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem("a", "ns", "first life")])
    shard.record_access("ns", ["a"])
    shard.drop_namespace("ns")
    shard.write([mem("a", "ns", "second life")])
    shard.checkpoint()
    [m] = shard.lookup("a", Scope.of("ns"))
    assert m.access_count == 0


def test_a_write_indexes_what_a_rebuild_would(open_shard: OpenShard) -> None:
    """A write builds its index rows from the items in hand (no read back). They must equal
    what the repair path (_index_rows) reads from the record store: the same text, session
    context (the stored turns before a batch gain the new ones as context) and fields."""
    shard = open_shard()
    s = shard.start_session("ns", "s1", {}, None, now=100.0)
    sent: dict[int, object] = {}
    upsert = shard.keywords.upsert

    def spy(rows):  # type: ignore[no-untyped-def]
        sent.update({r.key: r for r in rows})
        upsert(rows)

    shard.keywords.upsert = spy  # type: ignore[method-assign]
    shard.write([mem(f"a{i}", "ns", f"first batch turn {i}", session_id=s.id, seed=i) for i in range(5)])
    shard.write([mem("loose", "ns", "no session here", seed=7)])
    shard.write([mem(f"b{i}", "ns", f"second batch turn {i}", session_id=s.id, seed=10 + i)
                 for i in range(3)] + [mem("other", "ns", "also loose", seed=8)])
    shard.write([mem("c0", "ns", "a lone later turn", session_id=s.id, seed=20)])
    expected, _ = shard._index_rows(sorted(sent))
    fields = ("key", "ns_id", "content", "context", "memory_type", "session_key", "event_time", "importance")
    assert [tuple(getattr(sent[r.key], f) for f in fields) for r in expected] == \
        [tuple(getattr(r, f) for f in fields) for r in expected]
    assert any(r.context for r in expected) and len(expected) == 11


def test_a_write_past_the_memory_limit_stores_nothing_and_usage_is_kept(open_shard: OpenShard) -> None:
    shard = open_shard()
    shard.write([mem(f"m{i}", "ns", f"note {i} é") for i in range(3)], memory_limit=4)
    shard.write([mem("other", "elsewhere", "not counted against ns")], memory_limit=4)
    before = shard.records.export_memories("ns", 0, 100)
    with pytest.raises(QuotaExceeded) as refused:
        shard.write([mem("m3", "ns", "fourth"), mem("m4", "ns", "fifth")], memory_limit=4)
    assert (refused.value.limit, refused.value.would_hold) == (4, 5)
    assert shard.records.export_memories("ns", 0, 100) == before  # the whole batch rolled back
    assert "m3" not in ids(shard.recall_candidates("ns", vec(0), "fourth", RecallFilter(), 10))
    # A retry of what is stored is no new memory, and the limit counts what is stored.
    shard.write([mem("m0", "ns", "note 0 é"), mem("m3", "ns", "fourth")], memory_limit=4)
    note_bytes = sum(len(f"note {i} é".encode()) for i in range(3))
    assert shard.usage(Scope.of("ns")) == {"ns": (4, note_bytes + len(b"fourth"))}
    shard.update("ns", "m3", MemoryChanges(content="fourth, longer"))
    shard.delete(Scope.of("ns"), ["m0"])
    assert shard.usage(Scope(everything=True)) == {
        "ns": (3, note_bytes - len("note 0 é".encode()) + len(b"fourth, longer")),
        "elsewhere": (1, len(b"not counted against ns"))}
    assert [n.memory_count for n in shard.namespaces(Scope(everything=True))] == [1, 3]
