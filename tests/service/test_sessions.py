"""Sessions through the API: metadata, end with summary, touch, listing, idle timeout."""
from __future__ import annotations

import time

from tests.builders import Engram


def test_session_lifecycle(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        s = c.post("/v1/sessions/start", json={"agent_id": ns, "metadata": {"channel": "chat"}})
        assert s.status_code == 201
        session = s.json()["session"]
        assert session["metadata"] == {"channel": "chat"} and session["active"] is True
        sid = session["id"]
        stored = c.post("/v1/memory/store", json={"agent_id": ns, "content": "said hello", "session_id": sid})
        assert stored.json()["session_state"] == "active"
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": "x", "session_id": "nope"}).status_code == 404
        touched = c.post(f"/v1/sessions/{sid}/touch").json()
        assert touched["session_state"] == "active" and touched["idle_deadline_at"] > time.time()
        assert [m["content"] for m in c.get(f"/v1/sessions/{sid}/memories").json()["memories"]] == ["said hello"]
        ended = c.post(f"/v1/sessions/{sid}/end", json={"summary": "greeted"}).json()["session"]
        assert ended["ended_reason"] == "client" and ended["summary"] == "greeted" and ended["memory_count"] == 1
        assert c.post(f"/v1/sessions/{sid}/touch").json()["session_state"] == "ended"  # never re-opened
        second = c.post("/v1/sessions/start", json={"agent_id": ns}).json()["session"]["id"]
        listed = c.get(f"/v1/agents/{ns}/sessions").json()
        assert [x["id"] for x in listed] == [second, sid]
        assert [x["id"] for x in c.get("/v1/sessions", params={"agent_id": ns, "active_only": "true"}).json()] == [second]
        # Recall across sessions, or inside one.
        c.post("/v1/memory/store", json={"agent_id": ns, "content": "said goodbye", "session_id": second})
        everything = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "said"}).json()["memories"]
        assert {m["content"] for m in everything} == {"said hello", "said goodbye"}
        inside = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "said", "session_id": sid}).json()["memories"]
        assert [m["content"] for m in inside] == ["said hello"]


def test_idle_sessions_end_by_themselves(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        sid = c.post("/v1/sessions/start", json={"agent_id": ns, "idle_timeout_secs": 1}).json()["session"]["id"]
        keep = c.post("/v1/sessions/start", json={"agent_id": ns}).json()["session"]["id"]
        deadline = time.time() + 30
        while time.time() < deadline:
            s = c.get(f"/v1/sessions/{sid}").json()
            if s["ended_reason"] == "idle":
                break
            time.sleep(0.5)
        assert s["ended_reason"] == "idle" and s["active"] is False and s["idle_since"]
        assert c.get(f"/v1/sessions/{keep}").json()["active"] is True
        too_long = c.post("/v1/sessions/start", json={"agent_id": ns, "idle_timeout_secs": 10**9})
        assert too_long.status_code == 400 and too_long.json()["field"] == "idle_timeout_secs"
