"""Engram's MCP server: the tools an agent remembers with, over Engram's own client.

One definition serves both transports. `engram mcp` (stdio) calls a service over HTTP with
the key it was started with; the service's `/mcp` endpoint (serve/mcp_endpoint.py) calls its
own API in-process with each request's key. Either way a tool is one API call made with the
caller's key, so the grants, limits and errors are the API's own: nothing here decides who
may read what.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from engram.async_client import AsyncEngram
from engram.errors import EngramError

# How a tool gets a client for the request it serves (stdio: the one client; /mcp: one per
# request, holding that request's key).
ClientFor = Callable[[Context], AbstractAsyncContextManager[AsyncEngram]]

INSTRUCTIONS = """\
Engram is long-term memory. Store what you learn about the user and the task as short,
self-contained facts (one fact per memory), with an importance from 0 to 1. Before answering,
recall with a question in plain words: results come best first, each with its score and the
parts of it (relevance, importance, recency) and the channels that found it. Group a
conversation's memories under a session (start_session, then pass its id when storing).
Memories live in a namespace: an agent id or a user id, as your deployment names them.
"""

MemoryType = Literal["episodic", "semantic", "procedural", "working"]
Namespace = Annotated[str | None, Field(
    description="The namespace (an agent or user id) the memory belongs to. "
                "Optional where the server was started with a default namespace.")]
MemoryId = Annotated[str, Field(description="A memory's id, as store_memory or recall_memories gave it.")]
SessionId = Annotated[str, Field(description="A session's id, as start_session gave it.")]


def _tool_error(exc: EngramError) -> ToolError:
    """The API's error, in words an agent can act on (what failed, and which field)."""
    where = f" (field: {exc.field})" if exc.field else ""
    hint = ""
    if exc.retry_after is not None:
        hint = f"; retry in {exc.retry_after:g} s"
    elif exc.status == 403:
        hint = "; this key may not do that in that namespace"
    return ToolError(f"{exc}{where}{hint}")


def build_server(client_for: ClientFor, *, default_namespace: str | None = None,
                 name: str = "engram") -> MCPServer:
    """An MCP server whose tools call Engram through `client_for`."""
    server = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    def namespace_or_default(namespace: str | None) -> str:
        chosen = namespace or default_namespace
        if not chosen:
            raise ToolError("namespace is required: name the agent or user the memory belongs "
                            "to (or start `engram mcp` with --namespace)")
        return chosen

    async def call(ctx: Context, do: Callable[[AsyncEngram], Any]) -> Any:
        async with client_for(ctx) as client:
            try:
                return await do(client)
            except EngramError as exc:
                raise _tool_error(exc) from exc

    @server.tool()
    async def store_memory(
        ctx: Context,
        content: Annotated[str, Field(description="The fact to remember, self-contained: "
                                      "'Alice is allergic to peanuts', not 'she is allergic'.")],
        namespace: Namespace = None,
        importance: Annotated[float | None, Field(ge=0.0, le=1.0, description=(
            "How much it matters, 0 to 1 (default 0.5): important memories rank higher "
            "and fade slower."))] = None,
        tags: Annotated[list[str] | None, Field(description="Labels to filter recalls by.")] = None,
        memory_type: Annotated[MemoryType | None, Field(description=(
            "episodic (an event, the default), semantic (a lasting fact), procedural (how to "
            "do something) or working (scratch; fades fastest)."))] = None,
        session_id: Annotated[str | None, Field(description="The session it was learned in.")] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Any JSON to keep beside it.")] = None,
    ) -> dict[str, Any]:
        """Remember one fact. Returns the stored memory with its id."""
        ns = namespace_or_default(namespace)
        memory: dict[str, Any] = await call(ctx, lambda c: c.memory.store(
            content, ns, importance=importance, tags=tags, memory_type=memory_type,
            session_id=session_id, metadata=metadata))
        return memory

    @server.tool()
    async def recall_memories(
        ctx: Context,
        query: Annotated[str, Field(description="What you want to know, in plain words.")],
        namespace: Namespace = None,
        top_k: Annotated[int, Field(ge=1, le=100, description="How many memories at most.")] = 5,
        tags: Annotated[list[str] | None, Field(description="Only memories with all these tags.")] = None,
        session_id: Annotated[str | None, Field(description="Only this session's memories.")] = None,
        min_importance: Annotated[float | None, Field(ge=0.0, le=1.0,
                                                      description="Only memories at least this important.")] = None,
    ) -> dict[str, Any]:
        """The memories most relevant to a query, best first. Each has `score` and
        `score_breakdown`: the relevance, importance and recency it was ranked by, and the
        channels (vector, keyword, graph, session) that found it."""
        ns = namespace_or_default(namespace)
        filters = {k: v for k, v in {"tags": tags, "session_id": session_id,
                                     "min_importance": min_importance}.items() if v is not None}
        answer: dict[str, Any] = await call(ctx, lambda c: c.memory.recall(query, ns, top_k, **filters))
        return answer

    @server.tool()
    async def get_memory(ctx: Context, memory_id: MemoryId, namespace: Namespace = None) -> dict[str, Any]:
        """One memory by id, with its importance, tags, session and access counts."""
        ns = namespace_or_default(namespace)
        memory: dict[str, Any] = await call(ctx, lambda c: c.memory.get(memory_id, ns))
        return memory

    @server.tool()
    async def forget_memory(
        ctx: Context,
        memory_ids: Annotated[list[str], Field(min_length=1, description="The ids to forget.")],
        namespace: Namespace = None,
    ) -> dict[str, Any]:
        """Forget memories for good: they are gone from every index. Returns how many were."""
        ns = namespace_or_default(namespace)
        answer: dict[str, Any] = await call(ctx, lambda c: c.memory.forget(memory_ids, ns))
        return answer

    @server.tool()
    async def update_importance(
        ctx: Context,
        memory_id: MemoryId,
        importance: Annotated[float, Field(ge=0.0, le=1.0, description="The new importance, 0 to 1.")],
        namespace: Namespace = None,
    ) -> dict[str, Any]:
        """Raise or lower how much a memory matters (it ranks and fades by it)."""
        ns = namespace_or_default(namespace)
        memory: dict[str, Any] = await call(ctx, lambda c: c.memory.set_importance(memory_id, ns, importance))
        return memory

    @server.tool()
    async def start_session(
        ctx: Context,
        namespace: Namespace = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Any JSON about the session.")] = None,
    ) -> dict[str, Any]:
        """Open a session (a conversation, a task): pass its id when storing, and recall finds
        a strong hit's neighbours in the same session."""
        ns = namespace_or_default(namespace)
        session: dict[str, Any] = await call(ctx, lambda c: c.sessions.start(ns, metadata))
        return session

    @server.tool()
    async def end_session(
        ctx: Context,
        session_id: SessionId,
        summary: Annotated[str | None, Field(description="What the session came to.")] = None,
    ) -> dict[str, Any]:
        """Close a session once its conversation or task is over, with a summary if you have one."""
        session: dict[str, Any] = await call(ctx, lambda c: c.sessions.end(session_id, summary))
        return session

    @server.tool()
    async def list_sessions(
        ctx: Context,
        namespace: Namespace = None,
        active_only: Annotated[bool, Field(description="Only sessions not ended yet.")] = False,
        limit: Annotated[int, Field(ge=1, le=1000, description="How many at most.")] = 50,
    ) -> dict[str, Any]:
        """A namespace's sessions, newest first."""
        ns = namespace_or_default(namespace)
        sessions: list[dict[str, Any]] = await call(ctx, lambda c: c.sessions.list(
            ns, active_only=active_only or None, limit=limit))
        return {"sessions": sessions}

    @server.tool()
    async def memory_graph(
        ctx: Context,
        memory_id: MemoryId,
        depth: Annotated[int, Field(ge=1, le=5, description="How many hops out to follow.")] = 1,
    ) -> dict[str, Any]:
        """The memories linked to this one through the entities they share (people,
        organisations, order numbers, e-mails, dates...), and those links."""
        graph: dict[str, Any] = await call(ctx, lambda c: c.memory.graph(memory_id, depth))
        return graph

    @server.tool()
    async def list_namespaces(ctx: Context) -> dict[str, Any]:
        """The namespaces this key may read that hold memories."""
        names: list[str] = await call(ctx, lambda c: c.namespaces())
        return {"namespaces": names}

    return server
