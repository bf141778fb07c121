"""The webhook routes' request bodies and answers (for validation and the OpenAPI)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from serve.responses import Described
from shards.events import EVENT_TYPES
from shards.webhooks.base import PENDING, Delivery, Subscription

EventType = Literal["memory.stored", "memory.updated", "memory.forgotten", "session.ended", "namespace.deleted"]
ALL_EVENTS: list[EventType] = ["memory.stored", "memory.updated", "memory.forgotten", "session.ended",
                               "namespace.deleted"]
assert tuple(ALL_EVENTS) == EVENT_TYPES


class WebhookCreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(..., min_length=1, max_length=2048)
    # Namespace patterns, as key grants are written: exact names or `prefix*`.
    namespaces: list[StrictStr] = Field(..., min_length=1, max_length=100)
    events: list[EventType] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1, max_length=5)
    description: StrictStr | None = Field(None, max_length=1024)


class WebhookOut(Described):
    id: str
    url: str
    events: list[str]
    namespaces: list[str]
    description: str | None
    created_at: int
    key_id: str


class WebhookCreatedOut(WebhookOut):
    secret: str


class WebhooksOut(Described):
    webhooks: list[WebhookOut]
    total: int


class DeliveryOut(Described):
    id: int
    event_id: str
    event_type: str
    namespace: str
    state: str
    attempts: int
    last_status: str | None
    next_attempt_at: int | None
    created_at: int
    finished_at: int | None


class DeliveriesOut(Described):
    deliveries: list[DeliveryOut]


def webhook_json(s: Subscription) -> dict[str, Any]:
    return {"id": s.id, "url": s.url, "events": list(s.events), "namespaces": list(s.namespaces),
            "description": s.description, "created_at": int(s.created_at), "key_id": s.key_id}


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "event_id": d.event_id, "event_type": d.event_type, "namespace": d.namespace,
            "state": d.state, "attempts": d.attempts, "last_status": d.last_status,
            "next_attempt_at": int(d.next_attempt_at) if d.state == PENDING else None,
            "created_at": int(d.created_at),
            "finished_at": None if d.finished_at is None else int(d.finished_at)}
