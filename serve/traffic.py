"""Live request figures for the operator console (GET /v1/ops/traffic).

Prometheus holds the history (serve/metrics.py); the console wants the last few minutes,
second by second, of the whole service, without a Prometheus beside it. So each Router
replica counts its own requests per second (`TrafficWindow`: answers by class, and a latency
histogram over the Prometheus buckets, so figures agree with the dashboards), and sends each
finished second to the service's traffic board (serve/traffic_board.py), which merges every
replica's seconds into one series (`merged_series`). Counts and latencies only: no route
names, keys or namespaces, nothing a tenant stored.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from serve.metrics import LATENCY_BUCKETS

SECONDS_KEPT = 300
# An answer's class: ok (1xx-3xx), client_error (4xx but 429), shed (429 and 503: a limit or
# overload, retried by clients), server_error (5xx but 503).
CLASSES = ("ok", "client_error", "shed", "server_error")
QUANTILES = (0.5, 0.95, 0.99)
LAG_S = 2  # the newest second shown is now - LAG_S (see merged_series)


def answer_class(status: int) -> str:
    if status in (429, 503):
        return "shed"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


@dataclass
class Second:
    """One second of one replica's answers."""

    t: int  # the second (unix time, floored)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # last: +Inf

    def add(self, other: Second) -> None:
        for c in CLASSES:
            self.counts[c] += other.counts.get(c, 0)
        for i, n in enumerate(other.buckets[:len(self.buckets)]):
            self.buckets[i] += n


class TrafficWindow:
    """One replica's requests, per second, until the board has taken them."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._open: dict[int, Second] = {}

    def record(self, status: int, seconds: float) -> None:
        t = int(self._clock())
        second = self._open.get(t)
        if second is None:
            second = self._open[t] = Second(t)
            for old in [k for k in self._open if k < t - SECONDS_KEPT]:  # the board never came
                del self._open[old]
        second.counts[answer_class(status)] += 1
        second.buckets[_bucket(seconds)] += 1

    def finished(self) -> list[Second]:
        """The seconds that are over, taken out of the window (oldest first)."""
        now = int(self._clock())
        done = sorted(t for t in self._open if t < now)
        return [self._open.pop(t) for t in done]

    def recent(self, window_s: int) -> list[Second]:
        """The seconds still held here, over or not (the figures when no board answers)."""
        since = int(self._clock()) - window_s
        return [s for t, s in sorted(self._open.items()) if t >= since]


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(LATENCY_BUCKETS):
        if seconds <= bound:
            return i
    return len(LATENCY_BUCKETS)


def quantile(buckets: Sequence[int], q: float) -> float | None:
    """The q-quantile of a histogram in seconds, interpolated inside its bucket as
    Prometheus' histogram_quantile does (None: no observations; past the last finite
    bound: that bound)."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        if seen + n >= rank and n > 0:
            if i == len(LATENCY_BUCKETS):
                return float(LATENCY_BUCKETS[-1])
            lower = 0.0 if i == 0 else float(LATENCY_BUCKETS[i - 1])
            return lower + (float(LATENCY_BUCKETS[i]) - lower) * (rank - seen) / n
        seen += n
    return float(LATENCY_BUCKETS[-1])


def merged_series(seconds: Iterable[Second], now: float, window_s: int, replicas: int) -> dict[str, Any]:
    """Every replica's seconds as one series over the last `window_s` full seconds: per
    second the requests, their classes and latency quantiles (ms); and the window's totals."""
    # The current second is still open, and the one before may not have reached the board
    # yet (replicas send once a second): neither is shown.
    end = int(now) - LAG_S + 1
    start = end - window_s
    by_t: dict[int, Second] = {t: Second(t) for t in range(start, end)}
    for s in seconds:
        if start <= s.t < end:
            by_t[s.t].add(s)
    total = Second(start)
    points = []
    for t in range(start, end):
        s = by_t[t]
        total.add(s)
        points.append({"t": t, "requests": sum(s.counts.values()), **s.counts,
                       **{f"p{int(q * 100)}_ms": _ms(quantile(s.buckets, q)) for q in QUANTILES}})
    requests = sum(total.counts.values())
    return {
        "window_seconds": window_s, "now": end - 1, "replicas_reporting": replicas,
        "totals": {"requests": requests, **total.counts,
                   "requests_per_second": round(requests / window_s, 3) if window_s else 0.0,
                   **{f"p{int(q * 100)}_ms": _ms(quantile(total.buckets, q)) for q in QUANTILES}},
        "series": points,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
