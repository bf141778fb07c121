"""Overload answers a Dakera JSON 503 with Retry-After, never Serve's plain-text 503 or a 500.

A full downstream queue (an Embedder or shard at max_queued_requests) surfaces in the Router
as Serve's real BackPressureError; these tests raise that error inside a route of the real
API app, with Serve's own exception handler registered the way Serve registers it on an
ingress app, and check which answer wins. No Ray cluster is needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from ray.exceptions import RayTaskError
from ray.serve._private.common import DeploymentID
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.responses import Response

from serve.errors import from_exception
from serve.routes.app import create_app
from serve.routes.errors import EngramRoute
from shards.control.sqlite import SQLiteControlStore


def _serve_handler(_: Request, exc: Exception) -> Response:
    """What Serve's replica adds to an ingress app for these errors (a text 503, see
    ray/serve/_private/replica.py `handle_exception`); ours must answer before it does."""
    return Response(str(exc), status_code=503)


def _app_raising(exc: Exception, tmp_path: Path) -> TestClient:
    app = create_app(cast(Any, None), SQLiteControlStore(tmp_path / "control.db"))

    async def boom() -> None:
        raise exc

    app.router.add_api_route("/boom", boom, methods=["POST"], route_class_override=EngramRoute)
    for cls in (BackPressureError, DeploymentUnavailableError):  # as Serve does, after us
        app.add_exception_handler(cls, _serve_handler)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("exc", [
    BackPressureError(num_queued_requests=8, max_queued_requests=8),
    DeploymentUnavailableError(DeploymentID(name="Embedder", app_name="engram")),
])
def test_downstream_overload_is_json_503_with_retry_after(exc: Exception, tmp_path: Path) -> None:
    r = _app_raising(exc, tmp_path).post("/boom")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["code"] == "SERVICE_UNAVAILABLE"


def test_retry_after_follows_serve_backpressure_config(tmp_path: Path) -> None:
    exc = BackPressureError(num_queued_requests=4, max_queued_requests=4, retry_after_s=2.5)
    r = _app_raising(exc, tmp_path).post("/boom")
    assert (r.status_code, r.headers["retry-after"]) == (503, "3")  # rounded up, never early


def test_backpressure_wrapped_by_a_ray_task_is_still_503() -> None:
    """A deployment that calls another deployment re-raises its BackPressureError wrapped."""
    inner = BackPressureError(num_queued_requests=1, max_queued_requests=1)
    task_error = RayTaskError("call", "Traceback ...", inner)  # type: ignore[no-untyped-call]
    wrapped = task_error.as_instanceof_cause()  # type: ignore[no-untyped-call]
    err = from_exception(wrapped)
    assert (err.status, err.code, err.headers()) == (503, "SERVICE_UNAVAILABLE", {"Retry-After": "1"})


def test_an_unexpected_error_stays_a_json_500(tmp_path: Path) -> None:
    r = _app_raising(RuntimeError("bug"), tmp_path).post("/boom")
    assert r.status_code == 500
    assert r.json()["code"] == "INTERNAL_ERROR"
    assert "retry-after" not in r.headers


def test_every_api_route_maps_errors_itself() -> None:
    from serve.routes.app import ROUTERS

    routes = [r for router in ROUTERS for r in router.routes]
    assert routes and all(isinstance(r, EngramRoute) for r in routes)
