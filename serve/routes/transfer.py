"""A namespace's copy as data, for `engram export` and `engram import` (engram/transfer.py):
the export of a resharding move (its head: the namespace row, sessions, entities with their
document frequencies, idempotency keys; then its memories, each with its vector and entity
links), read from a namespace that stays live, and written into a new namespace through the
move's destination steps (import_head, import_memories, activate; abort: discard), under
the exported namespace's own name. Admin keys only.

Rows travel as JSON: tuples as lists, bytes (the float32 vectors) as {"b64": ...}, so an
export re-imported and exported again is the same, byte for byte."""
from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from serve.errors import bad_request
from serve.responses import (
    ExportHeadOut,
    ExportPageOut,
    ImportAbortedOut,
    ImportedOut,
    ImportFinishedOut,
    ImportStepOut,
    answers,
)
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import admin_namespace, json_body, ok, read_body
from serve.schemas import ImportFinishBody, ImportHeadBody, ImportRowsBody
from serve import jsonbody

router = APIRouter(route_class=EngramRoute)
MAX_PAGE = 1000  # memories per export page or import call


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            return base64.b64decode(value["b64"], validate=True)
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(from_json(v) for v in value)
    return value


async def _field(request: Request, name: str) -> Any:
    body = jsonbody.decode(await read_body(request))
    if not isinstance(body, dict) or name not in body:
        raise bad_request(name, "required")
    return body[name]


@router.get("/admin/namespaces/{namespace:path}/export/head", responses=answers(ExportHeadOut))
async def export_head(request: Request, namespace: str) -> JSONResponse:
    svc, ns = await admin_namespace(request, namespace)
    return ok({"head": to_json(await svc.shard(ns).dump_head(ns))})


@router.get("/admin/namespaces/{namespace:path}/export/memories", responses=answers(ExportPageOut))
async def export_memories(request: Request, namespace: str, after: int = Query(0, ge=0),
                          limit: int = Query(200, ge=1, le=MAX_PAGE)) -> JSONResponse:
    svc, ns = await admin_namespace(request, namespace)
    rows, cursor = await svc.shard(ns).dump_memories(ns, after, limit)
    return ok({"rows": to_json(rows), "next": None if cursor < 0 else cursor})


@router.post("/admin/namespaces/{namespace:path}/import/head", openapi_extra=json_body(ImportHeadBody),
             responses=answers(ImportStepOut))
async def import_head(request: Request, namespace: str) -> JSONResponse:
    """Begin the copy into a namespace that does not exist yet (a live one is refused, 409)."""
    svc, ns = await admin_namespace(request, namespace)
    head = from_json(await _field(request, "head"))
    if not isinstance(head, dict) or not {"name", "namespace", "sessions", "entities", "idempotency"} <= set(head):
        raise bad_request("head", "not the head of an engram export")
    if head["name"] != ns:
        # Its sessions keep their ids, which a shard holds once: a copy beside the original
        # could collide with it, or not, depending on where the two names hash.
        raise bad_request("namespace", f"an export is imported under its own name ({head['name']})")
    await svc.shard(ns).import_head(head)
    return ok({"namespace": ns})


def _check_row(row: Any, at: int, dim: int) -> None:
    """An exported memory as the record stores take it: (id, content, memory_type, importance,
    tags, metadata, session_id, created_at, updated_at, event_time, expires_at, access_count,
    last_accessed_at, vector, entity links)."""
    def fail(why: str) -> None:
        raise bad_request(f"rows[{at}]", why)

    if not isinstance(row, tuple) or len(row) != 15:
        fail("not an exported memory (15 fields)")
    texts = (row[0], row[1], row[2], row[4], row[5])
    if not all(isinstance(t, str) for t in texts) or not (row[6] is None or isinstance(row[6], str)):
        fail("id, content, memory_type, tags, metadata and session_id must be text")
    numbers = (row[3], row[7], row[8], row[9], row[11])
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers):
        fail("importance, times and access_count must be numbers")
    vector = row[13]
    if not isinstance(vector, bytes) or not vector or len(vector) % (4 * dim):
        fail(f"vector must be float32 vectors of this service's dimension ({dim})")
    if not isinstance(row[14], tuple) or not all(isinstance(link, tuple) and len(link) == 3
                                                 for link in row[14]):
        fail("entity links must be (key, value, score) triples")


@router.post("/admin/namespaces/{namespace:path}/import/memories", openapi_extra=json_body(ImportRowsBody),
             responses=answers(ImportedOut))
async def import_memories(request: Request, namespace: str) -> JSONResponse:
    svc, ns = await admin_namespace(request, namespace)
    rows = from_json(await _field(request, "rows"))
    if not isinstance(rows, tuple) or len(rows) > MAX_PAGE:
        raise bad_request("rows", f"a list of at most {MAX_PAGE} exported memories")
    dim = await svc.dimension()
    for at, row in enumerate(rows):
        _check_row(row, at, dim)
    return ok({"imported": await svc.shard(ns).import_memories(ns, rows)})


@router.post("/admin/namespaces/{namespace:path}/import/abort", responses=answers(ImportAbortedOut))
async def import_abort(request: Request, namespace: str) -> JSONResponse:
    """Drop an import that will not be finished (nothing of it was ever visible)."""
    svc, ns = await admin_namespace(request, namespace)
    return ok({"namespace": ns, "dropped": await svc.shard(ns).discard(ns)})


@router.post("/admin/namespaces/{namespace:path}/import/finish", openapi_extra=json_body(ImportFinishBody),
             responses=answers(ImportFinishedOut))
async def import_finish(request: Request, namespace: str) -> JSONResponse:
    """Serve the copy, once it holds as many memories as the export did (else 409)."""
    svc, ns = await admin_namespace(request, namespace)
    expected = await _field(request, "memories")
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
        raise bad_request("memories", "the number of memories exported")
    await svc.shard(ns).activate(ns, expected)
    return ok({"namespace": ns, "memories": expected})
