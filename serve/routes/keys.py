"""API keys: create, list and delete, each within the reach of the caller's own key."""
from __future__ import annotations

import time
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve import render
from serve.auth import SCOPES, Principal, valid_grant
from serve.control_calls import control_call
from serve.errors import ApiError, bad_request, not_found
from serve.responses import Done, KeyCreatedOut, KeyOut, KeysOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import control, json_body, ok, parse, principal
from serve.schemas import KeyCreateBody, KeyLimitsBody, KeyUpdateBody
from shards.control.base import ApiKey, KeyLimits

MAX_GRANTS = 100  # namespaces entries per key
MAX_GRANT_BYTES = 4096
router = APIRouter(route_class=EngramRoute)


def _check_grants(p: Principal, namespaces: list[str] | None) -> None:
    if len(namespaces or []) > MAX_GRANTS:
        raise bad_request("namespaces", f"at most {MAX_GRANTS} entries")
    for i, grant in enumerate(namespaces or []):
        if not valid_grant(grant) or len(grant.encode()) > MAX_GRANT_BYTES:
            raise bad_request(f"namespaces[{i}]", "an exact name or a prefix ending in one '*'")
    if not p.covers_grants(namespaces):
        raise ApiError(403, "NAMESPACE_ACCESS_DENIED",
                       "a key can only grant namespaces its creator's own grants cover",
                       field="namespaces")


def _limits(p: Principal, body: KeyLimitsBody | None) -> KeyLimits:
    """The limits asked for, none looser than the caller's own: a limited key cannot mint
    or loosen a key to escape its limits."""
    asked = KeyLimits() if body is None else KeyLimits(**body.model_dump())
    return asked.within(p.key.limits)


@router.post("/admin/keys", openapi_extra=json_body(KeyCreateBody), responses=answers(KeyCreatedOut, 201))
async def key_create(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    body = await parse(request, KeyCreateBody)
    _check_grants(p, body.namespaces)
    if body.scope == "super_admin" and p.key.scope != "super_admin":
        raise ApiError(403, "INSUFFICIENT_SCOPE", "only a super_admin key can create super_admin keys")
    expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86_400
    if p.key.expires_at is not None:  # a key outlives neither its creator's expiry
        expires = p.key.expires_at if expires is None else min(expires, p.key.expires_at)
    store = control(request)
    key, secret = await control_call(store, store.create_key, body.name, body.scope,
                                     body.namespaces, expires, p.key.key_id, None, None,
                                     _limits(p, body.limits))
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


@router.get("/admin/keys", responses=answers(KeysOut))
async def keys_list(request: Request) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    store = control(request)
    keys = [render.key_json(k) for k in await control_call(store, store.keys) if _manageable(p, k)]
    return ok({"keys": keys, "total": len(keys)})


async def _managed_key(request: Request, p: Principal, key_id: str) -> ApiKey:
    """The key the path names, if the caller may manage it (else a 404: keys outside the
    caller's reach do not exist for it); never the root key."""
    store = control(request)
    try:
        key = await control_call(store, store.get_key, key_id)
    except Exception:
        raise not_found("api_key", key_id) from None
    if not _manageable(p, key):
        raise not_found("api_key", key_id)
    if key.key_id == "root":
        raise bad_request("key_id", "the root key comes from ENGRAM_ROOT_API_KEY; change it there")
    return key


@router.patch("/admin/keys/{key_id}", openapi_extra=json_body(KeyUpdateBody), responses=answers(KeyOut))
async def key_update(request: Request, key_id: str) -> JSONResponse:
    """Rename, re-grant or re-limit a key (Dakera's update_key sends name and namespaces)."""
    p = await principal(request)
    p.require_level("admin")
    key = await _managed_key(request, p, key_id)
    body = await parse(request, KeyUpdateBody)
    changes: dict[str, object] = {}
    if "name" in body.model_fields_set:
        if body.name is None:
            raise bad_request("name", "a key keeps a name: send a string")
        changes["name"] = body.name
    if "namespaces" in body.model_fields_set:
        _check_grants(p, body.namespaces)
        changes["namespaces"] = None if body.namespaces is None else tuple(body.namespaces)
    if "limits" in body.model_fields_set:
        changes["limits"] = _limits(p, body.limits)
    store = control(request)
    updated = await control_call(store, store.update_key, replace(key, **changes))  # type: ignore[arg-type]
    return ok(render.key_json(updated))


@router.delete("/admin/keys/{key_id}", responses=answers(Done))
async def key_delete(request: Request, key_id: str) -> JSONResponse:
    p = await principal(request)
    p.require_level("admin")
    key = await _managed_key(request, p, key_id)
    store = control(request)
    await control_call(store, store.delete_key, key.key_id)
    return ok({"success": True, "message": f"key {key_id} deleted"})
