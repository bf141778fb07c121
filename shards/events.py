"""Change events, as a shard's record store writes them to its outbox: in the same
transaction as the change, so a change committed always has its event, and an event never
describes a change that rolled back. serve/webhooks/ delivers them to subscriptions.

What each event's `data` holds:
- memory.stored: the memory as stored (id, namespace, content, type, importance, tags,
  metadata, session id, created and event time).
- memory.updated: the same, as the update left it (PUT /v1/memory/update, importance).
- memory.forgotten: {id, namespace, reason} (reason: "forget" or "expired"). A namespace
  deleted whole sends namespace.deleted alone, not one memory.forgotten per memory.
- session.ended: the session (id, namespace, started/ended at, reason, summary, metadata).
- namespace.deleted: {namespace, memories}: how many memories it held.

A forget also redacts what the outbox still holds of the memory (its stored and updated
events' content, tags and metadata), and an update rewrites them to the memory as it is now:
forgotten or replaced text leaves no trace, in the outbox as in the records."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shards.types import Memory, Session

MEMORY_STORED = "memory.stored"
MEMORY_UPDATED = "memory.updated"
MEMORY_FORGOTTEN = "memory.forgotten"
SESSION_ENDED = "session.ended"
NAMESPACE_DELETED = "namespace.deleted"
EVENT_TYPES: tuple[str, ...] = (MEMORY_STORED, MEMORY_UPDATED, MEMORY_FORGOTTEN, SESSION_ENDED, NAMESPACE_DELETED)
# Events that carry a memory's text: a forget redacts them, an update refreshes them.
CARRY_TEXT: tuple[str, ...] = (MEMORY_STORED, MEMORY_UPDATED)

# What a memory.stored (or .updated) event's data loses once its memory is forgotten.
REDACTED_FIELDS = ("content", "tags", "metadata")


@dataclass(frozen=True)
class Event:
    """One change, as the outbox holds it. `seq` orders a shard's events; `id` names the
    event everywhere (receivers use it to ignore a repeated delivery)."""

    seq: int
    id: str
    type: str
    namespace: str
    occurred_at: float
    data: dict[str, Any]
    memory_id: str | None = None


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def stored_data(memory: Memory) -> dict[str, Any]:
    return {"id": memory.id, "namespace": memory.namespace, "content": memory.content,
            "memory_type": memory.memory_type, "importance": memory.importance,
            "tags": list(memory.tags), "metadata": memory.metadata, "session_id": memory.session_id,
            "created_at": memory.created_at, "event_time": memory.event_time}


def forgotten_data(memory: Memory, reason: str) -> dict[str, Any]:
    return {"id": memory.id, "namespace": memory.namespace, "reason": reason}


def session_data(session: Session) -> dict[str, Any]:
    return {"id": session.id, "namespace": session.namespace, "started_at": session.started_at,
            "ended_at": session.ended_at, "reason": session.ended_reason, "summary": session.summary,
            "metadata": session.metadata}


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A memory.stored (or .updated) event's data once its memory is forgotten."""
    return {**{k: v for k, v in data.items() if k not in REDACTED_FIELDS}, "redacted": True,
            "content": None, "tags": [], "metadata": {}}


def refreshed(old: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """A waiting memory.stored (or .updated) event's data once its memory was updated: the
    memory as it is now (the replaced text must not wait in a queue), created_at as it was."""
    return {**now, "created_at": old.get("created_at", now.get("created_at"))}
