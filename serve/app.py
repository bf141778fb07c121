"""The app builder: `serve run cluster/serve.yaml` → build_app(args) → the bound application."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from ray.serve import Application, Deployment

from serve.config import EngramConfig
from serve.deployments import (
    EmbedderDeployment,
    RerankerDeployment,
    RouterDeployment,
    ShardDeployment,
)
from shards.control.sqlite import SQLiteControlStore


# Deployments only the Router calls: no access-log line per call (a recall makes three or
# four; the proxy and the Router log each request once). Measured: the log line and its
# formatting were a visible share of each replica's CPU per call. A YAML logging_config wins.
INTERNAL_LOGGING = {"enable_access_log": False}



def deployment(cls: type) -> Deployment:
    """A class @serve.deployment has decorated, as the Deployment it is at run time."""
    return cast(Deployment, cls)

def resolve_config(args: dict[str, Any] | None) -> EngramConfig:
    """Validate the args; a relative data_dir is taken from ENGRAM_HOME (or the cwd here)."""
    cfg = EngramConfig.from_args(args)
    data_dir = cfg.storage.data_dir
    if not data_dir.is_absolute():
        base = Path(os.environ.get("ENGRAM_HOME", os.getcwd()))
        cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(
            update={"data_dir": (base / data_dir).resolve()})})
    return cfg


def build_app(args: dict[str, Any] | None = None) -> Application:
    """What `serve run`/`serve deploy` call with the YAML's args (Serve wants a builder of
    exactly one parameter); they apply the YAML's `deployments:` themselves."""
    return build_app_with(args, None)


def build_app_with(args: dict[str, Any] | None,
                   deployments: dict[str, dict[str, Any]] | None) -> Application:
    """deployments: Serve's options per deployment name, as under `deployments:` in a Serve
    YAML less each entry's `name` (cluster.local.deployment_options), for callers that start
    the app from Python (the benchmarks run what `make serve` deploys)."""
    cfg = resolve_config(args)

    def options(deployment: str, /, **defaults: Any) -> dict[str, Any]:
        return {**defaults, **(deployments or {}).get(deployment, {})}  # the caller's win, as a YAML's do

    # Refuse fewer shards than the data is spread over before anything starts. Only where
    # the data is: on a cluster Serve may build the app on a node without the storage volume
    # (or control data on PostgreSQL), and the Router records and checks the count when
    # it starts.
    if cfg.storage.record_store == "sqlite" and (cfg.data_dir / "control.db").exists():
        control = SQLiteControlStore(cfg.data_dir / "control.db")
        try:
            control.check_deployed_shards(cfg.shard_count)
        finally:
            control.close()
    cfg_dict = cfg.model_dump(mode="json")
    # @serve.deployment made each class a Deployment; mypy keeps the class's own type.
    embedder = deployment(EmbedderDeployment).options(**options("Embedder", logging_config=INTERNAL_LOGGING)).bind(
        cfg.embedder.model_dump(mode="json"))
    shards = [
        deployment(ShardDeployment).options(**options(f"Shard{i}", name=f"Shard{i}", logging_config=INTERNAL_LOGGING)).bind(
            i, cfg_dict, embedder)
        for i in range(cfg.shard_count)
    ]
    # No model configured: no Reranker replica at all, and recall reports reranking unavailable.
    reranker = (deployment(RerankerDeployment).options(**options("Reranker", logging_config=INTERNAL_LOGGING)).bind(
        cfg.reranker.model_dump(mode="json")) if cfg.reranker.model else None)
    app: Application = deployment(RouterDeployment).options(**options("Router")).bind(
        cfg_dict, embedder, reranker, *shards)
    return app
