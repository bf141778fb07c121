"""Shared fixtures: one real Ray Serve Engram per test session, on 127.0.0.1.

Expensive setup happens once: Ray, the Serve app and the embedding model load once for
the whole run; tests isolate themselves by namespace (unique names per test).
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cluster.ingress import free_ports, ingress_env
from cluster.local_servers.es_emulator import EsEmulator
from cluster.local_servers.postgres_server import PostgresTestServer
from cluster.loopback import ONE_MACHINE_RAY, loopback_env_beside
from tests.builders import SERVICE_CONFIG, Engram

ROOT_KEY = "ek_test_root_" + uuid.uuid4().hex
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray reads this when it is first imported, which a test module may do before any fixture:
# the test cluster listens on 127.0.0.1 as `make serve` does (cluster/loopback.py).
for _var, _value in ONE_MACHINE_RAY.items():
    os.environ.setdefault(_var, _value)


@pytest.fixture(scope="session")
def engram(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engram]:
    import ray
    from ray import serve

    from serve.app import build_app

    data_dir = tmp_path_factory.mktemp("engram-data")
    os.environ["ENGRAM_ROOT_API_KEY"] = ROOT_KEY  # inherited by the Ray workers started below
    # The ingress `make serve` runs (HAProxy; its side ports free ones, so that a `make serve`
    # may run beside); ENGRAM_INGRESS=proxy tests Serve's Python proxy.
    ingress = os.environ.get("ENGRAM_INGRESS", "haproxy")
    os.environ.update(ingress_env(ingress, private_ports=True))
    os.environ.update(loopback_env_beside(ingress))
    config = {**SERVICE_CONFIG, "storage": {**SERVICE_CONFIG["storage"], "data_dir": str(data_dir)}}
    port, dashboard_port = free_ports(2)  # distinct: chosen together
    # address="local": never attach to a cluster a developer's `make serve` is running. The
    # dashboard serves the job API (the backfill test submits a real `ray job`).
    ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
             dashboard_port=dashboard_port, log_to_driver=False,
             runtime_env={"env_vars": {"ENGRAM_ROOT_API_KEY": ROOT_KEY, "OMP_NUM_THREADS": "1",
                                       "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(config), name="engram", route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=10).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        raise RuntimeError("Engram did not become ready")
    try:
        yield Engram(url, ROOT_KEY, data_dir, config, f"http://127.0.0.1:{dashboard_port}")
    finally:
        serve.shutdown()
        ray.shutdown()
        if ingress == "haproxy":  # HAProxy's folder of this run (loopback_env_beside)
            shutil.rmtree(Path(os.environ["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent, ignore_errors=True)


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip GPU tests where no CUDA device exists, saying so (they run on the GPU machine)."""
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine (run on the GPU host)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight cross-encoder saved to disk, built once per test session."""
    from tests.tiny_models import tiny_cross_encoder

    return tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresTestServer]:
    """A PostgreSQL server on loopback for the session (cluster/local_servers/postgres_server.py); its
    password is where the stores read it (PostgresConfig.password_env's default). Where
    none can start, the tests that need it fail and say what is missing: never skipped."""
    missing = PostgresTestServer.unavailable()
    if missing:
        pytest.fail(missing)
    with PostgresTestServer() as server:
        os.environ["ENGRAM_POSTGRES_PASSWORD"] = server.password
        yield server


@pytest.fixture(scope="session")
def es_emulator_url() -> Iterator[str]:
    """noida-db, an Elasticsearch-API emulator (not Elasticsearch: cluster/local_servers/es_emulator.py),
    on loopback for the session."""
    missing = EsEmulator.unavailable()
    if missing:
        pytest.fail(missing)
    with EsEmulator() as url:
        yield url
