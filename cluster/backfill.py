"""Bulk backfill of history as a Ray job: read a file, embed on an actor pool, write through the shards.

    ray job submit --working-dir . -- python -m cluster.backfill --input history.parquet \\
        --map namespace=customer_id --map content=text --map id=ticket_id

Reads Parquet, CSV or JSONL with Ray Data (a file or a folder of them). Each row becomes one
memory; `--map FIELD=COLUMN` names the column of a field (namespace or agent_id, content,
importance, tags, memory_type, event_time, metadata, id); a field whose column has its own
name needs no mapping. Rows are validated by the same rules as the HTTP API and their
entities extracted; vectors come from an actor pool (one GPU per actor where the cluster has
GPUs); memories are written by the running app's Shard deployments, through the shards' own
write path (record store durably first, then the indexes).

Re-running the same input stores nothing twice: a memory's id is the row's external id, or
a hash of its namespace, content and event time. A killed job resumes by running it again:
rows already stored are recognised before they are embedded and counted as skipped.
Progress goes to the job's log every few seconds; the job ends with a summary (rows read,
stored, skipped, rejected with reasons, memories/s) and, with --report, a JSON file of it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from cluster.backfill_job import Backfill, Prepared, Tally
from cluster.backfill_rows import batches, check_mapping, column_mapping, input_format, read_dataset
from models.sentences import regroup, texts_to_embed
from serve.config import EngramConfig
from shards.routing import ShardMap

log = logging.getLogger("engram.backfill")


async def run(args: argparse.Namespace, cfg: EngramConfig, tally: Tally) -> None:
    import ray
    from ray import serve

    from models.embedders import build_embedder

    dataset = read_dataset(args.input, input_format(args.input, args.format))
    mapping = column_mapping(args.map, list(dataset.columns()))
    check_mapping(mapping, args.namespace)
    shard_map: ShardMap = await serve.get_deployment_handle("Router", app_name=args.app).shard_map.remote()
    if shard_map.target is not None:
        raise SystemExit(f"app {args.app!r} is being resharded to {shard_map.target} shards: run the "
                         "backfill once `cluster.reshard` has finished")
    job = Backfill(cfg, args.app, mapping, args.namespace, tally, shard_map)

    # GPUs free now: the Embedder and Reranker replicas hold theirs.
    gpus = int(ray.available_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
    per_actor = 1 if gpus and args.gpus != 0 else 0
    actors = args.embed_actors or max(1, gpus if per_actor else 1)

    @ray.remote(max_restarts=2, max_task_retries=2)  # a lost node or an OOM is retried, not fatal
    class EmbedWorker:
        """One embedding model; on a GPU when the actor has one (device auto)."""

        def __init__(self, embedder_cfg: dict[str, Any]) -> None:
            from models.config import EmbedderConfig

            self.model = build_embedder(EmbedderConfig.model_validate(embedder_cfg))

        def embed(self, texts: list[str]) -> list[list[float]]:
            return self.model.embed(texts)

    pool = [EmbedWorker.options(num_gpus=per_actor, num_cpus=args.cpus_per_actor)  # type: ignore[attr-defined]
            .remote(cfg.embedder.model_dump(mode="json")) for _ in range(actors)]
    await check_app_matches(job, pool[0], args.app)
    log.info("backfill of %s: %d embedding actor(s), %s GPU each; columns %s",
             args.input, actors, per_actor, mapping)

    in_flight: deque[tuple[Prepared, list[int], Any]] = deque()
    job.tally.started = last_report = time.time()  # memories/s counts loading, not model start
    pace = Pace(args.max_rows_per_second)
    turn = 0
    for rows in batches(dataset, args.batch_size):
        await pace.wait(len(rows))
        job.tally.read += len(rows)
        prepared = await job.prepare(rows)
        if prepared.items:
            texts, counts = texts_to_embed([m.content for m in prepared.items],
                                           job.service.cfg.embedder.sentence_vectors)
            ref = pool[turn % len(pool)].embed.remote(texts)
            turn += 1
            in_flight.append((prepared, counts, ref))
        # Two batches in flight per actor: the pool embeds while the shards write.
        while len(in_flight) > 2 * len(pool):
            done, counts, ref = in_flight.popleft()
            await job.write(done, regroup(await ref, counts))
        if time.time() - last_report >= args.progress_seconds:
            last_report = time.time()
            s = job.tally.summary()
            log.info("progress: %d rows read, %d stored, %d skipped, %d rejected, %.1f memories/s",
                     s["rows_read"], s["stored"], s["skipped"], s["rejected"], s["memories_per_s"])
    while in_flight:
        done, counts, ref = in_flight.popleft()
        await job.write(done, regroup(await ref, counts))
    job.tally.complete = True


class Pace:
    """At most `per_second` rows a second (0: no limit): a backfill that leaves room for
    the live traffic of the same cluster."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.start = time.monotonic()
        self.rows = 0

    async def wait(self, rows: int) -> None:
        if self.per_second > 0:
            ahead = self.rows / self.per_second - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.rows += rows


async def check_app_matches(job: Backfill, worker: Any, app: str, timeout_s: float = 600) -> None:
    """Refuse to write anything unless the running app has the shards and the embedding
    model this job was configured with: a wrong shard count would file memories where
    recall never looks, and another model would store vectors no query matches."""
    from ray import serve

    dim = None
    for i in range(job.shard_map.count):
        index, count, dim = await job.shards[i].layout()
        if (index, count) != (i, job.shard_map.count):
            raise SystemExit(f"Shard{i} of app {app!r} holds shard {index} of {count}, but "
                             f"the app's shard map says {job.shard_map.count} shards: pass the "
                             "config the app was deployed with")
    probe = "engram backfill probe: is this the model the service embeds with?"
    served = serve.get_deployment_handle("Embedder", app_name=app).embed_many.remote([probe])
    try:
        [ours] = await asyncio.wait_for(asyncio.wrap_future(worker.embed.remote([probe]).future()), timeout_s)
    except asyncio.TimeoutError:
        raise SystemExit(f"no embedding actor started within {timeout_s:.0f} s: the cluster has no "
                         "free CPU or GPU for one (see `ray status`); lower --cpus-per-actor or "
                         "pass --gpus 0") from None
    [theirs] = await served
    cosine = sum(a * b for a, b in zip(ours, theirs))
    if len(ours) != dim or len(theirs) != dim or cosine < 0.98:
        raise SystemExit(f"this job's embedder ({job.cfg.embedder.model}, {len(ours)}-d) is not the "
                         f"service's ({len(theirs)}-d, cosine {cosine:.2f} on a probe): pass the "
                         "--config the app was deployed with")


def load_config(path: Path, app: str) -> EngramConfig:
    doc = yaml.safe_load(path.read_text())
    for application in doc.get("applications", []):
        if application.get("name") == app:
            return EngramConfig.from_args(application.get("args") or {})
    raise SystemExit(f"{path} has no application named {app!r}")


def print_summary(summary: dict[str, Any]) -> None:
    print("\n| backfill | |\n|---|---:|")
    for key in ("complete", "rows_read", "stored", "skipped", "rejected", "seconds", "memories_per_s"):
        print(f"| {key.replace('_', ' ')} | {summary[key]} |")
    for reason, count in sorted(summary["rejected_reasons"].items(), key=lambda kv: -kv[1]):
        print(f"| rejected: {reason} | {count} |")
    print("backfill summary: " + json.dumps(summary), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="a Parquet, CSV or JSONL file, or a folder of them")
    parser.add_argument("--format", choices=("auto", "parquet", "csv", "jsonl"), default="auto")
    parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
    parser.add_argument("--namespace", default=None, help="the namespace of rows that name none")
    parser.add_argument("--config", type=Path, default=Path("cluster/serve.yaml"),
                        help="the Serve config the app was deployed with (shard count, embedder)")
    parser.add_argument("--app", default="engram")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--embed-actors", type=int, default=0, help="0: one per GPU, or one on CPU")
    parser.add_argument("--gpus", type=int, choices=(0, 1), default=1,
                        help="1: one GPU per embedding actor where the cluster has GPUs; 0: CPU")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--progress-seconds", type=float, default=5.0)
    parser.add_argument("--max-rows-per-second", type=float, default=0,
                        help="read at most this many rows a second (0: no limit), to leave room for live traffic")
    parser.add_argument("--report", type=Path, default=None, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    import ray

    cfg = load_config(args.config, args.app)
    ray.init(address="auto", log_to_driver=True)
    tally = Tally()
    try:
        asyncio.run(run(args, cfg, tally))
    finally:  # a job that fails midway still says how far it got (complete: false)
        summary = tally.summary()
        print_summary(summary)
        if args.report:
            args.report.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
