"""Bad input: a 4xx naming the field, and nothing stored changes."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.builders import Engram


def snapshot(engram: Engram, ns: str) -> list[dict[str, Any]]:
    with engram.http() as c:
        r = c.get(f"/v1/agents/{ns}/memories", params={"limit": 1000})
        return sorted(r.json(), key=lambda m: m["id"]) if r.status_code == 200 else []


def nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_STORES: list[tuple[Any, int, str]] = [
    ({"content": "ok", "importance": 1.5}, 400, "importance"),
    ({"content": "ok", "importance": -0.1}, 400, "importance"),
    ({"content": "ok", "importance": "high"}, 400, "importance"),
    ({"content": "ok", "memory_type": "dream"}, 400, "memory_type"),
    ({"content": 42}, 400, "content"),
    ({"content": "ok", "tags": "not-a-list"}, 400, "tags"),
    ({"content": "ok", "tags": [1, 2]}, 400, "tags"),
    ({"content": "ok", "metadata": ["x"]}, 400, "metadata"),
    ({"content": "ok", "event_time": "yesterday-ish"}, 400, "event_time"),
    ({"content": "ok", "event_time": -5}, 400, "event_time"),
    ({}, 400, "content"),
    # json.dumps writes NaN, and "\ud800" for a lone surrogate: what a careless client sends.
    ({"content": "ok", "metadata": {"score": float("nan")}}, 400, "body"),
    ({"content": "ok", "metadata": {"score": float("inf")}}, 400, "body"),
    ({"content": "ok", "metadata": {"note": "half a pair \ud800"}}, 400, "metadata.note"),
    ({"content": "lone \udfff surrogate"}, 400, "content"),
    ({"content": "ok", "tags": ["fine", "\ud83d"]}, 400, "tags[1]"),
    ({"content": "ok", "metadata": {"x": nest(40)}}, 400, "metadata.x"),
    ({"content": "ok", "event_time": 10**400}, 400, "event_time"),
    ({"content": "ok", "expires_at": 1_000_000}, 400, "expires_at"),  # 1970: in the past
    ({"content": "ok", "expires_at": "2024"}, 400, "expires_at"),  # a year is not a time
    ({"content": "ok", "expires_at": "next week"}, 400, "expires_at"),
    ({"content": "🚀" * 25_001}, 413, "content"),  # 100,004 UTF-8 bytes, 25,001 characters
    ({"content": "x" * 100_001}, 413, "content"),
    ({"content": "ok", "metadata": {"blob": "y" * 70_000}}, 413, "metadata"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_STORES)
def test_bad_store_is_rejected_naming_the_field(engram: Engram, ns: str, body: dict[str, Any],
                                                status: int, field: str) -> None:
    with engram.http() as c:
        c.post("/v1/memory/store", json={"agent_id": ns, "content": "already here"}).raise_for_status()
        before = snapshot(engram, ns)
        # json.dumps as is: httpx's own encoder refuses NaN before it could reach us.
        r = c.post("/v1/memory/store", content=json.dumps({"agent_id": ns, **body}),
                   headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["field"].startswith(field) and field in r.json()["error"]
    assert snapshot(engram, ns) == before


def test_content_at_the_limit_is_accepted(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        r = c.post("/v1/memory/store", json={"agent_id": ns, "content": "é" * 50_000})  # 100,000 bytes
        assert r.status_code == 200, r.text


def test_malformed_json_and_bad_recall_fields(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        r = c.post("/v1/memory/store", content=b'{"agent_id": "x", "content": ', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "body"
        for body, field in [({"top_k": 0}, "top_k"), ({"top_k": 101}, "top_k"), ({"top_k": -3}, "top_k"),
                            ({"top_k": "many"}, "top_k"), ({"memory_type": "dream"}, "memory_type"),
                            ({"since": "not a date"}, "since"), ({"vector_weight": 2}, "vector_weight"),
                            ({"fusion": "magic"}, "fusion"), ({"min_importance": 7}, "min_importance")]:
            r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "q", **body})
            assert r.status_code == 400, (body, r.text)
            assert r.json()["field"] == field


def test_a_batch_with_one_bad_item_stores_nothing(engram: Engram, ns: str) -> None:
    before = snapshot(engram, ns)
    with engram.http() as c:
        r = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": "fine"}, {"content": "fine too"}, {"content": "bad", "importance": 3}]})
        assert r.status_code == 400 and r.json()["field"] == "memories[2].importance"
        r = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": "fine"}, {"content": "x" * 100_001}]})
        assert r.status_code == 413 and r.json()["field"] == "memories[1].content"
    assert snapshot(engram, ns) == before


HOSTILE = ['acme" or 1==1', "back\\slash\\", "it's", "line\nbreak", "emoji 🚀", 'x") or true or ("', "y" * 2000]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_are_data_not_code(engram: Engram, value: str) -> None:
    with engram.http() as c:
        stored = c.post("/v1/memory/store", json={
            "agent_id": value, "content": f"hostile value memory {value}", "tags": [value, "plain"],
            "metadata": {value: value, "nested": {"q": value}}})
        assert stored.status_code == 200, stored.text
        mid = stored.json()["memory"]["id"]
        c.post("/v1/memory/store", json={"agent_id": value + "-other", "content": "hostile value memory"}).raise_for_status()
        hits = c.post("/v1/memory/recall", json={"agent_id": value, "query": f"hostile {value}", "tags": [value]}).json()["memories"]
        assert [h["id"] for h in hits] == [mid]
        assert hits[0]["agent_id"] == value and hits[0]["tags"] == [value, "plain"]
        assert hits[0]["metadata"] == {value: value, "nested": {"q": value}}
        got = c.get(f"/v1/memory/get/{mid}", params={"agent_id": value}).json()
        assert got["content"] == f"hostile value memory {value}"
        batch = c.post("/v1/memories/recall/batch", json={"agent_id": value, "filter": {"tags": [value]}}).json()
        assert [m["id"] for m in batch["memories"]] == [mid]


def test_a_field_of_several_types_is_named_alone(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        r = c.post("/v1/memory/store", json={"agent_id": ns, "content": "ok", "event_time": [1]})
        assert r.status_code == 400 and r.json()["field"] == "event_time", r.text


def test_an_empty_tag_filter_forgets_nothing(engram: Engram, ns: str) -> None:
    """`tags: []` names no tag: as a forget filter it would match the whole agent."""
    with engram.http() as c:
        c.post("/v1/memory/store", json={"agent_id": ns, "content": "keep me", "tags": ["a"]}).raise_for_status()
        before = snapshot(engram, ns)
        r = c.request("DELETE", "/v1/memories/forget/batch", json={"agent_id": ns, "filter": {"tags": []}})
        assert r.status_code == 400 and r.json()["field"] == "filter", r.text
    assert snapshot(engram, ns) == before and len(before) == 1


def test_dates_beyond_the_calendar_in_a_query_are_words(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        c.post("/v1/memory/store", json={"agent_id": ns, "content": "the December launch"}).raise_for_status()
        for query in ["what happened in December 9999", "news of May 0000", "9999-12-31",
                      "between 9999-12-30 and 9999-12-31"]:
            r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": query})
            assert r.status_code == 200, (query, r.text)
        r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "3000 years ago",
                                               "reference_time": 1_700_000_000})
        assert r.status_code == 200, r.text


def test_an_offset_past_any_store_is_refused(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        c.post("/v1/memory/store", json={"agent_id": ns, "content": "one"}).raise_for_status()
        r = c.get(f"/v1/agents/{ns}/memories", params={"offset": 2**63})
        assert r.status_code == 400 and r.json()["field"] == "offset", r.text


def test_expires_at_takes_an_rfc3339_time(engram: Engram, ns: str) -> None:
    with engram.http() as c:
        r = c.post("/v1/memory/store", json={"agent_id": ns, "content": "expires in 2100",
                                             "expires_at": "2100-01-01T00:00:00Z"})
        assert r.status_code == 200 and r.json()["memory"]["expires_at"] == 4_102_444_800, r.text


def test_a_body_past_the_limit_is_refused_unread(engram: Engram, ns: str) -> None:
    """The test app reads at most 4 MB of a body (limits.max_body_bytes)."""
    before = snapshot(engram, ns)
    memories = [{"content": "z" * 90_000} for _ in range(50)]  # ~4.5 MB of JSON
    with engram.http() as c:
        r = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": memories})
        assert r.status_code == 413 and r.json()["field"] == "body", r.text[:300]

        def chunked() -> Iterator[bytes]:  # no Content-Length: refused while it streams
            yield b'{"agent_id": "' + ns.encode() + b'", "memories": ['
            for i in range(50):
                yield (b"," if i else b"") + b'{"content": "' + b"z" * 90_000 + b'"}'
            yield b"]}"
        r = c.post("/v1/memories/store/batch", content=chunked(),
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body", r.text[:300]
    assert snapshot(engram, ns) == before
