"""`engram backup` snapshots the data directory while the service stores into it, and a
restore into an empty directory answers the same recalls (the indexes rebuilt from the
records). The restored directory is opened by the service code in this process: this
session's Ray cluster serves the original."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

from serve.schemas import RecallBody
from tests.builders import Engram
from tests.fixtures.make_datadir import service_over

FACTS = [
    "Mara keeps her passport in the blue folder on the top shelf",
    "Mara's dentist appointment moved to the 14th at 3pm",
    "Mara prefers aisle seats and vegetarian meals on flights",
    "Mara's brother Tomas lives in Vilnius and works as a pilot",
    "Mara is saving for a sailing course next summer",
    "Mara's wifi password hint is the name of her first cat",
    "Mara volunteers at the library on Saturday mornings",
    "Mara started a sourdough starter called Bubbles",
]
QUERIES = ["where is the passport", "when is the dentist", "how does Mara fly",
           "who is Tomas", "what does Mara do on weekends"]


def cli(*args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([sys.executable, "-m", "engram.cli", "--json", *args], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_backup_taken_while_serving_restores_the_same_recalls(engram: Engram, ns: str,
                                                                 tmp_path: Path) -> None:
    key = engram.create_key("read", [ns], name="backed up")
    with engram.http() as c:
        stored = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": fact} for fact in FACTS]})
        assert stored.status_code == 200
        live = {}
        for query in QUERIES:
            r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": query, "top_k": 10})
            live[query] = [m["id"] for m in r.json()["memories"]]

    stop = threading.Event()
    written: list[int] = []

    def keep_storing() -> None:  # the service serves stores all through the backup
        with engram.http() as c:
            while not stop.is_set():
                r = c.post("/v1/memory/store", json={"agent_id": f"{ns}-busy", "content": f"busy {len(written)}"})
                written.append(r.status_code)

    writer = threading.Thread(target=keep_storing)
    writer.start()
    try:
        archive = tmp_path / "engram.tar.gz"
        manifest = cli("backup", "--data-dir", str(engram.data_dir), "--out", str(archive))
    finally:
        stop.set()
        writer.join(60)
    assert written and set(written) == {200}
    assert "control.db" in manifest["files"]
    assert sorted(f for f in manifest["files"] if f.endswith("records.db")) == [
        "shards/shard-000/records.db", "shards/shard-001/records.db"]

    restored = tmp_path / "restored"
    cli("restore", "--data-dir", str(restored), str(archive))
    refused = subprocess.run([sys.executable, "-m", "engram.cli", "restore", "--data-dir", str(restored),
                              str(archive)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "not empty" in refused.stderr

    service, shards, control = service_over(restored)
    try:
        for query in QUERIES:
            answer = asyncio.run(service.recall(ns, RecallBody(query=query, top_k=10), track_access=False))
            assert [m["id"] for m in answer["memories"]] == live[query], query
        found = control.by_secret(key)
        assert found is not None and found.namespaces == (ns,)
    finally:
        for shard in shards:
            shard.close()
        control.close()
