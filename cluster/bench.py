"""Benchmark (not a test): store throughput, recall latency, Serve overhead, embedder limit.

    python -m cluster.bench [--memories 10000] [--namespaces 1000] [--clients 1,8,32]

Starts its own Ray + Serve on 127.0.0.1 over a fresh data directory, loads synthetic
memories through the HTTP API, measures, then reopens the same shards in-process to
measure the same recall without Serve. Prints a Markdown table; writes bench-results/.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from cluster import proc_cpu
from cluster.ingress import INGRESS_KINDS, ingress_env
from cluster.local import ROOT, deployment_options
from cluster.loopback import loopback_env_beside

ROOT_KEY = "ek_bench_root"
PEOPLE = ["Jane Doe", "Omar Haddad", "Li Wei", "Ana Souza", "Tom Becker", "Priya Nair", "Kofi Mensah"]
THINGS = ["laptop", "espresso machine", "running shoes", "standing desk", "headphones", "router",
          "winter jacket", "phone case", "monitor", "backpack", "blender", "e-reader"]
EVENTS = ["asked about the delivery date of", "reported a cracked screen on", "requested a refund for",
          "prefers email contact about", "upgraded the warranty of", "left a five star review of",
          "could not log in to track", "changed the shipping address for", "wants to exchange"]
TOPICS = ["backend project status", "quarterly planning", "database migration", "onboarding checklist",
          "incident postmortem", "pricing experiment", "mobile release", "security review"]


def synthetic(rng: random.Random, i: int) -> str:
    if i % 3:
        return (f"{rng.choice(PEOPLE)} {rng.choice(EVENTS)} the {rng.choice(THINGS)} "
                f"(order #{rng.randint(1000, 99999)}).")
    return (f"Meeting note on {rng.choice(TOPICS)}: decided to {rng.choice(['ship', 'delay', 'review', 'split'])} "
            f"the {rng.choice(['API', 'dashboard', 'billing', 'search'])} work, owner {rng.choice(PEOPLE)}.")


def query(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"what did {rng.choice(PEOPLE)} say about the {rng.choice(THINGS)}"
    return f"{rng.choice(TOPICS)} decisions"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s]
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "mean": statistics.mean(ms)}


async def recall_load(url: str, namespaces: list[str], clients: int, requests: int, seed: int) -> tuple[list[float], float]:
    rng = random.Random(seed)
    jobs = [(rng.choice(namespaces), query(rng)) for _ in range(requests)]
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"},
                                 timeout=60, limits=httpx.Limits(max_connections=clients)) as c:
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                ns, q = queue.get_nowait()
                t = time.perf_counter()
                r = await c.post("/v1/memory/recall", json={"agent_id": ns, "query": q, "top_k": 10})
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return latencies, time.perf_counter() - start


async def read_sharing(shard_count: int) -> tuple[int, int]:
    """(call_many calls, reads they carried) over every shard so far (router.shard_read_batch).
    Run on one loop that stays open: a handle's router lives on the loop it was made on."""
    from ray import serve

    counts = [await serve.get_deployment_handle(f"Shard{i}", app_name="engram").read_sharing.remote()
              for i in range(shard_count)]
    return sum(c for c, _ in counts), sum(r for _, r in counts)


async def batch_load(url: str, jobs: list[tuple[str, list[dict[str, str]]]], clients: int) -> float:
    """Memories/s stored by `clients` concurrent batch-store clients."""
    queue: asyncio.Queue[tuple[str, list[dict[str, str]]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"},
                                 timeout=300) as c:
        async def worker() -> None:
            while not queue.empty():
                ns, memories = queue.get_nowait()
                r = await c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": memories})
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return sum(len(m) for _, m in jobs) / (time.perf_counter() - start)


async def local_recall(service: Any, namespaces: list[str], clients: int, requests: int, seed: int) -> tuple[list[float], float]:
    from serve.schemas import RecallBody

    rng = random.Random(seed)
    jobs = [(rng.choice(namespaces), query(rng)) for _ in range(requests)]
    latencies: list[float] = []

    async def worker(batch: list[tuple[str, str]]) -> None:
        for ns, q in batch:
            t = time.perf_counter()
            await service.recall(ns, RecallBody(agent_id=ns, query=q, top_k=10))
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker(jobs[i::clients]) for i in range(clients)))
    return latencies, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--clients", default="1,8,32", help="concurrent recall clients, comma-separated")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--single-stores", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--store-clients", type=int, default=2, help="concurrent batch-store clients")
    parser.add_argument("--settle-seconds", type=float, default=15.0,
                        help="idle time between the last store and the first recall")
    parser.add_argument("--port", type=int, default=3301)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--ingress", choices=INGRESS_KINDS, default="haproxy",
                        help="HTTP ingress, as `make serve` (cluster/ingress.py)")
    parser.add_argument("--shard-read-batch", type=int, default=None,
                        help="router.shard_read_batch (1: each recall's shard read on its own)")
    args = parser.parse_args(argv)

    os.environ.update(ingress_env(args.ingress, private_ports=True))  # beside a `make serve`
    os.environ.update(loopback_env_beside(args.ingress))
    os.environ.update({"ENGRAM_ROOT_API_KEY": ROOT_KEY, "HF_HUB_OFFLINE": "1",
                       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"})
    import ray
    from ray import serve

    from serve.app import build_app_with

    data_dir = Path(tempfile.mkdtemp(prefix="engram-bench-"))
    config: dict[str, Any] = {"shard_count": 2, "storage": {"data_dir": str(data_dir)}}
    if args.shard_read_batch is not None:
        config["router"] = {"shard_read_batch": args.shard_read_batch}
    rng = random.Random(7)
    namespaces = [f"bench-{i:04d}" for i in range(args.namespaces)]
    client_counts = [int(c) for c in args.clients.split(",")]
    rows: list[tuple[str, str]] = []
    results: dict[str, Any] = {"memories": args.memories, "namespaces": args.namespaces,
                               "machine": f"{os.cpu_count()} cores", "ingress": args.ingress}

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in ("ENGRAM_ROOT_API_KEY", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")}})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    # What `make serve` deploys: cluster/serve.yaml's replicas, autoscaling and queues.
    serve.run(build_app_with(config, deployment_options(ROOT / "cluster" / "serve.yaml")), name="engram", route_prefix="/")
    url = f"http://127.0.0.1:{args.port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"}, timeout=300)
    while client.get("/health/ready").status_code != 200:
        time.sleep(0.5)

    # Single stores, one client, sequential.
    t = time.perf_counter()
    for i in range(args.single_stores):
        client.post("/v1/memory/store", json={"agent_id": namespaces[i % len(namespaces)],
                                              "content": synthetic(rng, i)}).raise_for_status()
    single = args.single_stores / (time.perf_counter() - t)
    results["store_single_per_s"] = single
    rows.append(("store, single (1 client, sequential)", f"{single:.1f} memories/s"))

    # Batch stores up to the target count: a fifth from one sequential client, the rest from
    # --store-clients at once (a bulk load keeps the embedder busy while the shards write).
    jobs: list[tuple[str, list[dict[str, str]]]] = []
    i = args.single_stores
    while i < args.memories:
        n = min(args.batch_size, args.memories - i)
        ns = namespaces[(i // args.batch_size) % len(namespaces)]
        jobs.append((ns, [{"content": synthetic(rng, i + j)} for j in range(n)]))
        i += n
    split = max(1, len(jobs) // 5)
    for label, part, clients in (("1 client", jobs[:split], 1),
                                 (f"{args.store_clients} clients", jobs[split:], args.store_clients)):
        rate = asyncio.run(batch_load(url, part, clients))
        results[f"store_batch_per_s_{clients}"] = rate
        rows.append((f"store, batch of {args.batch_size}, {label}", f"{rate:.1f} memories/s"))

    # Recall is measured on a settled service: a load of 100k memories leaves the shards
    # flushing and merging their indexes for a while after the last store is acknowledged,
    # which took ~4 ms from each 1-client recall that ran meanwhile (p50 26.2 against 22.4).
    # The service is left alone for --settle-seconds before the first recall.
    # Each shard's maintenance loop checkpoints every storage.checkpoint_seconds (2 s), so
    # the wait covers several checkpoints and the merges after them.
    time.sleep(args.settle_seconds)
    results["settle_s"] = args.settle_seconds
    cpu_rows: list[tuple[int, dict[str, float]]] = []
    handles_loop = asyncio.new_event_loop()  # for the Serve handles this driver calls
    for clients in client_counts:
        asyncio.run(recall_load(url, namespaces, clients, 20, seed=99))  # warm-up
        shared_before = handles_loop.run_until_complete(read_sharing(config["shard_count"]))
        before = proc_cpu.snapshot()
        lat, wall = asyncio.run(recall_load(url, namespaces, clients, args.requests, seed=clients))
        cpu = proc_cpu.cpu_by_label(before, proc_cpu.snapshot())
        shared_calls, shared_reads = (after - prior for after, prior in zip(
            handles_loop.run_until_complete(read_sharing(config["shard_count"])), shared_before))
        s = summary(lat)
        results[f"recall_serve_{clients}"] = {**s, "rps": len(lat) / wall}
        # Shard calls the recalls took: each read on its own, less those that shared one.
        shard_calls = len(lat) - shared_reads + shared_calls
        results[f"recall_serve_{clients}"]["shard_calls"] = shard_calls
        rows.append((f"recall via HTTP + Serve, {clients} client(s)",
                     f"p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / p99 {s['p99']:.1f} ms, {len(lat) / wall:.1f} req/s, "
                     f"{shard_calls} shard calls for {len(lat)} recalls"))
        # CPU per recall in each kind of process (machine-wide, so anything else running
        # on the machine shows up too).
        per_recall = {name: 1000 * sec / len(lat) for name, sec in cpu.items()}
        results[f"recall_serve_{clients}"]["cpu_ms_per_recall"] = per_recall
        cpu_rows.append((clients, per_recall))
    client.close()
    serve.shutdown()  # type: ignore[no-untyped-call]  # handles_loop stays open: the handles' routers shut down on it
    ray.shutdown()

    # The same shards and model in this process: the cost of Serve and HTTP is the difference.
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder, split_for_passes
    from serve.app import resolve_config
    from serve.clients import LocalEmbedderClient, LocalShardClient
    from serve.service import MemoryService
    from shards.shard import Shard

    import torch

    torch.set_num_threads(1)
    cfg = resolve_config(config)
    embedder = SentenceTransformerEmbedder(EmbedderConfig())
    shards = [Shard.open_embedded(k, cfg.shard_count, embedder.dim, cfg.storage) for k in range(cfg.shard_count)]
    service = MemoryService(cfg, [LocalShardClient(s) for s in shards], LocalEmbedderClient(embedder))
    for clients in client_counts:
        asyncio.run(local_recall(service, namespaces, clients, 20, seed=99))
        lat, wall = asyncio.run(local_recall(service, namespaces, clients, args.requests, seed=clients))
        s = summary(lat)
        results[f"recall_inprocess_{clients}"] = {**s, "rps": len(lat) / wall}
        rows.append((f"recall in-process (same service code, no Serve), {clients} client(s)",
                     f"p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / p99 {s['p99']:.1f} ms"))
    # Shard only: candidates from both indexes + hydration, no embedding, no ranking.
    from shards.routing import shard_for
    from shards.types import RecallFilter

    vectors = embedder.embed([query(random.Random(k)) for k in range(50)])
    lat = []
    for k, v in enumerate(vectors):
        ns = namespaces[k % len(namespaces)]
        shard = shards[shard_for(ns, len(shards))]
        t = time.perf_counter()
        shard.recall_candidates(ns, v, query(random.Random(k)), RecallFilter(now=time.time()), 50)
        lat.append(time.perf_counter() - t)
    s = summary(lat)
    results["shard_candidates"] = s
    rows.append(("shard only: vector + BM25 + graph + session, top-50, hydrated", f"p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / p99 {s['p99']:.1f} ms"))
    for sh in shards:
        sh.close()

    texts = [synthetic(rng, k) for k in range(1024)]
    embedder.embed(texts[:64])
    t = time.perf_counter()
    embedder.embed(texts)
    raw = len(texts) / (time.perf_counter() - t)
    results["embedder_sentences_per_s"] = raw
    rows.append((f"embedder raw (MiniLM, {embedder.precision}, 1 torch thread, batch 64)",
                 f"{raw:.1f} sentences/s"))
    # What the Embedder replica itself can do: its passes side by side, as it splits a batch
    # (embedder.parallel_passes, one torch thread each).
    passes = embedder.parallel_passes
    with ThreadPoolExecutor(max_workers=passes) as pool:
        list(pool.map(embedder.embed, split_for_passes(texts[:64], passes)))  # warm each thread
        t = time.perf_counter()
        list(pool.map(embedder.embed, split_for_passes(texts, passes)))
        raw_parallel = len(texts) / (time.perf_counter() - t)
    results["embedder_parallel_passes"] = passes
    results["embedder_sentences_per_s_parallel"] = raw_parallel
    rows.append((f"embedder raw, {passes} passes side by side (embedder.parallel_passes)",
                 f"{raw_parallel:.1f} sentences/s"))

    print(f"\nEngram benchmark: {args.memories} memories in {args.namespaces} namespaces, "
          f"2 shards, {os.cpu_count()} cores\n")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print_cpu(cpu_rows)
    args.out.mkdir(exist_ok=True)
    (args.out / f"bench-{args.memories}.json").write_text(json.dumps(results, indent=2))
    plot(results, client_counts, args.out / f"bench-{args.memories}.png")
    return 0


def print_cpu(cpu_rows: list[tuple[int, dict[str, float]]]) -> None:
    """CPU ms per recall through Serve, by process kind, a column per client count."""
    if not cpu_rows:
        return
    names = list(dict.fromkeys(n for _, per in cpu_rows for n, ms in per.items() if ms >= 0.1))
    print("\nCPU per recall through Serve, ms, by process (all processes on the machine)\n")
    print("| process | " + " | ".join(f"{c} client(s)" for c, _ in cpu_rows) + " |")
    print("|---|" + "---|" * len(cpu_rows))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{per.get(name, 0.0):.1f}" for _, per in cpu_rows) + " |")
    print("| total | " + " | ".join(f"{sum(per.values()):.1f}" for _, per in cpu_rows) + " |")


def plot(results: dict[str, Any], client_counts: list[int], path: Path) -> None:
    """Recall percentiles against concurrent clients, through Serve and in process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for where, style in (("serve", "-"), ("inprocess", "--")):
        for p in ("p50", "p95", "p99"):
            ax.plot(client_counts, [results[f"recall_{where}_{c}"][p] for c in client_counts],
                    style, marker="o", label=f"{where} {p}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("recall latency, ms")
    ax.set_title(f"Recall with {results['memories']:,} memories in {results['namespaces']:,} namespaces")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
