"""`/mcp`: Engram's MCP tools (engram/mcp/server.py) over streamable HTTP, on the API's port.

Stateless, with JSON answers: no MCP session lives in a replica, so any Router replica
answers any request and nothing has to stick to one (the SDK's stateful mode would pin a
client to the replica that saw its `initialize`). A tool call is an API request made
in-process, through this same app (httpx's ASGITransport), with the caller's key: the
grants, the key's limits, load shedding and the error bodies are the API's, and its metrics
count it under the route it called. The `/mcp` request itself is authenticated here first
(401 as the API answers it), and is not itself gated or rate limited: its calls are.

Only POST is served. GET would open a server-to-client event stream that stateless mode
never writes to; the protocol lets a server answer 405 instead, and so does this one.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from engram.async_client import AsyncEngram
from engram.mcp.server import build_server
from serve.auth import authenticate
from serve.control_calls import control_call
from serve.routes.plumbing import control

PATH = "/mcp"
IN_PROCESS_URL = "http://engram.in-process"  # never resolved: the transport is the app itself

# DNS-rebinding protection (the SDK's Host and Origin checks) guards servers that trust
# whoever can reach them; every call here needs a bearer key, which a browser never sends on
# its own, and the Host an ingress forwards is the operator's to choose.
NO_HOST_CHECKS = TransportSecuritySettings(enable_dns_rebinding_protection=False)


class MCPEndpoint:
    """The ASGI endpoint at /mcp (a class instance: Starlette hands it the raw request)."""

    def __init__(self) -> None:
        self.server = build_server(self._client_for)
        self.server.streamable_http_app(stateless_http=True, json_response=True,
                                        transport_security=NO_HOST_CHECKS)
        self._manager = self.server.session_manager
        self._running = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's task group, for the app's lifespan (Serve runs it in each replica)."""
        async with self._manager.run():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    @asynccontextmanager
    async def _client_for(self, ctx: Context) -> AsyncIterator[AsyncEngram]:
        request = ctx.request_context.request
        assert isinstance(request, Request), "tools run inside an HTTP request here"
        secret = request.headers["authorization"].partition(" ")[2].strip()  # checked in __call__
        transport = httpx.ASGITransport(app=request.app)
        # One attempt: an overloaded service's 503 goes back to the agent as it is, rather
        # than being retried inside a request that already holds a connection.
        async with AsyncEngram(IN_PROCESS_URL, api_key=secret, transport=transport,
                               max_attempts=1) as client:
            yield client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] != "POST":
            answer = JSONResponse(
                {"error": "the MCP endpoint takes JSON-RPC messages by POST; it keeps no event "
                          "stream (stateless)", "code": "METHOD_NOT_ALLOWED"},
                status_code=405, headers={"Allow": "POST"})
            await answer(scope, receive, send)
            return
        request = Request(scope, receive)
        store = control(request)
        await control_call(store, authenticate, store, request.headers.get("authorization"))  # 401 with the API's body
        if self._running:
            await self._manager.handle_request(scope, receive, send)
            return
        # No lifespan ran (an app driven without one, e.g. through ASGITransport in a test):
        # a manager for this request alone, which stateless mode allows.
        once = StreamableHTTPSessionManager(app=self._manager.app, json_response=True, stateless=True,
                                            security_settings=NO_HOST_CHECKS)
        async with once.run():
            await once.handle_request(scope, receive, send)


def mount_mcp(api: FastAPI, endpoint: MCPEndpoint) -> None:
    """Serve `endpoint` at /mcp; the app's lifespan must enter `endpoint.running()`."""
    # A class instance, not a function: Starlette passes it the raw ASGI call (its typing
    # names only the function form).
    api.add_route(PATH, endpoint, include_in_schema=False)  # type: ignore[arg-type]
