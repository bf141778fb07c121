"""The routes of the Engram (Dakera) memory API as plain data: one builder per call, no I/O."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

Json = dict[str, Any]
# Keys of a store answer that Dakera reports next to the memory; the caller gets them on it.
_STORE_EXTRAS = ("session_state", "truncated", "content_tokens", "embedded_tokens",
                 "max_tokens", "tokens_estimated", "windows", "warnings")


def _same(body: Any) -> Any:
    return body


@dataclass(frozen=True)
class Call:
    """One HTTP exchange: what to send, and how to read a successful answer."""

    method: str
    path: str
    json: Json | None = None
    params: Json | None = None
    idempotency_key: str | None = None
    parse: Callable[[Any], Any] = _same


def _compact(values: Mapping[str, Any]) -> Json:
    return {k: _wire(v) for k, v in values.items() if v is not None}


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # the server would read it as UTC; say so rather than guess
            raise ValueError("give datetimes a timezone (e.g. datetime.now(timezone.utc))")
        return value.isoformat()
    return value


def _seg(value: str) -> str:
    """A path segment: ids may hold '/', '?', '#' or spaces (':' stays, as Dakera sends it)."""
    return quote(value, safe=":")


def _field(name: str) -> Callable[[Any], Any]:
    """Read the value under `name`, or the whole body where the server answers it flat."""
    return lambda body: body.get(name, body) if isinstance(body, dict) else body


# -- memories --------------------------------------------------------------------------------
def memory_item(content: str, *, metadata: Mapping[str, Any] | None = None,
                session_id: str | None = None, importance: float | None = None,
                memory_type: str | None = None, tags: Sequence[str] | None = None,
                event_time: int | float | str | datetime | None = None,
                id: str | None = None) -> Json:
    """The JSON of one memory to store.

    mem0-style callers put `session_id` and `importance` inside `metadata`; when the explicit
    arguments are not given they are lifted from there, so the server links the memory to its
    session and ranks it by its importance. `metadata` itself is sent unchanged.
    """
    if metadata:
        lifted_session = metadata.get("session_id")
        if session_id is None and isinstance(lifted_session, str) and lifted_session:
            session_id = lifted_session
        lifted_importance = metadata.get("importance")
        if importance is None and isinstance(lifted_importance, (int, float)) \
                and not isinstance(lifted_importance, bool):
            importance = float(lifted_importance)
    return _compact({
        "id": id, "content": content, "memory_type": memory_type, "importance": importance,
        "tags": None if tags is None else list(tags),
        "metadata": None if metadata is None else dict(metadata),
        "session_id": session_id, "event_time": event_time,
    })


def _stored_memory(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("memory"), dict):
        memory = dict(body["memory"])
        memory.update({k: body[k] for k in _STORE_EXTRAS if body.get(k) is not None})
        return memory
    return body


def store(namespace: str, item: Json) -> Call:
    # One key per logical store, reused by every retry: the server answers a repeat with the
    # memory it already stored instead of storing it twice.
    return Call("POST", "/v1/memory/store", {**item, "agent_id": namespace},
                idempotency_key=str(uuid.uuid4()), parse=_stored_memory)


def store_batch(namespace: str, items: Sequence[Json]) -> Call:
    return Call("POST", "/v1/memories/store/batch",
                {"agent_id": namespace, "memories": list(items)},
                idempotency_key=str(uuid.uuid4()))


def batch_items(items: Sequence[str | Mapping[str, Any]]) -> list[Json]:
    """Batch entries as plain strings or as dicts of `memory_item` arguments."""
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(memory_item(item))
        else:
            fields = dict(item)
            out.append(memory_item(fields.pop("content"), **fields))
    return out


def _is_context(item: Any) -> bool:
    return isinstance(item, dict) and (item.get("retrieval") == "neighborhood"
                                       or item.get("context_of") is not None)


def _recall_results(body: Any) -> Any:
    """Ranked results under "results"; session context the server put inline under "context"."""
    if not isinstance(body, dict):
        return {"results": body if isinstance(body, list) else []}
    items = body.get("memories") or []
    rest = {k: v for k, v in body.items() if k != "memories"}
    context = [m for m in items if _is_context(m)] + list(body.get("context_memories") or [])
    return {**rest, "results": [m for m in items if not _is_context(m)], "context": context}


def _result_list(body: Any) -> Any:
    items = (body.get("memories") or []) if isinstance(body, dict) else body
    return [m for m in items if not _is_context(m)] if isinstance(items, list) else items


def recall(namespace: str, query: str, top_k: int, filters: Mapping[str, Any],
           *, as_list: bool = False) -> Call:
    """`as_list`: the agent-style shape (a list of results) instead of {"results": [...], ...}."""
    body = {"query": query, "top_k": top_k, **_compact(filters), "agent_id": namespace}
    return Call("POST", "/v1/memory/recall", body,
                parse=_result_list if as_list else _recall_results)


def search(namespace: str, query: str, top_k: int, filters: Mapping[str, Any]) -> Call:
    body = {"query": query, "top_k": top_k, **_compact(filters), "agent_id": namespace}
    return Call("POST", "/v1/memory/search", body, parse=_result_list)


def get(memory_id: str, namespace: str | None) -> Call:
    params = None if namespace is None else {"agent_id": namespace}
    return Call("GET", f"/v1/memory/get/{_seg(memory_id)}", params=params)


def update(memory_id: str, namespace: str, changes: Mapping[str, Any]) -> Call:
    return Call("PUT", f"/v1/memory/update/{_seg(memory_id)}", _compact(changes),
                params={"agent_id": namespace})


def forget(ids: str | Sequence[str], namespace: str) -> Call:
    memory_ids = [ids] if isinstance(ids, str) else list(ids)
    return Call("POST", "/v1/memory/forget", {"agent_id": namespace, "memory_ids": memory_ids})


def set_importance(memory_id: str, namespace: str, importance: float) -> Call:
    return Call("PATCH", f"/v1/memories/{_seg(memory_id)}/importance",
                {"agent_id": namespace, "importance": importance})


def memory_graph(memory_id: str, depth: int) -> Call:
    return Call("GET", f"/v1/memories/{_seg(memory_id)}/graph", params={"depth": depth})


# -- sessions --------------------------------------------------------------------------------
def session_start(namespace: str, metadata: Mapping[str, Any] | None,
                  idle_timeout_secs: int | None = None) -> Call:
    body = _compact({"agent_id": namespace, "idle_timeout_secs": idle_timeout_secs,
                     "metadata": None if metadata is None else dict(metadata)})
    return Call("POST", "/v1/sessions/start", body, parse=_field("session"))


def session_end(session_id: str, summary: str | None) -> Call:
    return Call("POST", f"/v1/sessions/{_seg(session_id)}/end", _compact({"summary": summary}),
                parse=_field("session"))


def session_touch(session_id: str) -> Call:
    return Call("POST", f"/v1/sessions/{_seg(session_id)}/touch")


def session_get(session_id: str) -> Call:
    return Call("GET", f"/v1/sessions/{_seg(session_id)}", parse=_field("session"))


def session_list(namespace: str | None, active_only: bool | None, limit: int | None,
                 offset: int | None) -> Call:
    params = _compact({"agent_id": namespace, "limit": limit, "offset": offset,
                       "active_only": None if active_only is None else str(active_only).lower()})
    return Call("GET", "/v1/sessions", params=params or None)


def session_memories(session_id: str, limit: int | None, offset: int | None) -> Call:
    params = _compact({"limit": limit, "offset": offset})
    return Call("GET", f"/v1/sessions/{_seg(session_id)}/memories", params=params or None,
                parse=_result_list)


# -- service and keys ------------------------------------------------------------------------
def plain(method: str, path: str) -> Call:
    return Call(method, path)


# Dakera lists an agent's namespace as this prefix and the agent id; Engram's calls take the id.
_AGENT_PREFIX = "_dakera_agent_"


def _namespace_names(body: Any) -> list[str]:
    return [n.removeprefix(_AGENT_PREFIX) for n in body["namespaces"]]


def namespaces() -> Call:
    return Call("GET", "/v1/namespaces", parse=_namespace_names)


def key_create(name: str, scope: str, namespaces: Sequence[str] | None,
               expires_in_days: int | None, limits: Mapping[str, Any] | None = None) -> Call:
    body = _compact({"name": name, "scope": scope, "expires_in_days": expires_in_days,
                     "namespaces": None if namespaces is None else list(namespaces),
                     "limits": None if limits is None else dict(limits)})
    return Call("POST", "/admin/keys", body)


def key_update(key_id: str, name: str | None, namespaces: Sequence[str] | None,
               limits: Mapping[str, Any] | None) -> Call:
    """Only what is given changes; a limit set to None in `limits` is lifted."""
    body = _compact({"name": name, "namespaces": None if namespaces is None else list(namespaces)})
    if limits is not None:
        body["limits"] = dict(limits)
    return Call("PATCH", f"/admin/keys/{_seg(key_id)}", body)


def key_list() -> Call:
    return Call("GET", "/admin/keys", parse=_field("keys"))


def key_delete(key_id: str) -> Call:
    return Call("DELETE", f"/admin/keys/{_seg(key_id)}")


# -- webhooks ----------------------------------------------------------------------------------
def webhook_create(url: str, namespaces: Sequence[str], events: Sequence[str] | None,
                   description: str | None) -> Call:
    body: Json = {"url": url, "namespaces": list(namespaces)}
    if events is not None:
        body["events"] = list(events)
    if description is not None:
        body["description"] = description
    return Call("POST", "/v1/webhooks", body)


def webhook_list() -> Call:
    return Call("GET", "/v1/webhooks", parse=_field("webhooks"))


def webhook_get(webhook_id: str) -> Call:
    return Call("GET", f"/v1/webhooks/{_seg(webhook_id)}")


def webhook_delete(webhook_id: str) -> Call:
    return Call("DELETE", f"/v1/webhooks/{_seg(webhook_id)}")


def webhook_deliveries(webhook_id: str, limit: int) -> Call:
    return Call("GET", f"/v1/webhooks/{_seg(webhook_id)}/deliveries", params={"limit": limit},
                parse=_field("deliveries"))


# -- a namespace's copy (engram export / engram import; admin keys) ---------------------------
def _transfer(namespace: str, step: str) -> str:
    return f"/admin/namespaces/{_seg(namespace)}/{step}"


def export_head(namespace: str) -> Call:
    return Call("GET", _transfer(namespace, "export/head"), parse=_field("head"))


def export_memories(namespace: str, after: int, limit: int) -> Call:
    return Call("GET", _transfer(namespace, "export/memories"), params={"after": after, "limit": limit})


def import_head(namespace: str, head: Json) -> Call:
    return Call("POST", _transfer(namespace, "import/head"), {"head": head})


def import_memories(namespace: str, rows: list[Any]) -> Call:
    return Call("POST", _transfer(namespace, "import/memories"), {"rows": rows}, parse=_field("imported"))


def import_abort(namespace: str) -> Call:
    return Call("POST", _transfer(namespace, "import/abort"), {})


def import_finish(namespace: str, memories: int) -> Call:
    return Call("POST", _transfer(namespace, "import/finish"), {"memories": memories})
