"""The knowledge graph: a memory's entities and the memories linked to it, and extraction."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from serve.responses import ExtractOut, KnowledgeGraphOut, MemoryEntitiesOut, MemoryGraphOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import json_body, ok, owned, parse, principal, service
from serve.schemas import ExtractBody, KnowledgeGraphBody

router = APIRouter(route_class=EngramRoute)


@router.post("/v1/knowledge/graph", openapi_extra=json_body(KnowledgeGraphBody), responses=answers(KnowledgeGraphOut))
async def knowledge_graph(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, KnowledgeGraphBody, "read")
    return ok(await svc.knowledge_graph(await principal(request), ns, body.memory_id, body.depth,
                                        body.min_similarity))


@router.get("/v1/memories/{memory_id:path}/graph", responses=answers(MemoryGraphOut))
async def memory_graph(request: Request, memory_id: str, depth: int = Query(1, ge=1, le=5)) -> JSONResponse:
    return ok(await service(request).memory_graph(await principal(request), memory_id, depth))


@router.get("/v1/memory/entities/{memory_id:path}", responses=answers(MemoryEntitiesOut))
async def memory_entities(request: Request, memory_id: str) -> JSONResponse:
    return ok(await service(request).memory_entities(await principal(request), memory_id))


@router.post("/v1/extract", openapi_extra=json_body(ExtractBody), responses=answers(ExtractOut))
async def extract(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("read")
    body = await parse(request, ExtractBody)
    return ok(service(request).extract(body.text))
