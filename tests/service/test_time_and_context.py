"""Time in recall (event dates in words, relative expressions) and session neighbourhoods."""
from __future__ import annotations

from tests.builders import Engram

MAY_8_2023 = 1_683_547_200  # 2023-05-08 12:00 UTC


def test_event_date_is_searchable_by_words(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"id": "may", "content": "Signed the lease for the new office", "event_time": "2023-05-08T12:00:00Z"},
            {"id": "june", "content": "Signed the contract with the cleaning company", "event_time": "2023-06-20T12:00:00Z"},
        ]}).raise_for_status()
        r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "what did we sign in May 2023", "routing": "bm25"}).json()
        assert r["memories"][0]["id"] == "may"
        assert r["time_window"]["start"] <= MAY_8_2023 < r["time_window"]["end"]


def test_relative_time_resolves_against_the_reference_time(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"id": "old", "content": "Team lunch at the noodle bar", "event_time": MAY_8_2023 - 40 * 86_400},
            {"id": "yday", "content": "Team lunch at the taco place", "event_time": MAY_8_2023},
        ]}).raise_for_status()
        r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "where was the team lunch yesterday",
                                              "reference_time": MAY_8_2023 + 86_400}).json()
        assert [m["id"] for m in r["memories"]][:1] == ["yday"]
        assert r["memories"][0]["score_breakdown"]["time_match"] > 0


def test_neighbourhood_modes(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        sid = c.post("/v1/sessions/start", json={"agent_id": ns}).json()["session"]["id"]
        turns = ["I just adopted a puppy", "What breed is it?", "A golden retriever named Max", "Lovely!"]
        stored = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": t, "session_id": sid} for t in turns]}).json()["stored"]
        ids = [m["id"] for m in stored]
        q = {"agent_id": ns, "query": "golden retriever named Max", "top_k": 1}
        inline = c.post("/v1/memory/recall", json={**q, "neighborhood_mode": "inline"}).json()["memories"]
        assert inline[0]["id"] == ids[2] and inline[0]["retrieval"] is None
        assert [(m["id"], m["retrieval"], m["context_of"]) for m in inline[1:]] == [
            (ids[1], "neighborhood", ids[2]), (ids[3], "neighborhood", ids[2])]
        separate = c.post("/v1/memory/recall", json={**q, "neighborhood_mode": "separate"}).json()
        assert [m["id"] for m in separate["memories"]] == [ids[2]]
        assert [m["id"] for m in separate["context_memories"]] == [ids[1], ids[3]]
        off = c.post("/v1/memory/recall", json={**q, "neighborhood_mode": "off"}).json()
        assert [m["id"] for m in off["memories"]] == [ids[2]] and "context_memories" not in off
