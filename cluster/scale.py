"""Benchmark (not a test): how one shard's recall cost grows from 10k to 1M memories.

    python -m cluster.scale [--sizes 10000,100000,1000000] [--namespace-size 1000 | --namespaces 1000]

Grows one embedded shard (SQLite + Milvus Lite + tantivy, the default backends) through
its own write path and, at each size, times the shard's recall (vector + BM25 + graph +
session candidates, hydrated: first with each namespace's vectors not yet cached, as after
a restart, then cached) and the whole recall pipeline in process (fusion and blend; the
query vectors are given, so no model time). The memories are SYNTHETIC: random unit
vectors and texts drawn from a small vocabulary, so that a million of them can be written
on a laptop without a million model calls. Random vectors are the hard case for HNSW and
say nothing about retrieval quality. By default the shard grows by adding namespaces of
--namespace-size memories each, and recalls go to full ones, so each size compares the same
per-namespace work and only the shard around it grows; --namespaces N spreads memories
round-robin over N namespaces instead (they grow with the shard). Prints a Markdown table; writes bench-results/scale.json
and scale.png.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shards.config import EmbeddedStorageConfig
from shards.shard import Shard
from shards.types import NewMemory, RecallFilter

DIM = 384  # MiniLM's size
WORDS = ("refund order laptop screen cracked delivery invoice meeting planning database "
         "migration customer support ticket warranty shipping address exchange review login "
         "password billing jacket headphones monitor backpack blender pricing security mobile "
         "release onboarding incident postmortem dashboard search api owner quarterly").split()


def namespace_of(i: int, namespaces: int | None, namespace_size: int) -> str:
    return f"tenant-{(i % namespaces) if namespaces else (i // namespace_size):04d}"


def synthetic_batch(rng: np.random.Generator, start: int, count: int, namespaces: int | None,
                    namespace_size: int) -> list[NewMemory]:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for j in range(count):
        i = start + j
        words = random.Random(i)
        text = " ".join(words.choice(WORDS) for _ in range(14)) + f" (order #{i})"
        out.append(NewMemory(
            id=f"m{i}", namespace=namespace_of(i, namespaces, namespace_size), content=text,
            memory_type="episodic", importance=0.5, tags=(), metadata={}, session_id=None,
            event_time=1.7e9 + i, vector=tuple(vectors[j].tolist()),
        ))
    return out


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in seconds)
    return {f"p{p}": ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))] for p in (50, 95, 99)}


def measure(shard: Shard, namespaces: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    from models.entities import build_extractor
    from serve.access_counts import AccessCounts
    from serve.app import resolve_config
    from serve.clients import LocalShardClient
    from serve.shard_calls import ShardCalls
    from serve.recall import Recaller
    from serve.schemas import RecallBody
    from serve.shard_routing import FixedShardMap, ShardRouter
    from shards.routing import ShardMap

    cfg = resolve_config({"shard_count": 1})
    vectors = rng.standard_normal((queries, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    class GivenVector:  # the query's vector is given: this measures storage, not the model
        def __init__(self) -> None:
            self.next: list[float] = []

        async def embed_query(self, text: str) -> list[float]:
            return self.next

    embedder = GivenVector()
    client = LocalShardClient(shard)
    counts = AccessCounts(ShardRouter([client], FixedShardMap(1), ShardMap(1)), cfg.router.access_flush_seconds)
    recaller = Recaller(cfg, embedder, None, build_extractor(cfg.entities), counts)  # type: ignore[arg-type]
    shard._exact.clear()  # the first pass meets each namespace cold, as after a restart
    times: dict[str, list[float]] = {"cold": [], "shard": [], "recall": []}
    jobs = [(f"tenant-{k * 7919 % namespaces:04d}",
             " ".join(random.Random(-k).choice(WORDS) for _ in range(3)), vectors[k].tolist())
            for k in range(queries)]
    for part in ("cold", "shard"):
        for ns, text, vector in jobs:
            t = time.perf_counter()
            shard.recall_candidates(ns, vector, text, RecallFilter(now=time.time()), cfg.ranking.candidates)
            times[part].append(time.perf_counter() - t)
    for ns, text, vector in jobs:
        embedder.next = vector
        t = time.perf_counter()
        asyncio.run(recaller.recall(ShardCalls(client), ns, RecallBody(query=text, top_k=10), RecallFilter(now=time.time()),
                                    track_access=False))
        times["recall"].append(time.perf_counter() - t)
    return {part: percentiles(values) for part, values in times.items()}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["memories"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    for part, style in (("cold", ":"), ("shard", "--"), ("recall", "-")):
        for p in ("p50", "p95", "p99"):
            ax.plot(sizes, [r[part][p] for r in results], style, marker="o", label=f"{part} {p}")
    ax.set_xscale("log")
    ax.set_xlabel("memories in the shard (synthetic)")
    ax.set_ylabel("ms")
    ax.set_title("One shard: recall latency as it grows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--namespace-size", type=int, default=1000,
                        help="memories per namespace; the shard grows by adding namespaces")
    parser.add_argument("--namespaces", type=int, default=None,
                        help="instead: this many namespaces, filled round-robin (they grow with the shard)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--data", type=Path, default=None, help="reuse (and grow) this shard directory")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)

    import torch  # imported by the serve modules; keep it to one thread like a replica

    torch.set_num_threads(1)
    data = args.data or Path(tempfile.mkdtemp(prefix="engram-scale-"))
    shard = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=data))
    rng = np.random.default_rng(11)
    have = shard.records.counts()[0]
    results = []
    for size in sorted(int(s) for s in args.sizes.split(",")):
        t = time.perf_counter()
        grown = 0
        while have < size:
            n = min(2000, size - have)
            shard.write(synthetic_batch(rng, have, n, args.namespaces, args.namespace_size))
            have += n
            grown += n
        shard.checkpoint()
        rate = grown / (time.perf_counter() - t) if grown else 0.0
        # Recalls go to namespaces that exist at this size (full ones, in the default layout).
        queried = args.namespaces or max(1, have // args.namespace_size)
        row = {"memories": have, "namespaces": queried, "write_per_s": rate,
               **measure(shard, queried, args.queries, rng)}
        results.append(row)
        print(f"{have} memories: shard p50 {row['shard']['p50']:.1f} ms, recall p50 "
              f"{row['recall']['p50']:.1f} ms (written at {rate:.0f}/s)", flush=True)
    shard.close()

    layout = (f"{args.namespaces} namespaces, round-robin" if args.namespaces
              else f"namespaces of {args.namespace_size} memories")
    print(f"\nOne shard grown with synthetic memories ({layout}, "
          f"{args.queries} recalls per size, top_k 10, no model time)\n")
    print("| memories | shard candidates, cold namespace | shard candidates, warm | "
          "recall in-process, warm |")
    print("|---:|---|---|---|")
    for r in results:
        print(f"| {r['memories']:,} | " + " | ".join(
            "p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms".format(**r[part])
            for part in ("cold", "shard", "recall")) + " |")
    if len(results) > 1:
        growth = results[-1]["recall"]["p95"] / results[0]["recall"]["p95"]
        print(f"\nwarm recall p95 growth {results[0]['memories']:,} -> {results[-1]['memories']:,}: {growth:.2f}x")
    args.out.mkdir(exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "scale.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
