"""Change the shard count of a running Engram: move each namespace to its new shard.

    ray job submit --working-dir . -- python -m cluster.reshard --to 4

Growing: deploy the app with `shard_count: 4` first (the new shards start empty and nothing
routes to them yet), then run this job. Shrinking: run this job with `--to 2` first, then
deploy `shard_count: 2`. The service answers throughout: a namespace takes reads and writes
while it is copied; its writes wait only while the copy catches up with what they changed
meanwhile, and for a moment at the hand-off its reads wait too; a request that waits longer
than a few seconds gets 503 with Retry-After.

Each move: begin a live copy on the old shard (every memory written, changed or deleted from
then on is logged) → copy its records page by page (memories with their vectors, sessions,
entities, idempotency keys, access counts; nothing is embedded again) → freeze it → copy
what the log names, then its sessions, entities and keys again → hand off → activate the
copy once it holds every memory → record the move in the shard map → delete the old copy.
Every step is idempotent: a job that is killed resumes
where it stopped when run again with the same `--to`, and no memory is lost or doubled.

One job moves at a time: the job holds a lease in the shard map (`--lease-seconds`, renewed
every third of it while the job runs), and a second job is refused while that lease is live. A killed job's lease runs
out, and the next run takes over; taking over fences the job before it (the shards refuse
its calls), so a job that was only paused cannot come back and undo a move.

`--max-namespaces N` stops a run after N moves (run it again to go on). `--abort` undoes a
reshard in progress instead of finishing it: moves a killed run left halfway are rolled back
(a half-filled copy dropped, its source live again), the namespaces already moved are moved
back the same way (live), new namespaces are created under the old count from the start of
the abort, and the shard map ends with the old count and no target.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from cluster.reshard_job import Reshard
from cluster.reshard_tally import Tally
from serve.clients import ServeShardClient, ShardClient
from shards.routing import ShardMap

log = logging.getLogger("engram.reshard")


async def main_async(args: argparse.Namespace, tally: Tally) -> dict[str, Any]:
    from ray import serve

    router = serve.get_deployment_handle("Router", app_name=args.app)
    before: ShardMap = await router.shard_map.remote()
    deployed = await router.deployed_shards.remote()
    if args.to is not None and args.to > deployed:
        raise SystemExit(f"app {args.app!r} runs {deployed} shards: deploy it with "
                         f"shard_count: {args.to} first, then run this job again")
    shards: list[ShardClient] = [
        ServeShardClient(serve.get_deployment_handle(f"Shard{i}", app_name=args.app), max_batch=1)
        for i in range(deployed)]
    job = Reshard(router, shards, args.page_size, tally, args.lease_seconds,
                  max_namespaces=args.max_namespaces)
    if args.abort:
        log.info("reshard job %s: undoing the reshard to %s shards", job.job, before.target)
        after = await job.abort(args.progress_seconds)
    else:
        log.info("reshard job %s: to %d shards", job.job, args.to)
        after = await job.run(args.to, args.progress_seconds)
    tally.complete = after.target is None
    if tally.complete and after.count < deployed:
        log.info("done: deploy the app with shard_count: %d to stop the empty shards %d-%d",
                 after.count, after.count, deployed - 1)
    return {**tally.summary(before, after), "aborted": bool(args.abort)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", type=int, help="the new shard count")
    what.add_argument("--abort", action="store_true",
                      help="undo the reshard in progress: moved namespaces go back")
    parser.add_argument("--max-namespaces", type=int, default=None,
                        help="move at most this many namespaces in this run, then stop (run "
                             "again to go on); e.g. to spread a reshard over quiet hours")
    parser.add_argument("--app", default="engram")
    parser.add_argument("--page-size", type=int, default=500,
                        help="memories per copy call (each carries its vector)")
    parser.add_argument("--progress-seconds", type=float, default=5.0)
    parser.add_argument("--lease-seconds", type=float, default=60.0,
                        help="how long this job stays the one mover unrenewed (it renews every "
                             "third of it); a killed job's next run waits at most this long")
    parser.add_argument("--report", type=Path, default=None, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    if args.to is not None and args.to < 1:
        parser.error("--to must be at least 1")
    if args.max_namespaces is not None and args.max_namespaces < 1:
        parser.error("--max-namespaces must be at least 1")
    if args.lease_seconds <= 0:
        parser.error("--lease-seconds must be above 0 (60 by default)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    import ray

    ray.init(address="auto", log_to_driver=True)
    tally = Tally()
    summary: dict[str, Any] = {}
    try:
        summary = asyncio.run(main_async(args, tally))
    finally:
        summary = summary or {"complete": False, "namespaces_moved": tally.namespaces,
                              "memories_moved": tally.memories}
        print("reshard summary: " + json.dumps(summary), flush=True)
        if args.report:
            args.report.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
