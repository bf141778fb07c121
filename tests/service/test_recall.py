"""Recall through the API: fusion per request, channels, score parts, filters, listing."""
from __future__ import annotations

import time

from tests.conftest import Engram

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
