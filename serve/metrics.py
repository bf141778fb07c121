"""Prometheus metrics of this router replica (each replica exposes its own)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
REQUESTS = Counter("engram_requests_total", "HTTP requests", ["route", "method", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("engram_request_seconds", "HTTP request latency", ["route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                    registry=REGISTRY)

# Requests refused before any work, by why: rate_limit, memories_per_namespace and
# stored_bytes (429, a key's limits: serve/quotas.py), overload (503, serve/admission.py).
REJECTED = Counter("engram_rejected_requests_total", "Requests refused by a limit or by load shedding",
                   ["reason"], registry=REGISTRY)
IN_FLIGHT = Gauge("engram_requests_in_flight", "Requests this replica is working on",
                  registry=REGISTRY)
WAITING = Gauge("engram_requests_waiting", "Requests waiting for a slot in this replica",
                registry=REGISTRY)
for _reason in ("rate_limit", "memories_per_namespace", "stored_bytes", "overload"):
    REJECTED.labels(_reason)  # every series from the start, so rate() sees the first one


def observe(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


def render_metrics() -> str:
    return generate_latest(REGISTRY).decode("utf-8")
