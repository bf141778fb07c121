"""Writes cluster/monitoring/engram-dashboard.json, the Grafana dashboard for Engram:

    .venv/bin/python -m cluster.monitoring.make_dashboard

The panels are data (PANELS below), so each query is written once and the JSON is never
edited by hand; tests/service/test_monitoring.py checks that a running service exports
every series the dashboard and alerts.yml query. Every Engram series comes from Ray's
metrics agents (`ray_` prefix, with `deployment` and `replica` labels): serve/metrics.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("engram-dashboard.json")
APP = 'application=~"$application"'

# (title, unit, [(PromQL, legend)], description)
PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    ("Requests per second by route", "reqps",
     [("sum by (route) (rate(ray_engram_requests_total{%s}[5m]))" % APP, "{{route}}")],
     "Every HTTP request the Router replicas answered, by API route."),
    ("Answers per second by status", "reqps",
     [("sum by (status) (rate(ray_engram_requests_total{%s}[5m]))" % APP, "{{status}}")],
     "2xx, client errors (4xx: bad input, keys, grants, limits) and 5xx."),
    ("Latency p50 / p99 by route", "s",
     [("histogram_quantile(0.5, sum by (le, route) (rate(ray_engram_request_seconds_bucket{%s}[5m])))" % APP,
       "p50 {{route}}"),
      ("histogram_quantile(0.99, sum by (le, route) (rate(ray_engram_request_seconds_bucket{%s}[5m])))" % APP,
       "p99 {{route}}")],
     "From the Router's arrival to its answer, every replica together."),
    ("Refused before any work, by reason", "reqps",
     [("sum by (reason) (rate(ray_engram_rejected_requests_total{%s}[5m]))" % APP, "{{reason}}")],
     "429: a key's rate_limit, memories_per_namespace or stored_bytes; 503: overload (shedding)."),
    ("Router replicas: in flight and waiting", "short",
     [("sum by (replica) (ray_engram_requests_in_flight{%s})" % APP, "in flight {{replica}}"),
      ("sum by (replica) (ray_engram_requests_waiting{%s})" % APP, "waiting {{replica}}")],
     "The admission gate of each Router replica (router.max_in_flight, router.max_waiting)."),
    ("Healthy replicas by deployment", "short",
     [("sum by (deployment) (ray_serve_deployment_replica_healthy{%s})" % APP, "{{deployment}}")],
     "Router, Embedder, Reranker and each Shard: replicas Serve's controller counts healthy."),
    ("Requests at work in each deployment", "short",
     [("sum by (deployment) (ray_serve_replica_processing_queries{%s})" % APP, "{{deployment}}")],
     "Calls a deployment's replicas are working on: a Shard or the Embedder that stays high is the bottleneck."),
    ("Deployment call latency p99", "ms",
     [("histogram_quantile(0.99, sum by (le, deployment) "
       "(rate(ray_serve_deployment_processing_latency_ms_bucket{%s}[5m])))" % APP, "{{deployment}}")],
     "Time inside each deployment's replicas (a Shard's search, the Embedder's pass)."),
    ("Webhook delivery attempts by outcome", "reqps",
     [("sum by (outcome) (rate(ray_engram_webhook_attempts_total{%s}[5m]))" % APP, "{{outcome}}")],
     "delivered (2xx); retry (an error or non-2xx, tried again with backoff); failed (out of "
     "attempts, or the creating key gone); blocked (a destination the config forbids)."),
]


def panel(index: int, title: str, unit: str, targets: list[tuple[str, str]], description: str) -> dict[str, Any]:
    return {
        "id": index + 1, "type": "timeseries", "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "engram-overview", "title": "Engram", "tags": ["engram", "ray-serve"],
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "application", "type": "query", "label": "Serve application",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": "label_values(ray_serve_deployment_replica_healthy, application)",
             "refresh": 2, "includeAll": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}},
        ]},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }


def main() -> None:
    OUT.write_text(json.dumps(dashboard(), indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
