"""Drill (not a benchmark): the production form on several Ray nodes loses a whole node while
clients store and recall, and nothing acknowledged is lost or duplicated.

    python -m cluster.node_loss_drill [--clients 4] [--before 20] [--after 60] [--json FILE]

Starts PostgreSQL, a Milvus server and the Elasticsearch-API emulator on 127.0.0.1
(cluster/local_servers), a Ray cluster of a head and two worker nodes on loopback
(cluster/multinode.py) and Engram on it: the Router and Embedder on the head, one shard
with two replicas on two different nodes. `--clients` clients each store into a namespace
of their own (an Idempotency-Key per memory, the same key on each retry) and recall what they
stored, as fast as they get answers. After `--before` seconds every process of a worker node
that holds a shard replica gets SIGKILL at once; the load goes on for `--after` seconds.
Then every namespace is read back through the API.

Prints what it found and ends with one line:
    node loss: acknowledged N, lost 0, duplicated 0, non-503 errors 0, read-your-writes misses 0, recall answered again after S s
and exits 1 if anything was lost, duplicated or answered with an error other than 503 +
Retry-After. tests/service/test_node_loss.py runs it (marker `multinode`).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cluster.bench_forms import form_storage, unavailable
from cluster.ingress import free_ports, ingress_env
from cluster.local import wait_ready
from cluster.loopback import ONE_MACHINE_RAY
from cluster.multinode import HEAD_RESOURCE, SHARD_SLOT, kill_node, loopback_cluster, replica_nodes
from cluster.watchdog import Watchdog

ROOT_KEY = "ek_drill_root"
REQUEST_TIMEOUT_S = 30.0


@dataclass
class ClientTally:
    """What one client saw."""

    namespace: str
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key → content
    acked_ids: dict[str, str] = field(default_factory=dict)  # memory id → content
    statuses: Counter[str] = field(default_factory=Counter)  # "store 200", "recall 503", ...
    errors: list[str] = field(default_factory=list)  # anything but 200, or 503 + Retry-After
    ryw_misses: list[str] = field(default_factory=list)  # acknowledged, then not recalled
    recalls: list[tuple[float, float, bool]] = field(default_factory=list)  # (start, end, answered)


def _answer(tally: ClientTally, kind: str, r: httpx.Response) -> str:
    """'ok', 'retry' (503 with Retry-After), or 'error' (recorded)."""
    tally.statuses[f"{kind} {r.status_code}"] += 1
    if r.status_code == 200:
        return "ok"
    if r.status_code == 503 and r.headers.get("retry-after"):
        return "retry"
    tally.errors.append(f"{kind}: {r.status_code} {r.text[:300]}")
    return "error"


def client_loop(url: str, number: int, tally: ClientTally, stop: threading.Event) -> None:
    """Store, then recall what was stored, until told to stop."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"},
                      timeout=REQUEST_TIMEOUT_S) as http:
        i = 0
        while not stop.is_set():
            key = f"client{number}-{i}"
            content = f"client {number} remembers fact {i}: the {['red', 'green', 'blue'][i % 3]} kite number {i * 7919 % 10007}"
            stored_id = None
            while not stop.is_set():
                try:
                    r = http.post("/v1/memory/store", json={"agent_id": tally.namespace, "content": content},
                                  headers={"Idempotency-Key": key})
                except httpx.HTTPError as exc:
                    tally.statuses[f"store {type(exc).__name__}"] += 1
                    tally.errors.append(f"store: {type(exc).__name__}: {exc}")
                    break
                outcome = _answer(tally, "store", r)
                if outcome == "ok":
                    stored_id = str(r.json()["memory"]["id"])
                    tally.acked[key] = content
                    tally.acked_ids[stored_id] = content
                    break
                if outcome == "error":
                    break
                time.sleep(min(float(r.headers["retry-after"]), 1.0))
            if stored_id is not None:
                began = time.monotonic()
                try:
                    r = http.post("/v1/memory/recall", json={"agent_id": tally.namespace, "query": content,
                                                             "top_k": 5})
                except httpx.HTTPError as exc:
                    tally.statuses[f"recall {type(exc).__name__}"] += 1
                    tally.errors.append(f"recall: {type(exc).__name__}: {exc}")
                    tally.recalls.append((began, time.monotonic(), False))
                else:
                    outcome = _answer(tally, "recall", r)
                    tally.recalls.append((began, time.monotonic(), outcome == "ok"))
                    if outcome == "ok" and stored_id not in [m["id"] for m in r.json()["memories"]]:
                        tally.ryw_misses.append(stored_id)
            i += 1


def read_back(url: str, namespace: str, key: str = ROOT_KEY, budget_s: float = 240.0,
              retries: Counter[str] | None = None) -> list[dict[str, Any]]:
    """Every memory of the namespace, through the API (the chaos run reads back with it too).
    A page answered 503, or not answered in time, is asked again until `budget_s` has passed:
    reading back checks what was kept, and a service still settling after a fault may take
    a while to answer; `retries` counts those answers, which the report prints."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + budget_s
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for _ in range(1000):
            while True:
                try:
                    r = http.get(f"/v1/agents/{namespace}/memories", params={"limit": 200, "offset": len(out)})
                except httpx.TimeoutException as exc:
                    problem = type(exc).__name__
                else:
                    if r.status_code != 503:
                        r.raise_for_status()
                        break
                    problem = "503"
                if retries is not None:
                    retries[problem] += 1
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {namespace} back: still {problem} after {budget_s:.0f} s")
                time.sleep(1.0)
            page = r.json()
            out += page
            if len(page) < 200:
                return out
    raise RuntimeError(f"more than 200,000 memories in {namespace}?")


def wait_replaced(address: str, lost_actor: str, count: int, timeout: float) -> float:
    """Seconds until Shard0 has `count` live replicas again, the lost one not among them."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        live = replica_nodes(address, "engram", "Shard0")
        if lost_actor not in live and len(live) >= count:
            return time.monotonic() - began
        time.sleep(0.5)
    raise TimeoutError(f"Shard0 did not get back to {count} replicas in {timeout:.0f} s")


def recovery_s(tallies: list[ClientTally], killed_at: float) -> float:
    """For each client, the time from the kill until a recall it began after the kill was
    answered; the slowest client's."""
    slowest = 0.0
    for tally in tallies:
        after = [end for began, end, answered in tally.recalls if began >= killed_at and answered]
        if not after:
            return float("inf")
        slowest = max(slowest, min(after) - killed_at)
    return slowest


def run(args: argparse.Namespace, watch: Watchdog) -> dict[str, Any]:
    import ray
    from ray import serve

    from serve.app import build_app_with

    why = unavailable("production")
    if why:
        raise SystemExit(f"node loss drill: cannot start the production form's servers here: {why}")
    report: dict[str, Any] = {}
    watch.step("starting PostgreSQL, Milvus and the Elasticsearch-API emulator")
    with tempfile.TemporaryDirectory(prefix="engram-drill-") as tmp, \
            form_storage("production", Path(tmp) / "data") as form:
        port, dashboard_port, gcs_port = free_ports(3)
        env = {"ENGRAM_ROOT_API_KEY": ROOT_KEY, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", **form.env,
               # Serve's own proxy on the head, whatever the caller's environment says: a
               # test session's HAProxy settings (its ports among them) must not carry over.
               **ingress_env("proxy", environ={})}
        os.environ.update(env)
        config = {"shard_count": 1, "storage": {**form.storage, "checkpoint_seconds": 2},
                  "sessions": {"sweep_seconds": 5}}
        on_head = {"num_cpus": 0, "resources": {HEAD_RESOURCE: 1}}
        deployments = {
            "Router": {"num_replicas": 1, "ray_actor_options": on_head},
            "Embedder": {"num_replicas": 1, "ray_actor_options": on_head},
            # One shard slot per node: the two replicas run on two different nodes.
            "Shard0": {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0, "resources": {SHARD_SLOT: 1}}},
        }
        watch.step("starting a Ray cluster of a head and two workers")
        with loopback_cluster(workers=2, gcs_port=gcs_port, dashboard_port=dashboard_port) as lc:
            ray.init(address=lc.address, log_to_driver=False, runtime_env={"env_vars": env})
            try:
                serve.start(http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly")
                watch.step("deploying Engram")
                # Not blocking on the deployment itself: wait_ready bounds how long it may take.
                serve._run(build_app_with(config, deployments), name="engram", route_prefix="/",
                           _blocking=False)
                url = f"http://127.0.0.1:{port}"
                wait_ready(url, ROOT_KEY, 300)
                watch.step("Engram answers; placing the load")
                names = lc.node_ids()
                placed = replica_nodes(lc.address, "engram", "Shard0")
                report["shard_replicas_on"] = sorted(names.get(n, n) for n in placed.values())
                lost_actor, victim_id = next((a, n) for a, n in placed.items() if names.get(n) != "head")
                report["killed_node"] = names[victim_id]
                tallies = [ClientTally(namespace=f"drill-client-{c}") for c in range(args.clients)]
                stop = threading.Event()
                threads = [threading.Thread(target=client_loop, args=(url, c, tallies[c], stop), daemon=True)
                           for c in range(args.clients)]
                for t in threads:
                    t.start()
                time.sleep(args.before)
                watch.step("killing a worker node")
                killed_at = time.monotonic()
                report["killed_pids"] = len(kill_node(lc, lc.worker_named(victim_id)))
                report["replica_replaced_s"] = round(wait_replaced(lc.address, lost_actor, 2, 180), 1)
                watch.step(f"replica replaced after {report['replica_replaced_s']} s; load goes on")
                remaining = args.after - (time.monotonic() - killed_at)
                if remaining > 0:
                    time.sleep(remaining)
                stop.set()
                watch.step("stopping the clients")
                for t in threads:
                    t.join(REQUEST_TIMEOUT_S * 3)
                watch.step("reading every namespace back")
                report["recall_recovery_s"] = round(recovery_s(tallies, killed_at), 2)
                report["shard_replicas_after"] = sorted(names.get(n, n) for n in
                                                        replica_nodes(lc.address, "engram", "Shard0").values())
                acknowledged = lost = duplicated = unacknowledged_stored = 0
                read_back_retries: Counter[str] = Counter()
                for tally in tallies:
                    stored = Counter(m["content"] for m in read_back(url, tally.namespace,
                                                                      retries=read_back_retries))
                    acknowledged += len(tally.acked)
                    lost += sum(1 for content in tally.acked.values() if stored[content] == 0)
                    duplicated += sum(count - 1 for count in stored.values() if count > 1)
                    unacknowledged_stored += sum(1 for content in stored if content not in tally.acked.values())
                statuses: Counter[str] = Counter()
                for tally in tallies:
                    statuses.update(tally.statuses)
                report.update({
                    "clients": args.clients, "acknowledged": acknowledged, "lost": lost,
                    "duplicated": duplicated, "stored_unacknowledged": unacknowledged_stored,
                    "non_503_errors": sum(len(t.errors) for t in tallies),
                    "errors": [e for t in tallies for e in t.errors][:20],
                    "read_your_writes_misses": sum(len(t.ryw_misses) for t in tallies),
                    "statuses": dict(sorted(statuses.items())),
                    "read_back_retries": dict(read_back_retries),
                })
            finally:
                watch.step("shutting down")
                serve.shutdown()  # type: ignore[no-untyped-call]
                ray.shutdown()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=60.0, help="seconds of load after the kill")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--deadline", type=float, default=600.0,
                        help="seconds the whole drill may take before it stops, printing where it was")
    args = parser.parse_args(argv)
    for var, value in ONE_MACHINE_RAY.items():
        os.environ.setdefault(var, value)
    # Ray's metrics servers default to fixed ports, which a cluster beside this one (a
    # `make serve`, the test suite's) may hold: free ones of its own, before Ray is imported.
    os.environ.update(zip(("DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT"), map(str, free_ports(2))))
    with Watchdog(args.deadline, "node loss drill") as watch:
        report = run(args, watch)
    for key, value in report.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(f"node loss: acknowledged {report['acknowledged']}, lost {report['lost']}, "
          f"duplicated {report['duplicated']}, non-503 errors {report['non_503_errors']}, "
          f"read-your-writes misses {report['read_your_writes_misses']}, "
          f"recall answered again after {report['recall_recovery_s']} s")
    bad = report["lost"] or report["duplicated"] or report["non_503_errors"] or report["read_your_writes_misses"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
