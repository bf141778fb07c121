"""The console's live figures (serve/traffic.py, serve/traffic_board.py): each replica's
seconds, merged over replicas, with latency quantiles as Prometheus computes them."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve.metrics import LATENCY_BUCKETS
from serve.traffic import SECONDS_KEPT, TrafficWindow, answer_class, merged_series, quantile
from serve.traffic_board import SEND_EVERY_S, LocalTraffic, RayTraffic, TrafficBoard


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_answer_classes() -> None:
    assert [answer_class(s) for s in (200, 201, 304, 400, 404, 429, 503, 500, 502)] == [
        "ok", "ok", "ok", "client_error", "client_error", "shed", "shed", "server_error", "server_error"]


def test_a_window_hands_over_finished_seconds_once() -> None:
    clock = Clock(1000.2)
    window = TrafficWindow(clock)
    window.record(200, 0.003)
    window.record(500, 0.2)
    assert window.finished() == []  # second 1000 is still open
    clock.t = 1001.5
    window.record(429, 0.001)
    [done] = window.finished()
    assert done.t == 1000 and done.counts == {"ok": 1, "client_error": 0, "shed": 0, "server_error": 1}
    assert done.buckets[0] == 1 and done.buckets[LATENCY_BUCKETS.index(0.25)] == 1
    assert window.finished() == []
    assert [s.t for s in window.recent(10)] == [1001]


def test_quantiles_interpolate_inside_buckets() -> None:
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    assert quantile(buckets, 0.5) is None
    buckets[1] = 10  # ten answers in (5 ms, 10 ms]
    assert quantile(buckets, 0.5) == pytest.approx(0.0075)
    assert quantile(buckets, 1.0) == pytest.approx(0.01)
    buckets[-1] = 90  # most slower than the last bound: that bound
    assert quantile(buckets, 0.99) == LATENCY_BUCKETS[-1]


def test_the_board_merges_replicas_and_forgets_old_seconds() -> None:
    clock = Clock(5000.0)
    board = TrafficBoard(clock)
    for replica, statuses in (("a", [200, 200, 404]), ("b", [200, 503])):
        window = TrafficWindow(Clock(4998.5))
        for status in statuses:
            window.record(status, 0.02)
        window._clock = Clock(4999.1)  # type: ignore[attr-defined]
        board.add(replica, window.finished())
    t = board.series(60)
    assert t["replicas_reporting"] == 2 and len(t["series"]) == 60
    assert t["now"] == 4998 and t["series"][-1]["t"] == 4998 and t["series"][-1]["requests"] == 5
    assert t["totals"] | {"p50_ms": 0, "p95_ms": 0, "p99_ms": 0} == {
        "requests": 5, "ok": 3, "client_error": 1, "shed": 1, "server_error": 0,
        "requests_per_second": round(5 / 60, 3), "p50_ms": 0, "p95_ms": 0, "p99_ms": 0}
    assert 10 < t["totals"]["p50_ms"] <= 25  # inside the (10 ms, 25 ms] bucket
    clock.t += SECONDS_KEPT + 10  # a's and b's seconds age out; b stops reporting
    board.add("a", [])
    assert board.series(60)["totals"]["requests"] == 0
    assert board.series(60)["replicas_reporting"] == 1


def test_merged_series_leaves_out_the_seconds_not_yet_reported() -> None:
    window = TrafficWindow(Clock(98.0))
    window.record(200, 0.001)
    for t in (99.0, 100.0):  # the one before now may not have reached the board; now is open
        window._clock = Clock(t)  # type: ignore[attr-defined]
        window.record(200, 0.001)
    seconds = window.recent(300)
    t = merged_series(seconds, now=100.4, window_s=10, replicas=1)
    assert t["now"] == 98 and t["series"][-1]["t"] == 98 and t["totals"]["requests"] == 1


def test_without_a_board_a_replica_answers_its_own_seconds() -> None:
    class NoRay(RayTraffic):
        def _lookup_board(self) -> Any:
            raise ConnectionError("no Ray here")

    clock = Clock(200.0)
    window = TrafficWindow(clock)
    traffic = NoRay(window, "engram-traffic-test", "replica-a")
    traffic.own = TrafficBoard(clock)
    for _ in range(3):
        window.record(200, 0.02)
    clock.t = 203.0  # seconds 200 finished and reached the replica's own copy

    async def one_round_then_ask() -> dict[str, Any]:
        sender = asyncio.create_task(traffic.send_forever())
        await asyncio.sleep(SEND_EVERY_S * 1.5)
        sender.cancel()
        return await traffic.series(60)

    answer = asyncio.run(one_round_then_ask())
    assert answer["partial"] is True and answer["totals"]["requests"] == 3
    assert answer["replicas_reporting"] == 1


def test_local_traffic_answers_without_ray() -> None:
    window = TrafficWindow(Clock(10.0))
    window.record(200, 0.01)
    window._clock = Clock(12.0)  # type: ignore[attr-defined]
    local = LocalTraffic(window)
    local.board._clock = Clock(12.0)  # type: ignore[attr-defined]
    assert asyncio.run(local.series(10))["totals"]["requests"] == 1
