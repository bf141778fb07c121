"""How a local run is found again after an unclean end, its lock, its token, and HAProxy on
loopback.

Processes here are `sleep`s and shells standing in for Ray's: what is tested is which of
them a later run takes for its own and stops."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster import local_run
from cluster.haproxy_loopback import config_argument, haproxy_env, loopback_binds
from cluster.local import Ports, busy, job_submit_line
from cluster.ray_auth import ensure_token, has_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # with whatever it left in its group
        except ProcessLookupError:  # not a group of its own
            p.kill()
        p.wait()


def spawn(procs: list[subprocess.Popen[bytes]], command: str, out: Path | None = None,
          env: dict[str, str] | None = None, new_session: bool = True) -> subprocess.Popen[bytes]:
    with open(out or os.devnull, "wb") as f:
        p = subprocess.Popen(["bash", "-c", command], stdout=f, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})}, start_new_session=new_session)
    procs.append(p)
    return p


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def found(run_dir: Path) -> set[int]:
    return {p.pid for p in local_run.leftovers(run_dir)}


def test_a_run_is_what_carries_its_mark_or_writes_under_its_folder(tmp_path: Path,
                                                                   spawned: list[subprocess.Popen[bytes]]) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    mark = {local_run.RUN_MARK: str(run_dir)}
    # The head, marked, with a child of its own and an orphan in its group that is marked
    # by nothing (the dashboard's module processes, once the dashboard is gone); a worker Ray
    # put in a group of its own, its environment gone, its output in the run's logs.
    head = spawn(spawned, "(env -i sleep 61 &); sleep 60 & exec sleep 60", env=mark)
    worker = spawn(spawned, "exec env -i sleep 60", out=run_dir / "logs" / "worker.out")
    # Not the run's: this test's own group, a reader of its logs, another run's mark.
    sibling = spawn(spawned, "exec sleep 60", new_session=False)
    reader = spawn(spawned, f"exec tail -f {run_dir}/logs/worker.out")
    other = spawn(spawned, "exec sleep 60", env={local_run.RUN_MARK: str(tmp_path / "other")})
    def orphans() -> set[int]:
        return {p.pid for p in local_run.processes()
                if p.pgid == head.pid and p.pid != head.pid and p.pid not in children(head.pid)}

    eventually(lambda: len(children(head.pid)) == 1 and len(orphans()) == 1)
    ours = found(run_dir)
    assert {head.pid, worker.pid} | children(head.pid) | orphans() <= ours
    assert not {sibling.pid, reader.pid, other.pid, os.getpid()} & ours


def test_stop_run_stops_a_leftover_that_ignores_sigterm(tmp_path: Path,
                                                        spawned: list[subprocess.Popen[bytes]]) -> None:
    run_dir = tmp_path / "run"
    stubborn = spawn(spawned, "trap '' TERM; while true; do sleep 0.1; done",
                     env={local_run.RUN_MARK: str(run_dir)})
    eventually(lambda: stubborn.pid in found(run_dir))
    started = time.monotonic()
    assert local_run.stop_run([run_dir]) >= 1
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 20
    assert not local_run.leftovers(run_dir)


def test_the_run_lock_is_one_holders_and_freed_when_it_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from pathlib import Path; from cluster.local_run import RunLock\n"
         f"l = RunLock(Path({str(tmp_path)!r})); assert l.acquire(); l.record(phase='running'); "
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, cwd=ROOT)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    lock = local_run.RunLock(tmp_path)
    assert not lock.acquire()
    assert lock.state() == {"phase": "running", "pid": holder.pid}
    holder.kill()
    holder.wait()
    assert lock.acquire()  # the kernel dropped the dead holder's lock
    lock.release()
    assert stat.S_IMODE((tmp_path / ".run").stat().st_mode) == 0o700


# A run as cluster.local is one: it holds the lock, starts the reaper on a pipe, and a
# marked process of its own; then it ends as told, the lock held a moment past the pipe's end
# (as when the kernel closes a SIGKILLed run's files in that order).
FAKE_RUN = """
import subprocess, sys, time
from pathlib import Path
from cluster import local_run
data_dir, run_dir, ending = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = local_run.RunLock(data_dir)
assert lock.acquire()
lock.record(phase="running", run_dir=run_dir)
reaper = subprocess.Popen([sys.executable, "-m", "cluster.local_run", "--reap", str(data_dir)],
                          stdin=subprocess.PIPE, start_new_session=True)
worker = subprocess.Popen(["sleep", "60"], env={local_run.RUN_MARK: run_dir}, start_new_session=True)
print(reaper.pid, worker.pid, flush=True)
if ending == "clean":
    worker.kill()
    reaper.stdin.write(local_run.CLEAN_END)
reaper.stdin.close()
time.sleep(1.0)
"""


@pytest.mark.parametrize("ending", ["dies", "clean"])
def test_the_reaper_stops_what_a_dead_run_left_and_leaves_a_clean_one_be(tmp_path: Path, ending: str) -> None:
    run_dir = local_run.private_dir(tmp_path / "run")
    (tmp_path / "data").mkdir()
    run = subprocess.run([sys.executable, "-c", FAKE_RUN, str(tmp_path / "data"), str(run_dir), ending],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    reaper_pid, worker_pid = map(int, run.stdout.split())
    try:
        eventually(lambda: not local_run.leftovers(run_dir) and not Path(f"/proc/{reaper_pid}").exists(),
                   timeout=40)
        phase = local_run.RunLock(tmp_path / "data").state()["phase"]
        assert phase == ("stopped" if ending == "dies" else "running")  # a clean run records its own end
    finally:
        for pid in (worker_pid, reaper_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_run_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    assert local_run.private_dir(folder) == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)  # as Ray leaves its temp dir: anyone could swap what runs from it
    with pytest.raises(PermissionError, match="only you may enter"):
        local_run.private_dir(folder)
    folder.chmod(0o700)
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(PermissionError):
        local_run.private_dir(link)


def test_old_sessions_are_pruned_to_the_newest(tmp_path: Path) -> None:
    for name in ("session_2026-01-01_00-00-00_1", "session_2026-02-01_00-00-00_1",
                 "session_2026-03-01_00-00-00_1"):
        (tmp_path / name).mkdir()
    (tmp_path / "session_latest").symlink_to(tmp_path / "session_2026-03-01_00-00-00_1")
    local_run.prune_sessions(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "session_2026-02-01_00-00-00_1", "session_2026-03-01_00-00-00_1", "session_latest"]


def test_a_token_is_created_once_for_the_owner_only(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "RAY_AUTH_MODE": "token"}
    created = ensure_token(env)
    assert created == tmp_path / ".ray" / "auth_token"
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    assert stat.S_IMODE(created.parent.stat().st_mode) == 0o700
    assert len(created.read_text()) == 64 and has_token(env)
    token = created.read_text()
    assert ensure_token(env) is None and created.read_text() == token  # kept, never replaced


def test_no_token_is_made_outside_token_mode_or_where_ray_has_one(tmp_path: Path) -> None:
    assert ensure_token({"HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"}) is None
    assert ensure_token({"HOME": str(tmp_path), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "abc"}) is None
    path = tmp_path / "elsewhere" / "token"
    made = ensure_token({"HOME": str(tmp_path), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)})
    assert made == path and not (tmp_path / ".ray").exists()


def test_an_empty_token_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("")
    with pytest.raises(RuntimeError, match="delete it"):
        ensure_token({"HOME": str(tmp_path), "RAY_AUTH_MODE": "token"})


def test_haproxy_side_listeners_move_to_loopback_and_the_http_frontend_stays() -> None:
    config = ("frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind *:3300\n"
              "listen stats\n  bind *:8404\n  bind 0.0.0.0:8404\n  bind [::]:9101\n  bind 10.0.0.5:8404\n")
    assert loopback_binds(config, {8404, 9101}) == (
        "frontend prometheus\n    bind 127.0.0.1:9101\nfrontend http_frontend\n    bind *:3300\n"
        "listen stats\n  bind 127.0.0.1:8404\n  bind 127.0.0.1:8404\n  bind 127.0.0.1:9101\n"
        "  bind 10.0.0.5:8404\n")
    assert config_argument(["-db", "-f", "/x/haproxy.cfg", "-sf", "12"]) == "/x/haproxy.cfg"
    assert config_argument(["-v"]) is None


def test_the_wrapper_rewrites_the_config_and_runs_the_real_haproxy() -> None:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="eg-hap-"))  # short: sockets go under it
    try:
        env = haproxy_env(folder)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # guards HAProxy's admin socket
        cfg = folder / "haproxy.cfg"
        cfg.write_text("global\n    maxconn 10\ndefaults\n    mode http\n    timeout connect 1s\n"
                       "    timeout client 1s\n    timeout server 1s\nlisten stats\n  bind *:8404\n"
                       "  stats enable\n")
        # -c: HAProxy checks the config and exits, so the real binary runs and nothing listens.
        done = subprocess.run([env["RAY_SERVE_HAPROXY_BINARY_PATH"], "-c", "-f", str(cfg)],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **env, "RAY_SERVE_HAPROXY_STATS_PORT": "8404"})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "bind 127.0.0.1:8404" in cfg.read_text()
    finally:
        shutil.rmtree(folder)


def test_a_long_haproxy_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="TMPDIR"):
        haproxy_env(Path("/tmp/" + "x" * 40))


def test_busy_ports_name_what_moves_them() -> None:
    import socket

    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = Ports(http=port, dashboard=0, ray=0, ray_client=0, dashboard_agent=0)
        taken = busy(ports, "proxy", {"DASHBOARD_METRIC_PORT": str(port), "AUTOSCALER_METRIC_PORT": "0"})
    assert taken == [f"port {port} is in use (Engram's HTTP API; pass --port PORT, with make: "
                     "make serve SERVE_ARGS='--port PORT')",
                     f"port {port} is in use (the Ray dashboard's metrics; set DASHBOARD_METRIC_PORT "
                     "to a free port)"]


def test_the_job_line_carries_the_auth_it_needs(tmp_path: Path) -> None:
    line = job_submit_line(Path.cwd() / ".venv" / "bin", "http://127.0.0.1:8265", {"RAY_AUTH_MODE": "token"})
    assert line.startswith("RAY_AUTH_MODE=token ./.venv/bin/ray job submit --address http://127.0.0.1:8265 "
                           "--working-dir . -- python -m cluster.backfill ")
    assert job_submit_line(tmp_path, "http://x", {}).startswith(f"{tmp_path}/ray job submit")
    with_path = job_submit_line(tmp_path, "http://x", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/t"})
    assert with_path.startswith("RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/t ")


def test_each_cluster_takes_a_block_of_replica_ports_no_other_holds() -> None:
    import socket

    from cluster.ingress import DIRECT_INGRESS_VARS, serve_ports_env

    first = serve_ports_env("haproxy", {})
    low = int(first["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"])
    assert int(first["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == low + 99
    grpc = int(first["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"])
    assert grpc == low + 1300 and int(first["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"]) < 32768  # not ephemeral
    with socket.socket() as held:  # a replica of another cluster, SO_REUSEPORT and all
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", low + 7))
        held.listen()
        assert int(serve_ports_env("haproxy", {})["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]) > low
    for _ in range(5):  # beside a `make serve`: never Serve's default block
        assert serve_ports_env("haproxy", {}, beside=True)["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] != "30000"
    assert serve_ports_env("haproxy", {DIRECT_INGRESS_VARS[0]: "31000"}) == {}
    assert serve_ports_env("proxy", {}) == {}
