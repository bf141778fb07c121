"""A SIGKILLed shard replica loses nothing acknowledged and resurrects nothing forgotten."""
from __future__ import annotations

import os
import signal
import time

import httpx
from ray import serve

from shards.routing import shard_for
from tests.builders import Engram


def shard_handle(engram: Engram, namespace: str):  # type: ignore[no-untyped-def]
    index = shard_for(namespace, engram.config["shard_count"])
    return serve.get_deployment_handle(f"Shard{index}", app_name="engram")


def wait_for_restart(engram: Engram, handle, old_pid: int, timeout: float = 180) -> int:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid = int(handle.pid.remote().result(timeout_s=10))
            if pid != old_pid and httpx.get(f"{engram.url}/health/ready", timeout=10).status_code == 200:
                return pid
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError("Serve did not restart the killed shard replica")


def recall_ids(c: httpx.Client, ns: str) -> list[str]:
    r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "durable fact number", "top_k": 100})
    r.raise_for_status()
    return [m["id"] for m in r.json()["memories"]]


def test_sigkill_after_acknowledgement_loses_nothing(engram: Engram, ns: str) -> None:
    handle = shard_handle(engram, ns)
    with engram.http() as c:
        acked = []
        for i in range(12):
            r = c.post("/v1/memory/store", json={"agent_id": ns, "content": f"durable fact number {i}"})
            assert r.status_code == 200
            acked.append(r.json()["memory"]["id"])
        batch = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": f"durable fact number {i} from a batch"} for i in range(20)]})
        acked += [m["id"] for m in batch.json()["stored"]]
        forgotten = acked[:3]
        assert c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": forgotten}).json()["deleted_count"] == 3
        pid = int(handle.pid.remote().result())
        os.kill(pid, signal.SIGKILL)  # no clean stop: no flush, no checkpoint, no close

    wait_for_restart(engram, handle, pid)
    expected = sorted(set(acked) - set(forgotten))
    with engram.http() as c:
        found = recall_ids(c, ns)
        assert sorted(found) == expected  # every acknowledged memory, exactly once
        listing = c.get(f"/v1/agents/{ns}/memories", params={"limit": 1000}).json()
        assert sorted(m["id"] for m in listing) == expected
        assert all(c.get(f"/v1/memory/get/{mid}", params={"agent_id": ns}).status_code == 404 for mid in forgotten)

    rebuilt = handle.call.remote("rebuild_indexes").result()
    assert rebuilt >= len(expected)
    with engram.http() as c:
        assert sorted(recall_ids(c, ns)) == expected
