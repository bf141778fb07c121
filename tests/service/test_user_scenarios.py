"""Two scenarios written the way users write them, against the real service (sync and async)."""
from __future__ import annotations

import uuid

import pytest

from engram import AsyncEngram, Engram
from tests.builders import Engram as Service

DECISION = "Decided to use PostgreSQL for the backend project"
STATUS = "Backend project status: API done, auth in progress"
JANE = "Customer Jane Doe prefers email contact and asked about returning her order"
DISTRACTORS = [
    "Customer John Smith asked how long shipping to Canada takes",
    "Customer Maria Garcia reported a damaged blender and wants a replacement",
    "The warehouse in Ohio closes early on public holidays",
    "Refunds are processed within 5 business days after the return arrives",
    "Customer Wei Chen prefers phone calls in the evening",
    "Promo code SPRING24 gives 10% off garden furniture until May",
    "Customer Ahmed Khan changed his delivery address to 12 Elm Street",
    "The support team rotates weekend shifts every month",
    "Order ORD-88812 was delayed by a carrier strike",
    "Customer Lucy Park asked whether gift wrapping is available",
    "Escalate billing disputes over $500 to the finance team",
    "Customer Tom Becker complained about slow chat response times",
    "Our return window is 30 days for unused items",
    "Customer Priya Nair subscribed to the monthly coffee plan",
    "The knowledge base article on password resets was updated",
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- (a) cross-session context ----------------------------------------------------------------
def test_cross_session_context(engram: Service) -> None:
    client = Engram(base_url=engram.url, api_key=engram.root_key)
    user = unique("user-bob")

    s = client.sessions.start(namespace=user, metadata={"user": "bob", "channel": "chat"})
    client.memory.store(content=DECISION, namespace=user,
                        metadata={"session_id": s["id"], "type": "decision", "importance": 0.8})
    client.memory.store(content=STATUS, namespace=user,
                        metadata={"session_id": s["id"], "type": "status", "importance": 0.8})
    ended = client.sessions.end(session_id=s["id"])

    s2 = client.sessions.start(namespace=user, metadata={"user": "bob", "channel": "chat"})
    results = client.memory.recall(query="backend project status", namespace=user,
                                   top_k=5)["results"]

    assert [r["content"] for r in results][:2] == [STATUS, DECISION]
    status = results[0]
    assert status["session_id"] == s["id"]  # lifted from metadata
    assert status["importance"] == 0.8
    assert status["metadata"] == {"session_id": s["id"], "type": "status", "importance": 0.8}
    assert status["score"] > 0 and status["score_breakdown"] and status["channels"]
    assert ended["active"] is False and ended["memory_count"] == 2
    assert {m["content"] for m in client.sessions.memories(s["id"])} == {DECISION, STATUS}
    assert client.sessions.get(s2["id"])["active"] is True
    client.sessions.end(session_id=s2["id"], summary="Talked about the backend project")
    client.close()


async def test_cross_session_context_async(engram: Service) -> None:
    user = unique("user-bob")
    async with AsyncEngram(base_url=engram.url, api_key=engram.root_key) as client:
        s = await client.sessions.start(namespace=user, metadata={"user": "bob"})
        await client.memory.store(content=DECISION, namespace=user,
                                  metadata={"session_id": s["id"], "type": "decision",
                                            "importance": 0.8})
        await client.memory.store(content=STATUS, namespace=user,
                                  metadata={"session_id": s["id"], "type": "status",
                                            "importance": 0.8})
        await client.sessions.end(session_id=s["id"])

        s2 = await client.sessions.start(namespace=user, metadata={"user": "bob"})
        recalled = await client.memory.recall(query="backend project status", namespace=user,
                                              top_k=5)
        await client.sessions.end(session_id=s2["id"])

    assert [r["content"] for r in recalled["results"]][:2] == [STATUS, DECISION]
    assert recalled["results"][0]["session_id"] == s["id"]


def test_the_better_match_wins_over_a_slightly_more_important_one(engram: Service) -> None:
    client = Engram(base_url=engram.url, api_key=engram.root_key)
    user = unique("user-bob")
    client.memory.store(content=DECISION, namespace=user, metadata={"importance": 0.9})
    client.memory.store(content=STATUS, namespace=user, metadata={"importance": 0.7})
    results = client.memory.recall(query="backend project status", namespace=user)["results"]
    client.close()
    assert results[0]["content"] == STATUS


# -- (b) support bot --------------------------------------------------------------------------
def test_support_bot_remembers_a_customer(engram: Service) -> None:
    agent = unique("support-bot")
    with Engram(base_url=engram.url, api_key=engram.root_key) as admin:
        # The bot runs with its own key, granted its namespace only (write implies read).
        key = admin.keys.create(name=agent, scope="write", namespaces=[agent])

    client = Engram(base_url=engram.url, api_key=key["key"])
    session = client.session_start(agent_id=agent, metadata={"ticket": "T-1001"})
    for text in DISTRACTORS[:7]:
        client.store(agent_id=agent, content=text, importance=0.5, tags=["support"])
    jane = client.store(agent_id=agent, content=JANE, importance=0.8,
                        tags=["support", "returns", "customer:jane-doe"],
                        session_id=session["id"])
    for text in DISTRACTORS[7:]:
        client.store(agent_id=agent, content=text, importance=0.5, tags=["support"])
    ended = client.session_end(session_id=session["id"], summary="Jane asked about a return")

    memories = client.recall(agent_id=agent, query="Jane Doe previous interactions and preferences",
                             top_k=5)

    assert len(memories) == 5
    assert memories[0]["id"] == jane["id"]
    assert memories[0]["content"] == JANE
    assert memories[0]["tags"] == ["support", "returns", "customer:jane-doe"]
    assert [m["score"] for m in memories] == sorted((m["score"] for m in memories), reverse=True)
    assert ended["id"] == session["id"] and ended["summary"] == "Jane asked about a return"
    assert ended["memory_count"] == 1
    client.close()


async def test_support_bot_remembers_a_customer_async(engram: Service) -> None:
    agent = unique("support-bot")
    async with AsyncEngram(base_url=engram.url, api_key=engram.root_key) as client:
        session = await client.session_start(agent_id=agent)
        jane = await client.store(agent_id=agent, content=JANE, importance=0.8,
                                  tags=["support", "returns", "customer:jane-doe"])
        for text in DISTRACTORS:
            await client.store(agent_id=agent, content=text, importance=0.5, tags=["support"])
        await client.session_end(session_id=session["id"])

        memories = await client.recall(agent_id=agent,
                                       query="Jane Doe previous interactions and preferences",
                                       top_k=5)

    assert memories[0]["id"] == jane["id"]
