"""Servers started on 127.0.0.1 for the tests and the benchmarks, never for production.

Each starts one real server from a package installed on this machine, in a temporary
directory on a free loopback port, and stops it and removes its directory after (it also
dies with the process that started it):

- `postgres_server.PostgresTestServer`: PostgreSQL from Debian's `postgresql` package
  (initdb and postgres as user `nobody` when root), with fsync off.
- `milvus_server.MilvusTestServer`: Milvus 2.3.5 standalone from the PyPI package `milvus`,
  in a network namespace of its own, reached through a relay on 127.0.0.1.
- `es_emulator.EsEmulator`: noida-db, an Elasticsearch-API emulator, not Elasticsearch.

They are set up to be thrown away (no durability, no tuning, no auth beyond PostgreSQL's
password): production points `storage.postgres`, `storage.milvus_server` and
`storage.elasticsearch` at servers run as services (cluster/README.md).
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a server's log, for the error that says it did not start."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def stop_process(proc: subprocess.Popen[bytes] | None, ask: Callable[[subprocess.Popen[bytes]], None],
                 timeout: float) -> None:
    """Ask a server to stop (its own way: a signal), wait, and kill it if it will not."""
    if proc is None or proc.poll() is not None:
        return
    ask(proc)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
