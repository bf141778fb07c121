"""Run Engram on this machine: a local Ray head (with dashboard), the Serve app; Ctrl-C stops.

    python -m cluster.local [--config cluster/serve.yaml] [--data-dir data] [--ingress haproxy]
                            [--port 3300] [--dashboard-port 8265] [--ray-port 6379]
                            [--ray-client-port 10001] [--dashboard-agent-port 52365]

One run lives over a data directory at a time. Whatever an earlier run over it left behind
(a SIGKILL, `ray stop --force`, a closed terminal) is stopped before anything starts, and
a reaper stops it as soon as a run ends without its own clean-up (cluster/local_run.py).
SIGINT, SIGTERM and SIGHUP all stop a run in order: Serve, then Ray, then what is left.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cluster import local_run
from cluster.ingress import INGRESS_KINDS, busy_ports, ingress_env, port_accepts, port_in_use, serve_ports_env
from cluster.loopback import loopback_env
from cluster.ray_auth import ensure_token, read_token, token_mode

ROOT = Path(__file__).resolve().parent.parent


def root_key(data_dir: Path) -> str:
    """ENGRAM_ROOT_API_KEY, or a key generated once and kept (0600) beside the data."""
    env = os.environ.get("ENGRAM_ROOT_API_KEY")
    if env:
        return env
    path = data_dir / ".root_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "ek_root_" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def render_config(config: Path, data_dir: Path, http_port: int | None = None) -> tuple[Path, dict[str, Any]]:
    """The Serve config with an absolute data_dir (Ray workers do not run in our cwd) and,
    when given, its HTTP port."""
    doc = yaml.safe_load(config.read_text())
    app = doc["applications"][0]
    app.setdefault("args", {}).setdefault("storage", {})["data_dir"] = str(data_dir)
    if http_port is not None:
        doc.setdefault("http_options", {})["port"] = http_port
    out = data_dir / ".serve.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)  # a --data-dir that does not exist yet
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, doc


def deployment_options(config: Path) -> dict[str, dict[str, Any]]:
    """The `deployments:` of a Serve config by name (replicas, autoscaling, queues), so that
    the benchmarks, which start Serve from Python, run what `make serve` deploys."""
    doc = yaml.safe_load(config.read_text())
    return {d["name"]: {k: v for k, v in d.items() if k != "name"}
            for d in doc["applications"][0].get("deployments", [])}


def wait_ready(url: str, key: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            r = httpx.get(f"{url}/health/ready", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Engram did not become ready at {url} within {timeout:.0f}s")


@dataclass(frozen=True)
class Ports:
    """The fixed ports a run takes, each with the option that moves it."""

    http: int
    dashboard: int
    ray: int
    ray_client: int
    dashboard_agent: int

    def named(self) -> list[tuple[int, str, str]]:
        return [(self.http, "Engram's HTTP API", "--port"),
                (self.dashboard, "the Ray dashboard and job API", "--dashboard-port"),
                (self.ray, "Ray's GCS", "--ray-port"),
                (self.ray_client, "the Ray client server", "--ray-client-port"),
                (self.dashboard_agent, "Ray's dashboard agent", "--dashboard-agent-port")]


# Ray's metrics servers on fixed ports, moved by these variables (Ray's defaults).
RAY_METRIC_PORTS = {"DASHBOARD_METRIC_PORT": ("the Ray dashboard's metrics", 44227),
                    "AUTOSCALER_METRIC_PORT": ("the Ray autoscaler's metrics", 44217)}


def busy(ports: Ports, ingress: str, environ: Mapping[str, str]) -> list[str]:
    """Each port the run needs that something holds, with what moves it: Ray would
    otherwise fail deep in its logs, or (the metrics servers) only log it."""
    out = [f"port {port} is in use ({what}; pass {option} PORT, with make: "
           f"make serve SERVE_ARGS='{option} PORT')"
           for port, what, option in ports.named() if port_in_use(port)]
    out += [f"port {port} is in use ({what}; set {var} to a free port)"
            for var, (what, default) in RAY_METRIC_PORTS.items()
            if port_in_use(port := int(environ.get(var, default)))]
    return out + busy_ports(ingress, environ)


def ray_start_command(bin_dir: Path, ray_dir: Path, ports: Ports) -> list[str]:
    # --block: the command stays up as the head's supervisor (SIGTERM stops the head, and
    # it exits when a head process dies, e.g. under `ray stop --force`). The temp dir is
    # the run's own (cluster/local_run.py).
    return [str(bin_dir / "ray"), "start", "--head", "--block", f"--temp-dir={ray_dir}",
            f"--port={ports.ray}", f"--ray-client-server-port={ports.ray_client}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={ports.dashboard}",
            f"--dashboard-agent-listen-port={ports.dashboard_agent}", "--disable-usage-stats"]


def job_submit_line(bin_dir: Path, dashboard_url: str, environ: Mapping[str, str]) -> str:
    """The `ray job submit` line to paste in this folder's shell, auth variables included."""
    ray = bin_dir / "ray"
    shown = f"./{ray.relative_to(Path.cwd())}" if ray.is_relative_to(Path.cwd()) else str(ray)
    auth = ""
    if token_mode(environ):
        auth = "RAY_AUTH_MODE=token "
        if environ.get("RAY_AUTH_TOKEN_PATH"):
            auth += f"RAY_AUTH_TOKEN_PATH={environ['RAY_AUTH_TOKEN_PATH']} "
    return (f"{auth}{shown} job submit --address {dashboard_url} --working-dir . -- "
            "python -m cluster.backfill --input history.jsonl --map namespace=customer_id --map content=text")


def say(*lines: str) -> None:
    """Print, unless the terminal is gone (a hang-up): clean-up goes on regardless, and
    what could not be written is dropped rather than flushed again at exit."""
    try:
        print(*lines, sep="\n", flush=True)
    except OSError:
        sys.stdout = open(os.devnull, "w")


def last_error(log: Path) -> str:
    """The error a failed `ray start` ended on (its last lines after a traceback's)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    ends = [i for i, line in enumerate(lines) if "Error" in line.split(":")[0]]
    return "\n".join(lines[ends[-1]:][:4]) if ends else "\n".join(lines[-3:])


class Stop(Exception):
    """A signal asked the run to stop."""


def wait_for_dashboard(url: str, ray_proc: subprocess.Popen[bytes], environ: Mapping[str, str],
                       timeout: float) -> None:
    token = read_token(environ) if token_mode(environ) else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ray_proc.poll() is not None:
            raise RuntimeError(f"ray start exited with code {ray_proc.returncode}")
        try:
            if httpx.get(f"{url}/api/version", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the Ray dashboard did not answer at {url} within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "cluster" / "serve.yaml")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ENGRAM_DATA_DIR", "data")))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--ingress", choices=INGRESS_KINDS, default=os.environ.get("ENGRAM_INGRESS", "haproxy"),
                        help="HTTP ingress: Serve's HAProxy (default) or its Python proxy (cluster/ingress.py)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: the config's, 3300)")
    parser.add_argument("--dashboard-port", type=int, default=8265)
    parser.add_argument("--ray-port", type=int, default=6379, help="Ray's GCS")
    parser.add_argument("--ray-client-port", type=int, default=10001,
                        help="outside 10002-19999, Ray's worker ports")
    parser.add_argument("--dashboard-agent-port", type=int, default=52365)
    args = parser.parse_args(argv)
    data_dir = (args.data_dir if args.data_dir.is_absolute() else Path.cwd() / args.data_dir).resolve()
    lock = local_run.RunLock(data_dir)
    try:
        if not acquire(lock, data_dir):
            return 2
        return run(args, data_dir, lock)
    except (PermissionError, RuntimeError) as exc:  # a folder not the user's alone, no free ports
        say(f"cannot start Engram: {exc}")
        return 2
    finally:
        lock.release()


def acquire(lock: local_run.RunLock, data_dir: Path) -> bool:
    """The data directory's lock. A run that is stopping (or the reaper of one that died)
    is waited for; a live one is named, with how to stop it."""
    started = time.monotonic()
    while not lock.acquire():
        state = lock.state()
        waited = time.monotonic() - started
        # No state yet: its holder has only just taken the lock and is about to say why.
        if state.get("phase") in ("stopping", "reaping") and waited < 180 or \
                state.get("phase") in (None, "stopped") and waited < 5:
            time.sleep(0.5)
            continue
        say(f"Engram is already running over {data_dir} (pid {state.get('pid', '?')}, "
            f"{state.get('url', 'starting')}): stop it first (Ctrl-C where it runs, or kill that pid)")
        return False
    return True


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP raise Stop, once: after `hold()` (stopping has begun)
    they are ignored, and a second Ctrl-C waits for the first."""

    def __init__(self) -> None:
        self.held = False
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.held:
            self.held = True
            raise Stop(signal.Signals(signum).name)

    def hold(self) -> None:
        self.held = True


def run(args: argparse.Namespace, data_dir: Path, lock: local_run.RunLock) -> int:
    run_dir = local_run.private_dir(local_run.run_dir_for(data_dir))
    left = local_run.stop_run([run_dir, *local_run.recorded_run_dirs(lock)])
    if left:
        say(f"stopped {left} processes left by an earlier run over {data_dir}")
    lock.record(phase="starting", run_dir=str(run_dir))
    ray_dir = run_dir / "ray"
    local_run.prune_sessions(ray_dir)
    key = root_key(data_dir)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "ENGRAM_ROOT_API_KEY": key,
           # `ray job submit -- python …` runs under this PATH: make it the project's venv.
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "ENGRAM_HOME": str(ROOT),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "RAY_SERVE_HTTP_HOST": "127.0.0.1",
           # SIGTERM to `ray start --block` drains the node for up to 30 s first, for a pod
           # whose replicas can move to other nodes. Here the head is the only node and Serve
           # is already shut down when it gets SIGTERM: nothing can drain, it would only wait.
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": os.environ.get("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0"),
           # Ray 2.5x turns token auth on for `ray start`; ensure_token creates the token.
           "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "token"),
           **ingress_env(args.ingress), **serve_ports_env(args.ingress),
           **loopback_env(run_dir / "hap" if args.ingress == "haproxy" else None),
           # Every process Ray starts inherits it: how a later run knows this run's own.
           local_run.RUN_MARK: str(run_dir)}
    created = ensure_token(env)
    if created:
        say(f"created the Ray cluster token in {created} (Ray's CLIs read it there)")
    config_path, doc = render_config(args.config, data_dir, args.port)
    http = doc.get("http_options", {})
    ports = Ports(http=int(http.get("port", 3300)), dashboard=args.dashboard_port, ray=args.ray_port,
                  ray_client=args.ray_client_port, dashboard_agent=args.dashboard_agent_port)
    url = f"http://{http.get('host', '127.0.0.1')}:{ports.http}"
    dashboard = f"http://127.0.0.1:{ports.dashboard}"
    taken = busy(ports, args.ingress, env)
    if taken:
        say("cannot start Engram: " + "; ".join(taken))
        return 2

    # The reaper first: from here on, however this process ends, nothing is left running.
    reaper = subprocess.Popen([sys.executable, "-m", "cluster.local_run", "--reap", str(data_dir)],
                              stdin=subprocess.PIPE, cwd=ROOT, start_new_session=True)
    ray_log = run_dir / "ray-start.log"
    ray_proc: subprocess.Popen[bytes] | None = None
    signals = StopSignals()
    try:
        with open(ray_log, "wb") as log:
            # A session of its own: the terminal's Ctrl-C and hang-up reach this process
            # only, which stops Serve before Ray.
            ray_proc = subprocess.Popen(ray_start_command(bin_dir, ray_dir, ports), env=env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        lock.record(ports=asdict(ports), url=url)
        wait_for_dashboard(dashboard, ray_proc, env, timeout=120)
        subprocess.run([str(bin_dir / "serve"), "deploy", str(config_path), "--address", dashboard],
                       env=env, check=True, capture_output=True)
        wait_ready(url, key, args.timeout)
        lock.record(phase="running")
        say(f"\nEngram is ready at {url}  (data: {data_dir})",
            f"root API key: {key}",
            f"Operator console: {url}/console   (sign in with an API key)",
            f"Ray dashboard and job API: {dashboard}   (Ctrl-C stops)",
            "Bulk jobs (backfill, reshard), from this folder:",
            "  " + job_submit_line(bin_dir, dashboard, env))
        watch_ray(ray_proc, ports.ray)
        signals.hold()
        say(f"\nRay stopped underneath Engram ({ray_log}); stopping what is left")
        return 1
    except Stop as sig:
        signals.hold()
        say(f"\n{sig}: stopping Engram ...")
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        signals.hold()
        detail = (exc.stderr.decode(errors="replace")[-2000:] if isinstance(exc, subprocess.CalledProcessError)
                  else last_error(ray_log))
        say(f"Engram did not start: {exc}", detail, f"Ray's own output: {ray_log}")
        return 1
    finally:
        signals.hold()
        lock.record(phase="stopping")
        stop(bin_dir, dashboard, env, ray_proc, run_dir, reaper)
        lock.record(phase="stopped")
        say("stopped.")


def watch_ray(ray_proc: subprocess.Popen[bytes], gcs_port: int) -> None:
    """Return once the Ray head is gone: `ray start --block` exits when a head process dies
    unexpectedly (`ray stop --force`), but a plain `ray stop` ends them with SIGTERM, which
    it takes for a clean exit and waits on; the GCS no longer answering tells that too."""
    silent = 0
    while ray_proc.poll() is None and silent < 3:
        time.sleep(2)
        silent = 0 if port_accepts(gcs_port) else silent + 1


def stop(bin_dir: Path, dashboard: str, env: Mapping[str, str],
         ray_proc: subprocess.Popen[bytes] | None, run_dir: Path, reaper: subprocess.Popen[bytes]) -> None:
    """Serve first (replicas drain; shards close their stores), then the Ray head through
    its supervisor, then whatever of the run is left (HAProxy, a straggling worker)."""
    if ray_proc is not None and ray_proc.poll() is None:
        try:
            subprocess.run([str(bin_dir / "serve"), "shutdown", "-y", "--address", dashboard],
                           env=dict(env), capture_output=True, timeout=90)
        except subprocess.TimeoutExpired:
            pass
        ray_proc.terminate()
        try:
            ray_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    local_run.stop_run([run_dir], exclude=[reaper.pid])
    if ray_proc is not None and ray_proc.poll() is None:
        ray_proc.kill()
        ray_proc.wait()
    if reaper.stdin is not None:
        try:
            reaper.stdin.write(local_run.CLEAN_END)  # nothing left for it to do
            reaper.stdin.close()
        except OSError:  # it has died: nothing to tell
            pass
    try:
        reaper.wait(timeout=30)
    except subprocess.TimeoutExpired:
        reaper.kill()


if __name__ == "__main__":
    sys.exit(main())
