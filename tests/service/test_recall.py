"""Recall through the API: fusion per request, channels, score parts, filters, listing."""
from __future__ import annotations

import time

from tests.builders import Engram

DAY = 86_400


def seed(c, ns: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    now = int(time.time())
    items = [
        {"id": "pg", "content": "We chose PostgreSQL as the primary database", "memory_type": "semantic",
         "importance": 0.9, "tags": ["db", "decision"], "event_time": now - 40 * DAY},
        {"id": "redis", "content": "Redis caches the session tokens", "memory_type": "procedural",
         "importance": 0.4, "tags": ["cache"], "event_time": now - 2 * DAY},
        {"id": "lunch", "content": "Lunch on Friday was tacos", "memory_type": "episodic",
         "importance": 0.1, "tags": ["social"], "event_time": now - 1 * DAY},
        {"id": "standup", "content": "Standup moved to 10am", "memory_type": "working",
         "importance": 0.3, "event_time": "2024-05-08T09:00:00Z"},
    ]
    r = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": items})
    r.raise_for_status()
    return {m["id"]: m["content"] for m in r.json()["stored"]}


def ids(r) -> list[str]:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text
    return [m["id"] for m in r.json()["memories"]]


def test_results_carry_score_parts_and_channels(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        seed(c, ns)
        r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "which database did we choose", "top_k": 4})
        top = r.json()["memories"][0]
        assert top["id"] == "pg"
        assert set(top["channels"]) == {"vector", "bm25"}
        parts = top["score_breakdown"]
        assert {"relevance", "importance", "decay", "recency", "access", "final"} <= set(parts)
        assert top["score"] == parts["final"] and top["vector_score"] is not None
        scores = [m["score"] for m in r.json()["memories"]]
        assert scores == sorted(scores, reverse=True)


def test_fusion_and_routing_per_request(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        seed(c, ns)
        q = {"agent_id": ns, "query": "database cache tokens", "top_k": 4}
        rrf = c.post("/v1/memory/recall", json={**q, "fusion": "rrf"}).json()
        mm = c.post("/v1/memory/recall", json={**q, "fusion": "minmax", "vector_weight": 0.9}).json()
        assert rrf["fusion"] == "rrf" and mm["fusion"] == "minmax"
        assert {m["id"] for m in rrf["memories"]} == {m["id"] for m in mm["memories"]}
        vector_only = c.post("/v1/memory/recall", json={**q, "routing": "vector"}).json()["memories"]
        assert all(m["channels"] == ["vector"] for m in vector_only)
        bm25_only = c.post("/v1/memory/recall", json={**q, "routing": "bm25"}).json()["memories"]
        assert bm25_only and all(m["channels"] == ["bm25"] for m in bm25_only)
        assert {m["id"] for m in bm25_only} <= {"pg", "redis"}


def test_filters(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        seed(c, ns)
        base = {"agent_id": ns, "query": "notes", "top_k": 10}
        assert ids(c.post("/v1/memory/recall", json={**base, "memory_type": "procedural"})) == ["redis"]
        assert set(ids(c.post("/v1/memory/recall", json={**base, "min_importance": 0.35}))) == {"pg", "redis"}
        assert set(ids(c.post("/v1/memory/recall", json={**base, "tags": ["db", "social"]}))) == {"pg", "lunch"}
        assert ids(c.post("/v1/memory/recall", json={**base, "since": "2024-05-01T00:00:00Z",
                                                      "until": "2024-05-31T00:00:00Z"})) == ["standup"]
        recent = ids(c.post("/v1/memory/recall", json={**base, "since": int(time.time()) - 3 * DAY}))
        assert set(recent) == {"redis", "lunch"}


def test_search_and_listing(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        seed(c, ns)
        found = c.post("/v1/memory/search", json={"agent_id": ns, "query": "PostgreSQL"}).json()
        assert found["memories"][0]["id"] == "pg" and "score" in found["memories"][0]
        for i in range(3):
            c.post("/v1/memory/store", json={"agent_id": ns, "content": f"later note {i}"}).raise_for_status()
        page1 = c.get(f"/v1/agents/{ns}/memories", params={"limit": 2}).json()
        page2 = c.get(f"/v1/agents/{ns}/memories", params={"limit": 2, "offset": 2}).json()
        assert [m["content"] for m in page1] == ["later note 2", "later note 1"]  # newest first
        assert page2[0]["content"] == "later note 0" and len(page2) == 2
        preview = c.get(f"/v1/agents/{ns}/memories", params={"limit": 1, "content_preview_chars": 5}).json()[0]
        assert preview["content"] == "later" and preview["content_truncated"] is True
        stats = c.get(f"/v1/agents/{ns}/stats").json()
        assert stats["total_memories"] == 7 and stats["memories_by_type"]["semantic"] == 1


def test_concurrent_recalls_on_one_shard_each_get_their_own(engram: Engram, ns: str) -> None:
    """A Router sends concurrent recalls to a shard together (serve/clients.py, call_many):
    each still answers for its own namespace and query."""
    import asyncio

    import httpx

    from shards.routing import shard_for

    count = engram.config["shard_count"]
    names = [n for n in (f"{ns}-c{i}" for i in range(80)) if shard_for(n, count) == 0][:12]
    with engram.http() as c:
        for i, name in enumerate(names):
            r = c.post("/v1/memory/store", json={"agent_id": name, "id": f"fact-{i}",
                                                 "content": f"The locker code for site {i} is {1000 + i}"})
            r.raise_for_status()

    async def recall_all() -> list[list[str]]:
        async with httpx.AsyncClient(base_url=engram.url, timeout=60,
                                     headers={"Authorization": f"Bearer {engram.root_key}"}) as c:
            async def one(name: str, i: int) -> list[str]:
                r = await c.post("/v1/memory/recall", json={
                    "agent_id": name, "query": f"locker code for site {i}", "top_k": 5})
                return ids(r)
            return await asyncio.gather(*(one(n, i) for _ in range(3) for i, n in enumerate(names)))

    from ray import serve

    shard = serve.get_deployment_handle("Shard0", app_name="engram")
    calls_before, reads_before = shard.read_sharing.remote().result(timeout_s=60)
    answers = asyncio.run(recall_all())
    assert answers == [[f"fact-{i}"] for _ in range(3) for i in range(len(names))]
    calls, reads = shard.read_sharing.remote().result(timeout_s=60)
    assert calls > calls_before and reads - reads_before > calls - calls_before  # they did share


def test_call_many_answers_each_call_on_its_own(engram: Engram, ns: str) -> None:
    """Through the real Shard deployment: a call refused for its stale map epoch fails
    alone, the calls around it are answered."""
    from ray import serve

    from shards.errors import StaleShardMap
    from shards.routing import shard_for

    with engram.http() as c:
        c.post("/v1/memory/store", json={"agent_id": ns, "id": "only", "content": "a lone fact"}).raise_for_status()
    handle = serve.get_deployment_handle(f"Shard{shard_for(ns, engram.config['shard_count'])}", app_name="engram")
    answers = handle.call_many.remote([
        ("namespace_stats", (ns,), {}),
        ("namespace_stats", (ns,), {"map_epoch": -1}),  # older than any shard's map
        ("namespace_stats", (ns,), {"map_epoch": None}),
    ]).result(timeout_s=60)
    (ok0, first), (ok1, refused), (ok2, third) = answers
    assert ok0 and ok2 and not ok1
    assert isinstance(refused, StaleShardMap)
    assert first[0].name == ns and first[0].memory_count == 1 and third == first
