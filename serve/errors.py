"""API errors and the one table that maps every error to an HTTP status and Dakera code.

Error bodies are Dakera's: {"error": message, "code": CODE, "field"?, "resource"?}.
"""
from __future__ import annotations

import math
from typing import Any

from shards.errors import (
    Conflict,
    InvalidInput,
    LayoutMismatch,
    NotFound,
    QuotaExceeded,
    ShardError,
    StorageUnavailable,
)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 resource: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(status, code, message, field, resource, retry_after)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.resource = resource
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.field:
            out["field"] = self.field
            out["details"] = f"field: {self.field}"
        if self.resource:
            out["resource"] = self.resource
        return out

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, "INVALID_REQUEST", f"{field}: {message}", field=field)


def too_large(field: str, message: str) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"{field}: {message}", field=field)


# Dakera has a 404 code for some resources; memories and sessions have none of their own.
_NOT_FOUND_CODES = {"namespace": "NAMESPACE_NOT_FOUND", "agent": "NAMESPACE_NOT_FOUND",
                    "api_key": "API_KEY_NOT_FOUND"}


def not_found_code(resource: str | None) -> str:
    return _NOT_FOUND_CODES.get(resource or "", "NOT_FOUND")


def not_found(resource: str, ident: str) -> ApiError:
    return ApiError(404, not_found_code(resource), f"{resource} not found: {ident}",
                    resource=resource)


# Shard errors → (status, code). Retriable storage failures become 503 with Retry-After.
_SHARD_ERRORS: list[tuple[type[ShardError], int, str]] = [
    (NotFound, 404, "NOT_FOUND"),
    (Conflict, 409, "CONFLICT"),
    (InvalidInput, 400, "INVALID_REQUEST"),
    (QuotaExceeded, 429, "QUOTA_EXCEEDED"),
    (StorageUnavailable, 503, "SERVICE_UNAVAILABLE"),
    (LayoutMismatch, 503, "SERVICE_UNAVAILABLE"),
]


# Ray and Serve errors that mean "busy, or a replica is restarting": a retry soon succeeds.
# BackPressureError is a downstream deployment's queue at max_queued_requests. Matched by
# class name anywhere in the MRO, so Ray's RayTaskError(X) wrappers and subclasses match too.
_TRANSIENT_RAY_ERRORS = frozenset({
    "BackPressureError", "DeploymentUnavailableError", "RequestCancelledError",
    "RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
    "NodeDiedError", "ObjectLostError", "OutOfMemoryError",
})
DEFAULT_RETRY_AFTER_S = 1
# A quota frees up only when memories are forgotten or an operator raises a limit: an SDK
# that retries every 429 by itself should not come back within the second.
QUOTA_RETRY_AFTER_S = 60


def unavailable(exc: BaseException) -> ApiError:
    """503 with Retry-After: Serve's own hint when it has one (backpressure_config), else 1 s."""
    hint = getattr(exc, "retry_after_s", None)
    retry = math.ceil(hint) if isinstance(hint, (int, float)) and hint > 0 else DEFAULT_RETRY_AFTER_S
    return ApiError(503, "SERVICE_UNAVAILABLE",
                    "the service is busy or a replica is restarting; retry shortly",
                    retry_after=retry)


def from_exception(exc: BaseException) -> ApiError:
    """Map anything raised below the API (shards, Ray, Serve) to an ApiError."""
    if isinstance(exc, ApiError):
        return exc
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(exc, ShardError):
        return from_exception(cause)
    for cls, status, code in _SHARD_ERRORS:
        if isinstance(exc, cls):
            field = getattr(exc, "field", None)
            resource = field if status == 404 else None
            if resource in ("id", "memory_ids"):
                resource = "memory"
            elif resource == "session_id":
                resource = "session"
            if status == 404:
                code = not_found_code(resource)
            # A quota frees up only when memories go or a limit is raised (serve/quotas.py).
            retry = 1 if status == 503 else QUOTA_RETRY_AFTER_S if status == 429 else None
            return ApiError(status, code, str(getattr(exc, "message", exc)), field=field,
                            resource=resource, retry_after=retry)
    if any(cls.__name__ in _TRANSIENT_RAY_ERRORS for cls in type(exc).__mro__):
        return unavailable(exc)
    name = type(exc).__name__
    return ApiError(500, "INTERNAL_ERROR", f"internal error ({name}); see the server log")


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: overload, a restarting replica, an index server that is down (what
    the API answers with 503 and Retry-After)."""
    return from_exception(exc).status == 503
