"""A deadline for a drill that runs as its own process: past it, say where every thread
is, then interrupt the main thread so its `finally` blocks shut down what it started (a
Ray cluster, PostgreSQL, Milvus). A caller's timeout would SIGKILL the drill instead, and
leave all of that running beside whatever runs next.

    with Watchdog(600, "node loss drill") as watch:
        watch.step("starting the cluster")
        ...
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType


class DeadlinePassed(BaseException):
    """Raised in the main thread at the deadline. A BaseException, like KeyboardInterrupt, so
    that no `except Exception` (or `except OSError`, which TimeoutError is) on the way swallows it."""


class Watchdog:
    """Progress lines on stderr (`<name>: [12.3 s] <step>`) and a deadline for the whole run.
    The deadline is a SIGALRM (a real signal wakes a main thread blocked in sleep or a socket
    read, where a flag would wait for it to return); so use it in the main thread only."""

    def __init__(self, deadline_s: float, name: str, cleanup_grace_s: float = 90.0) -> None:
        self.deadline_s = deadline_s
        self.name = name
        self.cleanup_grace_s = cleanup_grace_s
        self.began = time.monotonic()
        self.current = "starting"
        self._done = threading.Event()

    def step(self, what: str) -> None:
        self.current = what
        print(f"{self.name}: [{time.monotonic() - self.began:.1f} s] {what}", file=sys.stderr, flush=True)

    def __enter__(self) -> Watchdog:
        self.began = time.monotonic()
        self._previous = signal.signal(signal.SIGALRM, self._expire)
        signal.setitimer(signal.ITIMER_REAL, self.deadline_s)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)
        self._done.set()
        if isinstance(exc, DeadlinePassed):
            raise TimeoutError(f"{self.name}: still at '{self.current}' after {self.deadline_s:.0f} s "
                               "(every thread's stack is printed above)") from exc

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        print(f"{self.name}: past its {self.deadline_s:.0f} s deadline at '{self.current}'; "
              "every thread's stack follows, then the run stops and cleans up", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        threading.Thread(target=self._exit_if_cleanup_hangs, name="watchdog", daemon=True).start()
        raise DeadlinePassed(self.current)

    def _exit_if_cleanup_hangs(self) -> None:
        if not self._done.wait(self.cleanup_grace_s):
            print(f"{self.name}: cleanup did not finish in {self.cleanup_grace_s:.0f} s; exiting",
                  file=sys.stderr, flush=True)
            os._exit(3)
