"""How a route answers errors: `EngramRoute` maps whatever is raised below it, and a
validation error becomes a 400 that names its field."""
from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.errors import ApiError, bad_request, from_exception

log = logging.getLogger(__name__)


class EngramRoute(APIRoute):
    """A route that answers every error raised below it (shards, Ray, Serve) itself.

    Serve adds plain-text handlers for BackPressureError and DeploymentUnavailableError to
    the ingress app after `create_app`, and they would win over ours: a full Embedder or
    shard queue would answer a text 503 without Retry-After. Mapping here, before any app
    handler runs, keeps every such answer a Dakera JSON 503 with Retry-After."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, RequestValidationError, StarletteHTTPException):
                raise  # the app's own handlers answer these
            except Exception as exc:
                return error_response(request, exc)

        return handle


_TYPE_TAGS = frozenset({"int", "float", "str", "bool", "list", "dict", "none", "json-or-python"})


def validation_error(errors: Any, *, located: bool = False) -> ApiError:
    """The first error as a 400 naming its field. FastAPI's own errors (`located`) open
    their loc with where the value was ("query", "path"); a body field may be named `query`."""
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())][1 if located else 0:]
    # A field of several types adds the type it tried ("event_time.int"): not a field.
    loc = [p for p in loc if p not in _TYPE_TAGS and "[" not in p]
    field = ".".join(loc) or "body"
    for i, part in enumerate(loc):  # memories.3.content → memories[3].content
        if part.isdigit() and i:
            field = ".".join(loc[:i]) + f"[{part}]" + ("." + ".".join(loc[i + 1:]) if loc[i + 1:] else "")
            break
    return bad_request(field, first.get("msg", "invalid value"))


def error_response(request: Request, exc: BaseException) -> JSONResponse:
    err = from_exception(exc)
    if err.status == 503:
        # Overload or a restarting replica: expected, and a traceback per request would
        # flood the log exactly when the service is busiest.
        log.warning("request refused: %s", type(exc).__name__,
                    extra={"route": request.url.path, "status": err.status})
    elif err.status >= 500:
        log.error("request failed", exc_info=exc,
                  extra={"route": request.url.path, "status": err.status})
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())
