"""What one `python -m cluster.local` run owns, and how it is found again after an unclean end.

Each data directory has a run directory of its own (`run_dir`): Ray's temp dir (sessions,
sockets, logs), HAProxy's files, the run's lock and its state file. The Ray head starts in
a process group of its own, so that the terminal's Ctrl-C or hang-up reaches only
cluster.local, which then stops things in order. What a run left behind is then:

- every process whose stdout or stderr is a file under the run directory: `ray start`
  itself, gcs_server, raylet, the Ray client server, every worker (Serve's replicas, its
  controller and proxy actors: Ray puts each in a process group of its own and rewrites its
  command line, but its output goes to the session's logs) and HAProxy (its output goes
  beside its config);
- every process in the process group of one of those, or in the group `ray start` began
  (its pid, kept in the run's state file): the rest of the Ray head (dashboard and its
  module processes, monitors, agents), which outlive a head that died first;
- every descendant of any of them.

A group is only taken on the word of a live member (one that writes under the run
directory, or runs this interpreter), so a process group id that Linux has since given to
someone else is never signalled; and a process that merely reads the run's files (`tail -f`
of a log) is not one of the run's.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    zombie: bool
    outputs: tuple[str, ...]  # where its stdout and stderr go
    cmdline: str


def run_dir_for(data_dir: Path) -> Path:
    """A short path (Ray's sockets live under it) that only this data directory's runs use."""
    digest = hashlib.blake2b(f"{os.getuid()}:{data_dir.resolve()}".encode(), digest_size=5).hexdigest()
    return Path(tempfile.gettempdir()) / f"engram-{digest}"


def processes() -> list[Proc]:
    """Every process this user can see, from /proc (Linux only, as Ray's HAProxy is)."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        table.append(Proc(pid=int(entry), ppid=int(fields[1]), pgid=int(fields[2]),
                          zombie=fields[0] in ("Z", "X"), outputs=_outputs(entry),
                          cmdline=_cmdline(entry)))
    return table


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _outputs(pid: str) -> tuple[str, ...]:
    out = []
    for fd in (1, 2):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed, gone, or another user's
            pass
    return tuple(out)


def writes_under(proc: Proc, run_dir: Path) -> bool:
    return any(path.startswith(f"{run_dir}/") for path in proc.outputs)


def runs_this_python(proc: Proc) -> bool:
    return f"{sys.prefix}/" in proc.cmdline


def leftovers(run_dir: Path, table: list[Proc] | None = None, exclude: Iterable[int] = (),
              head_group: int | None = None) -> list[Proc]:
    """The processes of any run over `run_dir` still alive (see the module docstring);
    head_group: the process group `ray start` began, where it is known."""
    table = processes() if table is None else table
    spared = {os.getpid(), *exclude}
    marked = [p for p in table if not p.zombie and writes_under(p, run_dir)]
    groups = {p.pgid for p in marked if p.pgid > 1}
    if head_group and any(p.pgid == head_group and runs_this_python(p) for p in table if not p.zombie):
        groups.add(head_group)
    found = {p.pid for p in marked} | {p.pid for p in table if p.pgid in groups and not p.zombie}
    children: dict[int, list[int]] = {}
    for p in table:
        children.setdefault(p.ppid, []).append(p.pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    by_pid = {p.pid: p for p in table}
    return [by_pid[pid] for pid in sorted(found - spared) if not by_pid[pid].zombie]


def stop_processes(pids: Iterable[int], grace_s: float = 10.0) -> list[int]:
    """SIGTERM each, SIGKILL what is left after `grace_s`; the pids that were still alive."""
    pids = [pid for pid in pids if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] not in "ZX"


def own_dir(run_dir: Path) -> Path:
    """The run's own files (lock, state, `ray start`'s output), in a folder only its owner
    may enter: Ray opens its temp dir, the run directory, to every user (0777)."""
    own = run_dir / "own"
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    own.chmod(0o700)
    return own


class RunLock:
    """One live run per data directory: an flock the kernel drops when its holder dies,
    so a SIGKILLed run never leaves it held; the state file says who holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.state_path = run_dir / "own" / "run.json"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        f = open(own_dir(self.run_dir) / "lock", "w")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file = f
        return True

    def holder(self) -> dict[str, Any]:
        """The state the holder recorded, or what the last holder left: {} if none."""
        try:
            return dict(json.loads(self.state_path.read_text()))
        except (OSError, ValueError):
            return {}

    def record(self, **state: Any) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**state, "pid": os.getpid()}, indent=1))
        tmp.replace(self.state_path)

    def release(self) -> None:
        if self._file is not None:
            self.state_path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


def prune_sessions(run_dir: Path, keep: int = 2) -> None:
    """Ray starts a new session folder (logs, sockets) per run: keep the newest few, for a
    post-mortem of the run before, and delete the rest."""
    import shutil

    sessions = sorted((p for p in run_dir.glob("session_2*") if p.is_dir()), key=lambda p: p.name)
    for old in sessions[:-keep] if keep else sessions:
        shutil.rmtree(old, ignore_errors=True)


def stop_run(run_dir: Path, exclude: Iterable[int] = (), head_group: int | None = None,
             rounds: int = 3) -> int:
    """Stop every process of a run over `run_dir`; how many there were. A raylet stopped
    in the same round as its workers may start one more first: a few rounds catch it.
    head_group: as for `leftovers`; by default the one the run's state file names."""
    if head_group is None:
        head_group = RunLock(run_dir).holder().get("ray_pid")
    stopped = 0
    for _ in range(rounds):
        found = leftovers(run_dir, exclude=exclude, head_group=head_group)
        if not found:
            break
        stopped += len(stop_processes([p.pid for p in found]))
    return stopped


def reap(run_dir: Path) -> None:
    """Wait for the run that started this reaper to end, however it ends (a SIGKILL runs no
    clean-up of its own), then stop whatever of it is left. The run holds the other end of
    this process's stdin, which the kernel closes when it dies."""
    sys.stdin.buffer.read()
    lock = RunLock(run_dir)
    if not lock.acquire():
        return  # a new run holds it already, and cleans up before it starts
    try:
        lock.record(**{**lock.holder(), "reaping": True})
        stop_run(run_dir)
    finally:
        lock.release()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--reap":
        sys.exit("usage: python -m cluster.local_run --reap RUN_DIR")
    reap(Path(sys.argv[2]))
