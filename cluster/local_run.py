"""What one `python -m cluster.local` run owns, and how it is found again after an unclean end.

Two folders per data directory:
- the run folder (`run_dir_for`, /tmp/engram-<hash>, the owner's alone): Ray's temp dir
  (`ray/`: sessions, sockets, logs), HAProxy's files (`hap/`) and `ray start`'s output.
  Ray opens its temp dir to every user (0777), so it sits one level down, behind a folder
  nobody else may enter; a run refuses a run folder that is not its owner's alone;
- `<data_dir>/.run/`: the lock (one live run per data directory, whatever TMPDIR says) and
  the state file naming the run folder the last run used.

The Ray head starts in a process group of its own, with RUN_MARK=<run folder> in its
environment, so that the terminal's Ctrl-C or hang-up reaches only cluster.local, which
then stops things in order. What a run left behind is then:
- every process that carries the mark in its environment (Ray passes its environment on
  to every process it starts, HAProxy included) or whose stdout or stderr is a file under
  the run folder (a process whose title Ray rewrote over its environment);
- every process in the process group of one of those (the dashboard's module processes,
  orphaned when the dashboard dies first);
- every descendant of any of them.
A group is only taken on the word of a live member, so a process group id that Linux has
since given to someone else is never signalled; a process that merely reads the run's files
(`tail -f` of a log) is not one of the run's; and another user's processes cannot be read.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

RUN_MARK = "ENGRAM_RUN_DIR"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    zombie: bool
    outputs: tuple[str, ...]  # where its stdout and stderr go
    mark: str | None  # RUN_MARK in its environment


def run_dir_for(data_dir: Path) -> Path:
    """A short path (Ray's sockets live under it) that only this data directory's runs use."""
    digest = hashlib.blake2b(f"{os.getuid()}:{data_dir.resolve()}".encode(), digest_size=5).hexdigest()
    return Path(tempfile.gettempdir()) / f"engram-{digest}"


def private_dir(path: Path) -> Path:
    """`path` as a folder only its owner may enter, created so if missing. One that exists
    otherwise (another owner, a symlink, open to others) is refused: whoever could write in
    it could swap what Ray and HAProxy run from it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{path} must be a folder of yours that only you may enter "
                              f"(mode 0700): remove it, or set TMPDIR to another folder")
    return path


def processes() -> list[Proc]:
    """Every process of this user's, from /proc (Linux only, as Ray's HAProxy is)."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = status[status.rindex(")") + 2:].split()
        table.append(Proc(pid=int(entry), ppid=int(fields[1]), pgid=int(fields[2]),
                          zombie=fields[0] in ("Z", "X"), outputs=_outputs(entry), mark=_mark(entry)))
    return table


def _outputs(pid: str) -> tuple[str, ...]:
    out = []
    for fd in (1, 2):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed, gone, or another user's
            pass
    return tuple(out)


def _mark(pid: str) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's
        return None
    prefix = f"{RUN_MARK}=".encode()
    for var in environ.split(b"\0"):
        if var.startswith(prefix):
            return var[len(prefix):].decode(errors="replace")
    return None


def belongs(proc: Proc, run_dir: Path) -> bool:
    return proc.mark == str(run_dir) or any(path.startswith(f"{run_dir}/") for path in proc.outputs)


def leftovers(run_dir: Path, table: list[Proc] | None = None, exclude: Iterable[int] = ()) -> list[Proc]:
    """The live processes of any run over `run_dir` (see the module docstring)."""
    table = processes() if table is None else table
    spared = {os.getpid(), *exclude}
    marked = [p for p in table if not p.zombie and belongs(p, run_dir)]
    groups = {p.pgid for p in marked if p.pgid > 1}
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
    """SIGTERM each, SIGKILL what is left after `grace_s`; the pids that were alive."""
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
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status[status.rindex(")") + 2] not in "ZX"


def stop_run(run_dirs: Iterable[Path], exclude: Iterable[int] = (), deadline_s: float = 90.0) -> int:
    """Stop every process of the runs over `run_dirs`; how many there were. A raylet
    stopped in the same round as its workers may start one more first: rounds go on until
    none is left (a round lasts at most about 15 s), for up to `deadline_s`."""
    run_dirs = set(run_dirs)
    deadline = time.monotonic() + deadline_s
    stopped = 0
    while True:
        found = [p for run_dir in run_dirs for p in leftovers(run_dir, exclude=exclude)]
        if not found or time.monotonic() > deadline:
            return stopped
        stopped += len(stop_processes([p.pid for p in found]))


class RunLock:
    """One live run per data directory: an flock the kernel drops when its holder dies, so
    a SIGKILLed run never leaves it held; the state file says what the holder is doing
    (starting, running, stopping, reaping) and which run folder it used."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / ".run"
        self.state_path = self.folder / "state.json"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        f = open(private_dir(self.folder) / "lock", "w")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._file = f
        return True

    def state(self) -> dict[str, Any]:
        """What the holder recorded, or what the last holder left: {} if nothing (yet)."""
        try:
            return dict(json.loads(self.state_path.read_text()))
        except (OSError, ValueError):
            return {}

    def record(self, **changes: Any) -> None:
        """Merge `changes` into the state (the pid is always the writer's)."""
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.state(), **changes, "pid": os.getpid()}, indent=1))
        tmp.replace(self.state_path)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def prune_sessions(ray_dir: Path, keep: int = 2) -> None:
    """Ray starts a new session folder (logs, sockets) per run: keep the newest few, for a
    post-mortem of the run before, and delete the rest."""
    import shutil

    sessions = sorted((p for p in ray_dir.glob("session_2*") if p.is_dir()), key=lambda p: p.name)
    for old in sessions[:-keep] if keep else sessions:
        shutil.rmtree(old, ignore_errors=True)


CLEAN_END = b"stopped cleanly\n"


def reap(data_dir: Path, lock_wait_s: float = 60.0) -> None:
    """Wait for the run that started this reaper to end, however it ends (a SIGKILL runs no
    clean-up of its own), then stop whatever of it is left. The run holds the other end of
    this process's stdin, which the kernel closes when it dies; a run that stopped what it
    started says CLEAN_END first."""
    run_pid = os.getppid()
    if sys.stdin.buffer.read() == CLEAN_END:
        return
    lock = RunLock(data_dir)
    # The kernel closes a dead process's files one by one, and this pipe's end may come
    # before the lock is dropped: wait for it. If a new run takes it first, that run stops
    # what is left itself (it does so before anything else).
    deadline = time.monotonic() + lock_wait_s
    while not lock.acquire():
        if lock.state().get("pid") not in (None, run_pid) or time.monotonic() > deadline:
            return
        time.sleep(0.05)
    try:
        lock.record(phase="reaping")
        stop_run([run_dir_for(data_dir), *recorded_run_dirs(lock)])
        lock.record(phase="stopped")
    finally:
        lock.release()


def recorded_run_dirs(lock: RunLock) -> list[Path]:
    """The run folder the state names (another TMPDIR's, say), if any."""
    recorded = lock.state().get("run_dir")
    return [Path(recorded)] if recorded else []


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--reap":
        sys.exit("usage: python -m cluster.local_run --reap DATA_DIR")
    reap(Path(sys.argv[2]))
