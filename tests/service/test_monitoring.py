"""cluster/monitoring/: the Grafana dashboard and the Prometheus alert rules. Every query
parses as PromQL (the promql-parser crate's grammar), every alert says what to do, and a
running service exports every series they query, through Ray's metrics agents, which is
where Prometheus scrapes them."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import yaml

from cluster.monitoring.make_dashboard import OUT as DASHBOARD
from cluster.monitoring.make_dashboard import dashboard
from tests.builders import Engram, webhook_receiver

ALERTS = Path(DASHBOARD).with_name("alerts.yml")


def queries() -> list[str]:
    panels = json.loads(Path(DASHBOARD).read_text())["panels"]
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    return [t["expr"] for p in panels for t in p["targets"]] + [r["expr"] for r in rules]


def series(node: Any) -> set[str]:
    """The metric names a parsed PromQL expression reads."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name} if node.name else set()
    if isinstance(node, promql_parser.MatrixSelector):
        return series(node.vector_selector)
    if isinstance(node, promql_parser.Call):
        return set().union(*(series(a) for a in node.args))
    if isinstance(node, promql_parser.BinaryExpr):
        return series(node.lhs) | series(node.rhs)
    if isinstance(node, (promql_parser.AggregateExpr, promql_parser.ParenExpr,
                         promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        return series(node.expr)
    return set()


def queried() -> set[str]:
    return set().union(*(series(promql_parser.parse(q)) for q in queries()))


def test_the_dashboard_is_what_make_dashboard_writes() -> None:
    assert json.loads(Path(DASHBOARD).read_text()) == dashboard(), \
        "run .venv/bin/python -m cluster.monitoring.make_dashboard"


def test_every_query_parses_and_every_alert_says_what_to_do() -> None:
    for query in queries():
        promql_parser.parse(query)  # raises on a syntax error
    for rule in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]:
        assert rule["alert"].startswith("Engram") and rule["for"], rule
        assert rule["labels"]["severity"] in {"page", "warning", "info"}, rule
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40, rule
    assert {"ray_engram_requests_total", "ray_engram_request_seconds_bucket",
            "ray_serve_deployment_replica_healthy"} <= queried()


def scrape_ray_agents() -> str:
    """What Prometheus would read: each live node's Ray metrics agent."""
    import ray

    texts = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node["Alive"] and node.get("MetricsExportPort"):
            url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            texts.append(httpx.get(url, timeout=10).text)
    return "\n".join(texts)


def exported(text: str) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_a_running_service_exports_every_series_they_query(engram: Engram, ns: str) -> None:
    with engram.http() as root, webhook_receiver() as receiver:
        hook_url, delivered = receiver.url, receiver.came
        # A webhook delivery, so that its attempts counter has a series (a Ray counter is
        # exported from its first increment on).
        hook = root.post("/v1/webhooks", json={"url": hook_url, "namespaces": [ns]})
        hook.raise_for_status()
        root.post("/v1/memory/store", json={"agent_id": ns, "content": "Dana renews her plan in May"}).raise_for_status()
        assert delivered.wait(60), "no webhook delivery within 60 s"
        root.delete(f"/v1/webhooks/{hook.json()['id']}").raise_for_status()
        root.post("/v1/memory/recall", json={"agent_id": ns, "query": "when does Dana renew"}).raise_for_status()
        r = root.post("/admin/keys", json={"name": "limited", "scope": "read", "namespaces": [ns],
                                           "limits": {"requests_per_second": 1, "burst": 1}})
        r.raise_for_status()
    with engram.http(r.json()["key"]) as limited:  # a refusal, so its counter has a series
        answers = [limited.get(f"/v1/agents/{ns}/memories").status_code for _ in range(6)]
    assert 429 in answers, answers
    wanted = queried()
    deadline = time.time() + 90  # Ray's agents report every 10 s
    while True:
        text = scrape_ray_agents()
        missing = wanted - exported(text)
        recall_series = 'route="/v1/memory/recall"' in text
        if (not missing and recall_series) or time.time() > deadline:
            break
        time.sleep(3)
    assert not missing, f"queried by cluster/monitoring/ but not exported: {sorted(missing)}"
    assert recall_series, "no ray_engram_* series carries the route label EngramSlowRecall filters on"
