"""An Elasticsearch-API emulator for tests and benchmarks: noida-db 0.2.3 (PyPI, MIT; a binary
inside the wheel) with only its Elasticsearch service, on 127.0.0.1 and a free port, its data
in a temporary directory that is removed after. It reports itself as Elasticsearch 8.15.3 and
the official client accepts it.

It is an emulator, not Elasticsearch: rows run against it show that our requests, mappings
and queries are ones the Elasticsearch API accepts and answers as it documents. They cannot
show Lucene's scoring (BM25 figures and ties may differ), refresh timing, or behaviour under
load; the rows against a real cluster (ENGRAM_ES_URL) stay for that. Benchmark figures taken
against it say nothing of Elasticsearch's own speed.

    with EsEmulator() as url:   # http://127.0.0.1:<port>
        ...
"""
from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from cluster.local_servers import log_tail, stop_process

PR_SET_PDEATHSIG = 1


def binary() -> Path | None:
    """The noida-db binary inside the installed wheel."""
    try:
        import noida_db
    except ImportError:
        return None
    path = Path(noida_db.__file__).parent / "noida-db"
    return path if path.exists() else None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class EsEmulator:
    def __init__(self) -> None:
        self.base_dir = Path(tempfile.mkdtemp(prefix="engram-esemu-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        if binary() is None:
            return "the Elasticsearch emulator needs the PyPI package noida-db==0.2.3 (make install)"
        if not sys.platform.startswith("linux"):
            return "the emulator rows run on Linux only"
        return None

    def start(self, timeout: float = 30) -> str:
        exe = binary()
        assert exe is not None, self.unavailable()
        log = open(self.base_dir / "emulator.log", "wb")
        self._proc = subprocess.Popen(
            [str(exe), "start", "--data-dir", str(self.base_dir / "data"), "--host", "127.0.0.1",
             "--only", "elasticsearch", "--elasticsearch-port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the Elasticsearch emulator exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as answer:
                    if answer.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Elasticsearch emulator did not answer in {timeout:.0f} s: "
                                   f"{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        return log_tail(self.base_dir / "emulator.log")

    def stop(self) -> None:
        stop_process(self._proc, subprocess.Popen.terminate, timeout=15)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
