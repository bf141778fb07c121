"""Engram's client: `Engram` (sync) and `AsyncEngram` over the Dakera memory API; httpx only."""
from __future__ import annotations

from engram._transport import VERSION as __version__
from engram.async_client import AsyncEngram
from engram.client import Engram
from engram.errors import (
    AuthenticationError,
    Conflict,
    EngramError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    Unavailable,
    ValidationError,
)

__all__ = [
    "AsyncEngram", "AuthenticationError", "Conflict", "Engram", "EngramError", "NotFound",
    "PayloadTooLarge", "PermissionDenied", "RateLimited", "ServerError", "TransportError",
    "Unavailable", "ValidationError", "__version__",
]
