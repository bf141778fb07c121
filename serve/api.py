"""The HTTP API (FastAPI): auth, body parsing, routes of the Dakera memory API.

Every route reads `request.app.state.service` (a MemoryService) and `.control` (the key
store); `create_app` binds both, once per router replica.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve import jsonbody, render
from serve.auth import (
    SCOPES,
    Principal,
    authenticate,
    canonical_namespace,
    dakera_namespace,
    valid_grant,
)
from serve.control_calls import control_call
from serve.errors import ApiError, bad_request, from_exception, not_found, too_large
from serve.metrics import observe, render_metrics
from serve.schemas import (
    ExtractBody,
    KnowledgeGraphBody,
    Owned,
    AgentCreateBody,
    BatchForgetBody,
    BatchRecallBody,
    BatchStoreBody,
    ForgetBody,
    ImportanceBody,
    KeyCreateBody,
    RecallBody,
    SearchBody,
    SessionEndBody,
    SessionStartBody,
    StoreBody,
    UpdateBody,
)
from serve.service import MemoryService
from shards.control_store import ApiKey, ControlStore

VERSION = "0.1.0"
MAX_GRANTS = 100  # namespaces entries per key
MAX_GRANT_BYTES = 4096
M = TypeVar("M", bound=BaseModel)
O = TypeVar("O", bound=Owned)
log = logging.getLogger(__name__)


class EngramRoute(APIRoute):
    """A route that answers every error raised below it (shards, Ray, Serve) itself.

    Serve adds plain-text handlers for BackPressureError and DeploymentUnavailableError to
    the ingress app after `create_app`, and they would win over ours: a full Embedder or
    shard queue would answer a text 503 without Retry-After. Mapping here, before any app
    handler runs, keeps every such answer a Dakera JSON 503 with Retry-After."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, RequestValidationError, StarletteHTTPException):
                raise  # the app's own handlers answer these
            except Exception as exc:
                return _error_response(request, exc)

        return handle


router = APIRouter(route_class=EngramRoute)


# -- plumbing -------------------------------------------------------------------------------
def service(request: Request) -> MemoryService:
    svc: MemoryService = request.app.state.service
    return svc


def control(request: Request) -> ControlStore:
    store: ControlStore = request.app.state.control
    return store


async def principal(request: Request) -> Principal:
    store = control(request)
    return await control_call(store, authenticate, store, request.headers.get("authorization"))


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 once it passes `limits.max_body_bytes` (a body that says
    its length up front is refused before any of it is read)."""
    limit = service(request).cfg.limits.max_body_bytes
    refusal = f"over the limit of {limit} bytes: send fewer memories per batch"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large("body", f"{declared} bytes is {refusal}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("body", refusal)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse(request: Request, model: type[M]) -> M:
    data = jsonbody.decode(await read_body(request))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc.errors()) from None


async def owned(request: Request, model: type[O], needed: str) -> tuple[O, MemoryService, str]:
    """Authenticate, parse an agent-owned body, and check the key's grant on its namespace."""
    p = await principal(request)  # a bad key is a 401 whatever the body holds
    body = await parse(request, model)
    svc = service(request)
    ns = svc.namespace_of(body.agent_id, body.namespace)
    p.require(ns, needed)
    return body, svc, ns


MAX_OFFSET = 1_000_000_000  # past SQLite's 64-bit integers an offset fails in the store

_TYPE_TAGS = frozenset({"int", "float", "str", "bool", "list", "dict", "none", "json-or-python"})


def _validation_error(errors: Any, *, located: bool = False) -> ApiError:
    """The first error as a 400 naming its field. FastAPI's own errors (`located`) open
    their loc with where the value was ("query", "path"); a body field may be named `query`."""
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())][1 if located else 0:]
    # A field of several types adds the type it tried ("event_time.int"): not a field.
    loc = [p for p in loc if p not in _TYPE_TAGS and "[" not in p]
    field = ".".join(loc) or "body"
    for i, part in enumerate(loc):  # memories.3.content → memories[3].content
        if part.isdigit() and i:
            field = ".".join(loc[:i]) + f"[{part}]" + ("." + ".".join(loc[i + 1:]) if loc[i + 1:] else "")
            break
    return bad_request(field, first.get("msg", "invalid value"))


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    err = _validation_error(exc.errors(), located=True)
    return JSONResponse(err.body(), status_code=err.status)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code in (404, 405):
        # A method this path does not serve is a route we do not serve (DESIGN §6): 404.
        body = {"error": f"route not found: {request.method} {request.url.path}",
                "code": "ROUTE_NOT_FOUND"}
        return JSONResponse(body, status_code=404)
    body = {"error": str(exc.detail), "code": "INVALID_REQUEST"}
    return JSONResponse(body, status_code=exc.status_code)


def _error_response(request: Request, exc: BaseException) -> JSONResponse:
    err = from_exception(exc)
    if err.status == 503:
        # Overload or a restarting replica: expected, and a traceback per request would
        # flood the log exactly when the service is busiest.
        log.warning("request refused: %s", type(exc).__name__,
                    extra={"route": request.url.path, "status": err.status})
    elif err.status >= 500:
        log.error("request failed", exc_info=exc,
                  extra={"route": request.url.path, "status": err.status})
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers())


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return _error_response(request, exc)


class ObserveMiddleware:
    """Request metrics per route, and a JSON error for anything raised past the handlers
    (e.g. from Serve itself). A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs
    every request through an extra task and a memory stream."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_observed(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            if started:  # the answer is on its way: nothing better to send
                raise
            response = _error_response(Request(scope), exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            route = scope.get("route")
            observe(getattr(route, "path", "unmatched"), scope["method"], status, time.perf_counter() - start)


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


# -- health, metrics, capabilities, whoami ---------------------------------------------------
@router.get("/health")
async def health() -> dict[str, Any]:
    return {"status": "healthy", "version": VERSION}


@router.get("/health/live")
async def health_live(request: Request) -> dict[str, Any]:
    return {"alive": True, "version": VERSION, "starting": False,
            "uptime_seconds": int(time.time() - request.app.state.started_at)}


@router.get("/health/ready")
async def health_ready(request: Request) -> JSONResponse:
    try:
        stats = await service(request).ready()
    except Exception as exc:  # a shard is starting or restarting
        log.warning("not ready", exc_info=exc)
        return JSONResponse({"ready": False, "version": VERSION, "starting": True,
                             "reason": type(exc).__name__}, status_code=503,
                            headers={"Retry-After": "1"})
    return ok({"ready": True, "version": VERSION,
               "checks": {"storage": {"status": "ok", "shards": len(stats)}}})


@router.get("/metrics")
async def metrics() -> PlainTextResponse:
    """Open for Prometheus scrapers: it holds counts and latencies, never tenant data."""
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")


@router.get("/v1/ops/metrics")
async def ops_metrics(request: Request) -> PlainTextResponse:
    (await principal(request)).require_level("admin")  # Dakera's ops routes need an admin key
    return PlainTextResponse(render_metrics(), media_type="text/plain; version=0.0.4")


@router.get("/v1/capabilities")
async def capabilities(request: Request) -> dict[str, Any]:
    cfg = service(request).cfg
    model = render.model_name(cfg.embedder.model)
    aliases = [] if model == cfg.embedder.model else [cfg.embedder.model]
    return {
        "capabilities_version": 2, "server_version": f"engram-{VERSION}",
        "api_versions": ["v1"], "default_model": model,
        "models": [{"name": model, "aliases": aliases, "active": True,
                    "dimension": await service(request).dimension(), "modality": "text"}],
        "index_kinds": ["hnsw", "fulltext"], "distance_metrics": ["cosine"],
        "search_mode": "hybrid", "fulltext_language": "en",
        "auth": {"prefix_patterns": True, "sessions_by_agent": True, "key_update": False,
                 "max_grants": MAX_GRANTS, "max_grant_len": MAX_GRANT_BYTES},
        "naming": {"agent_namespace_prefix": "_dakera_agent_",
                   "agent_id_max_bytes": cfg.limits.max_namespace_bytes,
                   "namespace_max_bytes": cfg.limits.max_namespace_bytes},
        "sessions": {"idle_timeout_secs": int(cfg.sessions.idle_timeout_seconds),
                     "max_idle_timeout_secs": int(cfg.sessions.max_idle_timeout_seconds),
                     "touch": True, "ended_reason": True},
        "limits": {"max_content_bytes": cfg.limits.max_content_bytes,
                   "max_top_k": cfg.limits.max_top_k, "max_batch_items": cfg.limits.max_batch_items},
        "shards": cfg.shard_count,
    }


@router.get("/v1/auth/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    p = await principal(request)
    return {"key_id": p.key.key_id, "name": p.key.name, "scope": p.key.scope,
            "namespaces": None if p.key.namespaces is None else list(p.key.namespaces),
            "unrestricted": p.scope.everything, "expires_at": render._ts(p.key.expires_at),
            "grants_version": 1, "inert_namespaces": [], "auth_enabled": True}


# -- memories --------------------------------------------------------------------------------
@router.post("/v1/memory/store")
async def store(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, StoreBody, "write")
    stored, embed_ms, sessions = await svc.store(ns, [body], request.headers.get("idempotency-key"))
    out: dict[str, Any] = {"memory": stored[0], "embedding_time_ms": embed_ms}
    if sessions:
        out["session_state"] = "active" if sessions[0].active else "ended"
    return ok(out)


@router.post("/v1/memories/store/batch")
async def store_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchStoreBody, "write")
    stored, embed_ms, sessions = await svc.store(ns, body.memories, request.headers.get("idempotency-key"))
    return ok({
        "stored": [{"id": m["id"], "content": m["content"], "agent_id": m["agent_id"],
                    "tags": m["tags"], "importance": m["importance"], "created_at": m["created_at"],
                    "session_id": m["session_id"]} for m in stored],
        "stored_count": len(stored), "total_embedding_time_ms": embed_ms,
        "ended_sessions": [s.id for s in sessions if not s.active], "truncated": [], "warnings": [],
    })


@router.post("/v1/memory/recall")
async def recall(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, RecallBody, "read")
    return ok(await svc.recall(ns, body))


@router.post("/v1/memory/search")
async def search(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, SearchBody, "read")
    result = await svc.recall(ns, body, track_access=False)
    return ok({"memories": result["memories"], "total_found": result["total_found"]})


@router.post("/v1/memories/recall/batch")
async def recall_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchRecallBody, "read")
    flt = body.filter
    if body.min_importance is not None and flt.min_importance is None:
        flt = flt.model_copy(update={"min_importance": body.min_importance})
    return ok(await svc.batch_recall(ns, flt, body.limit))


@router.post("/v1/memory/forget")
async def forget(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, ForgetBody, "write")
    return ok(await svc.forget(ns, body.memory_ids))


@router.delete("/v1/memories/forget/batch")
async def forget_batch(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, BatchForgetBody, "write")
    return ok(await svc.batch_forget(ns, body.filter))


@router.get("/v1/memory/get/{memory_id:path}")
async def get_memory(request: Request, memory_id: str, agent_id: str | None = None) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).get(p, memory_id, agent_id))


@router.put("/v1/memory/update/{memory_id:path}")
async def update_memory(request: Request, memory_id: str, agent_id: str | None = None,
                        namespace: str | None = None) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    ns = svc.namespace_of(agent_id, namespace)
    p.require(ns, "write")
    body = await parse(request, UpdateBody)
    return ok(await svc.update(ns, memory_id, body))


@router.patch("/v1/memories/{memory_id:path}/importance")  # the SDK sends ids unencoded
async def patch_importance(request: Request, memory_id: str) -> JSONResponse:
    body, svc, ns = await owned(request, ImportanceBody, "write")
    return ok(await svc.update(ns, memory_id, UpdateBody(importance=body.importance)))


# -- knowledge graph -------------------------------------------------------------------------
@router.post("/v1/knowledge/graph")
async def knowledge_graph(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, KnowledgeGraphBody, "read")
    return ok(await svc.knowledge_graph(await principal(request), ns, body.memory_id, body.depth,
                                        body.min_similarity))


@router.get("/v1/memories/{memory_id:path}/graph")
async def memory_graph(request: Request, memory_id: str, depth: int = Query(1, ge=1, le=5)) -> JSONResponse:
    return ok(await service(request).memory_graph(await principal(request), memory_id, depth))


@router.get("/v1/memory/entities/{memory_id:path}")
async def memory_entities(request: Request, memory_id: str) -> JSONResponse:
    return ok(await service(request).memory_entities(await principal(request), memory_id))


@router.post("/v1/extract")
async def extract(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("read")
    body = await parse(request, ExtractBody)
    return ok(service(request).extract(body.text))


# -- sessions --------------------------------------------------------------------------------
@router.post("/v1/sessions/start")
async def session_start(request: Request) -> JSONResponse:
    body, svc, ns = await owned(request, SessionStartBody, "write")
    return ok(await svc.start_session(ns, body.metadata, body.idle_timeout_secs), 201)


@router.post("/v1/sessions/{session_id}/end")
async def session_end(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    body = await parse(request, SessionEndBody)
    return ok(await service(request).end_session(p, session_id, body.summary))


@router.post("/v1/sessions/{session_id}/touch")
async def session_touch(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).touch_session(p, session_id))


@router.get("/v1/sessions")
async def sessions_list(request: Request, agent_id: str | None = None, namespace: str | None = None,
                        active_only: bool = False, limit: int = Query(100, ge=1),
                        offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    ns = None if agent_id is None and namespace is None else svc.namespace_of(agent_id, namespace)
    return ok(await svc.list_sessions(p, ns, active_only, limit, offset))


@router.get("/v1/sessions/{session_id}")
async def session_get(request: Request, session_id: str) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    return ok(svc.session_json(await svc.locate_session(p, session_id, "read")))


@router.get("/v1/sessions/{session_id}/memories")
async def session_memories(request: Request, session_id: str, limit: int = Query(50, ge=1),
                           offset: int = Query(0, ge=0, le=MAX_OFFSET),
                           content_preview_chars: int | None = Query(None, ge=1, le=10_000)) -> JSONResponse:
    p = await principal(request)
    return ok(await service(request).session_memories(p, session_id, limit, offset,
                                                      content_preview_chars))


# -- agents ----------------------------------------------------------------------------------
@router.post("/v1/agents")
async def agent_create(request: Request) -> JSONResponse:
    p = await principal(request)
    body = await parse(request, AgentCreateBody)
    svc = service(request)
    ns = svc.namespace_of(body.agent_id, None)
    p.require(ns, "write")
    out, created = await svc.create_agent(ns, body.metadata)
    return ok(out, 201 if created else 200)


@router.get("/v1/agents")
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


@router.get("/v1/agents/{agent_id}/memories")
async def agent_memories(request: Request, agent_id: str, memory_type: str | None = None,
                         limit: int = Query(50, ge=1), offset: int = Query(0, ge=0, le=MAX_OFFSET),
                         include_derived: bool | None = None,
                         content_preview_chars: int | None = Query(None, ge=1, le=10_000)) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    if memory_type is not None and memory_type not in ("episodic", "semantic", "procedural", "working"):
        raise bad_request("memory_type", "one of episodic, semantic, procedural, working")
    return ok(await service(request).listing(ns, memory_type, limit, offset, content_preview_chars))


@router.get("/v1/agents/{agent_id}/sessions")
async def agent_sessions(request: Request, agent_id: str, active_only: bool = False,
                         limit: int = Query(100, ge=1), offset: int = Query(0, ge=0, le=MAX_OFFSET)) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    return ok(await service(request).list_sessions(await principal(request), ns, active_only, limit, offset))


@router.get("/v1/agents/{agent_id}/stats")
async def agent_stats(request: Request, agent_id: str) -> JSONResponse:
    ns = await _agent(request, agent_id, "read")
    return ok(await service(request).agent_stats(ns))


# -- namespaces ------------------------------------------------------------------------------
@router.get("/v1/namespaces")
async def namespaces_list(request: Request) -> JSONResponse:
    p = await principal(request)
    names = [dakera_namespace(n.name) for n in await service(request).namespaces(p.scope)]
    return ok({"namespaces": names, "kinds": {name: "agent" for name in names}})


@router.delete("/v1/namespaces/{namespace:path}")
async def namespace_delete(request: Request, namespace: str) -> JSONResponse:
    p = await principal(request)
    svc = service(request)
    ns = svc.check_namespace(canonical_namespace(namespace), "namespace")
    p.require(ns, "admin")
    return ok(await svc.drop_namespace(ns))


# -- keys ------------------------------------------------------------------------------------
@router.post("/admin/keys")
async def key_create(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    body = await parse(request, KeyCreateBody)
    if len(body.namespaces or []) > MAX_GRANTS:
        raise bad_request("namespaces", f"at most {MAX_GRANTS} entries")
    for i, grant in enumerate(body.namespaces or []):
        if not valid_grant(grant) or len(grant.encode()) > MAX_GRANT_BYTES:
            raise bad_request(f"namespaces[{i}]", "an exact name or a prefix ending in one '*'")
    if body.scope == "super_admin" and p.key.scope != "super_admin":
        raise ApiError(403, "INSUFFICIENT_SCOPE", "only a super_admin key can create super_admin keys")
    if not p.covers_grants(body.namespaces):
        raise ApiError(403, "NAMESPACE_ACCESS_DENIED",
                       "a key can only grant namespaces its creator's own grants cover",
                       field="namespaces")
    expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86_400
    if p.key.expires_at is not None:  # a key outlives neither its creator's expiry
        expires = p.key.expires_at if expires is None else min(expires, p.key.expires_at)
    store = control(request)
    key, secret = await control_call(store, store.create_key, body.name, body.scope,
                                     body.namespaces, expires, p.key.key_id)
    out = render.key_json(key)
    out.update({"key": secret, "warning": "Save this key now: it is shown once and stored hashed."})
    return ok(out, 201)


def _manageable(p: Principal, key: ApiKey) -> bool:
    """A key the caller may see and delete: no higher in scope than its own, reaching no
    namespace the caller's grants do not (a key granted nothing belongs to no tenant: only
    an unrestricted caller manages it)."""
    if SCOPES[key.scope] > p.level:
        return False
    if key.namespaces is not None and not key.namespaces:
        return p.scope.everything
    return p.covers_grants(None if key.namespaces is None else list(key.namespaces))


@router.get("/admin/keys")
async def keys_list(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    store = control(request)
    keys = [render.key_json(k) for k in await control_call(store, store.keys) if _manageable(p, k)]
    return ok({"keys": keys, "total": len(keys)})


@router.delete("/admin/keys/{key_id}")
async def key_delete(request: Request, key_id: str) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    store = control(request)
    try:
        key = await control_call(store, store.get_key, key_id)
    except Exception:
        raise not_found("api_key", key_id) from None
    if not _manageable(p, key):
        raise not_found("api_key", key_id)  # keys outside the caller's reach do not exist for it
    if key.key_id == "root":
        raise bad_request("key_id", "the root key comes from ENGRAM_ROOT_API_KEY; change it there")
    await control_call(store, store.delete_key, key_id)
    return ok({"success": True, "message": f"key {key_id} deleted"})


def create_app(svc: MemoryService, store: ControlStore) -> FastAPI:
    """A FastAPI app bound to one service; each router replica builds its own."""
    api = FastAPI(title="Engram", version=VERSION, docs_url="/docs", redoc_url=None)
    api.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    api.add_exception_handler(RequestValidationError, _request_validation)  # type: ignore[arg-type]
    api.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    api.add_exception_handler(Exception, _unexpected)
    api.add_middleware(ObserveMiddleware)
    api.include_router(router)
    api.state.service = svc
    api.state.control = store
    api.state.started_at = time.time()
    return api
