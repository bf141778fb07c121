"""Benchmark (not a test): retrieval quality on LoCoMo through the HTTP API.

    python -m cluster.locomo [--data ../shared/data/locomo-dev.json] [--port 3302]
                             [--channels fused,vector,bm25,graph] [--limit-conversations N]
                             [--url http://127.0.0.1:3300 --api-key KEY]

Without --url it starts its own Ray + Serve on 127.0.0.1 over a fresh data directory (as
cluster/bench.py does). It backfills every conversation the way a user imports chat history:
one namespace per conversation (`locomo-<sample_id>`), one Engram session per LoCoMo session,
one memory per dialog turn (batch store, in order, `event_time` = the session's date). Then
every question with evidence is a recall query in its conversation's namespace, once per
channel; the evidence turns are the relevant memories. A recall counts as an access and
access counts feed the ranking, so each channel gets freshly ingested namespaces (dropped and
stored again) unless --ingest-once. Prints Recall@1/5/10/20, MRR, nDCG@10
and recall latency per channel and category; writes bench-results/locomo.json with every
question's gold ids and returned top-20 dia_ids.

These files (cluster/locomo*.py) are the only place that knows LoCoMo: recall requests carry
the question text and nothing else (no speaker, no category).
With --url the `locomo-*` namespaces of that service are dropped and re-ingested (admin key).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from cluster.ingress import ingress_env
from cluster.local import ROOT, deployment_options
from cluster.locomo_data import load_questions
from cluster.locomo_http import Unavailable, ingest, recall
from cluster.locomo_scores import METRICS, TOP_K, groups, pct, score, table
from cluster.loopback import loopback_env_beside

ROOT_KEY = "ek_locomo_root"
CHANNEL_ROUTING: dict[str, str | None] = {"fused": None, "vector": "vector", "bm25": "bm25",
                                          "graph": "graph"}


# -- the run ---------------------------------------------------------------------------------
async def run(url: str, key: str, convs: list[dict[str, Any]], channels: list[str],
              concurrency: int, reingest: bool, endpoint: str = "recall") -> dict[str, Any]:
    """Ingest, then every question once per channel. A recall counts as an access and access
    counts feed the ranking, so by default each channel gets freshly ingested namespaces
    (dropped and stored again): no channel's scores depend on the channels run before it."""
    results: dict[str, Any] = {"channels": {}, "ingest": [], "reingest_per_channel": reingest,
                               "endpoint": f"/v1/memory/{endpoint}"}
    questions, skipped = load_questions(convs)
    results["questions"] = len(questions)
    results["skipped_no_evidence"] = skipped
    print(f"{len(questions)} questions with evidence ({skipped} without, skipped)", flush=True)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300,
                                 limits=httpx.Limits(max_connections=concurrency)) as c:
        sem = asyncio.Semaphore(concurrency)
        ingested = False

        async def ingest_all() -> None:
            run_id = uuid.uuid4().hex[:12]

            async def one(conv: dict[str, Any]) -> dict[str, Any]:
                async with sem:
                    return await ingest(c, conv, run_id, reset=True)

            t = time.perf_counter()
            done = await asyncio.gather(*(one(conv) for conv in convs))
            wall = time.perf_counter() - t
            total = sum(d["memories"] for d in done)
            results["ingest"].append({"namespaces": done, "memories": total, "wall_s": wall,
                                      "per_s": total / wall if wall else 0.0})
            print(f"ingested {total} turns from {len(convs)} conversations in {wall:.1f}s "
                  f"({total / wall:.1f}/s)", flush=True)

        for channel in channels:
            routing = CHANNEL_ROUTING[channel]
            if routing is not None:  # a probe: a channel the server does not know is a 400
                try:
                    await recall(c, f"locomo-{convs[0]['sample_id']}", "probe", routing, endpoint)
                except Unavailable as exc:
                    print(f"\n{channel}: not available ({exc})", flush=True)
                    results["channels"][channel] = {"available": False, "error": str(exc)}
                    continue
                except RuntimeError:  # e.g. nothing ingested yet: the asking below will tell
                    pass
            if reingest or not ingested:
                await ingest_all()
                ingested = True

            async def ask(q: dict[str, Any]) -> dict[str, Any]:
                async with sem:
                    top, ctx, elapsed = await recall(c, f"locomo-{q['sample_id']}", q["question"],
                                                     routing, endpoint)
                metrics = score(q["gold"], top)
                # What the caller gets to read: the top 20 plus the context inlined after them.
                metrics["R@20+ctx"] = len(set(q["gold"]) & set(top + ctx)) / len(q["gold"])
                return {**q, "top20": top, "context": ctx, "latency_ms": elapsed * 1000,
                        "metrics": metrics}

            t = time.perf_counter()
            rows = await asyncio.gather(*(ask(q) for q in questions))
            wall = time.perf_counter() - t
            lat = [r["latency_ms"] for r in rows]
            latency = {"p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "mean_ms": statistics.mean(lat),
                       "wall_s": wall, "concurrency": concurrency}
            results["channels"][channel] = {
                "available": True, "routing": routing, "latency": latency,
                "summary": {name: agg for name, agg in groups(rows)},
                "per_question": [{k: r[k] for k in ("sample_id", "index", "question", "category", "answer",
                                                    "gold", "top20", "context", "latency_ms")}
                                 | {"rank": r["metrics"]["rank"],
                                    "metrics": {m: round(r["metrics"][m], 4) for m in METRICS + ["R@20+ctx"]}}
                                 for r in rows],
            }
            print(f"\n### {channel}" + (f" (routing={routing})" if routing else " (default routing)"))
            print(table(rows))
            print(f"\nrecall latency: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms "
                  f"({len(rows)} calls, {concurrency} concurrent, {wall:.1f}s)", flush=True)

    print("\n### comparison (overall = categories 1-4; context = what the answer inlines after "
          "the ranked top 20, e.g. session neighbours)\n")
    print("| channel | overall R@10 | overall R@20 | multi-hop R@10 | MRR | R@20 + context | p50 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for channel in channels:
        ch = results["channels"].get(channel, {})
        if not ch.get("available"):
            print(f"| {channel} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        s = ch["summary"]
        overall, multi = s["overall (1-4)"], s["cat1 multi-hop"]
        print(f"| {channel} | {overall['R@10']:.3f} | {overall['R@20']:.3f} | {multi['R@10']:.3f} | "
              f"{overall['MRR']:.3f} | {overall['R@20+ctx']:.3f} | {ch['latency']['p50_ms']:.0f} |")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/locomo-dev.json"))
    parser.add_argument("--port", type=int, default=3302)
    parser.add_argument("--channels", default="fused,vector,bm25,graph")
    parser.add_argument("--limit-conversations", type=int, default=None)
    parser.add_argument("--url", default=None, help="use this running service (127.0.0.1 only)")
    parser.add_argument("--api-key", default=None, help="an admin key of --url's service")
    parser.add_argument("--concurrency", type=int, default=4, choices=range(1, 5), metavar="1-4")
    parser.add_argument("--config", default=None,
                        help="JSON merged into the started service's config, e.g. "
                             "'{\"ranking\": {\"fusion\": \"minmax\"}}'")
    parser.add_argument("--endpoint", choices=("recall", "search"), default="recall",
                        help="recall (default) counts every answer as an access, which feeds the "
                             "ranking of later questions; search ranks the same way without that")
    parser.add_argument("--ingest-once", action="store_true",
                        help="ingest once for all channels (faster; recalls' access counts then "
                             "carry over from one channel to the next)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/locomo.json"))
    args = parser.parse_args(argv)

    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    unknown = [c for c in channels if c not in CHANNEL_ROUTING]
    if unknown:
        parser.error(f"unknown channel(s) {unknown}; choose from {sorted(CHANNEL_ROUTING)}")
    data_path = args.data
    if not data_path.exists() and not data_path.is_absolute():
        alt = Path(__file__).resolve().parents[1] / data_path
        data_path = alt if alt.exists() else data_path
    convs = json.loads(data_path.read_text())
    if args.limit_conversations:
        convs = convs[:args.limit_conversations]

    started = time.perf_counter()
    if args.url:
        host = httpx.URL(args.url).host
        if host not in ("127.0.0.1", "localhost", "::1"):
            parser.error("--url must be a loopback address (127.0.0.1)")
        if not args.api_key:
            parser.error("--url needs --api-key")
        url, key = args.url.rstrip("/"), args.api_key
        results = asyncio.run(run(url, key, convs, channels, args.concurrency, not args.ingest_once,
                                  args.endpoint))
        results["service"] = {"url": url, "started_here": False}
    else:
        os.environ.update({"ENGRAM_ROOT_API_KEY": ROOT_KEY, "HF_HUB_OFFLINE": "1",
                           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"})
        os.environ.update(ingress_env("haproxy", private_ports=True))  # as `make serve`, beside one
        os.environ.update(loopback_env_beside("haproxy"))
        import ray
        from ray import serve

        from serve.app import build_app_with

        data_dir = Path(tempfile.mkdtemp(prefix="engram-locomo-"))
        config: dict[str, Any] = {"shard_count": 2, "storage": {"data_dir": str(data_dir)}}
        for k, v in json.loads(args.config or "{}").items():
            config[k] = {**config[k], **v} if isinstance(v, dict) and isinstance(config.get(k), dict) else v
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: os.environ[k] for k in
                                           ("ENGRAM_ROOT_API_KEY", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")}})
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": args.port})
            serve.run(build_app_with(config, deployment_options(ROOT / "cluster" / "serve.yaml")),
                      name="engram", route_prefix="/")
            url = f"http://127.0.0.1:{args.port}"
            with httpx.Client(base_url=url, timeout=30) as probe:
                while probe.get("/health/ready").status_code != 200:
                    time.sleep(0.5)
            print(f"service up at {url} in {time.perf_counter() - started:.1f}s (data in {data_dir})",
                  flush=True)
            results = asyncio.run(run(url, ROOT_KEY, convs, channels, args.concurrency,
                                      not args.ingest_once, args.endpoint))
            results["service"] = {"url": url, "started_here": True, "config": config}
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()

    wall = time.perf_counter() - started
    results.update({"data": str(data_path), "conversations": [c["sample_id"] for c in convs],
                    "top_k": TOP_K, "wall_s": wall, "machine": f"{os.cpu_count()} cores"})
    print(f"\nwall time {wall:.1f}s; per-question ranks in {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
