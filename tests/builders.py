"""What more than one test module builds with: memories and vectors, the backend markers, the
Router's reshard methods over real shards, the service under test and its `ray job`s, a
webhook receiver.

Fixtures stay in the conftest.py files (pytest shares them from there); a test module imports
anything else it shares from here, never from another test module or a conftest.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from cluster.ingress import free_ports
from serve.clients import LocalShardClient
from serve.reshard_control import ReshardControl
from serve.shard_routing import ControlShardMap, ShardRouter
from shards.config import EmbeddedStorageConfig
from shards.control.sqlite import SQLiteControlStore
from shards.shard import Shard
from shards.types import NewMemory, RecallFilter

if TYPE_CHECKING:
    from dakera import DakeraClient

ROOT = Path(__file__).resolve().parents[1]

# Memories and vectors: small, unit-length, one per seed.

DIM = 8
OpenShard = Callable[..., Shard]


def vec(seed: int) -> tuple[float, ...]:
    raw = [math.sin(seed * (i + 1) * 1.7) + (1.0 if i == seed % DIM else 0.0) for i in range(DIM)]
    norm = math.sqrt(sum(x * x for x in raw))
    return tuple(x / norm for x in raw)


def mem(mid: str, ns: str, content: str, seed: int = 0, **kw: object) -> NewMemory:
    fields: dict[str, object] = dict(
        id=mid, namespace=ns, content=content, memory_type="episodic", importance=0.5,
        tags=(), metadata={}, session_id=None, event_time=1_700_000_000.0, vector=vec(seed))
    fields.update(kw)
    return NewMemory(**fields)  # type: ignore[arg-type]


def files_holding(root: Path, text: str) -> list[str]:
    """The files under root (relative paths) whose bytes contain this text."""
    needle = text.encode()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


def ids(candidates: list) -> list[str]:  # type: ignore[type-arg]
    return [c.memory.id for c in candidates]


# Elasticsearch rows: skipped, saying why, where no server is configured.

ES_URL = os.environ.get("ENGRAM_ES_URL")
WITHOUT_ELASTICSEARCH = pytest.mark.skipif(
    not ES_URL, reason="needs an Elasticsearch server: set ENGRAM_ES_URL (none can be installed "
                       "on this machine)")
NEEDS_ELASTICSEARCH = [pytest.mark.elasticsearch, WITHOUT_ELASTICSEARCH]


# Exact search beside a shard configured otherwise.

FILTERS = [
    RecallFilter(),
    RecallFilter(memory_types=("semantic",)),
    RecallFilter(since=1_700_000_050.0, until=1_700_000_150.0),
    RecallFilter(min_importance=0.6),
]


def exact_beside(tmp_path: Path, other: EmbeddedStorageConfig) -> Iterator[tuple[Shard, Shard]]:
    """The same 200 memories in a shard with exact search and in one configured otherwise."""
    exact = Shard.open_embedded(0, 1, DIM, EmbeddedStorageConfig(data_dir=tmp_path / "exact"))
    hnsw = Shard.open_embedded(0, 1, DIM, other)
    items = [mem(f"m{i}", f"ns{i % 3}", f"memory number {i}", seed=i,
                 memory_type="semantic" if i % 2 else "episodic", importance=(i % 10) / 10,
                 event_time=1_700_000_000.0 + i)
             for i in range(200)]
    for shard in (exact, hnsw):
        shard.write(items)
        shard.checkpoint()
    yield exact, hnsw
    exact.close()
    hnsw.close()


def vector_channel(shard: Shard, ns: str, seed: int, flt: RecallFilter) -> list[tuple[str, float]]:
    found = shard.recall_candidates(ns, vec(seed), "", flt, 10, graph=False, session=False)
    ranked = sorted(found, key=lambda c: c.ranks["vector"])
    return [(c.memory.id, round(c.scores["vector"], 4)) for c in ranked]


# A reshard in one process: real shards and control store, Serve's handles stood in for.

class Remote:
    """`obj.method.remote(...)`, awaited, as a Serve handle offers it."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        return type("Method", (), {"remote": staticmethod(method)})


def router_of(control: SQLiteControlStore, clients: list[LocalShardClient]) -> Remote:
    """The Router deployment's own reshard methods (serve/reshard_control.py) over the real
    control store, behind a stand-in for the Router's Serve handle."""
    router = ShardRouter(list(clients), ControlShardMap(control), control.shard_map())
    return Remote(ReshardControl(control, router))


def two_shards(tmp_path: Path, namespaces: list[str]
               ) -> tuple[list[Shard], SQLiteControlStore, list[LocalShardClient], Remote]:
    """Shards 0 and 1 under a map of one shard, five notes in each namespace on shard 0, the
    control store, the shards' in-process clients, and the Router's reshard methods."""
    cfg = EmbeddedStorageConfig(data_dir=tmp_path)
    shards = [Shard.open_embedded(i, 1, DIM, cfg) for i in range(2)]
    control = SQLiteControlStore(tmp_path / "control.db")
    control.check_deployed_shards(1)
    for n, ns in enumerate(namespaces):
        shards[0].write([mem(f"{ns}-m{i}", ns, f"note {i} of {ns}", seed=n * 10 + i)
                         for i in range(5)])
    clients = [LocalShardClient(s) for s in shards]
    return shards, control, clients, router_of(control, clients)


# The service under test (started by the `engram` fixture in tests/conftest.py).

def free_port() -> int:
    return free_ports(1)[0]


class Engram:
    """The running service under test: its URL, root key, data dir and Serve handles."""

    def __init__(self, url: str, root_key: str, data_dir: Path, config: dict[str, Any],
                 dashboard_url: str) -> None:
        self.url = url
        self.dashboard_url = dashboard_url  # Ray's job API: `ray job submit` goes here
        self.root_key = root_key
        self.data_dir = data_dir
        self.config = config

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.root_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def create_key(self, scope: str, namespaces: list[str] | None, name: str = "test") -> str:
        with self.http() as c:
            r = c.post("/admin/keys", json={"name": name, "scope": scope, "namespaces": namespaces})
            r.raise_for_status()
            return str(r.json()["key"])


SERVICE_CONFIG: dict[str, Any] = {
    "shard_count": 2,
    "sessions": {"idle_timeout_seconds": 14400, "sweep_seconds": 1},
    "storage": {"checkpoint_seconds": 1},
    "limits": {"max_body_bytes": 4_000_000},  # small, so that a test can pass it
    # A wide shedding gate (serve/admission.py): tests send bursts of concurrent requests
    # from clients that do not retry a 503; the gate has tests of its own
    # (tests/components/test_admission.py) and a load run (loadtests/overload.py).
    # in flight + waiting = the Router's max_ongoing_requests (cluster/serve.yaml).
    "router": {"max_in_flight": 24, "max_waiting": 40, "max_wait_s": 10},
    # Webhooks to the tests' receivers on loopback only (nothing else may be reached, and
    # the fuzzing creates subscriptions too), retried fast so that a test sees the backoff.
    "webhooks": {"poll_seconds": 0.2, "retry_base_seconds": 0.5, "retry_max_seconds": 2,
                 "max_attempts": 4, "timeout_seconds": 3, "allowed_hosts": ["127.0.0.1"],
                 "allow_private_networks": True},
}

# `keyed_client(scope, namespaces)` (tests/compat/conftest.py): a `dakera` client with a new key.
KeyedClient = Callable[..., "DakeraClient"]


# `ray job`s against the service under test.

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def job_client(engram: Engram) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(engram.dashboard_url)


def submit_job(engram: Engram, entrypoint: str) -> str:
    """`ray job submit --working-dir .` as an operator runs it: the job imports the uploaded tree."""
    deadline = time.time() + 120
    while True:
        try:
            return str(job_client(engram).submit_job(entrypoint=entrypoint, runtime_env={
                "working_dir": str(ROOT), "excludes": [".venv", "data", "bench-results", ".git", ".mypy_cache"]}))
        except RuntimeError as exc:  # the node's job agent starts a while after the dashboard
            if "No available agent" not in str(exc) or time.time() > deadline:
                raise
            time.sleep(1)


def wait(engram: Engram, job_id: str, timeout: float = 300) -> str:
    client = job_client(engram)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        time.sleep(0.5)
    raise TimeoutError(client.get_job_logs(job_id)[-3000:])


# A webhook receiver on 127.0.0.1 that answers 204 (test_monitoring, test_webhook_senders).

@dataclass
class Received:
    url: str
    by_id: Counter[str] = field(default_factory=Counter)  # webhook-id -> deliveries of it
    came: threading.Event = field(default_factory=threading.Event)  # set at the first


@contextmanager
def webhook_receiver() -> Iterator[Received]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                received.by_id[self.headers.get("webhook-id", "")] += 1
            self.send_response(204)
            self.end_headers()
            received.came.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received = Received(f"http://127.0.0.1:{server.server_address[1]}/hook")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
