"""The outbox of change events (shards/events.py), for each record store: every store,
forget, expiry, session end and namespace delete writes its event in the change's own
transaction; a change refused writes none; a forget redacts what the outbox holds of the
memory; and a reshard's copies and leftovers write none (the original's events were sent)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shards.errors import QuotaExceeded
from shards.events import MEMORY_FORGOTTEN, MEMORY_STORED, NAMESPACE_DELETED, SESSION_ENDED, Event
from shards.shard import Shard
from shards.types import RecallFilter, Scope
from tests.builders import DIM, mem
from tests.contract.conftest import POSTGRES, Backend


@pytest.fixture(params=[pytest.param(Backend(), id="sqlite"),
                        pytest.param(Backend(record_store="postgres", servers=("postgres",)), id="postgres",
                                     marks=POSTGRES)])
def shard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shard]:
    opened = Shard.open_embedded(0, 1, DIM, request.param.config(tmp_path, request))
    yield opened
    opened.close()


def taken(shard: Shard) -> list[Event]:
    """What the dispatcher would take now, then drop."""
    events = shard.pending_events(1000)
    assert shard.drop_events([e.seq for e in events]) == len(events)
    return events


def test_each_change_writes_its_event_in_order(shard: Shard) -> None:
    shard.start_session("ns-a", "s1", {"channel": "chat"}, now=100.0)
    shard.write([mem("m1", "ns-a", "Ana moved to Porto", seed=1, session_id="s1", tags=("home",)),
                 mem("m2", "ns-a", "Ana likes tea", seed=2)], now=200.0)
    shard.write([mem("m1", "ns-a", "Ana moved to Porto", seed=1, session_id="s1")], now=201.0)  # a retry
    shard.end_session("s1", Scope.of("ns-a"), summary="moved", now=300.0)
    shard.end_session("s1", Scope.of("ns-a"), now=301.0)  # ended already: no second event
    shard.delete(Scope.of("ns-a"), ["m2"], "ns-a")
    events = taken(shard)
    assert [(e.type, e.memory_id) for e in events] == [
        (MEMORY_STORED, "m1"), (MEMORY_STORED, "m2"), (SESSION_ENDED, None), (MEMORY_FORGOTTEN, "m2")]
    assert len({e.id for e in events}) == 4 and all(e.id.startswith("evt_") for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    stored = events[0].data
    assert (stored["content"], stored["tags"], stored["session_id"], stored["namespace"]) == (
        "Ana moved to Porto", ["home"], "s1", "ns-a")
    assert events[2].data["id"] == "s1" and events[2].data["summary"] == "moved"
    assert events[2].data["reason"] == "client" and events[2].occurred_at == 300.0
    assert events[3].data == {"id": "m2", "namespace": "ns-a", "reason": "forget"}
    assert shard.pending_events(10) == []  # taken and dropped


def test_a_forget_redacts_the_memorys_stored_event_still_waiting(shard: Shard) -> None:
    shard.write([mem("secret", "ns-a", "the vault code is 7741", seed=1, tags=("pii",),
                     metadata={"owner": "ana"}),
                 mem("kept", "ns-a", "the vault is in the basement", seed=2)])
    assert [m.id for m in shard.forget_matching("ns-a", RecallFilter(tags_all=("pii",)))] == ["secret"]
    stored = {e.memory_id: e.data for e in taken(shard) if e.type == MEMORY_STORED}
    assert stored["secret"]["content"] is None and stored["secret"]["redacted"] is True
    assert stored["secret"]["metadata"] == {} and stored["secret"]["tags"] == []
    assert stored["secret"]["id"] == "secret"
    assert stored["kept"]["content"] == "the vault is in the basement"


def test_expiry_and_namespace_deletes_say_why(shard: Shard) -> None:
    shard.write([mem("brief", "ns-a", "a short-lived note", seed=1, expires_at=150.0),
                 mem("other", "ns-b", "kept in b", seed=2)], now=100.0)
    assert shard.purge_expired(now=200.0) == 1
    assert shard.drop_namespace("ns-b") == 1
    events = taken(shard)
    forgotten = [e for e in events if e.type == MEMORY_FORGOTTEN]
    assert [(e.memory_id, e.data["reason"]) for e in forgotten] == [("brief", "expired")]
    [deleted] = [e for e in events if e.type == NAMESPACE_DELETED]
    assert deleted.data == {"namespace": "ns-b", "memories": 1}
    # the deleted namespace's stored event, still waiting, holds nothing of it
    [b_stored] = [e for e in events if e.type == MEMORY_STORED and e.namespace == "ns-b"]
    assert b_stored.data["content"] is None


def test_idle_sessions_ended_by_the_sweep_send_their_events(shard: Shard) -> None:
    shard.start_session("ns-a", "idle", {}, idle_timeout=10.0, now=100.0)
    shard.start_session("ns-a", "busy", {}, idle_timeout=1000.0, now=100.0)
    assert shard.end_idle_sessions(3600.0, now=200.0) == 1
    [ended] = taken(shard)
    assert (ended.type, ended.data["id"], ended.data["reason"]) == (SESSION_ENDED, "idle", "idle")


def test_a_refused_write_writes_no_event(shard: Shard) -> None:
    shard.write([mem("m1", "ns-a", "one", seed=1)])
    taken(shard)
    with pytest.raises(QuotaExceeded):
        shard.write([mem("m2", "ns-a", "two", seed=2), mem("m3", "ns-a", "three", seed=3)], memory_limit=2)
    assert shard.pending_events(10) == []


def test_an_update_sends_its_event_and_leaves_the_replaced_text_nowhere(shard: Shard) -> None:
    from shards.events import MEMORY_UPDATED
    from shards.types import MemoryChanges
    from tests.builders import vec

    shard.write([mem("m1", "ns-a", "the old door code is 1234", seed=1)], now=100.0)
    shard.update("ns-a", "m1", MemoryChanges(content="the door has a key now", vector=vec(5)))
    events = taken(shard)
    assert [(e.type, e.data["content"]) for e in events] == [
        (MEMORY_STORED, "the door has a key now"), (MEMORY_UPDATED, "the door has a key now")]
    assert events[0].data["created_at"] == 100.0 and "1234" not in str(events)
