"""Every Router replica sends webhook deliveries (serve/webhooks/dispatcher.py); one at a
time takes the outboxes. Two dispatchers over two shards and one webhook store (separate
connections to the same SQLite file, as two Router processes have), against a receiver on
127.0.0.1: the one without the lease sends what the holder took and could not send in its
round, and each event arrives exactly once."""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

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
from tests.builders import DIM, mem, webhook_receiver

EVENTS = 60


def test_two_dispatchers_share_the_sending_and_send_each_event_once(tmp_path: Path) -> None:
    with webhook_receiver() as received:
        url, seen = received.url, received.by_id
        delivered_each_once(tmp_path, url, seen)


def delivered_each_once(tmp_path: Path, url: str, seen: Counter[str]) -> None:
    shards = [Shard.open_embedded(k, 2, DIM, EmbeddedStorageConfig(data_dir=tmp_path)) for k in range(2)]
    control = SQLiteControlStore(tmp_path / "control.db")
    stores = [SQLiteWebhookStore(tmp_path / "webhooks.db") for _ in range(2)]
    try:
        key, _ = control.create_key("hooks", "read", None, None, None)
        stores[0].create_subscription(Subscription(
            id="wh_" + "0" * 32, key_id=key.key_id, url=url, events=("memory.stored",),
            namespaces=("*",), secret="whsec_" + "QUJD" * 8, created_at=0.0))
        namespaces = {shard_for(f"ns{n}", 2): f"ns{n}" for n in range(20)}  # one on each shard
        for k, shard in enumerate(shards):
            shard.write([mem(f"m{k}-{i}", namespaces[k], f"fact {i}", seed=i) for i in range(EVENTS // 2)])
        # A round takes up to `batch` events from each shard, and sends up to `batch`: with
        # two shards the holder owes more than it sends in a round.
        cfg = WebhooksConfig(batch=7, concurrency=2, allow_private_networks=True, allowed_hosts=["127.0.0.1"])
        calls = [ShardCalls(LocalShardClient(shard)) for shard in shards]
        dispatchers = [Dispatcher(cfg, store, control, calls) for store in stores]

        async def until_delivered() -> list[int]:
            holder = await dispatchers[0].round()
            other = await dispatchers[1].round()
            assert (holder.events, sum(holder.attempts.values())) == (14, 7)
            assert (other.events, sum(other.attempts.values())) == (0, 7)  # no lease; sent the rest
            sent = [7, 7]
            for _ in range(200):
                reports = await asyncio.gather(*(d.round() for d in dispatchers))
                for i, report in enumerate(reports):
                    sent[i] += sum(report.attempts.values())
                if sum(seen.values()) >= EVENTS and not any(r.attempts or r.events for r in reports):
                    break
            return sent

        sent = asyncio.run(until_delivered())
    finally:
        for shard in shards:
            shard.close()
        control.close()
        for store in stores:
            store.close()
    assert len(seen) == EVENTS and set(seen.values()) == {1}, seen.most_common(3)
    assert sum(sent) == EVENTS, sent
