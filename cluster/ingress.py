"""How HTTP reaches the Router: Ray Serve's HAProxy ingress (the default) or its Python proxy.

With HAProxy, Serve starts an HAProxy on the HTTP port (127.0.0.1:3300 here) that forwards
each request straight to an HTTP server inside a Router replica. The Python proxy instead
parses the request, forwards it to the Router with a Ray call, and the Router fetches the
body back from it with a second call. Measured on the 2-core default (2k memories, one run
each): recall p50 50 -> 35 ms at 1 client, 32 -> 51 recalls/s at 8 clients.

Serve reads these settings when its controller and proxies start, so they go into the
environment of `ray start` (or `ray.init` for a local cluster), not into the Serve config.
A variable already set in the environment wins, so an operator can change any of them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

INGRESS_KINDS = ("haproxy", "proxy")


def ingress_env(kind: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment variables that select `kind`, less those the caller already set.

    HAProxy also opens a read-only stats page (*:8404) and Prometheus metrics (*:9101) on
    every interface (Ray's template; RAY_SERVE_HAPROXY_STATS_PORT / _METRICS_PORT move them):
    firewall them where the machine is reachable, or choose "proxy"."""
    if kind not in INGRESS_KINDS:
        raise ValueError(f"ingress must be one of {', '.join(INGRESS_KINDS)}, not {kind!r}")
    if kind == "proxy":
        wanted = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    else:
        wanted = {
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            # A stopping Router replica keeps serving this long so that HAProxy stops sending
            # it requests first. Ray's 30 s default is sized for cloud load balancers; this
            # HAProxy is told at once (and retries a refused connection), and 30 s would also
            # hold every `serve shutdown` for 30 s.
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
        }
    return {k: v for k, v in wanted.items() if k not in environ}
