"""Per-key limits, set through /admin/keys: a request rate with a burst, memories per
namespace, content bytes across the key's namespaces. Past one: 429 with Retry-After, a
JSON body naming the limit, and nothing written; /metrics counts the refusals."""
from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx

from tests.builders import Engram


def limited_key(engram: Engram, namespaces: list[str], scope: str = "write",
                **limits: Any) -> tuple[str, dict[str, Any]]:
    with engram.http() as root:
        r = root.post("/admin/keys", json={"name": "limited", "scope": scope,
                                           "namespaces": namespaces, "limits": limits})
    assert r.status_code == 201, r.text
    return r.json()["key"], r.json()


def stored_ids(engram: Engram, ns: str) -> list[str]:
    with engram.http() as root:
        r = root.get(f"/v1/agents/{ns}/memories", params={"limit": 100})
    r.raise_for_status()
    return sorted(m["id"] for m in r.json())


def assert_refused(r: httpx.Response, code: str, field: str) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert (body["code"], body["field"]) == (code, field), body


def test_a_rate_limited_key_gets_429_with_retry_after_then_gets_through(engram: Engram, ns: str) -> None:
    key, created = limited_key(engram, [ns], requests_per_second=1, burst=2)
    assert created["limits"] == {"requests_per_second": 1, "burst": 2,
                                 "memories_per_namespace": None, "stored_bytes": None}
    with engram.http(key) as c:
        answers = [c.get(f"/v1/agents/{ns}/memories") for _ in range(10)]
        refused = [r for r in answers if r.status_code == 429]
        assert {r.status_code for r in answers} <= {200, 404, 429}
        # At most the burst on each Router replica gets through; the rest wait.
        assert len(refused) >= 5, [r.status_code for r in answers]
        assert_refused(refused[0], "RATE_LIMITED", "requests_per_second")
        time.sleep(int(refused[-1].headers["retry-after"]) + 1)
        assert c.get(f"/v1/agents/{ns}/memories").status_code != 429
    with engram.http() as root:  # other keys are not slowed by it
        assert all(root.get("/health").status_code == 200 for _ in range(5))
        assert all(root.get(f"/v1/agents/{ns}/memories").status_code != 429 for _ in range(10))


def test_memories_per_namespace_refuses_the_whole_batch_that_would_pass_it(engram: Engram, ns: str) -> None:
    key, _ = limited_key(engram, [ns], memories_per_namespace=3)
    with engram.http(key) as c:
        for i in range(2):
            assert c.post("/v1/memory/store", json={"agent_id": ns, "id": f"m{i}",
                                                    "content": f"note {i}"}).status_code == 200
        over = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"id": "m2", "content": "note 2"}, {"id": "m3", "content": "note 3"}]})
        assert_refused(over, "QUOTA_EXCEEDED", "memories_per_namespace")
        assert "at most 3" in over.json()["error"]
        assert stored_ids(engram, ns) == ["m0", "m1"]  # nothing of the batch went in
        recalled = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "note 3", "top_k": 10})
        assert "m3" not in {m["id"] for m in recalled.json()["memories"]}
        assert c.post("/v1/memory/store", json={"agent_id": ns, "id": "m2", "content": "note 2"}).status_code == 200
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": "fourth"}).status_code == 429
        # A retry of a stored memory is no new memory; forgetting makes room.
        assert c.post("/v1/memory/store", json={"agent_id": ns, "id": "m0", "content": "note 0"}).status_code == 200
        assert c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": ["m0"]}).status_code == 200
        assert c.post("/v1/memory/store", json={"agent_id": ns, "id": "m3", "content": "note 3"}).status_code == 200
    assert stored_ids(engram, ns) == ["m1", "m2", "m3"]


def test_stored_bytes_count_across_the_keys_namespaces(engram: Engram) -> None:
    tenant = f"bytes-{uuid.uuid4().hex[:8]}"
    key, _ = limited_key(engram, [f"{tenant}-*"], stored_bytes=100)
    with engram.http(key) as c:
        first = c.post("/v1/memory/store", json={"agent_id": f"{tenant}-a", "content": "é" * 30})
        assert first.status_code == 200  # 60 bytes
        over = c.post("/v1/memory/store", json={"agent_id": f"{tenant}-b", "content": "x" * 50})
        assert_refused(over, "QUOTA_EXCEEDED", "stored_bytes")
        assert c.post("/v1/memory/store", json={"agent_id": f"{tenant}-b", "content": "x" * 40}).status_code == 200
        mid = first.json()["memory"]["id"]
        grown = c.put(f"/v1/memory/update/{mid}", params={"agent_id": f"{tenant}-a"},
                      json={"content": "é" * 31})
        assert_refused(grown, "QUOTA_EXCEEDED", "stored_bytes")
        shorter = c.put(f"/v1/memory/update/{mid}", params={"agent_id": f"{tenant}-a"},
                        json={"content": "é" * 10})
        assert shorter.status_code == 200 and shorter.json()["content"] == "é" * 10
    assert stored_ids(engram, f"{tenant}-b") != []


def test_limits_are_changed_by_patch_and_bind_the_keys_a_limited_key_creates(engram: Engram, ns: str) -> None:
    admin, created = limited_key(engram, [f"{ns}*"], scope="admin", memories_per_namespace=5,
                                 requests_per_second=100)
    with engram.http(admin) as c:
        child = c.post("/admin/keys", json={"name": "child", "scope": "write", "namespaces": [ns],
                                            "limits": {"memories_per_namespace": 50}})
        assert child.status_code == 201, child.text
        # No looser than its creator's, whatever it asks for; unset ones are inherited.
        assert child.json()["limits"] == {"requests_per_second": 100, "burst": None,
                                          "memories_per_namespace": 5, "stored_bytes": None}
        loosened = c.patch(f"/admin/keys/{child.json()['key_id']}",
                           json={"limits": {"memories_per_namespace": 2, "stored_bytes": 10**9}})
        assert loosened.status_code == 200, loosened.text
        assert loosened.json()["limits"]["memories_per_namespace"] == 2
        bad = c.patch(f"/admin/keys/{child.json()['key_id']}", json={"limits": {"burst": 0}})
        assert bad.status_code == 400 and bad.json()["field"] == "limits.burst"
    with engram.http(child.json()["key"]) as c:
        assert c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": "a"}, {"content": "b"}, {"content": "c"}]}).status_code == 429
    with engram.http() as root:  # the root key lifts them
        lifted = root.patch(f"/admin/keys/{created['key_id']}", json={"limits": None, "name": "free"})
        assert lifted.status_code == 200
        assert lifted.json()["name"] == "free" and set(lifted.json()["limits"].values()) == {None}


def test_metrics_count_the_refusals_by_reason(engram: Engram, ns: str) -> None:
    key, _ = limited_key(engram, [ns], requests_per_second=1, burst=1, memories_per_namespace=0)
    with engram.http(key) as c:
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": "none fit"}).status_code == 429
        for _ in range(8):
            c.get(f"/v1/agents/{ns}/memories")
    seen: dict[str, float] = {}
    with engram.http() as root:
        # Each Router replica counts its own: read until both reasons showed up (bounded).
        for _ in range(30):
            text = root.get("/metrics").text
            for reason in ("rate_limit", "memories_per_namespace"):
                m = re.search(rf'engram_rejected_requests_total{{reason="{reason}"}} ([0-9.e+]+)', text)
                if m:
                    seen[reason] = max(seen.get(reason, 0.0), float(m.group(1)))
            if all(seen.get(r, 0) > 0 for r in ("rate_limit", "memories_per_namespace")):
                break
    assert seen.get("rate_limit", 0) > 0 and seen.get("memories_per_namespace", 0) > 0, seen
    assert 'engram_rejected_requests_total{reason="overload"}' in text
    assert "engram_requests_in_flight" in text
