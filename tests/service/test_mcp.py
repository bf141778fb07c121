"""Engram's MCP server, driven by the MCP SDK's own client against the running service:
streamable HTTP at /mcp (both protocol eras the SDK speaks) and stdio through `engram mcp`.
Every tool works with a key that holds the namespace; a key without it gets a tool error
naming the refusal, and sees none of that namespace anywhere."""
from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.builders import Engram

TOOLS = {"store_memory", "recall_memories", "get_memory", "forget_memory", "update_importance",
         "start_session", "end_session", "list_sessions", "memory_graph", "list_namespaces"}


@asynccontextmanager
async def over_http(engram: Engram, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"},
                                  timeout=httpx2.Timeout(60)) as http:
        async with Client(streamable_http_client(f"{engram.url}/mcp", http_client=http), mode=mode) as client:
            yield client


@asynccontextmanager
async def over_stdio(engram: Engram, key: str) -> AsyncIterator[Client]:
    # The child gets the SDK's short default environment plus HOME: no ENGRAM_ROOT_API_KEY
    # to fall back on, so the key given is the only one it has.
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "engram.cli", "mcp", "--url", engram.url, "--api-key", key],
        env={"HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": os.getcwd()})
    async with Client(params) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def every_tool(client: Client, ns: str) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():  # something an agent can act on
        assert tool.description and len(tool.description) > 30, tool.name
        assert tool.input_schema["type"] == "object"
    assert "importance" in tools["store_memory"].input_schema["properties"]

    session = await call(client, "start_session", namespace=ns, metadata={"topic": "travel"})
    stored = await call(client, "store_memory", namespace=ns, session_id=session["id"],
                        content="Alice flies to Lisbon on 3 March; the tickets went to alice@example.com",
                        importance=0.8, tags=["travel"])
    other = await call(client, "store_memory", namespace=ns,
                       content="Send the hotel invoice to alice@example.com")
    answer = await call(client, "recall_memories", namespace=ns, query="when does Alice fly to Lisbon")
    [best, *_] = answer["results"]
    assert best["id"] == stored["id"]
    assert {"relevance", "importance"} <= set(best["score_breakdown"]), best["score_breakdown"]
    assert (await call(client, "get_memory", namespace=ns, memory_id=stored["id"]))["content"] == stored["content"]
    updated = await call(client, "update_importance", namespace=ns, memory_id=stored["id"], importance=0.2)
    assert updated["importance"] == pytest.approx(0.2)
    graph = await call(client, "memory_graph", memory_id=stored["id"])
    assert other["id"] in {n["memory_id"] for n in graph["nodes"]}, graph  # they share the e-mail
    sessions = (await call(client, "list_sessions", namespace=ns))["sessions"]
    assert [s["id"] for s in sessions] == [session["id"]], (sessions, session)
    assert (await call(client, "end_session", session_id=session["id"], summary="booked"))["ended_at"]
    assert ns in (await call(client, "list_namespaces"))["namespaces"]
    assert (await call(client, "forget_memory", namespace=ns, memory_ids=[stored["id"]]))["deleted_count"] == 1
    assert "404" in await refused(client, "get_memory", namespace=ns, memory_id=stored["id"])


async def nothing_of(client: Client, ns: str, memory_id: str) -> None:
    """`ns` is not this key's: every way in is refused, and no listing names it."""
    assert "403" in await refused(client, "recall_memories", namespace=ns, query="Lisbon")
    assert "403" in await refused(client, "store_memory", namespace=ns, content="planted")
    assert "403" in await refused(client, "forget_memory", namespace=ns, memory_ids=[memory_id])
    assert "403" in await refused(client, "start_session", namespace=ns)
    by_id: list[tuple[str, dict[str, Any]]] = [
        ("get_memory", {"namespace": ns, "memory_id": memory_id}),
        ("memory_graph", {"memory_id": memory_id}),
        ("update_importance", {"namespace": ns, "memory_id": memory_id, "importance": 1.0})]
    for tool, arguments in by_id:
        text = await refused(client, tool, **arguments)
        assert ("403" in text or "404" in text) and "Lisbon" not in text, (tool, text)
    assert ns not in (await call(client, "list_namespaces"))["namespaces"]
    assert (await call(client, "list_sessions", namespace="elsewhere"))["sessions"] == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026 protocol, and the 2025 handshake
async def test_every_tool_over_streamable_http(engram: Engram, ns: str, mode: str) -> None:
    key = engram.create_key("write", [ns])
    async with over_http(engram, key, mode) as client:
        await every_tool(client, ns)


async def test_every_tool_over_stdio_through_engram_mcp(engram: Engram, ns: str) -> None:
    key = engram.create_key("write", [ns])
    async with over_stdio(engram, key) as client:
        await every_tool(client, ns)


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_key_without_the_namespace_gets_nothing_of_it(engram: Engram, ns: str, transport: str) -> None:
    with engram.http() as root:
        r = root.post("/v1/memory/store", json={"agent_id": ns, "content": "Bob flies to Lisbon on Friday"})
        r.raise_for_status()
    memory_id = r.json()["memory"]["id"]
    elsewhere = engram.create_key("write", ["elsewhere"])
    opened = over_http(engram, elsewhere) if transport == "http" else over_stdio(engram, elsewhere)
    async with opened as client:
        await nothing_of(client, ns, memory_id)
    with engram.http() as root:  # and nothing was written or forgotten
        assert root.get(f"/v1/memory/get/{memory_id}", params={"agent_id": ns}).status_code == 200
        assert len(root.get(f"/v1/agents/{ns}/memories").json()) == 1


def test_the_endpoint_wants_a_key_and_takes_only_post(engram: Engram) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with httpx.Client(base_url=engram.url, timeout=30) as c:
        missing = c.post("/mcp", json=message, headers={"Accept": "application/json, text/event-stream"})
        assert missing.status_code == 401 and missing.json()["code"] == "AUTHENTICATION_REQUIRED"
        wrong = c.post("/mcp", json=message, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_API_KEY"
        stream = c.get("/mcp", headers={"Authorization": f"Bearer {engram.root_key}"})
        assert stream.status_code == 405 and stream.headers["allow"] == "POST"
