"""The ingress settings `make serve`, the benchmarks and the tests hand to Ray."""
from __future__ import annotations

import socket

import pytest

from cluster.ingress import LEAN_REQUEST_PATH, ONE_LOOP_REPLICAS, busy_ports, ingress_env


def test_haproxy_is_switched_on_with_a_short_drain() -> None:
    env = ingress_env("haproxy", {})
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert float(env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"]) < 30
    assert "RAY_SERVE_HAPROXY_STATS_PORT" not in env  # Ray's defaults unless asked


def test_the_proxy_switches_haproxy_off() -> None:
    assert ingress_env("proxy", {})["RAY_SERVE_ENABLE_HA_PROXY"] == "0"


@pytest.mark.parametrize("kind", ["haproxy", "proxy"])
def test_replicas_run_on_one_event_loop_unless_the_operator_says_otherwise(kind: str) -> None:
    assert ingress_env(kind, {}).items() >= ONE_LOOP_REPLICAS.items()
    env = ingress_env(kind, {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"})
    assert "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD" not in env


@pytest.mark.parametrize("kind", ["haproxy", "proxy"])
def test_handle_calls_go_over_grpc_unless_the_operator_says_otherwise(kind: str) -> None:
    assert ingress_env(kind, {}).items() >= LEAN_REQUEST_PATH.items()
    assert ingress_env(kind, {})["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "1"
    assert "RAY_SERVE_USE_GRPC_BY_DEFAULT" not in ingress_env(kind, {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "0"})


def test_what_the_operator_set_wins() -> None:
    env = ingress_env("haproxy", {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "30"})
    assert "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S" not in env
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"


def test_private_ports_are_free_and_distinct() -> None:
    env = ingress_env("haproxy", {}, private_ports=True)
    ports = {int(env["RAY_SERVE_HAPROXY_STATS_PORT"]), int(env["RAY_SERVE_HAPROXY_METRICS_PORT"])}
    assert len(ports) == 2
    assert busy_ports("haproxy", env) == []


def test_an_unknown_ingress_is_refused() -> None:
    with pytest.raises(ValueError, match="haproxy, proxy"):
        ingress_env("nginx", {})


def test_a_held_side_port_is_named_with_its_variable() -> None:
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        busy = busy_ports("haproxy", {"RAY_SERVE_HAPROXY_STATS_PORT": str(port),
                                      "RAY_SERVE_HAPROXY_METRICS_PORT": "0"})
    assert busy == [f"port {port} is in use (HAProxy's stats listener; set RAY_SERVE_HAPROXY_STATS_PORT "
                    "to a free port)"]
    assert busy_ports("proxy", {"RAY_SERVE_HAPROXY_STATS_PORT": str(port)}) == []
