"""How a local run is found again after an unclean end, its token, and HAProxy on loopback.

Processes here are `sleep`s and shells standing in for Ray's: what is tested is which of
them a later run takes for its own and stops."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import local_run
from cluster.haproxy_loopback import config_argument, haproxy_env, loopback_binds
from cluster.local import Ports, busy, job_submit_line
from cluster.ray_auth import ensure_token, has_token


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def spawn(procs: list[subprocess.Popen[bytes]], command: str, out: Path | None = None,
          new_session: bool = True) -> subprocess.Popen[bytes]:
    with open(out or os.devnull, "wb") as f:
        p = subprocess.Popen(["bash", "-c", command], stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=new_session)
    procs.append(p)
    return p


def pids(found: list[local_run.Proc]) -> set[int]:
    return {p.pid for p in found}


def test_a_run_is_what_writes_under_its_folder_with_its_group_and_children(tmp_path: Path,
                                                                         spawned: list[subprocess.Popen[bytes]]) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    # A "head" whose output goes to the run's logs, with a sibling in its group whose output
    # does not (as the dashboard's module processes), and a child of its own.
    head = spawn(spawned, "sleep 60 & sleep 60", out=run_dir / "logs" / "head.out")
    sibling = spawn(spawned, "exec sleep 60", new_session=False)  # in this test's group: never taken
    reader = spawn(spawned, f"exec tail -f {run_dir}/logs/head.out")  # reads the logs: not the run's
    elsewhere = spawn(spawned, "exec sleep 60", out=tmp_path / "other.out")
    time.sleep(0.3)
    found = pids(local_run.leftovers(run_dir))
    children = {int(c) for c in Path(f"/proc/{head.pid}/task/{head.pid}/children").read_text().split()}
    assert head.pid in found and children <= found and len(children) == 2
    assert not {sibling.pid, reader.pid, elsewhere.pid} & found


def test_the_head_group_counts_only_while_this_python_runs_in_it(tmp_path: Path,
                                                                  spawned: list[subprocess.Popen[bytes]]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shell = spawn(spawned, "exec sleep 60")
    time.sleep(0.2)
    assert not local_run.leftovers(run_dir, head_group=shell.pid)  # nothing of ours in it
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    spawned.append(ours)  # type: ignore[arg-type]
    time.sleep(0.2)
    assert pids(local_run.leftovers(run_dir, head_group=ours.pid)) == {ours.pid}


def test_stop_run_stops_a_leftover_that_ignores_sigterm(tmp_path: Path,
                                                        spawned: list[subprocess.Popen[bytes]]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stubborn = spawn(spawned, "trap '' TERM; while true; do sleep 0.1; done", out=run_dir / "x.log")
    time.sleep(0.3)
    started = time.monotonic()
    assert local_run.stop_run(run_dir, head_group=0) >= 1
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 20
    assert not local_run.leftovers(run_dir)


def test_the_run_lock_is_one_holders_and_freed_when_it_dies(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from cluster.local_run import RunLock\n"
         f"l = RunLock(Path({str(run_dir)!r})); assert l.acquire(); l.record(ray_pid=7); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    lock = local_run.RunLock(run_dir)
    assert not lock.acquire()
    assert lock.holder() == {"ray_pid": 7, "pid": holder.pid}
    holder.kill()
    holder.wait()
    assert lock.acquire()  # the kernel dropped the dead holder's lock
    lock.release()


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


def test_haproxy_wildcard_binds_move_to_loopback() -> None:
    config = ("frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind 127.0.0.1:3300\n"
              "listen stats\n  bind *:8404\n  bind 0.0.0.0:81\n  bind [::]:82\n  bind 10.0.0.5:83\n")
    assert loopback_binds(config) == (
        "frontend prometheus\n    bind 127.0.0.1:9101\nfrontend http_frontend\n    bind 127.0.0.1:3300\n"
        "listen stats\n  bind 127.0.0.1:8404\n  bind 127.0.0.1:81\n  bind 127.0.0.1:82\n  bind 10.0.0.5:83\n")
    assert config_argument(["-db", "-f", "/x/haproxy.cfg", "-sf", "12"]) == "/x/haproxy.cfg"
    assert config_argument(["-v"]) is None


def test_the_wrapper_rewrites_the_config_and_runs_the_real_haproxy() -> None:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="eg-hap-"))  # short: sockets go under it
    try:
        check_wrapper(folder)
    finally:
        shutil.rmtree(folder)


def check_wrapper(folder: Path) -> None:
    env = haproxy_env(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # guards HAProxy's admin socket
    cfg = folder / "haproxy.cfg"
    cfg.write_text("global\n    maxconn 10\ndefaults\n    mode http\n    timeout connect 1s\n"
                   "    timeout client 1s\n    timeout server 1s\nlisten stats\n  bind *:8404\n  stats enable\n")
    # -c: HAProxy checks the config and exits, so the real binary runs and nothing listens.
    done = subprocess.run([env["RAY_SERVE_HAPROXY_BINARY_PATH"], "-c", "-f", str(cfg)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bind 127.0.0.1:8404" in cfg.read_text()


def test_a_long_haproxy_folder_is_refused() -> None:
    with pytest.raises(ValueError, match="TMPDIR"):
        haproxy_env(Path("/tmp/" + "x" * 40))


def test_busy_ports_name_the_option_that_moves_them() -> None:
    import socket

    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        ports = Ports(http=port, dashboard=0, ray=0, ray_client=0, dashboard_agent=0)
        taken = busy(ports, "proxy", {})
    assert taken == [f"port {port} is in use (Engram's HTTP API; pass --port PORT, with make: "
                     "make serve SERVE_ARGS='--port PORT')"]


def test_the_job_line_carries_the_auth_it_needs(tmp_path: Path) -> None:
    line = job_submit_line(Path.cwd() / ".venv" / "bin", "http://127.0.0.1:8265", {"RAY_AUTH_MODE": "token"})
    assert line.startswith("RAY_AUTH_MODE=token ./.venv/bin/ray job submit --address http://127.0.0.1:8265 "
                           "--working-dir . -- python -m cluster.backfill ")
    assert job_submit_line(tmp_path, "http://x", {}).startswith(f"{tmp_path}/ray job submit")
    with_path = job_submit_line(tmp_path, "http://x", {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/t"})
    assert with_path.startswith("RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/t ")
