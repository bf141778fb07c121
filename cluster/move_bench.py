"""Benchmark (not a test): how long a reshard holds a big namespace's writes.

    python -m cluster.move_bench [--memories 20000] [--writes-per-second 20]

Moves one namespace of --memories SYNTHETIC memories (random vectors, texts from a small
vocabulary: cluster/scale.py's) between two embedded shards in process, step by step as
cluster/reshard.py drives it, while a writer thread stores new memories into it and counts
accesses. Times the live copy with its catch-up rounds (the namespace takes writes) and the
last catch-up after the freeze (its writes wait: the only hold), and checks that the copy holds exactly the source's
memories. Before live copies the whole copy ran frozen, so the hold was the copy's time.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cluster.namespace_copy import NamespaceCopy
from cluster.scale import synthetic_batch
from serve.clients import LocalShardClient
from serve.shard_calls import ShardCalls
from shards.config import EmbeddedStorageConfig
from shards.errors import NamespaceMoving
from shards.routing import shard_for
from shards.shard import Shard

DIM = 384
MOVING = next(f"tenant-{i}" for i in range(1000) if shard_for(f"tenant-{i}", 2) == 1)


def fill(source: Shard, memories: int) -> None:
    rng = np.random.default_rng(7)
    for start in range(0, memories, 1000):
        batch = synthetic_batch(rng, start, min(1000, memories - start), None, memories)
        source.write([dataclasses.replace(m, namespace=MOVING) for m in batch])
    source.checkpoint()


class Writer(threading.Thread):
    """Stores one memory at a time into the moving namespace at a steady rate, counts
    accesses, and checkpoints every 2 s as the service does (access counts are written then)."""

    def __init__(self, source: Shard, per_second: float) -> None:
        super().__init__(daemon=True)
        self.source, self.period = source, 1.0 / per_second
        self.stop, self.stored, self.held = threading.Event(), 0, 0
        self.rng = np.random.default_rng(11)

    def run(self) -> None:
        i = 10_000_000
        checkpointed = time.monotonic()
        while not self.stop.wait(self.period):
            if time.monotonic() - checkpointed >= 2.0:  # as a Shard replica's maintenance loop
                self.source.checkpoint()
                checkpointed = time.monotonic()
            [m] = synthetic_batch(self.rng, i, 1, None, 1)
            try:
                self.source.write([dataclasses.replace(m, namespace=MOVING)])
                self.source.record_access(MOVING, [f"m{i - 5_000_000}", m.id])
                self.stored += 1
                i += 1
            except NamespaceMoving:  # frozen: a router would retry it in a moment
                self.held += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=20_000)
    parser.add_argument("--writes-per-second", type=float, default=20.0)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engram-move-", ignore_cleanup_errors=True) as tmp:
        cfg = EmbeddedStorageConfig(data_dir=Path(tmp))
        source, dest = Shard.open_embedded(0, 1, DIM, cfg), Shard.open_embedded(1, 1, DIM, cfg)
        t = time.perf_counter()
        fill(source, args.memories)
        print(f"filled {args.memories} memories in {time.perf_counter() - t:.1f} s")
        for shard in (source, dest):
            shard.set_routing(1, 2)
        writer = Writer(source, args.writes_per_second)
        writer.start()

        # The job's own sequence (cluster/namespace_copy.py), over the shards in process.
        copy = NamespaceCopy(ShardCalls(LocalShardClient(source)), ShardCalls(LocalShardClient(dest)),
                             MOVING, args.page_size)
        t0 = time.monotonic()
        expected = asyncio.run(copy.copy())
        asyncio.run(copy.hand_over(expected or 0))
        t2 = time.monotonic()
        t1 = copy.frozen_at or t2
        stored_during_copy = writer.stored
        writer.stop.set()
        writer.join()
        copied = dest.records.namespace_size(MOVING)
        assert copied == expected, (copied, expected)

        print()
        print("| memories | live copy and catch-up (writes flow) | stored meanwhile "
              "| changes caught up live | last catch-up (writes held) | changes then |")
        print("|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.memories:,} | {t1 - t0:.2f} s | {stored_during_copy} | {copy.caught_up_live} | "
              f"{(t2 - t1) * 1000:.0f} ms | {copy.caught_up_frozen} |")
        for shard in (source, dest):
            shard.close()


if __name__ == "__main__":
    main()
