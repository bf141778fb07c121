"""Engram's request metrics: each Router replica keeps them in its own registry (GET
/metrics answers the replica the request reached) and, inside a Serve replica, also records
them through Ray's metrics (`export_through_ray`): Ray's agent on each node exports every
replica's series with `deployment` and `replica` labels, as `ray_engram_*`, and that is what
Prometheus scrapes and what cluster/monitoring/ queries. Through the ingress, /metrics is a
sample of one replica; the node agents hold them all."""
from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Why a request was refused before any work: rate_limit, memories_per_namespace and
# stored_bytes (429, a key's limits: serve/quotas.py), overload (503, serve/admission.py).
REJECTION_REASONS = ("rate_limit", "memories_per_namespace", "stored_bytes", "overload")

DESCRIPTIONS = {
    "engram_requests_total": "HTTP requests",
    "engram_request_seconds": "HTTP request latency",
    "engram_rejected_requests_total": "Requests refused by a limit or by load shedding",
    "engram_requests_in_flight": "Requests this replica is working on",
    "engram_requests_waiting": "Requests waiting for a slot in this replica",
    "engram_webhook_attempts_total": "Webhook delivery attempts, by outcome",
}
# A webhook attempt's outcome (serve/webhooks/dispatcher.py): delivered (2xx), retry (an
# error or a non-2xx answer, tried again later), failed (out of attempts, or the creating key
# gone), blocked (the destination resolved to an address the config forbids).
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "blocked")

REGISTRY = CollectorRegistry()
REQUESTS = Counter("engram_requests_total", DESCRIPTIONS["engram_requests_total"],
                   ["route", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("engram_request_seconds", DESCRIPTIONS["engram_request_seconds"],
                    ["route", "method"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
REJECTED = Counter("engram_rejected_requests_total", DESCRIPTIONS["engram_rejected_requests_total"],
                   ["reason"], registry=REGISTRY)
IN_FLIGHT = Gauge("engram_requests_in_flight", DESCRIPTIONS["engram_requests_in_flight"],
                  registry=REGISTRY)
WAITING = Gauge("engram_requests_waiting", DESCRIPTIONS["engram_requests_waiting"],
                registry=REGISTRY)
WEBHOOK_ATTEMPTS = Counter("engram_webhook_attempts_total", DESCRIPTIONS["engram_webhook_attempts_total"],
                           ["outcome"], registry=REGISTRY)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_ATTEMPTS.labels(_outcome)
for _reason in REJECTION_REASONS:
    REJECTED.labels(_reason)  # every series from the start, so rate() sees the first one


class _RayMetrics:
    """The same series through ray.serve.metrics (Serve adds deployment, replica and
    application labels; Ray prefixes the names with `ray_`)."""

    def __init__(self) -> None:
        from ray.serve import metrics

        def tags(*keys: str) -> Any:  # Ray annotates tag_keys as Tuple[str]: one key
            return keys

        d = DESCRIPTIONS
        self.requests = metrics.Counter("engram_requests_total", d["engram_requests_total"],
                                        tags("route", "method", "status"))
        self.latency = metrics.Histogram("engram_request_seconds", d["engram_request_seconds"],
                                         list(LATENCY_BUCKETS), tags("route", "method"))
        self.rejected = metrics.Counter("engram_rejected_requests_total",
                                        d["engram_rejected_requests_total"], tags("reason"))
        self.webhook_attempts = metrics.Counter("engram_webhook_attempts_total",
                                                d["engram_webhook_attempts_total"], tags("outcome"))
        self.in_flight = metrics.Gauge("engram_requests_in_flight", d["engram_requests_in_flight"])
        self.waiting = metrics.Gauge("engram_requests_waiting", d["engram_requests_waiting"])
        self.gauges = {"in_flight": 0, "waiting": 0}
        self.refresh()

    def refresh(self) -> None:
        """Record the gauges again: Ray's agent drops a gauge not recorded for two report
        intervals (20 s), and an idle replica would vanish from the dashboard."""
        self.in_flight.set(self.gauges["in_flight"])
        self.waiting.set(self.gauges["waiting"])


_ray: _RayMetrics | None = None


def export_through_ray() -> None:
    """Record through Ray's metrics as well, from now on (a Router replica calls it)."""
    global _ray
    if _ray is None:
        _ray = _RayMetrics()


def observe(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)
    if _ray is not None:
        _ray.requests.inc(1, {"route": route, "method": method, "status": str(status)})
        _ray.latency.observe(seconds, {"route": route, "method": method})


def rejected(reason: str) -> None:
    REJECTED.labels(reason).inc()
    if _ray is not None:
        _ray.rejected.inc(1, {"reason": reason})


def webhook_attempt(outcome: str) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if _ray is not None:
        _ray.webhook_attempts.inc(1, {"outcome": outcome})


def in_flight(count: int) -> None:
    IN_FLIGHT.set(count)
    if _ray is not None:
        _ray.gauges["in_flight"] = count
        _ray.in_flight.set(count)


def waiting(count: int) -> None:
    WAITING.set(count)
    if _ray is not None:
        _ray.gauges["waiting"] = count
        _ray.waiting.set(count)


async def keep_gauges_fresh(every_s: float = 5.0) -> None:
    """A Router replica's task for its life (see _RayMetrics.refresh)."""
    while True:
        await asyncio.sleep(every_s)
        if _ray is not None:
            _ray.refresh()


def render_metrics() -> str:
    return generate_latest(REGISTRY).decode("utf-8")
