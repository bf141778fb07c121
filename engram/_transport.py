"""Sending a Call: headers, bounded retries on 429/503 honouring Retry-After, error mapping."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import httpx

from engram._routes import Call
from engram.errors import TransportError, from_response, parse_retry_after

VERSION = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:3300"
# Only answers that say "not now" are retried: any other failure repeats on a retry, and a
# non-idempotent call that failed half-way must not run twice.
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # in all, the first one included
    max_wait: float = 5.0  # a larger Retry-After is cut to this
    backoff: float = 0.25  # first wait when the answer has no Retry-After; doubles each time

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when this answer is final."""
        if response.status_code not in RETRY_STATUSES or attempt + 1 >= self.attempts:
            return None
        after = parse_retry_after(response.headers.get("retry-after"))
        return min(self.backoff * 2 ** attempt if after is None else after, self.max_wait)


def headers(api_key: str | None) -> dict[str, str]:
    key = api_key or os.environ.get("ENGRAM_API_KEY") or os.environ.get("ENGRAM_ROOT_API_KEY")
    out = {"User-Agent": f"engram-py/{VERSION}", "Accept": "application/json"}
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


def _request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    extra = {"Idempotency-Key": call.idempotency_key} if call.idempotency_key else None
    return http.build_request(call.method, call.path, json=call.json, params=call.params,
                              headers=extra)


def _result(call: Call, response: httpx.Response) -> Any:
    if not response.is_success:
        raise from_response(response)
    if response.status_code == 204 or not response.content:
        return None
    try:
        body = response.json()
    except ValueError:  # e.g. /metrics, Prometheus text
        return response.text
    return call.parse(body)


def _transport_error(call: Call, exc: httpx.TransportError) -> TransportError:
    return TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}")


def pause(seconds: float) -> None:
    """The wait between retries: one name of our own, so that a test records the waits
    without replacing time.sleep for everything else in the process."""
    time.sleep(seconds)


async def pause_async(seconds: float) -> None:
    await asyncio.sleep(seconds)


def send(http: httpx.Client, call: Call, retry: RetryPolicy) -> Any:
    attempt = 0
    while True:
        try:
            response = http.send(_request(http, call))
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        wait = retry.delay(response, attempt)
        if wait is None:
            return _result(call, response)
        response.close()
        pause(wait)
        attempt += 1


async def send_async(http: httpx.AsyncClient, call: Call, retry: RetryPolicy) -> Any:
    attempt = 0
    while True:
        try:
            response = await http.send(_request(http, call))
        except httpx.TransportError as exc:
            raise _transport_error(call, exc) from exc
        wait = retry.delay(response, attempt)
        if wait is None:
            return _result(call, response)
        await response.aclose()
        await pause_async(wait)
        attempt += 1
