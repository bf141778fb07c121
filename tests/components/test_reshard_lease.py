"""One reshard job moves at a time. A second is refused while the first holds its lease;
once a killed (or stalled) job's lease runs out the next one takes over, and the stalled
job, should it wake up, is fenced off: its calls are refused, and nothing it had begun is
lost or doubled. The job code, real shards and a real control store run in this process;
only Serve's handles are stood in for (`.remote` on an in-process object)."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from cluster.reshard_job import LeaseLost, Reshard
from cluster.reshard_tally import Tally
from serve.clients import LocalShardClient
from shards.config import EmbeddedStorageConfig
from shards.control.sqlite import SQLiteControlStore
from shards.errors import Conflict
from shards.routing import shard_for
from shards.shard import Shard
from shards.types import RecallFilter
from tests.builders import DIM, mem, router_of, two_shards

MOVING = [n for n in (f"agent-{i}" for i in range(200)) if shard_for(n, 2) == 1][:3]


class StalledShard:
    """A shard whose `import_head` blocks its caller's whole event loop at a gate, as a
    stopped or cut-off job process would: not even the job's lease renewal runs."""

    def __init__(self, client: LocalShardClient) -> None:
        self.client = client
        self.reached = threading.Event()
        self.gate = threading.Event()

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "import_head" and not self.gate.is_set():
            self.reached.set()
            self.gate.wait(60)
        return await self.client.call(method, *args, **kwargs)


def test_a_stalled_job_is_taken_over_and_fenced(tmp_path: Path) -> None:
    shards, control, clients, router = two_shards(tmp_path, MOVING)

    # The stalled job runs in its own thread and event loop (its own process, in life).
    stalled_shard = StalledShard(clients[1])
    stalled = Reshard(router, [clients[0], stalled_shard], 2, Tally(),
                      lease_seconds=0.6, job="stalled")
    outcome: dict[str, BaseException] = {}

    def run_stalled() -> None:
        try:
            asyncio.run(stalled.run(2, progress_seconds=60))
        except BaseException as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome["error"] = exc

    thread = threading.Thread(target=run_stalled)
    thread.start()
    assert stalled_shard.reached.wait(30)  # froze its first namespace, stuck before copying it

    async def take_over() -> None:
        with pytest.raises(Conflict, match="reshard job stalled is running"):
            await Reshard(router, list(clients), 2, Tally(), job="early").run(2, 60)
        await asyncio.sleep(0.8)  # the stalled job's lease runs out
        tally = Tally()
        done = await Reshard(router, list(clients), 2, tally, job="next").run(2, 60)
        assert (done.count, done.target) == (2, None) and tally.namespaces == len(MOVING)

    asyncio.run(take_over())
    # The moved namespaces take writes at their new home.
    shards[1].write([mem(f"{ns}-new", ns, f"written after the move to {ns}", seed=99)
                     for ns in MOVING])
    # The stalled job wakes up and would rebuild its namespace's copy from the head it read
    # before the move (replace_live): its calls are refused instead.
    stalled_shard.gate.set()
    thread.join(60)
    assert isinstance(outcome.get("error"), LeaseLost), outcome
    assert "another reshard job has taken over" in str(outcome["error"])
    for ns in MOVING:
        assert [name for name, _ in shards[0].namespace_table()] == []
        found = shards[1].listing(ns, RecallFilter(), 100, 0)[0]
        assert sorted(m.id for m in found) == [f"{ns}-m{i}" for i in range(5)] + [f"{ns}-new"]
    for s in shards:
        s.close()


def test_a_live_job_keeps_its_lease_through_a_long_step(tmp_path: Path) -> None:
    """Renewal runs beside the job's steps: a step longer than the lease loses nothing."""
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 1, DIM, cfg) for i in range(2)]
    control = SQLiteControlStore(tmp_path / "control.db")
    control.check_deployed_shards(1)
    shards[0].write([mem(f"{MOVING[0]}-m{i}", MOVING[0], f"note {i}", seed=i) for i in range(3)])
    clients = [LocalShardClient(s) for s in shards]
    router = router_of(control, clients)

    class SlowShard:
        async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
            if method == "import_head":
                await asyncio.sleep(1.0)  # a slow step: longer than the whole lease
            return await clients[1].call(method, *args, **kwargs)

    async def scenario() -> None:
        job = Reshard(router, [clients[0], SlowShard()], 2, Tally(),
                      lease_seconds=0.3, job="slow")
        task = asyncio.create_task(job.run(2, 60))
        await asyncio.sleep(0.6)
        with pytest.raises(Conflict, match="reshard job slow is running"):
            control.begin_reshard(2, "other", 60)
        done = await task
        assert (done.count, done.target) == (2, None)

    asyncio.run(scenario())
    found = shards[1].listing(MOVING[0], RecallFilter(), 100, 0)[0]
    assert len(found) == 3
    for s in shards:
        s.close()
