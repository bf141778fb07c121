"""The same routes through the official `AsyncDakeraClient` (httpx): a leaner mirror of
test_sync_routes.py, plus what only async callers do (many requests in flight at once)."""
from __future__ import annotations

import asyncio

import pytest
from dakera import (
    AgentStats,
    AsyncChatMemorySession,
    AsyncDakeraClient,
    AuthenticationError,
    AuthorizationError,
    BatchForgetRequest,
    BatchMemoryFilter,
    BatchRecallRequest,
    BatchRecallResponse,
    BatchStoreMemoryItem,
    BatchStoreMemoryRequest,
    BatchStoreMemoryResponse,
    CreateAgentResponse,
    ErrorCode,
    KeyInfo,
    Memory,
    NamespaceInfo,
    NotFoundError,
    PayloadTooLargeError,
    RecalledMemory,
    RecallResponse,
    ServerCapabilities,
    Session,
    SessionTouchResponse,
    ValidationError,
    WhoamiResponse,
)

from tests.builders import Engram

# The session-scoped client's httpx pool lives on the session loop; so do these tests.
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_health_capabilities_whoami(aclient: AsyncDakeraClient) -> None:
    assert (await aclient.health())["status"] == "healthy"
    assert (await aclient.health_live())["alive"] is True
    assert (await aclient.health_ready())["ready"] is True
    assert await aclient.is_ready()
    caps = await aclient.capabilities(refresh=True)
    assert isinstance(caps, ServerCapabilities) and caps.supports_session_touch
    me = await aclient.whoami()
    assert isinstance(me, WhoamiResponse) and me.scope == "super_admin" and me.unrestricted


async def test_memory_round_trip(aclient: AsyncDakeraClient, agent: str) -> None:
    stored = await aclient.store_memory(agent, "Bob's birthday is on the 9th of July",
                                        memory_type="semantic", importance=0.7, tags=["bob"])
    mid = stored["id"]
    assert Memory.from_dict(await aclient.get_memory(agent, mid)).content == stored["content"]
    assert (await aclient.get_memory(None, mid))["tags"] == ["bob"]

    out = await aclient.recall(agent, "when is Bob's birthday?", top_k=3, routing="hybrid",
                               fusion="rrf", neighborhood_mode="separate", rerank_candidates=3)
    assert isinstance(out, RecallResponse) and isinstance(out.memories[0], RecalledMemory)
    assert out.memories[0].id == mid and out.memories[0].score > 0
    hits = await aclient.search_memories(agent, "birthday July", routing="bm25")
    assert [h["id"] for h in hits] == [mid]

    updated = await aclient.update_memory(agent, mid, content="Bob's birthday is on the 10th of July",
                                          tags=["bob", "dates"])
    assert updated["content"].endswith("10th of July") and updated["tags"] == ["bob", "dates"]
    patched = await aclient.patch_memory_importance(mid, agent, 0.99)
    assert isinstance(patched, Memory) and patched.importance == 0.99

    assert (await aclient.forget(agent, mid))["deleted_count"] == 1
    assert (await aclient.recall(agent, "when is Bob's birthday?")).memories == []
    with pytest.raises(NotFoundError):
        await aclient.get_memory(agent, mid)


async def test_batches(aclient: AsyncDakeraClient, agent: str) -> None:
    out = await aclient.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[
        BatchStoreMemoryItem(content="Invoice 1001 was paid in full", tags=["billing", "paid"]),
        BatchStoreMemoryItem(content="Invoice 1002 is overdue by ten days", importance=0.9,
                             tags=["billing", "overdue"]),
        BatchStoreMemoryItem(content="The team lunch is on Thursday", tags=["social"], id="lunch-1"),
    ]))
    assert isinstance(out, BatchStoreMemoryResponse) and out.stored_count == 3
    assert [s.id for s in out.stored][2] == "lunch-1" and all(s.agent_id == agent for s in out.stored)

    billing = await aclient.batch_recall(BatchRecallRequest(
        agent_id=agent, filter=BatchMemoryFilter(tags=["billing"], min_importance=0.8)))
    assert isinstance(billing, BatchRecallResponse) and billing.total == 3
    assert [m.content for m in billing.memories] == ["Invoice 1002 is overdue by ten days"]

    gone = await aclient.batch_forget(BatchForgetRequest(
        agent_id=agent, filter=BatchMemoryFilter(tags=["billing"])))
    assert gone.deleted_count == 2
    left = await aclient.batch_recall(BatchRecallRequest(agent_id=agent))
    assert [m.id for m in left.memories] == ["lunch-1"]


async def test_sessions(aclient: AsyncDakeraClient, agent: str) -> None:
    sid = (await aclient.start_session(agent, metadata={"via": "async"}))["id"]
    stored = await aclient.store_memory(agent, "Async session note", session_id=sid)
    assert stored["session_state"] == "active"
    touched = await aclient.touch_session(sid)
    assert isinstance(touched, SessionTouchResponse) and touched.is_active
    assert touched.idle_deadline_at is not None
    assert Session.from_dict(await aclient.get_session(sid)).memory_count == 1
    assert sid in [s["id"] for s in await aclient.list_sessions(agent_id=agent, active_only=True)]
    assert [m["id"] for m in await aclient.session_memories(sid)] == [stored["id"]]
    ended = Session.from_dict((await aclient.end_session(sid))["session"])
    assert ended.ended_reason == "client" and ended.is_ended
    assert (await aclient.touch_session(sid)).session_state == "ended"
    assert await aclient.agent_sessions(agent, active_only=True) == []


async def test_chat_memory_session_helper(aclient: AsyncDakeraClient, agent: str) -> None:
    async with await AsyncChatMemorySession.create(aclient, agent) as chat:
        await chat.store("user", "I am allergic to peanuts")
        context = await chat.recall("what food allergies do I have?")
        assert context and "peanuts" in context[0].content
        assert (await chat.touch()).is_active
        sid = chat.session_id
    assert (await aclient.get_session(sid))["ended_reason"] == "client"


async def test_agents(aclient: AsyncDakeraClient, agent: str) -> None:
    created = await aclient.create_agent(agent)
    assert isinstance(created, CreateAgentResponse) and created.created
    assert created.namespace == f"_dakera_agent_{agent}"
    assert not (await aclient.create_agent(agent)).created
    await aclient.store_memory(agent, "an agent's first memory", memory_type="working")
    await aclient.start_session(agent)
    assert agent in [a["agent_id"] for a in await aclient.list_agents()]
    assert [m["content"] for m in await aclient.agent_memories(agent, limit=5)] == ["an agent's first memory"]
    assert len(await aclient.agent_sessions(agent)) == 1
    stats = AgentStats.from_dict(await aclient.agent_stats(agent))
    assert stats.total_memories == 1 and stats.memories_by_type == {"working": 1}
    assert stats.active_sessions == 1


async def test_keys_and_namespaces(engram: Engram, aclient: AsyncDakeraClient, agent: str) -> None:
    created = await aclient.create_key("async-key", scope="read", namespaces=[agent])
    listed = [KeyInfo.from_dict(k) for k in (await aclient.list_keys())["keys"]]
    assert created["key_id"] in {k.key_id for k in listed}
    async with AsyncDakeraClient(engram.url, api_key=created["key"]) as reader:
        assert (await reader.recall(agent, "anything")).memories == []
        with pytest.raises(AuthorizationError) as denied:
            await reader.store_memory(agent, "no")
        assert denied.value.code == ErrorCode.INSUFFICIENT_SCOPE
        await aclient.delete_key(created["key_id"])
        with pytest.raises(AuthenticationError):
            await reader.whoami()

    await aclient.store_memory(agent, "soon gone")
    names = {n.name: n for n in await aclient.list_namespaces()}
    assert isinstance(names[f"_dakera_agent_{agent}"], NamespaceInfo)
    assert names[f"_dakera_agent_{agent}"].kind == "agent"
    await aclient.delete_namespace(f"_dakera_agent_{agent}")
    assert (await aclient.recall(agent, "soon gone")).memories == []


async def test_errors(aclient: AsyncDakeraClient, agent: str) -> None:
    with pytest.raises(ValidationError) as bad:
        await aclient.store_memory(agent, "x", importance=1.5)
    assert bad.value.response_body["field"] == "importance"
    with pytest.raises(ValidationError):
        await aclient.recall(agent, "x", top_k=101)
    with pytest.raises(ValidationError):
        await aclient.store_memory(agent, "x", memory_type="dream")
    with pytest.raises(PayloadTooLargeError) as big:
        await aclient.store_memory(agent, "ü" * 50_001)
    assert big.value.is_oversize
    with pytest.raises(NotFoundError):
        await aclient.touch_session("sess_missing")


async def test_concurrent_writes_are_all_readable(aclient: AsyncDakeraClient, agent: str) -> None:
    facts = [f"Concurrent fact number {i}: the locker code is {1000 + i}" for i in range(12)]
    stored = await asyncio.gather(*(aclient.store_memory(agent, f) for f in facts))
    assert len({m["id"] for m in stored}) == len(facts)
    recalls = await asyncio.gather(*(aclient.search_memories(agent, f"locker code {1000 + i}",
                                                             routing="bm25", top_k=1)
                                     for i in range(len(facts))))
    assert [r[0]["id"] for r in recalls] == [m["id"] for m in stored]
    assert (await aclient.agent_stats(agent))["total_memories"] == len(facts)
