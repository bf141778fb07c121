"""Client errors: one tree, mapped from the server's answer at one boundary (`from_response`).

EngramError                  status, code, field, retriable, retry_after
├── TransportError           no answer: connection refused, timeout, dropped connection
├── ValidationError          400, 422: bad input; `field` names it
├── AuthenticationError      401: missing, unknown or expired API key
├── PermissionDenied         403: the key's scope or grants do not cover the request
├── NotFound                 404: memory, session, key or route
├── Conflict                 409
├── PayloadTooLarge          413: content, query or batch over a server limit
├── RateLimited              429: retriable, after `retry_after` seconds
└── ServerError              5xx
    └── Unavailable          503: busy or restarting; retriable, after `retry_after` seconds
"""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class EngramError(Exception):
    """Base of every error this client raises; `status` is None when no answer came."""

    retriable: bool = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None, retry_after: float | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        prefix = f"[{self.status}] {self.code or 'ERROR'}: " if self.status is not None else ""
        return prefix + self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields would be lost by Exception's default pickling (multiprocessing, Ray).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[EngramError], message: str, state: dict[str, Any]) -> EngramError:
    err = cls(message)
    err.__dict__.update(state)
    return err


class TransportError(EngramError):
    retriable = True


class ValidationError(EngramError):
    pass


class AuthenticationError(EngramError):
    pass


class PermissionDenied(EngramError):
    pass


class NotFound(EngramError):
    pass


class Conflict(EngramError):
    pass


class PayloadTooLarge(EngramError):
    pass


class RateLimited(EngramError):
    retriable = True


class ServerError(EngramError):
    pass


class Unavailable(ServerError):
    retriable = True


_BY_STATUS: dict[int, type[EngramError]] = {
    400: ValidationError, 422: ValidationError, 401: AuthenticationError,
    403: PermissionDenied, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    429: RateLimited, 503: Unavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None if unusable."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date without a zone is GMT (RFC 9110)
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def from_response(response: httpx.Response) -> EngramError:
    """The error for a non-2xx answer, from the body {"error", "code", "field"} when it has one."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("message") or f"HTTP {status}")
        code, field = body.get("code"), body.get("field")
    else:
        message, code, field = (str(body) if body else f"HTTP {status}"), None, None
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else EngramError)
    return cls(message, status=status, code=code if isinstance(code, str) else None,
               field=field if isinstance(field, str) else None,
               retry_after=parse_retry_after(response.headers.get("retry-after")), body=body)
