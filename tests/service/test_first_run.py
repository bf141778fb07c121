"""A newcomer's first hour: `python -m cluster.local` (what `make serve` runs) from an empty HOME.

The service starts as a subprocess with a shell's environment only (no ~/.ray, no Ray or
Engram variables of the test session) and ports of its own, so it runs beside the session's
own cluster. It is used through the official `dakera` SDK and a `ray job submit` pasted from
what it printed, SIGKILLed, started again over the same data, and stopped with SIGTERM;
then nothing of it may be left running or listening.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cluster.ingress import free_ports, port_accepts
from cluster.local_run import RUN_MARK, RunLock, stop_run

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Newcomer:
    """A user's machine: an empty HOME, a data folder, and the ports their runs take."""

    home: Path
    data_dir: Path
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def state(self) -> dict[str, object]:
        """What the run over the data recorded (cluster/local_run.py RunLock)."""
        return RunLock(self.data_dir).state()

    @property
    def run_dir(self) -> Path:
        return Path(str(self.state()["run_dir"]))


class Run:
    """One `python -m cluster.local`, its output read as it comes."""

    def __init__(self, user: Newcomer) -> None:
        p = user.ports
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cluster.local", "--data-dir", str(user.data_dir),
             "--port", str(p["http"]), "--dashboard-port", str(p["dashboard"]),
             "--ray-port", str(p["ray"]), "--ray-client-port", str(p["ray_client"]),
             "--dashboard-agent-port", str(p["agent"])],
            cwd=ROOT, env=user.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        user.runs.append(self)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 420) -> re.Match[str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = re.search(pattern, self.output, re.MULTILINE)
            if found:
                return found
            assert self.proc.poll() is None, f"cluster.local exited:\n{self.output}"
            time.sleep(0.5)
        raise TimeoutError(f"no {pattern!r} within {timeout:.0f}s:\n{self.output}")

    def signal_and_wait(self, sig: int, timeout: float = 180) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def newcomer(tmp_path: Path) -> Iterator[Newcomer]:
    home = tmp_path / "home"
    home.mkdir()
    names = ["http", "dashboard", "ray", "ray_client", "agent", "haproxy_stats", "haproxy_metrics",
             "dashboard_metrics", "autoscaler_metrics", "fallback_http", "fallback_grpc"]
    ports = dict(zip(names, free_ports(len(names))))
    user = Newcomer(home=home, data_dir=tmp_path / "data", ports=ports)
    # A login shell's environment, nothing of this test session's (its Ray, HAProxy and
    # Engram variables), plus the variables README gives for moving Ray's fixed ports.
    user.env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "LANG": "C.UTF-8", "TMPDIR": "/tmp",
                "RAY_SERVE_HAPROXY_STATS_PORT": str(ports["haproxy_stats"]),
                "RAY_SERVE_HAPROXY_METRICS_PORT": str(ports["haproxy_metrics"]),
                "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"]),
                "AUTOSCALER_METRIC_PORT": str(ports["autoscaler_metrics"]),
                "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(ports["fallback_http"]),
                "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(ports["fallback_grpc"])}
    yield user
    # Whatever the test's outcome, leave nothing of its runs behind (a run that failed to
    # start would otherwise wait for its service up to 600 s, holding the data's lock).
    for run in user.runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()
    if user.state().get("run_dir"):
        stop_run([user.run_dir])


def every_router_reports_traffic(url: str, key: str, timeout: float = 90) -> int:
    """How many Router replicas the console's live figures merge once requests reach each
    (new connections: the ingress spreads them over the replicas)."""
    deadline = time.time() + timeout
    reporting = 0
    while time.time() < deadline:
        for _ in range(20):
            httpx.get(f"{url}/health", timeout=30)
        time.sleep(1.5)  # each replica sends the seconds it finished once a second
        answer = httpx.get(f"{url}/v1/ops/traffic", params={"seconds": 30},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        reporting = answer["replicas_reporting"]
        if reporting >= 2:
            break
    return reporting


def test_a_newcomer_starts_uses_kills_restarts_and_stops_it(newcomer: Newcomer, tmp_path: Path) -> None:
    from dakera import DakeraClient

    agent = f"newcomer-{uuid.uuid4().hex[:8]}"
    run = Run(newcomer)
    run.wait_for(r"^Engram is ready at ")
    key = run.wait_for(r"^root API key: (\S+)").group(1)
    console = run.wait_for(r"^Operator console: (\S+)").group(1)
    submit_line = run.wait_for(r"^\s+(RAY_AUTH_MODE=token \S+ job submit .*)$").group(1)
    assert (newcomer.home / ".ray" / "auth_token").stat().st_mode & 0o077 == 0  # created, the user's only
    run_dir = newcomer.run_dir
    assert_on_loopback(run_dir)

    with DakeraClient(newcomer.url, api_key=key) as client:
        client.store_memory(agent_id=agent, content="Jane prefers email over phone calls", importance=0.8)
        found = client.recall(agent_id=agent, query="how does Jane like to be contacted").memories
    assert found and "Jane prefers email" in found[0].content
    assert httpx.get(console, timeout=30).status_code == 200
    assert every_router_reports_traffic(newcomer.url, key) == 2  # `make serve` runs two Routers

    # The printed line, pasted in the project folder with a real job after its `--`.
    history = tmp_path / "history.jsonl"
    history.write_text(json.dumps({"customer_id": agent, "text": "Order #7741 shipped by sea freight"}) + "\n")
    line = submit_line.split(" -- ")[0] + (f" -- python -m cluster.backfill --input {history}"
                                           " --map namespace=customer_id --map content=text")
    job = subprocess.run(["bash", "-c", line], cwd=ROOT, env=newcomer.env, capture_output=True,
                         text=True, timeout=420)
    assert job.returncode == 0 and "succeeded" in job.stdout + job.stderr, job.stdout[-3000:] + job.stderr[-3000:]

    # SIGKILL runs no clean-up of its own: the run's reaper stops what is left, and the
    # next start would too.
    assert run.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
    deadline = time.time() + 180
    while list(run_processes(run_dir)) or any(port_accepts(port) for port in newcomer.ports.values()):
        assert time.time() < deadline, (
            f"left after the SIGKILL: {list(run_processes(run_dir))}; listening: "
            f"{[name for name, port in newcomer.ports.items() if port_accepts(port)]}; state: {newcomer.state()}")
        time.sleep(1)
    assert newcomer.state()["phase"] == "stopped"  # the reaper's word
    again = Run(newcomer)
    again.wait_for(r"^Engram is ready at ", timeout=420)
    assert again.wait_for(r"^root API key: (\S+)").group(1) == key  # kept beside the data
    with DakeraClient(newcomer.url, api_key=key) as client:
        contacts = client.recall(agent_id=agent, query="how does Jane like to be contacted").memories
        orders = client.recall(agent_id=agent, query="how was order 7741 shipped").memories
    assert contacts and "Jane prefers email" in contacts[0].content
    assert orders and "#7741" in orders[0].content  # the backfill job's memory

    assert again.signal_and_wait(signal.SIGTERM) == 0, again.output
    assert "stopped." in again.output
    assert_nothing_left(newcomer, run_dir)


def assert_nothing_left(user: Newcomer, run_dir: Path) -> None:
    left = list(run_processes(run_dir))
    assert not left, f"processes of the run still alive: {left}"
    listening = [name for name, port in user.ports.items() if port_accepts(port)]
    assert not listening, f"still listening: {listening}"


def all_processes() -> Iterator[tuple[int, str, int]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] not in "ZX":
                yield int(entry), cmd, int(fields[2])


def run_processes(run_dir: Path) -> Iterator[tuple[int, str]]:
    """Processes that name the run's folder anywhere: command line, environment (the run's
    mark) or any open file; wider than what cluster/local_run.py looks for."""
    for pid, cmd, _ in all_processes():
        try:
            files = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if pid != os.getpid() and (str(run_dir) in cmd or f"{RUN_MARK}={run_dir}" in environ
                                   or any(f.startswith(f"{run_dir}/") for f in files)):
            yield pid, cmd


def assert_on_loopback(run_dir: Path) -> None:
    """Every TCP listener of the run is on 127.0.0.1, but for the one Ray gives no setting
    for: each Serve replica's gRPC server for calls between deployments ([::], any port)."""
    owners: dict[str, tuple[int, str]] = {}
    for pid, cmd in run_processes(run_dir):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    owners[target[8:-1]] = (pid, cmd)
        except OSError:
            continue
    wide = []
    per_replica: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in owners:  # 0A: LISTEN
                continue
            address = local.split(":")[0]
            loopback = address in ("0100007F", "0000000000000000FFFF00000100007F",
                                   "00000000000000000000000001000000")
            if loopback:
                continue
            pid, cmd = owners[inode]
            if cmd.startswith("ray::ServeReplica") and address.strip("0") == "":
                per_replica[pid] = per_replica.get(pid, 0) + 1
                continue
            wide.append((int(local.split(":")[1], 16), cmd[:60]))
    assert not wide, f"listening beyond 127.0.0.1: {wide}"
    assert all(n == 1 for n in per_replica.values()), per_replica


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT])
def test_a_hang_up_or_ctrl_c_stops_it_as_cleanly_as_sigterm(newcomer: Newcomer, sig: int) -> None:
    run = Run(newcomer)
    run.wait_for(r"^Engram is ready at ")
    run_dir = newcomer.run_dir
    assert run.signal_and_wait(sig) == 0, run.output
    assert f"{signal.Signals(sig).name}: stopping Engram" in run.output
    assert_nothing_left(newcomer, run_dir)
