"""Overload: does the Router shed before latency collapses? Against a running Engram
(`make serve`):

    python -m loadtests.overload [--seconds 30] [--clients 16] [--factor 3]

1. capacity: `--clients` closed-loop clients (each sends its next request when the last
   answers) for `--seconds`: the throughput they reach is the service's capacity for this
   mix (4 recalls to 1 store, one tenant key, loadtests/texts.py).
2. at capacity: requests arrive open-loop (Poisson, whatever the answers) at that rate.
3. past it: open-loop at `--factor` times the rate.

Prints one table: offered and accepted requests/s, answers by status, and p50/p99 of the
accepted requests. Shedding works when step 3's p99 stays within 2x step 2's. Every request
goes to 127.0.0.1 and the run is bounded (at most `--max-outstanding` requests open at once,
each with a 30 s timeout); the tenant's key and namespaces are deleted at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import aiohttp

from loadtests import tenants, texts

REQUEST_TIMEOUT_S = 30.0


@dataclass
class Phase:
    name: str
    offered_rps: float | None = None  # None: closed loop
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    accepted_latencies: list[float] = field(default_factory=list)
    dropped: int = 0  # never sent: --max-outstanding requests were open already

    def record(self, status: str, latency: float) -> None:
        self.statuses[status] += 1
        if status.startswith("2"):
            self.accepted_latencies.append(latency)

    def pct(self, q: float) -> float:
        xs = sorted(self.accepted_latencies)
        return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    @property
    def accepted_rps(self) -> float:
        return len(self.accepted_latencies) / self.seconds if self.seconds else 0.0


class Load:
    """The requests, from aiohttp: it takes about a third of httpx's CPU per request, and
    this process shares the machine with the service it measures."""

    def __init__(self, url: str, tenant: tenants.Tenant, seed: int) -> None:
        self.client = aiohttp.ClientSession(
            base_url=url, headers={"Authorization": f"Bearer {tenant.key}"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=0))
        self.tenant = tenant
        self.rng = random.Random(seed)

    async def one(self, phase: Phase) -> None:
        namespace = self.rng.choice(self.tenant.namespaces)
        if self.rng.random() < 0.8:
            path, body = "/v1/memory/recall", texts.recall_body(self.rng, self.tenant.theme, namespace)
        else:
            path, body = "/v1/memory/store", {"agent_id": namespace,
                                              **texts.memory_item(self.rng, self.tenant.theme)}
        start = time.perf_counter()
        try:
            async with self.client.post(path, json=body) as response:
                await response.read()
                status = str(response.status)
        except asyncio.TimeoutError:
            status = "timeout"
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        phase.record(status, time.perf_counter() - start)

    async def closed_loop(self, phase: Phase, clients: int) -> None:
        deadline = time.perf_counter() + phase.seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                await self.one(phase)

        await asyncio.gather(*(client() for _ in range(clients)))

    async def open_loop(self, phase: Phase, max_outstanding: int) -> None:
        assert phase.offered_rps is not None
        open_requests: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        next_at = start
        while next_at < start + phase.seconds:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            if len(open_requests) >= max_outstanding:
                phase.dropped += 1
            else:
                task = asyncio.create_task(self.one(phase))
                open_requests.add(task)
                task.add_done_callback(open_requests.discard)
            next_at += self.rng.expovariate(phase.offered_rps)
        if open_requests:
            await asyncio.wait(open_requests, timeout=REQUEST_TIMEOUT_S + 5)


def table(phases: list[Phase]) -> str:
    lines = ["| phase | offered req/s | accepted req/s | 2xx | 429 | 503 | other | p50 ms (accepted) | p99 ms (accepted) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in phases:
        ok = sum(n for s, n in p.statuses.items() if s.startswith("2"))
        other = sum(n for s, n in p.statuses.items() if not s.startswith("2") and s not in ("429", "503")) + p.dropped
        offered = "closed loop" if p.offered_rps is None else f"{p.offered_rps:.1f}"
        lines.append(f"| {p.name} | {offered} | {p.accepted_rps:.1f} | {ok} | {p.statuses['429']} | "
                     f"{p.statuses['503']} | {other} | {p.pct(0.5):.0f} | {p.pct(0.99):.0f} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace, tenant: tenants.Tenant) -> list[Phase]:
    load = Load(args.host, tenant, args.seed)
    try:
        capacity = Phase("capacity", None, args.seconds)
        await load.closed_loop(capacity, args.clients)
        rate = capacity.accepted_rps
        at_capacity = Phase("1x capacity", rate, args.seconds)
        await load.open_loop(at_capacity, args.max_outstanding)
        await asyncio.sleep(2)  # let what queued drain before the next phase
        past = Phase(f"{args.factor:g}x capacity", args.factor * rate, args.seconds)
        await load.open_loop(past, args.max_outstanding)
        return [capacity, at_capacity, past]
    finally:
        await load.client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="http://127.0.0.1:3300")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ENGRAM_DATA_DIR", "data")))
    p.add_argument("--seconds", type=float, default=30.0, help="per phase")
    p.add_argument("--clients", type=int, default=16, help="closed-loop clients that find the capacity")
    p.add_argument("--factor", type=float, default=3.0, help="offered load of the last phase, x capacity")
    p.add_argument("--max-outstanding", type=int, default=2000)
    p.add_argument("--namespaces", type=int, default=10)
    p.add_argument("--seed-memories", type=int, default=30, help="per namespace")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if urlparse(args.host).hostname not in ("127.0.0.1", "localhost"):
        p.error("the overload run only talks to this machine (127.0.0.1)")
    root = tenants.root_key(args.data_dir)
    [tenant] = tenants.prepare(args.host, root, 1, args.namespaces, args.seed_memories)
    try:
        phases = asyncio.run(run(args, tenant))
    finally:
        tenants.cleanup(args.host, root, [tenant], drop_data=True)
    print(table(phases))
    print(f"load generator CPU: {time.process_time():.1f} s over the run (this process)")
    at_capacity, past = phases[1], phases[2]
    ratio = past.pct(0.99) / at_capacity.pct(0.99)
    print(f"overload: p99 of accepted requests at {args.factor:g}x capacity is {ratio:.2f}x "
          f"its value at capacity; {past.statuses['503']} shed with 503")
    bad = sum(n for ph in phases for s, n in ph.statuses.items()
              if not s.startswith("2") and s not in ("429", "503"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
