"""Resharding: a real `ray job` moves namespaces to a new shard count while clients keep
storing and recalling; nothing is lost, doubled or refused, and every namespace ends up on
its new home shard alone."""
from __future__ import annotations

import random
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from ray import serve

from shards.routing import shard_for
from tests.builders import SERVICE_CONFIG, Engram, job_client, submit_job, wait

APP = "reshard"
PREFIX = f"/{APP}"


def deploy(config: dict[str, Any], engram: Engram) -> None:
    from serve.app import build_app

    serve.run(build_app(config), name=APP, route_prefix=PREFIX, blocking=False)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            status = serve.status().applications[APP].status
            if str(status).endswith("RUNNING") and httpx.get(
                    f"{engram.url}{PREFIX}/health/ready", timeout=10).status_code == 200:
                return
        except (KeyError, httpx.HTTPError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"app {APP} did not become ready")


def reshard(engram: Engram, to: int | str) -> str:
    """Run the job to `to` shards (or with these arguments) and return its logs."""
    what = f"--to {to}" if isinstance(to, int) else to
    job_id = submit_job(engram, f"{sys.executable} -m cluster.reshard --app {APP} {what} --page-size 7")
    status = wait(engram, job_id, timeout=600)
    logs = job_client(engram).get_job_logs(job_id)
    assert status == "SUCCEEDED", logs[-4000:]
    return str(logs)


class Traffic:
    """Clients storing and recalling across the namespaces while the job runs."""

    def __init__(self, engram: Engram, namespaces: list[str], stored: dict[str, set[str]]) -> None:
        self.url = f"{engram.url}{PREFIX}"
        self.key = engram.root_key
        self.namespaces = namespaces
        self.stored = stored
        self.lock = threading.Lock()
        self.failures: list[str] = []
        self.requests = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.writer, args=(i,)) for i in range(2)] + \
                       [threading.Thread(target=self.reader, args=(i,)) for i in range(2)]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.key}"})

    def note(self, r: httpx.Response, what: str) -> None:
        with self.lock:
            self.requests += 1
            if r.status_code != 200:
                self.failures.append(f"{what}: {r.status_code} {r.text[:200]}")

    def writer(self, seed: int) -> None:
        rng = random.Random(seed)
        with self.client() as c:
            n = 0
            while not self.stop.is_set():
                ns = rng.choice(self.namespaces)
                n += 1
                content = f"live note {seed}-{n} for {ns}: parcel PKG-{seed}{n:04d} rerouted"
                r = c.post("/v1/memory/store", json={"agent_id": ns, "content": content,
                                                     "id": f"live-{seed}-{n}"})
                self.note(r, f"store {ns}")
                if r.status_code == 200:
                    with self.lock:
                        self.stored[ns].add(f"live-{seed}-{n}")

    def reader(self, seed: int) -> None:
        rng = random.Random(100 + seed)
        with self.client() as c:
            while not self.stop.is_set():
                ns = rng.choice(self.namespaces)
                r = c.post("/v1/memory/recall", json={"agent_id": ns, "query": "invoice total",
                                                      "top_k": 3})
                self.note(r, f"recall {ns}")
                if r.status_code == 200 and not r.json()["memories"]:
                    with self.lock:
                        self.failures.append(f"recall {ns}: nothing found")

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def check_placement(count: int, deployed: int, namespaces: list[str]) -> None:
    """Each namespace on its home shard under `count`, and nowhere else, in no move state."""
    tables = [serve.get_deployment_handle(f"Shard{i}", app_name=APP).call.remote(
        "namespace_table").result(timeout_s=60) for i in range(deployed)]
    for ns in namespaces:
        holders = [(i, state) for i, table in enumerate(tables) for name, state in table if name == ns]
        assert holders == [(shard_for(ns, count), None)], (ns, holders)


def check_contents(engram: Engram, stored: dict[str, set[str]], sessions: dict[str, str]) -> None:
    with httpx.Client(base_url=f"{engram.url}{PREFIX}", timeout=60,
                      headers={"Authorization": f"Bearer {engram.root_key}"}) as c:
        for ns, ids in stored.items():
            listing = c.get(f"/v1/agents/{ns}/memories", params={"limit": 1000}).json()
            found = [m["id"] for m in listing]
            assert sorted(found) == sorted(ids), ns  # every acknowledged memory, exactly once
            hits = c.post("/v1/memory/recall", json={"agent_id": ns, "query": f"invoice total {ns}",
                                                     "top_k": 5}).json()["memories"]
            assert hits and hits[0]["id"] == f"{ns}-invoice", ns  # the indexes came along
            session = c.get(f"/v1/sessions/{sessions[ns]}").json()
            assert session["memory_count"] == 3, ns
            # The graph came along: the refund links to the order through #ORD-<ns>.
            graph = c.get(f"/v1/memories/{ns}-order/graph", params={"agent_id": ns}).json()
            assert f"{ns}-refund" in {n["memory_id"] for n in graph["nodes"]}, ns
            # An idempotent retry after the move answers the stored memory, not a new one.
            retry = c.post("/v1/memory/store", headers={"Idempotency-Key": f"idem-{ns}"},
                           json={"agent_id": ns, "content": f"idempotent note for {ns}"})
            assert retry.status_code == 200 and retry.json()["memory"]["id"] == f"{ns}-idem", ns


def fill(engram: Engram, namespaces: list[str], stored: dict[str, set[str]],
         sessions: dict[str, str]) -> None:
    """Each namespace: a session of three linked memories, nine fillers, an idempotent
    store, and a recall (its access count must travel too)."""
    with httpx.Client(base_url=f"{engram.url}{PREFIX}", timeout=60,
                      headers={"Authorization": f"Bearer {engram.root_key}"}) as c:
        for ns in namespaces:
            sid = c.post("/v1/sessions/start", json={"agent_id": ns}).json()["session"]["id"]
            sessions[ns] = sid
            batch = c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
                {"id": f"{ns}-invoice", "content": f"Invoice total {ns} came to $412.50",
                 "session_id": sid, "importance": 0.9},
                {"id": f"{ns}-order", "content": f"Customer opened order #ORD-{ns} for a lamp",
                 "session_id": sid},
                {"id": f"{ns}-refund", "content": f"Refund approved for #ORD-{ns}",
                 "session_id": sid},
            ] + [{"id": f"{ns}-filler-{k}", "content": f"Weather note {k}: light rain"}
                 for k in range(9)]})
            assert batch.status_code == 200, batch.text
            idem = c.post("/v1/memory/store", headers={"Idempotency-Key": f"idem-{ns}"},
                          json={"agent_id": ns, "content": f"idempotent note for {ns}",
                                "id": f"{ns}-idem"})
            assert idem.status_code == 200, idem.text
            stored[ns] |= {m["id"] for m in batch.json()["stored"]} | {f"{ns}-idem"}
            # A recalled memory's access count travels with it.
            c.post("/v1/memory/recall", json={"agent_id": ns, "query": "invoice", "top_k": 1})


def test_reshard_grows_and_shrinks_while_serving(engram: Engram, tmp_path: Path) -> None:
    config = {**SERVICE_CONFIG, "shard_count": 2,
              "storage": {**SERVICE_CONFIG["storage"], "data_dir": str(tmp_path / "data")}}
    deploy(config, engram)
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"rs-{tag}-{i}" for i in range(16)]
    stored: dict[str, set[str]] = {ns: set() for ns in namespaces}
    sessions: dict[str, str] = {}
    try:
        fill(engram, namespaces, stored, sessions)
        # Grow 2 → 3: deploy three shards (the third starts empty), then move.
        deploy({**config, "shard_count": 3}, engram)
        check_contents(engram, stored, sessions)
        with Traffic(engram, namespaces, stored) as traffic:
            time.sleep(2)
            logs = reshard(engram, 3)
            time.sleep(1)
        assert traffic.requests > 20 and not traffic.failures, traffic.failures[:5]
        assert '"complete": true' in logs and '"to_shards": 3' in logs, logs[-2000:]
        moving = sum(shard_for(ns, 3) != shard_for(ns, 2) for ns in namespaces)
        assert f'"namespaces_moved": {moving}' in logs, logs[-2000:]
        check_placement(3, 3, namespaces)
        check_contents(engram, stored, sessions)

        # Shrink 3 → 2: move first, then deploy two shards.
        with Traffic(engram, namespaces, stored) as traffic:
            logs = reshard(engram, 2)
        assert not traffic.failures, traffic.failures[:5]
        check_placement(2, 3, namespaces)
        deploy(config, engram)
        check_contents(engram, stored, sessions)
        hits = httpx.post(f"{engram.url}{PREFIX}/v1/memory/recall",
                          headers={"Authorization": f"Bearer {engram.root_key}"},
                          json={"agent_id": namespaces[0], "query": "invoice", "top_k": 1}).json()
        assert hits["memories"][0]["access_count"] >= 1  # counted before the moves, kept
    finally:
        serve.delete(APP)


def test_a_reshard_stopped_halfway_is_undone_while_serving(engram: Engram, tmp_path: Path) -> None:
    """A run stopped after a few moves (--max-namespaces), then `--abort`: the moved
    namespaces come back with what they took meanwhile, and the map is as before."""
    config = {**SERVICE_CONFIG, "shard_count": 2,
              "storage": {**SERVICE_CONFIG["storage"], "data_dir": str(tmp_path / "data")}}
    deploy(config, engram)
    tag = uuid.uuid4().hex[:6]
    names = [f"ab-{tag}-{i}" for i in range(200)]
    # Four that a reshard to 3 moves (the run stops after two), six that stay.
    namespaces = [n for n in names if shard_for(n, 3) != shard_for(n, 2)][:4] + \
                 [n for n in names if shard_for(n, 3) == shard_for(n, 2)][:6]
    stored: dict[str, set[str]] = {ns: set() for ns in namespaces}
    sessions: dict[str, str] = {}
    try:
        fill(engram, namespaces, stored, sessions)
        deploy({**config, "shard_count": 3}, engram)
        with Traffic(engram, namespaces, stored) as traffic:
            logs = reshard(engram, "--to 3 --max-namespaces 2")
            assert '"complete": false' in logs and '"namespaces_moved": 2' in logs, logs[-2000:]
            time.sleep(1)
            logs = reshard(engram, "--abort")
            time.sleep(1)
        assert traffic.requests > 20 and not traffic.failures, traffic.failures[:5]
        assert '"complete": true' in logs and '"to_shards": 2' in logs, logs[-2000:]
        check_placement(2, 3, namespaces)
        deploy(config, engram)  # back to two shards: the map needs no third
        check_contents(engram, stored, sessions)
    finally:
        serve.delete(APP)
