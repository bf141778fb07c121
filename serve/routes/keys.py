"""API keys: create, list and delete, each within the reach of the caller's own key."""
from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve import render
from serve.auth import SCOPES, Principal, valid_grant
from serve.control_calls import control_call
from serve.errors import ApiError, bad_request, not_found
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import control, json_body, ok, parse, principal
from serve.schemas import KeyCreateBody
from shards.control.base import ApiKey

MAX_GRANTS = 100  # namespaces entries per key
MAX_GRANT_BYTES = 4096
router = APIRouter(route_class=EngramRoute)


@router.post("/admin/keys", openapi_extra=json_body(KeyCreateBody))
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
