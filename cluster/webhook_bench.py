"""Benchmark (not a test): how fast the webhook dispatcher empties the outboxes and delivers.

    python -m cluster.webhook_bench [--memories 2000] [--subscriptions 0 1 4] [--senders 1 2]

No Ray: two embedded shards (SQLite records, Milvus Lite, tantivy), the SQLite webhook and
control stores, and a receiver on 127.0.0.1 that answers 204. For each count of
subscriptions (each to every namespace), --memories synthetic memories are stored in batches
of 100 (each writes its memory.stored event to its shard's outbox in the same transaction),
then dispatcher rounds run (serve/webhooks/dispatcher.py, the Router's code) until every
event is taken and every delivery answered. With --senders N, N-1 more processes run
dispatchers on the same webhook store, as N Router replicas do: this process holds the
lease and takes the outboxes, all of them send. Prints a Markdown table: the store time with
the outbox in it, how long the outboxes took to empty, and deliveries per second.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from cluster.ingress import free_ports
from cluster.scale import DIM, synthetic_batch
from serve.clients import LocalShardClient
from serve.config import WebhooksConfig
from serve.shard_calls import ShardCalls
from serve.webhooks.dispatcher import Dispatcher
from shards.config import EmbeddedStorageConfig
from shards.control.sqlite import SQLiteControlStore
from shards.routing import shard_for
from shards.shard import Shard
from shards.webhooks.base import Subscription
from shards.webhooks.sqlite import SQLiteWebhookStore

SHARDS = 2


class Counter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the dispatcher reuses its connections
    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        with Counter.lock:
            Counter.received += 1
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


WEBHOOKS = WebhooksConfig(batch=500, concurrency=8, allow_private_networks=True, allowed_hosts=["127.0.0.1"])


def sender(folder: Path) -> None:
    """A Router replica's other half: a dispatcher with no shards of its own (it never wins
    the lease here: the bench's process renews it every round), sending what is due."""
    store = SQLiteWebhookStore(folder / "webhooks.db")
    control = SQLiteControlStore(folder / "control.db")
    dispatcher = Dispatcher(WEBHOOKS, store, control, [])

    async def forever() -> None:
        while True:
            report = await dispatcher.round()
            if not report.attempts:
                await asyncio.sleep(0.02)

    asyncio.run(forever())


def run_once(memories: int, subscriptions: int, url: str, senders: int = 1) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="engram-webhook-bench-") as tmp:
        cfg = EmbeddedStorageConfig(data_dir=Path(tmp))
        shards = [Shard.open_embedded(k, SHARDS, DIM, cfg) for k in range(SHARDS)]
        control = SQLiteControlStore(Path(tmp) / "control.db")
        store = SQLiteWebhookStore(Path(tmp) / "webhooks.db")
        try:
            key, _ = control.create_key("bench", "read", None, None, None)
            for n in range(subscriptions):
                store.create_subscription(Subscription(
                    id=f"wh_{n:032x}", key_id=key.key_id, url=url, events=("memory.stored",),
                    namespaces=("*",), secret="whsec_" + "QUJD" * 8, created_at=0.0))
            rng = np.random.default_rng(7)
            began = time.perf_counter()
            for start in range(0, memories, 100):
                batch = synthetic_batch(rng, start, min(100, memories - start), 50, 0)
                for index, shard in enumerate(shards):
                    mine = [m for m in batch if shard_for(m.namespace, SHARDS) == index]
                    if mine:
                        shard.write(mine)
            stored_s = time.perf_counter() - began
            Counter.received = 0
            dispatcher = Dispatcher(WEBHOOKS, store, control, [ShardCalls(LocalShardClient(s)) for s in shards])
            store.take_dispatcher_lease(dispatcher.holder, 60.0, time.time())  # before the others start
            helpers = [subprocess.Popen([sys.executable, "-m", "cluster.webhook_bench", "--sender", tmp])
                       for _ in range(senders - 1)]

            async def drain() -> tuple[float, float]:
                began = time.perf_counter()
                emptied = 0.0
                while True:
                    report = await dispatcher.round()
                    if not emptied and report.events == 0:
                        emptied = time.perf_counter() - began
                    if emptied and Counter.received >= memories * subscriptions and not report.attempts:
                        return emptied, time.perf_counter() - began

            try:
                emptied_s, delivered_s = asyncio.run(drain())
            finally:
                for helper in helpers:
                    helper.terminate()
                    helper.wait(30)
        finally:
            for shard in shards:
                shard.close()
            store.close()
            control.close()
    return {"stored_s": stored_s, "emptied_s": emptied_s, "delivered_s": delivered_s,
            "deliveries": float(memories * subscriptions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, nargs="+", default=[0, 1, 4])
    parser.add_argument("--senders", type=int, nargs="+", default=[1], help="dispatcher processes")
    parser.add_argument("--sender", type=Path, help=argparse.SUPPRESS)  # a helper process's folder
    args = parser.parse_args()
    if args.sender is not None:
        sender(args.sender)
        return
    port = free_ports(1)[0]
    server = ThreadingHTTPServer(("127.0.0.1", port), Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("| senders | subscriptions | memories stored | store (memories/s, outbox in it) | outboxes emptied | deliveries | delivered/s |")
    print("|---|---|---|---|---|---|---|")
    try:
        for senders in args.senders:
            for subs in args.subscriptions:
                r = run_once(args.memories, subs, f"http://127.0.0.1:{port}/hook", senders)
                rate = r["deliveries"] / r["delivered_s"] if r["deliveries"] else 0.0
                print(f"| {senders} | {subs} | {args.memories} | {args.memories / r['stored_s']:.0f} | "
                      f"{r['emptied_s']:.2f} s | {int(r['deliveries'])} in {r['delivered_s']:.2f} s | {rate:.0f} |",
                      flush=True)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
