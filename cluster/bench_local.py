"""`make bench` without Serve and HTTP: the shards a run stored reopened in this process,
the same recalls through the same service code, the shard and its indexes alone, and the
embedder alone. The difference from the figures through Serve is what Serve and HTTP cost."""
from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cluster.bench_data import query, summary, synthetic


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


def in_process(config: dict[str, Any], namespaces: list[str], client_counts: list[int], requests: int,
               embedder: list[Any], results: dict[str, Any], rows: list[tuple[str, str]]) -> None:
    """The same shards and model in this process: the cost of Serve and HTTP is the difference.
    embedder: empty, or the model an earlier form loaded (this one loads it there)."""
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder
    from serve.app import resolve_config
    from serve.clients import LocalEmbedderClient, LocalShardClient
    from serve.service import MemoryService
    from shards.indexes.base import IndexFilter
    from shards.routing import shard_for
    from shards.shard import Shard
    from shards.types import RecallFilter

    import torch

    torch.set_num_threads(1)
    if not embedder:
        embedder.append(SentenceTransformerEmbedder(EmbedderConfig()))
    model = embedder[0]
    cfg = resolve_config(config)
    shards = [Shard.open_embedded(k, cfg.shard_count, model.dim, cfg.storage) for k in range(cfg.shard_count)]
    service = MemoryService(cfg, [LocalShardClient(s) for s in shards], LocalEmbedderClient(model))
    for clients in client_counts:
        asyncio.run(local_recall(service, namespaces, clients, 20, seed=99))
        lat, wall = asyncio.run(local_recall(service, namespaces, clients, requests, seed=clients))
        s = summary(lat)
        results[f"recall_inprocess_{clients}"] = {**s, "rps": len(lat) / wall}
        rows.append((f"recall in-process (same service code, no Serve), {clients} client(s)",
                     f"p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / p99 {s['p99']:.1f} ms"))
    # Shard only: candidates from both indexes + hydration, no embedding, no ranking.
    vectors = model.embed([query(random.Random(k)) for k in range(50)])
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
    # Two index searches alone, for what each backend costs: BM25 (tantivy, or the keyword
    # index on a server), and the HNSW index, which recall searches only for a namespace
    # over storage.exact_search_max_rows (smaller ones are searched exactly in the shard).
    channels: dict[str, list[float]] = {"keyword_index": [], "vector_index": []}
    for k, v in enumerate(vectors):
        ns = namespaces[k % len(namespaces)]
        shard = shards[shard_for(ns, len(shards))]
        ns_id = shard.records.namespace_id(ns)
        if ns_id is None:
            continue
        flt = IndexFilter(ns_id=ns_id)
        t = time.perf_counter()
        shard.keywords.search(query(random.Random(k)), flt, 50)
        channels["keyword_index"].append(time.perf_counter() - t)
        t = time.perf_counter()
        shard.vectors.search(v, flt, 50)
        channels["vector_index"].append(time.perf_counter() - t)
    for name, label in (("keyword_index", "keyword index (BM25) search alone, top-50"),
                        ("vector_index", "vector index (HNSW) search alone, top-50")):
        if channels[name]:
            s = summary(channels[name])
            results[name] = s
            rows.append((label, f"p50 {s['p50']:.1f} / p95 {s['p95']:.1f} / p99 {s['p99']:.1f} ms"))
    for sh in shards:
        sh.close()


def embedder_raw(embedder: Any, by_form: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The model alone in this process: one pass, then its passes side by side as the
    Embedder replica splits a batch (embedder.parallel_passes, one torch thread each)."""
    from models.embedders import split_for_passes

    rng = random.Random(7)
    texts = [synthetic(rng, k) for k in range(1024)]
    embedder.embed(texts[:64])
    t = time.perf_counter()
    embedder.embed(texts)
    raw = len(texts) / (time.perf_counter() - t)
    passes = embedder.parallel_passes
    with ThreadPoolExecutor(max_workers=passes) as pool:
        list(pool.map(embedder.embed, split_for_passes(texts[:64], passes)))  # warm each thread
        t = time.perf_counter()
        list(pool.map(embedder.embed, split_for_passes(texts, passes)))
        raw_parallel = len(texts) / (time.perf_counter() - t)
    for results in by_form.values():
        results.update(embedder_sentences_per_s=raw, embedder_parallel_passes=passes,
                       embedder_sentences_per_s_parallel=raw_parallel)
    return [(f"embedder raw (MiniLM, {embedder.precision}, 1 torch thread, batch 64)", f"{raw:.1f} sentences/s"),
            (f"embedder raw, {passes} passes side by side (embedder.parallel_passes)",
             f"{raw_parallel:.1f} sentences/s")]
