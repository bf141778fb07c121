"""A Ray cluster started on this machine (`make serve`, the tests, the benchmarks) listens
on 127.0.0.1 only, as far as Ray lets it.

Ray resolves 127.0.0.1 to the machine's address on Linux so that other nodes can join, and
its GCS, raylet, agents, workers and metrics servers then listen there or on every
interface. RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's own switch for a one-machine
cluster (the default on macOS and Windows): the node's address becomes 127.0.0.1, no node
can join, and those listeners move to loopback. HAProxy's stats and metrics listeners are
moved by cluster/haproxy_loopback.py. What is left on every interface is one gRPC server
per Serve replica, which Ray binds to `[::]:0` with no setting (README, Listening ports).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cluster.haproxy_loopback import haproxy_env
from cluster.ingress import free_ports, serve_ports_env

ONE_MACHINE_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def loopback_env(haproxy_folder: Path | None, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables that keep a cluster started here on loopback, less those the caller
    set. haproxy_folder: where HAProxy's files go (None: the Python proxy, no HAProxy)."""
    wanted = dict(ONE_MACHINE_RAY)
    if haproxy_folder is not None:
        wanted.update(haproxy_env(haproxy_folder))
    return {k: v for k, v in wanted.items() if k not in environ}


def loopback_env_beside(ingress: str) -> dict[str, str]:
    """loopback_env for a cluster that runs beside a `make serve` (tests, benchmarks):
    HAProxy's files in a fresh folder of its own, Ray's metrics servers, which default to
    fixed ports (44227, 44217), on free ones, and Serve's replica servers on a block of their
    own (cluster/ingress.py serve_ports_env)."""
    folder = Path(tempfile.mkdtemp(prefix="eg-hap-")) if ingress == "haproxy" else None
    metrics = dict(zip(("DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT"), map(str, free_ports(2))))
    return {**loopback_env(folder), **{k: v for k, v in metrics.items() if k not in os.environ},
            **serve_ports_env(ingress, beside=True)}
