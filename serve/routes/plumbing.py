"""What every route does: find the service and the key store, authenticate, read and parse
the body, check the key's grant on the namespace, answer JSON."""
from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from serve import jsonbody
from serve.auth import Principal, authenticate, canonical_namespace
from serve.control_calls import control_call
from serve.errors import too_large
from serve.quotas import RateLimiter
from serve.routes.errors import validation_error
from serve.schemas import Owned
from serve.service import MemoryService
from shards.control.base import ApiKey, ControlStore

M = TypeVar("M", bound=BaseModel)
O = TypeVar("O", bound=Owned)


def service(request: Request) -> MemoryService:
    svc: MemoryService = request.app.state.service
    return svc


def control(request: Request) -> ControlStore:
    store: ControlStore = request.app.state.control
    return store


async def principal(request: Request) -> Principal:
    """The caller's key, checked, and one request of its rate taken (429 past it)."""
    store = control(request)
    p = await control_call(store, authenticate, store, request.headers.get("authorization"))
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.admit(p.key)
    request.state.principal = p
    return p


def caller(request: Request) -> ApiKey:
    """The key `principal` authenticated for this request."""
    p: Principal = request.state.principal
    return p.key


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
        raise validation_error(exc.errors()) from None


async def owned(request: Request, model: type[O], needed: str) -> tuple[O, MemoryService, str]:
    """Authenticate, parse an agent-owned body, and check the key's grant on its namespace."""
    p = await principal(request)  # a bad key is a 401 whatever the body holds
    body = await parse(request, model)
    svc = service(request)
    ns = svc.namespace_of(body.agent_id, body.namespace)
    p.require(ns, needed)
    return body, svc, ns


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's JSON body for the OpenAPI (routes parse bodies themselves, to answer Dakera's
    error bodies): the model's schema with its definitions inlined, so that it stands alone
    where the OpenAPI document puts it."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


async def admin_namespace(request: Request, namespace: str) -> tuple[MemoryService, str]:
    """Authenticate, and check the key's admin grant on the namespace a path names."""
    p = await principal(request)
    svc = service(request)
    ns = svc.check_namespace(canonical_namespace(namespace), "namespace")
    p.require(ns, "admin")
    return svc, ns


MAX_OFFSET = 1_000_000_000  # past SQLite's 64-bit integers an offset fails in the store


def ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)
