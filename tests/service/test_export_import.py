"""`engram export` and `engram import` move a namespace through the API as JSON lines: its
memories with their vectors, its sessions and graph links, and idempotency keys. Imported
and exported again, it is the same file; it answers the same recalls."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.builders import Engram


def engram_cli(engram: Engram, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENGRAM_URL": engram.url, "ENGRAM_API_KEY": key or engram.root_key}
    return subprocess.run([sys.executable, "-m", "engram.cli", "--json", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def lines_after_header(path: Path) -> tuple[dict, list[str]]:  # type: ignore[type-arg]
    header, *rest = path.read_text(encoding="utf-8").splitlines()
    return json.loads(header), rest


def fill(c: httpx.Client, ns: str) -> str:
    r = c.post("/v1/sessions/start", json={"agent_id": ns})
    assert r.status_code == 201, r.text
    session = r.json()["session"]["id"]
    for turn in ("Hi, I'm Ines Moreau and I work at Quanta Labs in Geneva",
                 "Ines is flying to Tokyo with Marco Bianchi on Friday",
                 "Marco Bianchi manages the Quanta Labs robotics team"):
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": turn,
                                                "session_id": session}).status_code == 200
    batch = [{"content": f"note {n}: Ines keeps plant number {n} by the window", "tags": ["plants"],
              "importance": round(0.1 + (n % 90) / 100, 2), "metadata": {"n": n}} for n in range(250)]
    for start in range(0, len(batch), 100):  # limits.max_batch_items
        assert c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": batch[start:start + 100]}
                      ).status_code == 200
    r = c.post("/v1/memory/store", json={"agent_id": ns, "content": "stored once, retried"},
               headers={"Idempotency-Key": "once"})
    assert r.status_code == 200
    return str(session)


def recall_ids(c: httpx.Client, ns: str, query: str) -> list[str]:
    """Ranked as recall ranks, without counting accesses (which would change the export)."""
    r = c.post("/v1/memory/search", json={"agent_id": ns, "query": query, "top_k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    return [m["id"] for m in body["memories"]]


def test_a_namespace_exported_deleted_and_imported_is_the_same_namespace(engram: Engram, ns: str,
                                                                         tmp_path: Path) -> None:
    queries = ("who is Marco", "where does Ines work", "plant number 7")
    with engram.http() as c:
        session = fill(c, ns)
        before = {q: recall_ids(c, ns, q) for q in queries}
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    done = engram_cli(engram, "export", "--namespace", ns, "--out", str(first))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["memories"] == 254
    assert "exporting" in done.stderr and "254/254" in done.stderr  # the progress bar
    with engram.http() as c:
        # Under its own name only (its sessions keep their ids): a copy beside it is refused.
        head = json.loads(first.read_text(encoding="utf-8").splitlines()[0])["head"]
        r = c.post(f"/admin/namespaces/{ns}-copy/import/head", json={"head": head})
        assert r.status_code == 400 and r.json()["field"] == "namespace", r.text
        assert c.delete(f"/v1/namespaces/{ns}").status_code == 200
    done = engram_cli(engram, "import", str(first))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"namespace": ns, "memories": 254}
    assert engram_cli(engram, "export", "--namespace", ns, "--out", str(second)).returncode == 0
    assert first.read_bytes() == second.read_bytes()  # every memory, vector, link, session, key
    header, _ = lines_after_header(first)
    assert header["head"]["sessions"] and header["head"]["entities"] and header["head"]["idempotency"]

    with engram.http() as c:
        assert {q: recall_ids(c, ns, q) for q in queries} == before
        # the idempotency key came along: a retry is answered, not stored twice
        r = c.post("/v1/memory/store", json={"agent_id": ns, "content": "stored once, retried"},
                   headers={"Idempotency-Key": "once"})
        assert r.status_code == 200
        assert c.get(f"/v1/agents/{ns}/stats").json()["total_memories"] == 254
        r = c.get(f"/v1/sessions/{session}/memories", params={"agent_id": ns})
        assert r.status_code == 200 and len(r.json()["memories"]) == 3, r.text


def test_an_import_into_an_existing_namespace_is_refused_and_changes_nothing(
        engram: Engram, ns: str, tmp_path: Path) -> None:
    with engram.http() as c:
        assert c.post("/v1/memory/store", json={"agent_id": ns, "content": "already here"}).status_code == 200
    export = tmp_path / "x.jsonl"
    assert engram_cli(engram, "export", "--namespace", ns, "--out", str(export)).returncode == 0
    refused = engram_cli(engram, "import", str(export))
    assert refused.returncode == 1 and "live" in refused.stderr, refused.stderr
    with engram.http() as c:
        assert c.get(f"/v1/agents/{ns}/stats").json()["total_memories"] == 1


def test_export_and_import_need_an_admin_key_and_bad_rows_are_named(engram: Engram, ns: str) -> None:
    reader = engram.create_key("read", [ns])
    with engram.http(reader) as c:
        assert c.get(f"/admin/namespaces/{ns}/export/head").status_code == 403
    with engram.http() as c:
        target = f"{ns}-bad"
        assert c.post(f"/admin/namespaces/{target}/import/head", json={"head": {
            "name": target, "namespace": [0.0, "{}"], "sessions": [], "entities": [],
            "idempotency": []}}).status_code == 200
        r = c.post(f"/admin/namespaces/{target}/import/memories", json={"rows": [["id-only"]]})
        assert r.status_code == 400 and "rows[0]" in r.text
        r = c.post(f"/admin/namespaces/{target}/import/finish", json={"memories": 3})
        assert r.status_code == 409  # it holds 0 of 3: nothing becomes visible
        assert c.get(f"/v1/agents/{target}/stats").status_code == 503  # being imported
        assert c.post(f"/admin/namespaces/{target}/import/abort").status_code == 200
        r = c.get(f"/v1/agents/{target}/stats")  # gone: as a namespace never stored into
        assert r.status_code == 404 or r.json()["total_memories"] == 0, r.text
