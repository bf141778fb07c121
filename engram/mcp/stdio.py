"""`engram mcp`: the MCP server over stdio, for agents that start their tools as processes.

Every tool call goes to the service at `url` with `api_key`: one client for the process's
life, with the client's retries of 429/503 (they honour Retry-After). Nothing is printed to
stdout but the protocol; errors go to stderr."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.mcpserver import Context

from engram.async_client import AsyncEngram
from engram.mcp.server import build_server


async def run_stdio(url: str, api_key: str | None, default_namespace: str | None = None) -> None:
    async with AsyncEngram(url, api_key) as client:
        @asynccontextmanager
        async def the_client(_: Context) -> AsyncIterator[AsyncEngram]:
            yield client

        await build_server(the_client, default_namespace=default_namespace).run_stdio_async()
