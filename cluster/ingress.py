"""How HTTP reaches the Router (Ray Serve's HAProxy ingress, the default, or its Python
proxy), and the Serve settings every process of the cluster shares with it (one event loop
per replica, the lean request path).

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
import socket
from collections.abc import Mapping

from cluster.haproxy_loopback import SIDE_PORTS as HAPROXY_SIDE_PORTS  # stats, metrics

INGRESS_KINDS = ("haproxy", "proxy")

# Serve's own ports behind HAProxy, one set per cluster: the fallback proxy HAProxy sends
# requests to while no Router replica is up (8500; gRPC 9500), and a block for the Router
# replicas' HTTP servers (30000-30099; gRPC 31300-31399). Serve binds them with SO_REUSEPORT,
# so a second cluster on the machine binds the same ports without an error and the kernel
# splits connections between the two: one Engram answers another's requests (seen when the
# tests' cluster and a `make serve` ran side by side). Each cluster started here takes ports
# no other holds (`serve_ports_env`, `busy_ports`).
FALLBACK_PORTS = {"RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": 8500, "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": 9500}
DIRECT_INGRESS_VARS = ("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT",
                       "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT")
DIRECT_INGRESS_BLOCK = 100  # ports per cluster: Router replicas, and those a restart takes anew
# HTTP blocks from 30000, each one's gRPC block GRPC_OFFSET above it: both halves below Linux's
# ephemeral range (32768-60999). Serve's own gRPC default (40000) lies inside it, where a busy
# machine's outgoing connections hold a port of every block at times (seen: under `make test`
# a first start found no free block).
DIRECT_INGRESS_BASES = range(30000, 31300, DIRECT_INGRESS_BLOCK)  # 13 clusters on one machine
GRPC_OFFSET = 1300  # gRPC blocks 31300-32599


# Every replica runs its requests, its handles' routing and Serve's own work on one event loop
# (Ray's defaults give each its own thread). On two cores every hop between those threads
# waited for the GIL: one loop took a recall at 1 client from p50 32 to 24 ms (2k memories).
# Engram's replicas keep blocking work off the loop (shards and forward passes run on executor
# threads; the Router calls a SQLite control store inline, ~0.1 ms, and one on a server from
# a worker thread: serve/control_calls.py), which is what sharing it asks. Every process of the cluster reads these, drivers
# too: there a handle must be called inside an event loop (`await handle.m.remote()`, as the
# ray jobs do); a plain `.result()` outside one raises "No event loop running".
ONE_LOOP_REPLICAS = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}

# The rest of what Ray's RAY_SERVE_THROUGHPUT_OPTIMIZED=1 bundles, spelled out so that each
# setting shows (and stays if Ray changes the bundle). Handle calls (Router -> Shard, Router
# -> Embedder) go from replica to replica over gRPC with their arguments inline, instead of
# as Ray actor tasks with the object store and the raylet in between; Serve's request-path
# logs are buffered (an ERROR line flushes at once) and written to its log files only, not
# also to stderr for Ray's log monitor to copy. Measured on the 2-core default, 8 clients,
# runs alternated within the hour: at 2k memories CPU per recall 29.4-29.5 -> 18.6-23.9 ms
# (most of it Serve's call handling in the Shards and the Routers), 66 -> 81-106 recalls/s;
# at 100k (one pair) 29.5 -> 28.3 ms, 63.7 -> 69.4 recalls/s (an A/B run of 2026-11-22; git history of README.md).
LEAN_REQUEST_PATH = {
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}


def ingress_env(kind: str, environ: Mapping[str, str] = os.environ,
                private_ports: bool = False) -> dict[str, str]:
    """The environment variables that select `kind`, less those the caller already set.
    private_ports: HAProxy's side listeners on free ports of their own, for a cluster that
    runs beside a `make serve` (tests, benchmarks).

    HAProxy also opens a read-only stats page (8404) and Prometheus metrics (9101);
    RAY_SERVE_HAPROXY_STATS_PORT / _METRICS_PORT move them. Ray's template binds both on
    every interface: cluster/loopback.py keeps them on 127.0.0.1."""
    if kind not in INGRESS_KINDS:
        raise ValueError(f"ingress must be one of {', '.join(INGRESS_KINDS)}, not {kind!r}")
    wanted = {**ONE_LOOP_REPLICAS, **LEAN_REQUEST_PATH}  # whichever the ingress
    if kind == "proxy":
        wanted["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
    else:
        wanted.update({
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            # A stopping Router replica keeps serving this long so that HAProxy stops sending
            # it requests first. Ray's 30 s default is sized for cloud load balancers; this
            # HAProxy is told at once (and retries a refused connection), and 30 s would also
            # hold every `serve shutdown` for 30 s.
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
            # A dead HAProxy process is replaced only when Serve's controller finds its
            # manager unhealthy 3 checks in a row; at Ray's 10 s period that took ~30 s
            # without any ingress (make chaos). A check is one actor call: every 2 s.
            "RAY_SERVE_PROXY_HEALTH_CHECK_PERIOD_S": "2",
        })
        if private_ports:
            side = [*HAPROXY_SIDE_PORTS, *FALLBACK_PORTS]
            wanted.update(zip(side, map(str, free_ports(len(side)))))
    return {k: v for k, v in wanted.items() if k not in environ}


def serve_ports_env(kind: str, environ: Mapping[str, str] = os.environ,
                    beside: bool = False) -> dict[str, str]:
    """The block of ports this cluster's Router replicas take behind HAProxy: the first
    block nothing holds from 30000 up (Serve's own default first), or for a cluster beside
    a `make serve` (beside=True) a free one at random, never the default. {} when the
    caller set the range, or for the Python proxy (no replica servers)."""
    import random

    if kind != "haproxy" or any(var in environ for var in DIRECT_INGRESS_VARS):
        return {}
    bases = list(DIRECT_INGRESS_BASES)
    if beside:
        bases = bases[1:]
        random.shuffle(bases)
    for base in bases:
        http = range(base, base + DIRECT_INGRESS_BLOCK)
        grpc = range(base + GRPC_OFFSET, base + GRPC_OFFSET + DIRECT_INGRESS_BLOCK)
        if not any(port_in_use(port) for port in [*http, *grpc]):
            return dict(zip(DIRECT_INGRESS_VARS, map(str, (http.start, http.stop - 1, grpc.start, grpc.stop - 1))))
    raise RuntimeError("no free block of ports for Serve's replica servers in 30000-32599: set "
                       "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT and the three beside it")


# Ports chosen for servers started later come from below the OS's ephemeral range (Linux:
# 32768-60999), and below Serve's replica blocks (30000-32599): a port the OS hands out for
# `bind(0)` could go, in the seconds before our server binds it, to one of the dozens of
# processes Ray starts meanwhile (seen: HAProxy could not bind the test service's port).
CHOSEN_PORTS = range(20000, 30000)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free right now (all held open together while choosing), from
    CHOSEN_PORTS, where nothing that binds port 0 can take them before their server does."""
    import random

    held: list[socket.socket] = []
    try:
        for port in random.sample(CHOSEN_PORTS, len(CHOSEN_PORTS)):
            if len(held) == count:
                break
            s = socket.socket()
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        if len(held) < count:
            raise RuntimeError(f"fewer than {count} free ports in {CHOSEN_PORTS.start}-{CHOSEN_PORTS.stop - 1}")
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def port_in_use(port: int) -> bool:
    """Whether binding `port` on every interface fails: held by anything, on any address."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not busy
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def port_accepts(port: int) -> bool:
    """Whether something answers a connection on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def busy_ports(kind: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    """HAProxy's side listeners that something else already holds, each with the variable
    that moves it. Checked before Ray starts: Serve would otherwise report only that HAProxy
    failed to start, deep in its logs."""
    if kind != "haproxy":
        return []
    what = {"RAY_SERVE_HAPROXY_STATS_PORT": "HAProxy's stats listener",
            "RAY_SERVE_HAPROXY_METRICS_PORT": "HAProxy's metrics listener",
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": "Serve's fallback proxy",
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": "Serve's fallback gRPC proxy"}
    ports = {var: int(environ.get(var, default)) for var, default in {**HAPROXY_SIDE_PORTS, **FALLBACK_PORTS}.items()}
    return [f"port {port} is in use ({what[var]}; set {var} to a free port)"
            for var, port in ports.items() if port_in_use(port)]
