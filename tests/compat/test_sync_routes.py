"""Every served Dakera route, driven through the official sync `DakeraClient`.

Answers are parsed with the SDK's own models wherever the SDK builds them, so a shape the
SDK cannot read fails here the way it would fail for a user.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from dakera import (
    AgentStats,
    AgentSummary,
    AuthenticationError,
    BatchForgetRequest,
    BatchMemoryFilter,
    BatchRecallRequest,
    BatchRecallResponse,
    BatchStoreMemoryItem,
    BatchStoreMemoryRequest,
    BatchStoreMemoryResponse,
    ChatMemorySession,
    CreateAgentResponse,
    DakeraClient,
    KeyInfo,
    Memory,
    NamespaceInfo,
    NotFoundError,
    RecalledMemory,
    RecallResponse,
    ServerCapabilities,
    Session,
    SessionTouchResponse,
    ValidationError,
    WhoamiResponse,
)

from tests.builders import Engram, KeyedClient

FACTS = [
    BatchStoreMemoryItem(content="The quarterly budget review is on Friday at 3pm with the finance team",
                         memory_type="episodic", importance=0.9, tags=["work", "meeting"]),
    BatchStoreMemoryItem(content="My cat Whiskers loves eating tuna and sleeping in the sun",
                         memory_type="semantic", importance=0.3, tags=["pets"]),
    BatchStoreMemoryItem(content="To deploy the payment service run a blue-green rollout with canary checks",
                         memory_type="procedural", importance=0.6, tags=["ops", "work"]),
]


def seed(client: DakeraClient, agent: str) -> list[str]:
    """Store FACTS in one batch; their ids in FACTS order."""
    out = client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=FACTS))
    return [m.id for m in out.stored]


def ids(memories: list[RecalledMemory] | list[Memory] | list[dict]) -> list[str]:
    return [m["id"] if isinstance(m, dict) else m.id for m in memories]


# -- health, capabilities, whoami ----------------------------------------------------------
def test_health_live_and_ready(client: DakeraClient) -> None:
    assert client.health()["status"] == "healthy"
    live = client.health_live()
    assert live["alive"] is True and isinstance(live["uptime_seconds"], int)
    assert client.health_ready()["ready"] is True
    assert client.is_ready() is True
    assert client.wait_until_ready(timeout=5)["ready"] is True
    assert "engram_requests_total" in client.ops_metrics()  # Prometheus text, not JSON


def test_health_needs_no_key(engram: Engram) -> None:
    with DakeraClient(engram.url) as anonymous:
        assert anonymous.health()["status"] == "healthy"
        assert anonymous.is_ready()


def test_capabilities(client: DakeraClient) -> None:
    caps = client.capabilities(refresh=True)
    assert isinstance(caps, ServerCapabilities)
    assert caps.capabilities_version == 2 and caps.server_version
    assert "v1" in caps.api_versions
    active = [m for m in caps.models if m.active]
    assert len(active) == 1 and active[0].dimension > 0
    assert caps.model(caps.default_model.value) is active[0]
    assert caps.supports_session_touch and caps.supports_prefix_grants
    assert caps.supports_key_update  # PATCH /admin/keys renames, re-grants and re-limits
    assert caps.naming.agent_namespace_prefix == "_dakera_agent_"
    assert caps.sessions.idle_timeout_secs == 14400 and caps.sessions.ended_reason
    assert caps.supports_index_kind("hnsw") and caps.supports_distance_metric("cosine")
    assert caps.supports_model("minilm")  # the bundled all-MiniLM-L6-v2, by its Dakera name
    assert client.capabilities() is client.capabilities()  # cached per client


def test_whoami_root_and_restricted(client: DakeraClient, keyed_client: KeyedClient,
                                    agent: str) -> None:
    root = client.whoami()
    assert isinstance(root, WhoamiResponse)
    assert root.scope == "super_admin" and root.unrestricted and root.namespaces is None
    assert root.auth_enabled
    narrow = keyed_client("write", [agent, "_dakera_agent_team-*"]).whoami()
    assert narrow.scope == "write" and not narrow.unrestricted
    assert narrow.namespaces == [agent, "_dakera_agent_team-*"]
    assert narrow.key_id and narrow.key_id != root.key_id and narrow.expires_at is None


def test_key_without_namespaces_reaches_nothing(client: DakeraClient, keyed_client: KeyedClient,
                                                agent: str) -> None:
    client.store_memory(agent, "out of reach")
    client.start_session(agent)
    nothing = keyed_client("write", [])
    me = nothing.whoami()
    assert me.namespaces == [] and not me.unrestricted
    assert nothing.list_agents() == [] and nothing.list_sessions() == []
    assert nothing.list_namespaces() == []


# -- memories ------------------------------------------------------------------------------
def test_store_and_get_round_trip(client: DakeraClient, agent: str) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    stored = client.store_memory(
        agent, "Alice prefers window seats on long flights", memory_type="semantic",
        importance=0.8, metadata={"source": "chat"}, tags=["travel", "alice"],
        valid_from=1_700_000_000, event_time=when)
    assert stored["id"] and stored["content"] == "Alice prefers window seats on long flights"
    assert stored["memory_type"] == "semantic" and stored["importance"] == 0.8
    assert stored["tags"] == ["travel", "alice"]
    assert stored["metadata"] == {"source": "chat", "valid_from": 1_700_000_000}
    assert stored["event_time"] == int(when.timestamp())
    assert isinstance(stored["created_at"], int) and "session_state" not in stored

    for got in (client.get_memory(agent, stored["id"]), client.get_memory(None, stored["id"])):
        assert Memory.from_dict(got).content == stored["content"]
        assert got["id"] == stored["id"] and got["tags"] == ["travel", "alice"]
        assert got["metadata"]["source"] == "chat"


def test_store_expiry_and_unix_event_time(client: DakeraClient, agent: str) -> None:
    later = int(time.time()) + 3600
    a = client.store_memory(agent, "A note that expires in an hour", expires_at=later,
                            event_time=1_700_000_000)
    b = client.store_memory(agent, "A note with a one day TTL", ttl_seconds=86_400)
    assert a["expires_at"] == later and a["event_time"] == 1_700_000_000
    assert b["expires_at"] >= int(time.time()) + 86_000


def test_recall_ranks_and_parses(client: DakeraClient, agent: str) -> None:
    budget, cat, deploy = seed(client, agent)
    out = client.recall(agent, "when is the budget review meeting with finance?", top_k=3)
    assert isinstance(out, RecallResponse)
    assert out.memories and all(isinstance(m, RecalledMemory) for m in out.memories)
    assert out.memories[0].id == budget
    assert out.memories[0].content.startswith("The quarterly budget review")
    assert len(out.memories) <= 3 and out.ranked == out.memories
    scores = [m.score for m in out.memories]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert out.rerank_report is not None and out.rerank_report.applied is False
    assert isinstance(out.query_embedding_time_ms, int) and isinstance(out.search_time_ms, int)
    assert out.warnings == []
    # The first k of a top_k=k recall are the first k of a wider one.
    assert ids(client.recall(agent, "when is the budget review meeting with finance?",
                             top_k=1).memories) == ids(out.memories)[:1]
    assert {cat, deploy} <= set(ids(client.recall(agent, "anything", top_k=10).memories))


def test_recall_filters(client: DakeraClient, agent: str) -> None:
    budget, cat, deploy = seed(client, agent)
    q = "what should I remember?"
    assert ids(client.recall(agent, q, top_k=10, memory_type="procedural").memories) == [deploy]
    assert set(ids(client.recall(agent, q, top_k=10, tags=["pets", "ops"]).memories)) == {cat, deploy}
    assert set(ids(client.recall(agent, q, top_k=10, min_importance=0.5).memories)) == {budget, deploy}
    assert ids(client.recall(agent, q, top_k=10, until="2001-01-01T00:00:00Z").memories) == []
    assert len(client.recall(agent, q, top_k=10, since="2001-01-01T00:00:00Z").memories) == 3


@pytest.mark.parametrize("routing", ["vector", "bm25", "hybrid", "auto"])
def test_recall_routing_modes(client: DakeraClient, agent: str, routing: str) -> None:
    budget, _, _ = seed(client, agent)
    out = client.recall(agent, "quarterly budget review finance", top_k=2, routing=routing,
                        fusion="minmax", vector_weight=0.7, rerank=False,
                        neighborhood_mode="separate", include_associated=True, iterations=1)
    assert out.memories[0].id == budget
    assert out.context_memories in (None, [])  # no neighbourhood context is produced


def test_recall_on_an_empty_agent(client: DakeraClient, agent: str) -> None:
    out = client.recall(agent, "nothing stored here")
    assert out.memories == [] and out.ranked == []


def test_search_memories(client: DakeraClient, agent: str) -> None:
    budget, cat, _ = seed(client, agent)
    hits = client.search_memories(agent, "my cat whiskers and tuna")
    assert isinstance(hits, list) and hits[0]["id"] == cat
    assert all({"id", "content", "score"} <= set(h) for h in hits)
    assert ids(client.search_memories(agent, "budget", top_k=5, memory_type="episodic",
                                      routing="bm25")) == [budget]
    assert ids(client.search_memories(agent, "anything", tags=["pets"], min_importance=0.1)) == [cat]


def test_forget_removes_from_recall_and_get(client: DakeraClient, agent: str) -> None:
    budget, cat, deploy = seed(client, agent)
    assert client.forget(agent, cat)["deleted_count"] == 1
    assert cat not in ids(client.recall(agent, "my cat whiskers loves tuna", top_k=10).memories)
    assert cat not in ids(client.search_memories(agent, "whiskers tuna", routing="bm25"))
    with pytest.raises(NotFoundError):
        client.get_memory(agent, cat)
    assert client.forget(agent, cat)["deleted_count"] == 0  # forgetting twice is harmless
    assert set(ids(client.recall(agent, "anything", top_k=10).memories)) == {budget, deploy}


def test_update_memory(client: DakeraClient, agent: str) -> None:
    m = client.store_memory(agent, "The office wifi password is tulip42", tags=["office"])
    updated = client.update_memory(agent, m["id"], content="The office wifi password is orchid77",
                                   metadata={"rotated": True}, memory_type="semantic",
                                   importance=0.9, tags=["office", "secrets"])
    assert Memory.from_dict(updated).content == "The office wifi password is orchid77"
    assert updated["tags"] == ["office", "secrets"] and updated["memory_type"] == "semantic"
    assert updated["importance"] == 0.9 and updated["metadata"] == {"rotated": True}
    assert client.get_memory(agent, m["id"])["content"].endswith("orchid77")
    hits = client.search_memories(agent, "orchid77", routing="bm25")
    assert ids(hits) == [m["id"]]
    assert client.search_memories(agent, "tulip42", routing="bm25") == []
    # An empty update changes nothing.
    assert client.update_memory(agent, m["id"])["content"].endswith("orchid77")


def test_patch_importance(client: DakeraClient, agent: str) -> None:
    m = client.store_memory(agent, "Renew the passport before March", importance=0.2)
    patched = client.patch_memory_importance(m["id"], agent, 0.95)
    assert isinstance(patched, Memory)
    assert patched.id == m["id"] and patched.importance == 0.95
    assert patched.content == "Renew the passport before March"
    assert client.get_memory(agent, m["id"])["importance"] == 0.95


def test_batch_store(client: DakeraClient, agent: str) -> None:
    items = [
        BatchStoreMemoryItem(content="first of three", id="custom a b/c:d", tags=["t1"]),
        BatchStoreMemoryItem(content="second of three", memory_type="working", importance=0.7,
                             metadata={"k": "v"}, event_time="2024-01-01T00:00:00Z"),
        BatchStoreMemoryItem(content="third of three", ttl_seconds=600),
    ]
    out = client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=items))
    assert isinstance(out, BatchStoreMemoryResponse)
    assert out.stored_count == 3 and [s.content for s in out.stored] == [i.content for i in items]
    assert out.stored[0].id == "custom a b/c:d" and out.stored[0].tags == ["t1"]
    assert all(s.agent_id == agent and s.created_at > 0 for s in out.stored)
    assert out.stored[1].importance == 0.7 and out.truncated == [] and out.ended_sessions == []
    # The SDK percent-encodes '/' and ' ' in get_memory's path; ':' is left as is.
    assert client.get_memory(agent, "custom a b/c:d")["content"] == "first of three"
    # update and patch send the id as is; the server still finds it.
    assert client.update_memory(agent, "custom a b/c:d", tags=["t2"])["tags"] == ["t2"]
    assert client.patch_memory_importance("custom a b/c:d", agent, 0.1).importance == 0.1
    assert client.get_memory(agent, out.stored[1].id)["event_time"] == 1_704_067_200


def test_batch_store_is_idempotent_on_client_ids(client: DakeraClient, agent: str) -> None:
    req = BatchStoreMemoryRequest(agent_id=agent, memories=[
        BatchStoreMemoryItem(content="stored once, sent twice", id="retry-1")])
    client.store_memories_batch(req)
    client.store_memories_batch(req)
    assert client.agent_stats(agent)["total_memories"] == 1


def test_batch_recall(client: DakeraClient, agent: str) -> None:
    budget, cat, deploy = seed(client, agent)
    everything = client.batch_recall(BatchRecallRequest(agent_id=agent))
    assert isinstance(everything, BatchRecallResponse)
    assert set(ids(everything.memories)) == {budget, cat, deploy}
    assert everything.total == 3 and everything.filtered == 3 and not everything.truncated
    assert all(isinstance(m, Memory) and m.content for m in everything.memories)

    def matching(**flt: object) -> set[str]:
        res = client.batch_recall(BatchRecallRequest(agent_id=agent, filter=BatchMemoryFilter(**flt)))
        assert res.filtered == len(res.memories)
        return set(ids(res.memories))

    assert matching(tags=["work"]) == {budget, deploy}
    assert matching(tags=["work", "ops"]) == {deploy}  # every tag, unlike recall's any
    assert matching(min_importance=0.6) == {budget, deploy}
    assert matching(max_importance=0.6) == {cat, deploy}
    assert matching(memory_type="semantic") == {cat}
    assert matching(created_after=int(time.time()) + 3600) == set()
    assert matching(created_before=int(time.time()) + 3600) == {budget, cat, deploy}
    shortcut = client.batch_recall(BatchRecallRequest(agent_id=agent, min_importance=0.85))
    assert ids(shortcut.memories) == [budget]
    capped = client.batch_recall(BatchRecallRequest(agent_id=agent, limit=2))
    assert len(capped.memories) == 2 and capped.truncated and capped.filtered == 3


def test_batch_forget(client: DakeraClient, agent: str) -> None:
    budget, cat, deploy = seed(client, agent)
    out = client.batch_forget(BatchForgetRequest(agent_id=agent, filter=BatchMemoryFilter(tags=["work"])))
    assert out.deleted_count == 2
    assert ids(client.recall(agent, "budget review deploy payment", top_k=10).memories) == [cat]
    with pytest.raises(ValidationError) as err:  # an empty filter would wipe the agent
        client.batch_forget(BatchForgetRequest(agent_id=agent))
    assert err.value.response_body["field"] == "filter"
    assert client.agent_stats(agent)["total_memories"] == 1


# -- sessions ------------------------------------------------------------------------------
def test_session_lifecycle(client: DakeraClient, agent: str) -> None:
    session = client.start_session(agent, metadata={"channel": "slack"})
    sid = session["id"]
    assert session["agent_id"] == agent and session["metadata"] == {"channel": "slack"}
    assert isinstance(session["started_at"], int) and session["ended_at"] is None

    stored = client.store_memory(agent, "We agreed to ship the beta on Monday", session_id=sid)
    assert stored["session_state"] == "active" and stored["session_id"] == sid
    client.store_memory(agent, "Outside of any session")

    touched = client.touch_session(sid)
    assert isinstance(touched, SessionTouchResponse) and touched.is_active
    assert touched.session.session_id == sid and not touched.session.is_ended
    assert touched.idle_deadline_at == touched.session.last_activity_at + 14400

    got = Session.from_dict(client.get_session(sid))
    assert got.session_id == sid and got.memory_count == 1 and got.ended_reason is None

    assert sid in ids(client.list_sessions(agent_id=agent, active_only=True, limit=10))
    assert sid in ids(client.list_sessions())
    assert ids(client.session_memories(sid)) == [stored["id"]]
    assert ids(client.recall(agent, "ship the beta", top_k=10, session_id=sid).memories) == [stored["id"]]

    ended = client.end_session(sid, summary="Beta ships Monday")
    s = Session.from_dict(ended["session"])
    assert s.ended_reason == "client" and s.is_ended and s.summary == "Beta ships Monday"
    assert isinstance(s.ended_at, int) and ended["memory_count"] == 1

    after = client.touch_session(sid)  # a touch never re-opens an ended session
    assert after.session_state == "ended" and after.idle_deadline_at is None
    assert after.session.ended_reason == "client"
    assert sid not in ids(client.list_sessions(agent_id=agent, active_only=True))
    assert sid in ids(client.list_sessions(agent_id=agent, active_only=False))
    again = client.end_session(sid)  # ending twice keeps the first ending
    assert again["session"]["summary"] == "Beta ships Monday"

    late = client.store_memory(agent, "A note after the session ended", session_id=sid)
    assert late["session_state"] == "ended"


def test_session_memories_paging_and_preview(client: DakeraClient, agent: str) -> None:
    sid = client.start_session(agent)["id"]
    client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[
        BatchStoreMemoryItem(content=f"session note number {i} with some padding text", session_id=sid)
        for i in range(3)]))
    rows = client.session_memories(sid, limit=2, content_preview_chars=12)
    assert len(rows) == 2
    assert all(len(r["content"]) == 12 and r["content_truncated"] and r["content_len"] > 12 for r in rows)
    assert len(client.session_memories(sid, limit=2, offset=2)) == 1


def test_touch_keeps_a_session_active_and_idle_ends_it(client: DakeraClient, agent: str) -> None:
    sid = client.start_session(agent, idle_timeout_secs=3)["id"]
    first = client.touch_session(sid).session.last_activity_at
    for _ in range(4):  # 4 s of touching a session whose timeout is 3 s
        time.sleep(1)
        assert client.touch_session(sid).is_active
    assert client.touch_session(sid).session.last_activity_at > first
    deadline = time.time() + 15
    while Session.from_dict(client.get_session(sid)).ended_reason is None and time.time() < deadline:
        time.sleep(0.5)
    idle = Session.from_dict(client.get_session(sid))
    assert idle.ended_reason == "idle" and idle.idle_since == idle.last_activity_at
    assert client.touch_session(sid).session_state == "ended"


def test_session_without_idle_timeout(client: DakeraClient, agent: str) -> None:
    sid = client.start_session(agent, idle_timeout_secs=0)["id"]
    touched = client.touch_session(sid)
    assert touched.is_active and touched.idle_deadline_at is None
    assert touched.session.idle_timeout_secs == 0


def test_chat_memory_session_helper(client: DakeraClient, agent: str) -> None:
    with ChatMemorySession.create(client, agent, metadata={"ui": "chat"}) as chat:
        mem = chat.store("user", "My name is Alice and I like Python.")
        assert mem["tags"] == ["user"] and mem["importance"] == 0.6
        assert mem["session_state"] == "active"
        chat.store("assistant", "Nice to meet you, Alice!", tags=["greeting"])
        context = chat.recall("what is the user's name?", top_k=2)
        assert context and all(isinstance(m, RecalledMemory) for m in context)
        assert "Alice" in context[0].content
        assert chat.touch().is_active
        sid = chat.session_id
    s = Session.from_dict(client.get_session(sid))
    assert s.ended_reason == "client" and s.memory_count == 2


# -- agents --------------------------------------------------------------------------------
def test_create_agent(client: DakeraClient, agent: str) -> None:
    first = client.create_agent(agent)
    assert isinstance(first, CreateAgentResponse)
    assert first.created and first.agent_id == agent
    assert first.namespace == f"_dakera_agent_{agent}"
    assert first.model == client.capabilities().default_model.value and first.dimension > 0
    second = client.create_agent(agent)
    assert not second.created and second.agent_id == agent


def test_list_agents(client: DakeraClient, agent: str) -> None:
    seed(client, agent)
    client.start_session(agent)
    rows = client.list_agents()
    assert isinstance(rows, list)
    mine = [AgentSummary.from_dict(r) for r in rows if r["agent_id"] == agent]
    assert len(mine) == 1
    assert (mine[0].memory_count, mine[0].session_count, mine[0].active_sessions) == (3, 1, 1)


def test_agent_memories(client: DakeraClient, agent: str) -> None:
    first = client.store_memory(agent, "oldest note about apples")["id"]
    time.sleep(1.1)  # created_at is whole seconds: make "newest first" observable
    budget, cat, deploy = seed(client, agent)
    rows = client.agent_memories(agent)
    assert isinstance(rows, list) and len(rows) == 4 and rows[-1]["id"] == first
    assert all(Memory.from_dict(r).content for r in rows)
    assert ids(client.agent_memories(agent, memory_type="semantic")) == [cat]
    page = client.agent_memories(agent, limit=2, offset=3, include_derived=False)
    assert ids(page) == [first]
    preview = client.agent_memories(agent, limit=1, offset=3, content_preview_chars=6)
    assert preview[0]["content"] == "oldest" and preview[0]["content_truncated"] is True
    assert preview[0]["content_len"] == len("oldest note about apples")


def test_agent_sessions(client: DakeraClient, agent: str) -> None:
    open_id = client.start_session(agent)["id"]
    closed_id = client.start_session(agent)["id"]
    client.end_session(closed_id)
    assert set(ids(client.agent_sessions(agent))) == {open_id, closed_id}
    assert ids(client.agent_sessions(agent, active_only=True)) == [open_id]
    assert len(client.agent_sessions(agent, active_only=False, limit=1)) == 1


def test_agent_stats(client: DakeraClient, agent: str) -> None:
    seed(client, agent)
    client.end_session(client.start_session(agent)["id"])
    client.start_session(agent)
    stats = AgentStats.from_dict(client.agent_stats(agent))
    assert stats.agent_id == agent and stats.total_memories == 3
    assert stats.memories_by_type == {"episodic": 1, "semantic": 1, "procedural": 1}
    assert (stats.total_sessions, stats.active_sessions) == (2, 1)
    assert stats.avg_importance == pytest.approx(0.6)
    assert isinstance(stats.oldest_memory_at, int) and stats.newest_memory_at >= stats.oldest_memory_at


# -- keys and namespaces -------------------------------------------------------------------
def test_admin_keys_create_list_delete(engram: Engram, client: DakeraClient, agent: str) -> None:
    created = client.create_key(f"ci-{agent}", scope="write", namespaces=[agent], expires_in_days=7)
    assert created["key"] and created["key_id"] and created["scope"] == "write"
    assert created["namespaces"] == [agent] and isinstance(created["expires_at"], int)

    with DakeraClient(engram.url, api_key=created["key"]) as scoped:
        assert scoped.store_memory(agent, "written with a scoped key")["id"]
        assert scoped.whoami().key_id == created["key_id"]

    listed = client.list_keys()
    assert listed["total"] == len(listed["keys"])
    infos = {k.key_id: k for k in map(KeyInfo.from_dict, listed["keys"])}
    mine = infos[created["key_id"]]
    assert mine.name == f"ci-{agent}" and mine.scope == "write" and mine.namespaces == [agent]
    assert mine.created_at > 0 and mine.active and mine.grants_version == 1
    assert all("key" not in k for k in listed["keys"]), "a listing never shows a secret"

    renamed = client.update_key(created["key_id"], name=f"ci2-{agent}", namespaces=[agent, f"{agent}-2"])
    assert (renamed.name, renamed.namespaces) == (f"ci2-{agent}", [agent, f"{agent}-2"])
    assert client.update_key(created["key_id"], all_namespaces=True).namespaces is None

    assert client.delete_key(created["key_id"])["success"] is True
    assert created["key_id"] not in {k["key_id"] for k in client.list_keys()["keys"]}
    with DakeraClient(engram.url, api_key=created["key"]) as revoked, \
            pytest.raises(AuthenticationError):
        revoked.whoami()
    with pytest.raises(NotFoundError) as err:
        client.delete_key(created["key_id"])
    assert err.value.code.value == "API_KEY_NOT_FOUND"


def test_prefix_grant_reaches_matching_agents(engram: Engram, client: DakeraClient, agent: str) -> None:
    created = client.create_key("team", scope="write", namespaces=[f"_dakera_agent_{agent}-*"])
    with DakeraClient(engram.url, api_key=created["key"]) as team:
        assert team.create_agent(f"{agent}-bot").created
        assert team.store_memory(f"{agent}-bot", "team memory")["agent_id"] == f"{agent}-bot"
        assert [r["agent_id"] for r in team.list_agents()] == [f"{agent}-bot"]
        assert [n.name for n in team.list_namespaces()] == [f"_dakera_agent_{agent}-bot"]


def test_namespaces_list_and_delete(client: DakeraClient, agent: str) -> None:
    budget, _, _ = seed(client, agent)
    sid = client.start_session(agent)["id"]
    listed = client.list_namespaces()
    assert all(isinstance(n, NamespaceInfo) for n in listed)
    mine = [n for n in listed if n.name == f"_dakera_agent_{agent}"]
    assert len(mine) == 1 and mine[0].kind == "agent"

    assert client.delete_namespace(f"_dakera_agent_{agent}") is None
    assert f"_dakera_agent_{agent}" not in {n.name for n in client.list_namespaces()}
    assert client.recall(agent, "budget review", top_k=10).memories == []
    with pytest.raises(NotFoundError):
        client.get_memory(agent, budget)
    with pytest.raises(NotFoundError):
        client.get_session(sid)
    with pytest.raises(NotFoundError) as err:
        client.delete_namespace(agent)  # the bare agent id names the same namespace
    assert err.value.code.value == "NAMESPACE_NOT_FOUND"
