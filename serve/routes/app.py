"""The FastAPI app: every resource's routes, the error handlers and the metrics middleware."""
from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.admission import AdmissionGate, SheddingMiddleware
from serve.config import RouterConfig
from serve.errors import ApiError
from serve.metrics import observe
from serve.quotas import RateLimiter
from serve.responses import ERROR_STATUSES, ErrorBody
from serve.routes import (
    agents,
    capabilities,
    console,
    graph,
    health,
    keys,
    memories,
    namespaces,
    sessions,
    transfer,
    webhooks,
)
from serve.routes.errors import error_response, validation_error
from serve.routes.health import VERSION
from serve.routes.mcp import MCPEndpoint, mount_mcp
from serve.service import MemoryService
from serve.traffic import TrafficWindow
from serve.traffic_board import LocalTraffic, RayTraffic
from shards.control.base import ControlStore
from shards.webhooks.base import WebhookStore

# Included in this order: the first route whose path and method match answers, so where two
# paths overlap the order decides.
ROUTERS = (health.router, capabilities.router, memories.router, graph.router, sessions.router,
           agents.router, namespaces.router, keys.router, transfer.router, webhooks.router,
           console.router)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    err = validation_error(exc.errors(), located=True)
    return JSONResponse(err.body(), status_code=err.status)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code in (404, 405):
        # A method this path does not serve is a route we do not serve (DESIGN §6): 404.
        body = {"error": f"route not found: {request.method} {request.url.path}",
                "code": "ROUTE_NOT_FOUND"}
        return JSONResponse(body, status_code=404)
    body = {"error": str(exc.detail), "code": "INVALID_REQUEST"}
    return JSONResponse(body, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, exc)


class ObserveMiddleware:
    """Request metrics per route (and the console's live figures: serve/traffic.py), and a
    JSON error for anything raised past the handlers (e.g. from Serve itself). A plain ASGI
    middleware: Starlette's BaseHTTPMiddleware runs every request through an extra task and
    a memory stream."""

    def __init__(self, app: Any, window: TrafficWindow) -> None:
        self.app = app
        self.window = window

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            if started:  # the answer is on its way: nothing better to send
                raise
            response = error_response(Request(scope), exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            route = scope.get("route")
            seconds = time.perf_counter() - start
            observe(getattr(route, "path", "unmatched"), scope["method"], status, seconds)
            self.window.record(status, seconds)


PROBES = ("/health", "/metrics")  # answer without a key, and never with an error body


def describe_errors(api: FastAPI) -> None:
    """Every operation's error answers in the OpenAPI, in one place: Dakera's error body at
    each status the API answers with one. FastAPI's own 422 goes (bad input is a 400 here),
    and so does its default 200 where a route answers 201 instead."""
    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(title=api.title, version=api.version, routes=api.routes)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                declared = responses.get("200", {}).get("content", {}).get("application/json", {})
                if "200" in responses and not declared.get("schema") and any(
                        code.startswith("2") and code != "200" for code in responses):
                    del responses["200"]
                if path.startswith(PROBES):
                    continue
                for status, description in ERROR_STATUSES.items():
                    responses.setdefault(str(status), {"description": description, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def create_app(svc: MemoryService, store: ControlStore, rate_limiter: RateLimiter | None = None,
               webhook_store: WebhookStore | None = None,
               traffic: LocalTraffic | RayTraffic | None = None) -> FastAPI:
    """A FastAPI app bound to one service; each router replica builds its own.
    rate_limiter: the replica's (RouterDeployment keeps its share of the traffic).
    webhook_store: the subscriptions (None: the webhook routes answer 503).
    traffic: where the live figures meet (None: this process's own, serve/traffic_board.py)."""
    traffic = traffic or LocalTraffic(TrafficWindow())
    shedding = svc.cfg.router if svc is not None else RouterConfig()  # None: tests of errors only
    mcp = MCPEndpoint()
    api = FastAPI(title="Engram", version=VERSION, docs_url="/docs", redoc_url=None,
                  lifespan=lambda _: mcp.running())
    api.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    api.add_exception_handler(Exception, _unexpected)
    # The last added is outermost: shed requests are observed too.
    api.add_middleware(SheddingMiddleware, gate=AdmissionGate(
        shedding.max_in_flight, shedding.max_waiting, shedding.max_wait_s))
    api.add_middleware(ObserveMiddleware, window=traffic.window)
    for router in ROUTERS:
        api.include_router(router)
    mount_mcp(api, mcp)
    describe_errors(api)
    api.state.service = svc
    api.state.control = store
    api.state.webhooks = webhook_store
    api.state.traffic = traffic
    api.state.rate_limiter = rate_limiter or RateLimiter()
    api.state.started_at = time.time()
    return api
