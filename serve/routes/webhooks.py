"""Webhook subscriptions: created, listed, read, deleted, and their recent deliveries. A key
sees and manages the subscriptions it created (a super_admin key: every one); a subscription
never receives more than its creating key may read (serve/webhooks/dispatcher.py)."""
from __future__ import annotations

import asyncio
import re
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engram.webhooks import new_secret
from serve.auth import Principal, valid_grant
from serve.errors import ApiError, bad_request, not_found
from serve.responses import Done, answers
from serve.routes.errors import EngramRoute
from serve.routes.plumbing import json_body, ok, parse, principal, service
from serve.webhooks.destinations import check_url
from serve.webhooks.schemas import (
    DeliveriesOut,
    WebhookCreateBody,
    WebhookCreatedOut,
    WebhookOut,
    WebhooksOut,
    delivery_json,
    webhook_json,
)
from shards.errors import NotFound
from shards.webhooks.base import Subscription, WebhookStore

MAX_PATTERN_BYTES = 4096
WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{32}")
router = APIRouter(route_class=EngramRoute)


def store(request: Request) -> WebhookStore:
    webhooks: WebhookStore | None = request.app.state.webhooks
    if webhooks is None:  # an app built without one (tests of other things)
        raise ApiError(503, "SERVICE_UNAVAILABLE", "webhooks are not set up in this app", retry_after=60)
    return webhooks


async def _own(request: Request, p: Principal, webhook_id: str) -> Subscription:
    """The subscription the path names, if the caller's key made it (or is super_admin);
    else a 404: another key's subscriptions do not exist for it."""
    if not WEBHOOK_ID.fullmatch(webhook_id):  # no store is asked about what no id looks like
        raise not_found("webhook", webhook_id)
    try:
        sub = await asyncio.to_thread(store(request).get_subscription, webhook_id)
    except NotFound:
        raise not_found("webhook", webhook_id) from None
    if sub.key_id != p.key.key_id and p.key.scope != "super_admin":
        raise not_found("webhook", webhook_id)
    return sub


@router.post("/v1/webhooks", openapi_extra=json_body(WebhookCreateBody), responses=answers(WebhookCreatedOut, 201))
async def webhook_create(request: Request) -> JSONResponse:
    """Subscribe a URL to events in namespaces the caller's key may read. The answer holds the
    signing secret, shown this once."""
    p = await principal(request)
    body = await parse(request, WebhookCreateBody)
    cfg = service(request).cfg.webhooks
    check_url(body.url, cfg)
    if body.description is not None and "\x00" in body.description:  # PostgreSQL text holds none
        raise bad_request("description", "must not contain NUL characters")
    for i, pattern in enumerate(body.namespaces):
        if not valid_grant(pattern) or len(pattern.encode()) > MAX_PATTERN_BYTES or "\x00" in pattern:
            raise bad_request(f"namespaces[{i}]", "an exact name or a prefix ending in one '*'")
    if not p.covers_grants(body.namespaces):
        raise ApiError(403, "NAMESPACE_ACCESS_DENIED",
                       "a webhook can only watch namespaces its key's grants cover", field="namespaces")
    webhooks = store(request)
    held = await asyncio.to_thread(webhooks.subscriptions, p.key.key_id)
    if len(held) >= cfg.max_per_key:
        raise ApiError(409, "WEBHOOK_LIMIT", f"this key holds {len(held)} webhooks, the most "
                       f"webhooks.max_per_key allows: delete one first", field="url")
    sub = Subscription(id=f"wh_{uuid.uuid4().hex}", key_id=p.key.key_id, url=body.url,
                       events=tuple(dict.fromkeys(body.events)), namespaces=tuple(body.namespaces),
                       secret=new_secret(), created_at=time.time(), description=body.description)
    await asyncio.to_thread(webhooks.create_subscription, sub)
    return ok({**webhook_json(sub), "secret": sub.secret,
               "warning": "Save this secret now: deliveries are signed with it, and it is shown once."}, 201)


@router.get("/v1/webhooks", responses=answers(WebhooksOut))
async def webhook_list(request: Request) -> JSONResponse:
    p = await principal(request)
    mine = None if p.key.scope == "super_admin" else p.key.key_id
    subs = await asyncio.to_thread(store(request).subscriptions, mine)
    return ok({"webhooks": [webhook_json(s) for s in subs], "total": len(subs)})


@router.get("/v1/webhooks/{webhook_id}", responses=answers(WebhookOut))
async def webhook_get(request: Request, webhook_id: str) -> JSONResponse:
    p = await principal(request)
    return ok(webhook_json(await _own(request, p, webhook_id)))


@router.delete("/v1/webhooks/{webhook_id}", responses=answers(Done))
async def webhook_delete(request: Request, webhook_id: str) -> JSONResponse:
    """Unsubscribe: deliveries still owed to it are dropped."""
    p = await principal(request)
    sub = await _own(request, p, webhook_id)
    try:
        await asyncio.to_thread(store(request).delete_subscription, sub.id)
    except NotFound:
        raise not_found("webhook", webhook_id) from None
    return ok({"success": True, "message": f"webhook {webhook_id} deleted"})


@router.get("/v1/webhooks/{webhook_id}/deliveries", responses=answers(DeliveriesOut))
async def webhook_deliveries(request: Request, webhook_id: str, limit: int = 50) -> JSONResponse:
    """The most recent deliveries first: state (pending, delivered, failed), attempts and
    the last answer (a status code, or the error)."""
    p = await principal(request)
    if not 1 <= limit <= 1000:
        raise bad_request("limit", "between 1 and 1000")
    sub = await _own(request, p, webhook_id)
    found = await asyncio.to_thread(store(request).deliveries, sub.id, limit)
    return ok({"deliveries": [delivery_json(d) for d in found]})
