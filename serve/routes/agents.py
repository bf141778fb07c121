"""Agents (Dakera's name for a namespace): create, list, and an agent's memories, sessions, stats."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from serve.errors import bad_request
from serve.responses import AgentCreatedOut, AgentOut, AgentStatsOut, MemoryOut, SessionOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import MAX_OFFSET, json_body, ok, parse, principal, service
from serve.schemas import AgentCreateBody

router = APIRouter(route_class=EngramRoute)


@router.post("/v1/agents", openapi_extra=json_body(AgentCreateBody), responses=answers(AgentCreatedOut, 200, 201))
async def agent_create(request: Request) -> JSONResponse:
    p = await principal(request)
    body = await parse(request, AgentCreateBody)
    svc = service(request)
    ns = svc.namespace_of(body.agent_id, None)
    p.require(ns, "write")
    out, created = await svc.create_agent(ns, body.metadata)
    return ok(out, 201 if created else 200)


@router.get("/v1/agents", responses=answers(list[AgentOut]))
async def agents_list(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("read")
    infos = await service(request).namespaces(p.scope)
    return ok([{"agent_id": n.name, "memory_count": n.memory_count, "session_count": n.session_count,
                "active_sessions": n.active_session_count, "vector_count": n.memory_count}
               for n in infos])


async def _agent(request: Request, agent_id: str, needed: str) -> str:
    ns = service(request).namespace_of(agent_id, None)
    (await principal(request)).require(ns, needed)
    return ns


@router.get("/v1/agents/{agent_id}/memories", responses=answers(list[MemoryOut]))
async def agent_memories(request: Request, agent_id: str, memory_type: str | None = None,
                         limit: int = Query(50, ge=1), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                         include_derived: bool | None = None,
                         content_preview_chars: int | None = Query(None, ge=1, le=10_000)) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    if memory_type is not None and memory_type not in ("episodic", "semantic", "procedural", "working"):
        raise bad_request("memory_type", "one of episodic, semantic, procedural, working")
    return ok(await service(request).listing(ns, memory_type, limit, offset, content_preview_chars))


@router.get("/v1/agents/{agent_id}/sessions", responses=answers(list[SessionOut]))
async def agent_sessions(request: Request, agent_id: str, active_only: bool = False,
                         limit: int = Query(100, ge=1), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    return ok(await service(request).list_sessions(await principal(request), ns, active_only, limit, offset))


@router.get("/v1/agents/{agent_id}/stats", responses=answers(AgentStatsOut))
async def agent_stats(request: Request, agent_id: str) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    return ok(await service(request).agent_stats(ns))
