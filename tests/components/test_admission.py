"""The Router's load shedding (serve/admission.py) and per-key rate buckets (serve/quotas.py),
in one process: the real gate and middleware in front of the real API app."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from serve.admission import AdmissionGate
from serve.errors import ApiError
from serve.quotas import RateLimiter
from serve.routes.app import create_app
from shards.control.base import ApiKey, KeyLimits
from shards.control.sqlite import SQLiteControlStore


def test_the_gate_admits_up_to_its_slots_queues_a_few_and_sheds_the_rest() -> None:
    async def run() -> list[str]:
        gate = AdmissionGate(max_in_flight=2, max_waiting=2, max_wait_s=0.5)
        order: list[str] = []

        async def request(name: str, work_s: float) -> None:
            if not await gate.enter():
                order.append(f"{name} shed")
                return
            order.append(f"{name} in")
            try:
                await asyncio.sleep(work_s)
            finally:
                gate.leave()

        tasks = [asyncio.create_task(request(f"r{i}", 0.1)) for i in range(6)]
        await asyncio.gather(*tasks)
        assert (gate.in_flight, len(gate._waiters)) == (0, 0)
        return order

    order = asyncio.run(run())
    # r0, r1 at work; r2, r3 wait and get the slots r0 and r1 free, first come first served;
    # r4 and r5 find the line full and are shed at once.
    assert order[:4] == ["r0 in", "r1 in", "r4 shed", "r5 shed"]
    assert order[4:] == ["r2 in", "r3 in"]


def test_a_wait_longer_than_max_wait_is_shed_and_its_slot_is_not_lost() -> None:
    async def run() -> None:
        gate = AdmissionGate(max_in_flight=1, max_waiting=4, max_wait_s=0.05)
        assert await gate.enter()
        assert not await gate.enter()  # waited 50 ms, the slot stayed taken
        gate.leave()
        assert gate.in_flight == 0 and await gate.enter()
        gate.leave()

        # A waiter cancelled while it waits (its client went away) gives nothing up.
        assert await gate.enter()
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.leave()
        assert (gate.in_flight, len(gate._waiters)) == (0, 0)

    asyncio.run(run())


def _app(tmp_path: Path, **gate: Any) -> Any:
    from serve.config import EngramConfig

    cfg = EngramConfig.from_args({"router": gate})
    svc = cast(Any, type("Svc", (), {"cfg": cfg})())  # the gate reads the config only
    app = create_app(svc, SQLiteControlStore(tmp_path / "control.db"))
    release = asyncio.Event()

    async def slow(_: Request) -> JSONResponse:
        await release.wait()
        return JSONResponse({"ok": True})

    app.router.add_api_route("/slow", slow, methods=["GET"])
    return app, release


def test_past_capacity_the_app_answers_503_json_with_retry_after_but_health_still_answers(
        tmp_path: Path) -> None:
    async def run() -> None:
        app, release = _app(tmp_path, max_in_flight=1, max_waiting=0, max_wait_s=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://engram") as c:
            first = asyncio.create_task(c.get("/slow"))
            await asyncio.sleep(0.05)
            shed = await c.get("/slow")
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
            assert shed.json()["code"] == "SERVICE_UNAVAILABLE"
            assert (await c.get("/health")).status_code == 200
            metrics = (await c.get("/metrics")).text
            assert 'engram_rejected_requests_total{reason="overload"} 1.0' in metrics
            release.set()
            assert (await first).status_code == 200

    asyncio.run(run())


def test_a_key_bucket_refills_at_its_rate_and_shares_it_between_replicas() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    key = ApiKey("k1", "k", "write", None, 0.0, limits=KeyLimits(requests_per_second=2, burst=4))
    for _ in range(4):
        limiter.admit(key)  # the burst
    with pytest.raises(ApiError) as refused:
        limiter.admit(key)
    assert (refused.value.status, refused.value.retry_after) == (429, 1)
    now[0] += 0.5  # one request's worth at 2/s
    limiter.admit(key)
    with pytest.raises(ApiError):
        limiter.admit(key)
    # Two Router replicas: each admits half the rate and half the burst.
    limiter.share = 0.5
    other = ApiKey("k2", "k", "write", None, 0.0, limits=KeyLimits(requests_per_second=2, burst=4))
    limiter.admit(other)
    limiter.admit(other)
    with pytest.raises(ApiError) as slow:
        limiter.admit(other)
    assert slow.value.retry_after == 1
    unlimited = ApiKey("k3", "k", "write", None, 0.0)
    for _ in range(1000):
        limiter.admit(unlimited)
