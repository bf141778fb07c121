"""Through the API: after a forget, or a namespace's deletion, and the next checkpoint (1 s
here: storage.checkpoint_seconds), no file of the data directory holds the text."""
from __future__ import annotations

import time
import uuid

from tests.builders import Engram, files_holding


def wait_until_gone(engram: Engram, text: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (found := files_holding(engram.data_dir, text)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_a_forgotten_memory_and_a_deleted_namespace_leave_no_text(engram: Engram, ns: str) -> None:
    forgotten = f"the alarm code is {uuid.uuid4().hex}, tell no one"
    in_namespace = f"the safe combination is {uuid.uuid4().hex}"
    other = f"{ns}-doomed"
    with engram.http() as c:
        r = c.post("/v1/memory/store", json={"agent_id": ns, "content": forgotten})
        assert r.status_code == 200
        memory_id = r.json()["memory"]["id"]
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": "an ordinary memory"}).status_code == 200
        assert c.post("/v1/memory/store", json={"agent_id": other, "content": in_namespace}).status_code == 200
        deadline = time.monotonic() + 30
        while not files_holding(engram.data_dir, forgotten) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert files_holding(engram.data_dir, forgotten)  # stored text is found by the scan
        assert c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": [memory_id]}).json()["deleted_count"] == 1
        assert c.delete(f"/v1/namespaces/{other}").status_code == 200
    assert wait_until_gone(engram, forgotten) == []
    assert wait_until_gone(engram, in_namespace) == []
