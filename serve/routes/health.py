"""Health and metrics: liveness, readiness, Prometheus (open, and the admin-only ops route),
and the live request figures of the whole service (admin-only, serve/traffic.py)."""
from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from serve.errors import ApiError
from serve.metrics import render_metrics
from serve.responses import PROMETHEUS_TEXT, HealthOut, LiveOut, ReadyOut, TrafficOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import ok, principal, service
from serve.traffic_board import MAX_WINDOW_S

VERSION = "0.1.0"
log = logging.getLogger(__name__)
router = APIRouter(route_class=EngramRoute)


@router.get("/health", responses=answers(HealthOut))
async def health() -> dict[str, Any]:
    return {"status": "healthy", "version": VERSION}


@router.get("/health/live", responses=answers(LiveOut))
async def health_live(request: Request) -> dict[str, Any]:
    return {"alive": True, "version": VERSION, "starting": False,
            "uptime_seconds": int(time.time() - request.app.state.started_at)}


@router.get("/health/ready", responses={**answers(ReadyOut), 503: {
    "model": ReadyOut, "description": "Not ready yet (a shard is starting): Retry-After"}})
async def health_ready(request: Request) -> JSONResponse:
    try:
        stats = await service(request).ready()
    except Exception as exc:  # a shard is starting or restarting
        log.warning("not ready", exc_info=exc)
        return JSONResponse({"ready": False, "version": VERSION, "starting": True,
                             "reason": type(exc).__name__}, status_code=503,
                            headers={"Retry-After": "1"})
    return ok({"ready": True, "version": VERSION,
               "checks": {"storage": {"status": "ok", "shards": len(stats)}}})


@router.get("/metrics", responses=PROMETHEUS_TEXT)
async def metrics() -> PlainTextResponse:
    """Open for Prometheus scrapers: it holds counts and latencies, never tenant data."""
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")


@router.get("/v1/ops/metrics", responses=PROMETHEUS_TEXT)
async def ops_metrics(request: Request) -> PlainTextResponse:
    (await principal(request)).require_level("admin")  # Dakera's ops routes need an admin key
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")


@router.get("/v1/ops/traffic", responses=answers(TrafficOut))
async def ops_traffic(request: Request, seconds: int = Query(120, ge=10, le=MAX_WINDOW_S)) -> JSONResponse:
    """Requests per second, their classes and latency quantiles, over every Router replica,
    for the last `seconds` (the console's live figures). They are every tenant's traffic
    together: an operator's, an admin key that every namespace is granted to."""
    p = await principal(request)
    p.require_level("admin")
    if not p.scope.everything:
        raise ApiError(403, "INSUFFICIENT_SCOPE", "the live figures are the whole service's, every "
                       "tenant's traffic: they need an admin key granted every namespace")
    return ok(await request.app.state.traffic.series(seconds))
