"""Benchmark (not a test): store throughput, recall latency, Serve overhead, embedder limit.

    python -m cluster.bench [--memories 10000] [--namespaces 1000] [--clients 1,8,32]
                            [--forms embedded,production]

Starts its own Ray + Serve on 127.0.0.1 over fresh storage, loads synthetic memories through
the HTTP API, measures, then reopens the same shards in-process to measure the same recall
without Serve. With several --forms (cluster/bench_forms.py: embedded; production, on
PostgreSQL, Milvus and an Elasticsearch-API emulator started on 127.0.0.1 for the run) it
measures each in turn and prints them side by side. Prints Markdown tables; writes
bench-results/.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cluster import proc_cpu
from cluster.bench_data import query, summary, synthetic
from cluster.bench_forms import form_storage, parse_forms, print_comparison, unavailable
from cluster.bench_local import embedder_raw, in_process
from cluster.ingress import INGRESS_KINDS, ingress_env
from cluster.local import ROOT, deployment_options, wait_ready
from cluster.loopback import loopback_env_beside

ROOT_KEY = "ek_bench_root"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--clients", default="1,8,32", help="concurrent recall clients, comma-separated")
    parser.add_argument("--forms", default="embedded",
                        help="storage forms to measure one after the other, comma-separated: "
                             "embedded, production (cluster/bench_forms.py); both: a table side by side")
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
    try:
        forms = parse_forms(args.forms)
    except ValueError as exc:
        parser.error(str(exc))
    for form in forms:  # before anything starts: a missing server fails the run at once
        missing = unavailable(form)
        if missing:
            parser.error(f"the {form} form cannot run here: {missing}")

    os.environ.update(ingress_env(args.ingress, private_ports=True))  # beside a `make serve`
    os.environ.update(loopback_env_beside(args.ingress))
    os.environ.update({"ENGRAM_ROOT_API_KEY": ROOT_KEY, "HF_HUB_OFFLINE": "1",
                       "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"})
    namespaces = [f"bench-{i:04d}" for i in range(args.namespaces)]
    client_counts = [int(c) for c in args.clients.split(",")]
    by_form: dict[str, dict[str, Any]] = {}
    tables: dict[str, list[tuple[str, str]]] = {}
    cpu_tables: dict[str, list[tuple[int, dict[str, float]]]] = {}
    embedder: list[Any] = []  # the in-process model, loaded once for every form
    for form in forms:
        began = time.perf_counter()
        data_dir = Path(tempfile.mkdtemp(prefix=f"engram-bench-{form}-"))
        with form_storage(form, data_dir) as storage:
            os.environ.update(storage.env)  # the in-process shards read them here
            config: dict[str, Any] = {"shard_count": 2, "storage": storage.storage}
            if args.shard_read_batch is not None:
                config["router"] = {"shard_read_batch": args.shard_read_batch}
            results: dict[str, Any] = {"form": form, "memories": args.memories, "namespaces": args.namespaces,
                                       "machine": f"{os.cpu_count()} cores", "ingress": args.ingress,
                                       "servers_started_s": storage.started_s}
            rows = [(f"{name} started", f"{s:.1f} s") for name, s in storage.started_s.items()]
            cpu_tables[form] = through_serve(args, config, sorted(storage.env), namespaces, client_counts,
                                             results, rows)
            in_process(config, namespaces, client_counts, args.requests, embedder, results, rows)
        shutil.rmtree(data_dir, ignore_errors=True)
        results["wall_s"] = time.perf_counter() - began
        by_form[form], tables[form] = results, rows

    raw_rows = embedder_raw(embedder[0], by_form)
    print(f"\nEngram benchmark: {args.memories} memories in {args.namespaces} namespaces, "
          f"2 shards, {os.cpu_count()} cores\n")
    for form in forms:
        print(f"\n{form} form ({by_form[form]['wall_s']:.0f} s)\n")
        print("| measurement | result |\n|---|---|")
        for name, value in tables[form] + (raw_rows if len(forms) == 1 else []):
            print(f"| {name} | {value} |")
        print_cpu(cpu_tables[form])
    if len(forms) > 1:
        print("\nThe embedder alone, in this process\n\n| measurement | result |\n|---|---|")
        for name, value in raw_rows:
            print(f"| {name} | {value} |")
    print_comparison(by_form, client_counts, args.store_clients)
    args.out.mkdir(exist_ok=True)
    for form in forms:
        stem = f"bench-{args.memories}" + ("" if form == "embedded" else f"-{form}")
        (args.out / f"{stem}.json").write_text(json.dumps(by_form[form], indent=2))
        plot(by_form[form], client_counts, args.out / f"{stem}.png")
    return 0


def through_serve(args: argparse.Namespace, config: dict[str, Any], secrets: list[str], namespaces: list[str],
                  client_counts: list[int], results: dict[str, Any],
                  rows: list[tuple[str, str]]) -> list[tuple[int, dict[str, float]]]:
    """Deploy on a Ray started here, load the memories through HTTP, time recalls; stop Ray.
    Returns the CPU per recall by process, a row per client count."""
    import ray
    from ray import serve

    from serve.app import build_app_with

    rng = random.Random(7)  # every form stores the same memories
    env_vars = ("ENGRAM_ROOT_API_KEY", "HF_HUB_OFFLINE", "OMP_NUM_THREADS", *secrets)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in env_vars}})
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    # What `make serve` deploys: cluster/serve.yaml's replicas, autoscaling and queues.
    serve.run(build_app_with(config, deployment_options(ROOT / "cluster" / "serve.yaml")), name="engram", route_prefix="/")
    url = f"http://127.0.0.1:{args.port}"
    wait_ready(url, ROOT_KEY, timeout=300)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ROOT_KEY}"}, timeout=300)

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
    return cpu_rows


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
    ax.set_title(f"Recall with {results['memories']:,} memories in {results['namespaces']:,} namespaces, "
                 f"{results['form']} form")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
