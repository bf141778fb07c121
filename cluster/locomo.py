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

This file is the only place that knows LoCoMo: recall requests carry the question text and
nothing else (no speaker, no category).
With --url the `locomo-*` namespaces of that service are dropped and re-ingested (admin key).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from cluster.ingress import ingress_env
from cluster.local import ROOT, deployment_options
from cluster.loopback import loopback_env_beside

ROOT_KEY = "ek_locomo_root"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
KS = (1, 5, 10, 20)
TOP_K = 20
BATCH = 100
CHANNEL_ROUTING: dict[str, str | None] = {"fused": None, "vector": "vector", "bm25": "bm25",
                                          "graph": "graph"}


class Unavailable(Exception):
    """The server refused a channel's routing (400)."""


# -- the data --------------------------------------------------------------------------------
def parse_date(text: str) -> datetime:
    """LoCoMo session dates, e.g. '1:56 pm on 8 May, 2023' (taken as UTC)."""
    cleaned = re.sub(r"\s+", " ", text.strip())
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %d %B %Y"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"unparsed session date: {text!r}")


def photo_note(turn: dict[str, Any]) -> str:
    """A shared image as text: its caption (`blip_caption`), the only description a chat
    client would have. (`query` is the search that found the image; `img_url` is a link.)"""
    caption = turn.get("blip_caption")
    if not isinstance(caption, str) or not caption.strip():
        return ""
    caption = re.sub(r"^(a )?(photo|photograph|photography|picture|image) of\s+", "",
                     caption.strip(), flags=re.IGNORECASE)
    return f" [shares a photo of {caption}]"


def sessions_of(conv: dict[str, Any]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(N, date text, turns) for every non-empty session_N, in order."""
    out = []
    for key, turns in conv.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(turns, list) and turns:
            n = int(m.group(1))
            out.append((n, conv.get(f"session_{n}_date_time", ""), turns))
    return sorted(out, key=lambda s: s[0])


def normalise_evidence(raw: list[Any], turns: set[str]) -> list[str]:
    """'D8:6; D9:17' → both; 'D:11:26' → 'D11:26'; 'D30:05' → 'D30:5'; ids naming no turn dropped."""
    gold: list[str] = []
    for item in raw or []:
        for token in re.split(r"[;,\s]+", str(item)):
            m = re.fullmatch(r"D:?(\d+):(\d+)", token.strip())
            if not m:
                continue
            dia = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia in turns and dia not in gold:
                gold.append(dia)
    return gold


# -- HTTP ------------------------------------------------------------------------------------
async def call(c: httpx.AsyncClient, method: str, path: str, *, attempts: int = 8,
               **kwargs: Any) -> httpx.Response:
    """One request, retried on 429/503 (after Retry-After) and on connection errors."""
    delay = 0.5
    for attempt in range(attempts):
        try:
            r = await c.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
            continue
        if r.status_code in (429, 503) and attempt < attempts - 1:
            try:
                wait = float(r.headers.get("retry-after", delay))
            except ValueError:
                wait = delay
            await asyncio.sleep(min(max(wait, 0.1), 30))
            delay = min(delay * 2, 10)
            continue
        return r
    raise AssertionError("unreachable")


def check(r: httpx.Response, what: str) -> dict[str, Any]:
    if r.status_code >= 400:
        raise RuntimeError(f"{what}: HTTP {r.status_code}: {r.text[:500]}")
    body: dict[str, Any] = r.json()
    return body


async def ingest(c: httpx.AsyncClient, conv: dict[str, Any], run_id: str, reset: bool) -> dict[str, Any]:
    sample = conv["sample_id"]
    ns = f"locomo-{sample}"
    if reset:
        r = await call(c, "DELETE", f"/v1/namespaces/{ns}")
        if r.status_code not in (200, 404):
            check(r, f"drop {ns}")
    speakers = conv["conversation"]
    stored = 0
    for n, date_text, turns in sessions_of(speakers):
        when = parse_date(date_text)
        started = check(await call(c, "POST", "/v1/sessions/start", json={
            "agent_id": ns, "metadata": {"locomo_session": n, "date": date_text}}), f"{ns} session {n} start")
        session_id = started["session"]["id"]
        items = []
        for turn in turns:
            items.append({
                "content": f"{turn['speaker']}: {turn['text']}{photo_note(turn)}",
                "session_id": session_id,
                "metadata": {"dia_id": turn["dia_id"], "speaker": turn["speaker"]},
                "event_time": when.isoformat().replace("+00:00", "Z"),
            })
        for i in range(0, len(items), BATCH):
            chunk = items[i:i + BATCH]
            body = check(await call(c, "POST", "/v1/memories/store/batch",
                                    json={"agent_id": ns, "memories": chunk},
                                    headers={"Idempotency-Key": f"locomo-{run_id}-{sample}-{n}-{i}"}),
                         f"{ns} session {n} store")
            if body.get("stored_count") != len(chunk):
                raise RuntimeError(f"{ns} session {n}: stored {body.get('stored_count')} of {len(chunk)}")
            stored += len(chunk)
        check(await call(c, "POST", f"/v1/sessions/{session_id}/end", json={}), f"{ns} session {n} end")
    return {"namespace": ns, "memories": stored}


async def recall(c: httpx.AsyncClient, ns: str, question: str, routing: str | None,
                 endpoint: str = "recall") -> tuple[list[str], list[str], float]:
    """The ranked results' dia_ids, best first, and those of the context the answer adds
    after them (session neighbours inlined with `retrieval: "neighborhood"`), and the time."""
    body: dict[str, Any] = {"agent_id": ns, "query": question, "top_k": TOP_K}
    if routing is not None:
        body["routing"] = routing
    t = time.perf_counter()
    r = await call(c, "POST", f"/v1/memory/{endpoint}", json=body)
    elapsed = time.perf_counter() - t
    if r.status_code == 400 and routing is not None:
        raise Unavailable(r.text[:300])
    data = check(r, f"recall in {ns}")
    rows = data.get("memories", data.get("results", []))
    ranked: list[str] = []
    context: list[str] = []
    for m in rows:
        d = (m.get("metadata") or {}).get("dia_id") if isinstance(m, dict) else None
        extra = isinstance(m, dict) and m.get("retrieval") in ("neighborhood", "associated")
        (context if extra else ranked).append(d if isinstance(d, str) else "?")
    return ranked[:TOP_K], context, elapsed


# -- metrics ---------------------------------------------------------------------------------
def score(gold: list[str], returned: list[str]) -> dict[str, float]:
    g = set(gold)
    seen: set[str] = set()
    ranked = []  # first occurrence of each id only
    for d in returned[:TOP_K]:
        if d not in seen:
            seen.add(d)
            ranked.append(d)
        else:
            ranked.append("?dup")
    out = {f"R@{k}": len(g & set(ranked[:k])) / len(g) for k in KS}
    first = next((i for i, d in enumerate(ranked, 1) if d in g), None)
    out["MRR"] = 1 / first if first else 0.0
    dcg = sum(1 / math.log2(i + 1) for i, d in enumerate(ranked[:10], 1) if d in g)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(g), 10) + 1))
    out["nDCG@10"] = dcg / idcg
    out["rank"] = first or 0
    return out


METRICS = [f"R@{k}" for k in KS] + ["MRR", "nDCG@10"]


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for m in METRICS + ["R@20+ctx"]:
        out[m] = statistics.mean(r["metrics"][m] for r in rows) if rows else float("nan")
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def groups(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = [("overall (1-4)", aggregate([r for r in rows if r["category"] in (1, 2, 3, 4)]))]
    for cat in (1, 2, 3, 4, 5):
        out.append((f"cat{cat} {CATEGORIES[cat]}", aggregate([r for r in rows if r["category"] == cat])))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| questions | n | " + " | ".join(METRICS) + " |", "|---|---:|" + "---:|" * len(METRICS)]
    for name, agg in groups(rows):
        cells = " | ".join("–" if not agg["n"] else f"{agg[m]:.3f}" for m in METRICS)
        lines.append(f"| {name} | {agg['n']} | {cells} |")
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------
def load_questions(convs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    questions, skipped = [], 0
    for conv in convs:
        turns = {t["dia_id"] for _, _, ts in sessions_of(conv["conversation"]) for t in ts}
        for i, qa in enumerate(conv["qa"]):
            gold = normalise_evidence(qa.get("evidence", []), turns)
            if not gold:
                skipped += 1
                continue
            questions.append({"sample_id": conv["sample_id"], "index": i, "question": qa["question"],
                              "category": qa.get("category"), "gold": gold,
                              "answer": qa.get("answer", qa.get("adversarial_answer"))})
    return questions, skipped


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
