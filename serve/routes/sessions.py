"""Sessions: start, end, touch, list, and a session's memories."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from serve.responses import SessionMemoriesOut, SessionOut, SessionWrapped, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import MAX_OFFSET, json_body, ok, owned, parse, principal, service
from serve.schemas import SessionEndBody, SessionStartBody

router = APIRouter(route_class=EngramRoute)


@router.post("/v1/sessions/start", openapi_extra=json_body(SessionStartBody), responses=answers(SessionWrapped, 201))
async def session_start(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, SessionStartBody, "write")
    return ok(await svc.start_session(ns, body.metadata, body.idle_timeout_secs), 201)


@router.post("/v1/sessions/{session_id}/end", openapi_extra=json_body(SessionEndBody), responses=answers(SessionWrapped))
async def session_end(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    body = await parse(request, SessionEndBody)
    return ok(await service(request).end_session(p, session_id, body.summary))


@router.post("/v1/sessions/{session_id}/touch", responses=answers(SessionWrapped))
async def session_touch(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).touch_session(p, session_id))


@router.get("/v1/sessions", responses=answers(list[SessionOut]))
async def sessions_list(request: Request, agent_id: str | None = None, namespace: str | None = None,
                        active_only: bool = False, limit: int = Query(100, ge=1),
                        offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    ns = None if agent_id is None and namespace is None else svc.namespace_of(agent_id, namespace)
    return ok(await svc.list_sessions(p, ns, active_only, limit, offset))


@router.get("/v1/sessions/{session_id}", responses=answers(SessionOut))
async def session_get(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    return ok(svc.session_json(await svc.locate_session(p, session_id, "read")))


@router.get("/v1/sessions/{session_id}/memories", responses=answers(SessionMemoriesOut))
async def session_memories(request: Request, session_id: str, limit: int = Query(50, ge=1),
                           offset: int = Query(0, ge=0, le=MAX_OFFSET),
                           content_preview_chars: int | None = Query(None, ge=1, le=10_000)) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).session_memories(p, session_id, limit, offset,
                                                      content_preview_chars))
