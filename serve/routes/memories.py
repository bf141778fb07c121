"""Memories: store (one or a batch), recall and search, forget, get, update, importance."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve.responses import (
    BatchStoreOut,
    ForgetOut,
    MemoriesPage,
    MemoryOut,
    RecallOut,
    StoreOut,
    answers,
)
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import caller, json_body, ok, owned, parse, principal, service
from serve.schemas import (
    BatchForgetBody,
    BatchRecallBody,
    BatchStoreBody,
    ForgetBody,
    ImportanceBody,
    RecallBody,
    SearchBody,
    StoreBody,
    UpdateBody,
)

router = APIRouter(route_class=EngramRoute)


@router.post("/v1/memory/store", openapi_extra=json_body(StoreBody), responses=answers(StoreOut))
async def store(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, StoreBody, "write")
    stored, embed_ms, sessions = await svc.store(ns, [body], request.headers.get("idempotency-key"),
                                                 caller(request))
    out: dict[str, Any] = {"memory": stored[0], "embedding_time_ms": embed_ms}
    if sessions:
        out["session_state"] = "active" if sessions[0].active else "ended"
    return ok(out)


@router.post("/v1/memories/store/batch", openapi_extra=json_body(BatchStoreBody), responses=answers(BatchStoreOut))
async def store_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchStoreBody, "write")
    stored, embed_ms, sessions = await svc.store(ns, body.memories, request.headers.get("idempotency-key"),
                                                 caller(request))
    return ok({
        "stored": [{"id": m["id"], "content": m["content"], "agent_id": m["agent_id"],
                    "tags": m["tags"], "importance": m["importance"], "created_at": m["created_at"],
                    "session_id": m["session_id"]} for m in stored],
        "stored_count": len(stored), "total_embedding_time_ms": embed_ms,
        "ended_sessions": [s.id for s in sessions if not s.active], "truncated": [], "warnings": [],
    })


@router.post("/v1/memory/recall", openapi_extra=json_body(RecallBody), responses=answers(RecallOut))
async def recall(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, RecallBody, "read")
    return ok(await svc.recall(ns, body))


@router.post("/v1/memory/search", openapi_extra=json_body(SearchBody), responses=answers(RecallOut))
async def search(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, SearchBody, "read")
    result = await svc.recall(ns, body, track_access=False)
    return ok({"memories": result["memories"], "total_found": result["total_found"]})


@router.post("/v1/memories/recall/batch", openapi_extra=json_body(BatchRecallBody), responses=answers(MemoriesPage))
async def recall_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchRecallBody, "read")
    flt = body.filter
    if body.min_importance is not None and flt.min_importance is None:
        flt = flt.model_copy(update={"min_importance": body.min_importance})
    return ok(await svc.batch_recall(ns, flt, body.limit))


@router.post("/v1/memory/forget", openapi_extra=json_body(ForgetBody), responses=answers(ForgetOut))
async def forget(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, ForgetBody, "write")
    return ok(await svc.forget(ns, body.memory_ids))


@router.delete("/v1/memories/forget/batch", openapi_extra=json_body(BatchForgetBody), responses=answers(ForgetOut))
async def forget_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchForgetBody, "write")
    return ok(await svc.batch_forget(ns, body.filter))


@router.get("/v1/memory/get/{memory_id:path}", responses=answers(MemoryOut))
async def get_memory(request: Request, memory_id: str, agent_id: str | None = None) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).get(p, memory_id, agent_id))


@router.put("/v1/memory/update/{memory_id:path}", openapi_extra=json_body(UpdateBody), responses=answers(MemoryOut))
async def update_memory(request: Request, memory_id: str, agent_id: str | None = None,
                        namespace: str | None = None) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    ns = svc.namespace_of(agent_id, namespace)
    p.require(ns, "write")
    body = await parse(request, UpdateBody)
    return ok(await svc.update(ns, memory_id, body, p.key))


@router.patch("/v1/memories/{memory_id:path}/importance", openapi_extra=json_body(ImportanceBody), responses=answers(MemoryOut))  # the SDK sends ids unencoded
async def patch_importance(request: Request, memory_id: str) -> JSONResponse:
    body, svc, ns = await owned(request, ImportanceBody, "write")
    return ok(await svc.update(ns, memory_id, UpdateBody(importance=body.importance)))
