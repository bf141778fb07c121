"""Load shedding in the Router: past what a replica can work on at once, a request waits a
short, bounded while for a slot, and is otherwise answered 503 with Retry-After at once.

Without it, every request offered past capacity queues (in the proxy, then in front of the
Embedder and the shards), and each one's latency grows with the queue until clients time
out: throughput stays, but every answer comes too late to matter. With it, the requests
that are accepted see about the latency they would see at capacity, and the rest learn at
once to come back later (measured: docs/benchmarks.md, "Overload").

Health probes and /metrics are never shed: an overloaded replica must not look dead to
the orchestrator, nor blind to the operator.
"""
from __future__ import annotations

import asyncio
import collections
import json
from typing import Any

from serve import metrics

# /mcp: each tool call it makes is an API request of its own, gated as any other.
NEVER_SHED = ("/health", "/metrics", "/docs", "/openapi.json", "/mcp")
RETRY_AFTER_S = 1
SHED_BODY = json.dumps({
    "error": "the service is at capacity; retry after the time Retry-After gives",
    "code": "SERVICE_UNAVAILABLE",
}).encode()


class AdmissionGate:
    """At most `max_in_flight` requests at work; up to `max_waiting` more wait, each at
    most `max_wait_s`, first come first served; the rest are shed."""

    def __init__(self, max_in_flight: int, max_waiting: int, max_wait_s: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def enter(self) -> bool:
        """Take a slot (True), or answer that the request is shed (False)."""
        if self.in_flight < self.max_in_flight and not self._waiters:
            self._take()
            return True
        if len(self._waiters) >= self.max_waiting or self.max_wait_s <= 0:
            return False
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        metrics.waiting(len(self._waiters))
        try:
            await asyncio.wait_for(asyncio.shield(slot), self.max_wait_s)
            return True  # leave() handed its slot over: in_flight already counts this one
        except asyncio.TimeoutError:
            if slot.done() and not slot.cancelled():
                return True  # handed over just as the wait ran out
            slot.cancel()
            return False
        except BaseException:
            if slot.done() and not slot.cancelled():
                self.leave()  # handed a slot, then cancelled: give it on
            else:
                slot.cancel()
            raise
        finally:
            if slot in self._waiters:
                self._waiters.remove(slot)
            metrics.waiting(len(self._waiters))

    def leave(self) -> None:
        """Free a slot: the longest waiter still waiting gets it."""
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)  # the slot passes on: in_flight stays
                metrics.waiting(len(self._waiters))
                return
        self.in_flight -= 1
        metrics.in_flight(self.in_flight)

    def _take(self) -> None:
        self.in_flight += 1
        metrics.in_flight(self.in_flight)


class SheddingMiddleware:
    """The gate around every request but the NEVER_SHED paths (a plain ASGI middleware)."""

    def __init__(self, app: Any, gate: AdmissionGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(NEVER_SHED):
            await self.app(scope, receive, send)
            return
        if not await self.gate.enter():
            metrics.rejected("overload")
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
                (b"content-length", str(len(SHED_BODY)).encode())]})
            await send({"type": "http.response.body", "body": SHED_BODY})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()
