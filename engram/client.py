"""The synchronous client `Engram`: `memory`, `sessions`, `keys`, `webhooks` and the agent-style calls."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from engram import _routes as routes
from engram._routes import Call
from engram._transport import DEFAULT_URL, RetryPolicy, headers, send

Json = dict[str, Any]
Rows = list[Json]  # an alias: `Sessions.list` would shadow the builtin in annotations
When = int | float | str | datetime


class Memory:
    """Memories by namespace: `client.memory.store(content=…, namespace=…)`."""

    def __init__(self, run: Callable[[Call], Any]) -> None:
        self._run = run

    def store(self, content: str, namespace: str, *, metadata: Mapping[str, Any] | None = None,
              session_id: str | None = None, importance: float | None = None,
              memory_type: str | None = None, tags: Sequence[str] | None = None,
              event_time: When | None = None, id: str | None = None) -> Json:
        """Store one memory; returns it as stored (with `id`).

        `session_id` and `importance` found in `metadata` are lifted when not given (mem0 style).
        """
        item = routes.memory_item(content, metadata=metadata, session_id=session_id,
                                  importance=importance, memory_type=memory_type, tags=tags,
                                  event_time=event_time, id=id)
        result: Json = self._run(routes.store(namespace, item))
        return result

    def store_batch(self, namespace: str, items: Sequence[str | Mapping[str, Any]]) -> Json:
        """Store many memories at once: strings, or dicts of `store` arguments."""
        result: Json = self._run(routes.store_batch(namespace, routes.batch_items(items)))
        return result

    def recall(self, query: str, namespace: str, top_k: int = 5, **filters: Any) -> Json:
        """Ranked recall: {"results": [...], ...}; filters as the server names them
        (memory_type, tags, session_id, since, until, min_importance, routing, fusion, ...)."""
        result: Json = self._run(routes.recall(namespace, query, top_k, filters))
        return result

    def search(self, query: str, namespace: str, top_k: int = 10, **filters: Any) -> Rows:
        """Like recall without counting as access; returns the list of results."""
        result: Rows = self._run(routes.search(namespace, query, top_k, filters))
        return result

    def get(self, id: str, namespace: str | None = None) -> Json:
        result: Json = self._run(routes.get(id, namespace))
        return result

    def update(self, id: str, namespace: str, *, content: str | None = None,
               metadata: Mapping[str, Any] | None = None, importance: float | None = None,
               memory_type: str | None = None, tags: Sequence[str] | None = None,
               event_time: When | None = None) -> Json:
        changes = {"content": content, "metadata": metadata, "importance": importance,
                   "memory_type": memory_type, "tags": None if tags is None else list(tags),
                   "event_time": event_time}
        result: Json = self._run(routes.update(id, namespace, changes))
        return result

    def set_importance(self, id: str, namespace: str, importance: float) -> Json:
        """Set a memory's importance (0 to 1); returns the memory."""
        result: Json = self._run(routes.set_importance(id, namespace, importance))
        return result

    def graph(self, id: str, depth: int = 1) -> Json:
        """The memories linked to this one through shared entities, `depth` hops out (1-5)."""
        result: Json = self._run(routes.memory_graph(id, depth))
        return result

    def forget(self, id: str | Sequence[str], namespace: str) -> Json:
        """Delete one memory or a list of them; returns {"deleted_count", "deleted_ids"}."""
        result: Json = self._run(routes.forget(id, namespace))
        return result


class Sessions:
    """Sessions by namespace: `client.sessions.start(namespace=…)`."""

    def __init__(self, run: Callable[[Call], Any]) -> None:
        self._run = run

    def start(self, namespace: str, metadata: Mapping[str, Any] | None = None, *,
              idle_timeout_secs: int | None = None) -> Json:
        """Open a session; returns it (its id is `["id"]`)."""
        result: Json = self._run(routes.session_start(namespace, metadata, idle_timeout_secs))
        return result

    def end(self, session_id: str, summary: str | None = None) -> Json:
        """End a session; returns it as ended."""
        result: Json = self._run(routes.session_end(session_id, summary))
        return result

    def touch(self, session_id: str) -> Json:
        result: Json = self._run(routes.session_touch(session_id))
        return result

    def get(self, session_id: str) -> Json:
        result: Json = self._run(routes.session_get(session_id))
        return result

    def list(self, namespace: str | None = None, *, active_only: bool | None = None,
             limit: int | None = None, offset: int | None = None) -> Rows:
        result: Rows = self._run(routes.session_list(namespace, active_only, limit, offset))
        return result

    def memories(self, session_id: str, *, limit: int | None = None,
                 offset: int | None = None) -> Rows:
        result: Rows = self._run(routes.session_memories(session_id, limit, offset))
        return result


class Keys:
    """API keys (an admin key's business)."""

    def __init__(self, run: Callable[[Call], Any]) -> None:
        self._run = run

    def create(self, name: str, scope: str = "read", namespaces: Sequence[str] | None = None,
               expires_in_days: int | None = None, limits: Mapping[str, Any] | None = None) -> Json:
        """Create a key; the secret is in `["key"]`, shown this once. `limits`:
        requests_per_second, burst, memories_per_namespace, stored_bytes (each optional)."""
        result: Json = self._run(routes.key_create(name, scope, namespaces, expires_in_days, limits))
        return result

    def update(self, key_id: str, *, name: str | None = None, namespaces: Sequence[str] | None = None,
               limits: Mapping[str, Any] | None = None) -> Json:
        """Rename, re-grant or re-limit a key; only what is given changes."""
        result: Json = self._run(routes.key_update(key_id, name, namespaces, limits))
        return result

    def list(self) -> Rows:
        result: Rows = self._run(routes.key_list())
        return result

    def delete(self, key_id: str) -> Json:
        result: Json = self._run(routes.key_delete(key_id))
        return result


class Webhooks:
    """Webhook subscriptions of this client's key (engram.webhooks.verify checks deliveries)."""

    def __init__(self, run: Callable[[Call], Any]) -> None:
        self._run = run

    def create(self, url: str, namespaces: Sequence[str], events: Sequence[str] | None = None,
               description: str | None = None) -> Json:
        """Subscribe `url` to events (default: all five) in namespaces matching the patterns
        (exact names or `prefix*`, within this key's grants). The signing secret is in
        `["secret"]`, shown this once."""
        result: Json = self._run(routes.webhook_create(url, namespaces, events, description))
        return result

    def list(self) -> Rows:
        result: Rows = self._run(routes.webhook_list())
        return result

    def get(self, webhook_id: str) -> Json:
        result: Json = self._run(routes.webhook_get(webhook_id))
        return result

    def delete(self, webhook_id: str) -> Json:
        result: Json = self._run(routes.webhook_delete(webhook_id))
        return result

    def deliveries(self, webhook_id: str, limit: int = 50) -> Rows:
        """The most recent first: state, attempts, the last answer."""
        result: Rows = self._run(routes.webhook_deliveries(webhook_id, limit))
        return result


class Transfers:
    """A namespace's copy as data (an admin key's business): what `engram export` and
    `engram import` send (engram/transfer.py). Rows are opaque JSON, passed through."""

    def __init__(self, run: Callable[[Call], Any]) -> None:
        self._run = run

    def export_head(self, namespace: str) -> Json:
        result: Json = self._run(routes.export_head(namespace))
        return result

    def export_memories(self, namespace: str, after: int = 0, limit: int = 200) -> Json:
        """{"rows": [...], "next": the `after` of the next page, or None at the end}."""
        result: Json = self._run(routes.export_memories(namespace, after, limit))
        return result

    def import_head(self, namespace: str, head: Json) -> Json:
        result: Json = self._run(routes.import_head(namespace, head))
        return result

    def import_memories(self, namespace: str, rows: list[Any]) -> int:
        result: int = self._run(routes.import_memories(namespace, rows))
        return result

    def import_abort(self, namespace: str) -> Json:
        result: Json = self._run(routes.import_abort(namespace))
        return result

    def import_finish(self, namespace: str, memories: int) -> Json:
        result: Json = self._run(routes.import_finish(namespace, memories))
        return result


class Engram:
    """A client of one Engram service.

    Args:
        base_url: the service, e.g. "http://127.0.0.1:3300".
        api_key: sent as a Bearer token; defaults to $ENGRAM_API_KEY, then $ENGRAM_ROOT_API_KEY.
        timeout: seconds per request.
        transport: an httpx transport (tests use `httpx.MockTransport`).
        max_attempts, max_retry_wait: retries of 429/503 answers, honouring Retry-After.
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None, *,
                 max_attempts: int = 3, max_retry_wait: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url, headers=headers(api_key), timeout=timeout,
                                  transport=transport)
        self._retry = RetryPolicy(attempts=max(1, max_attempts), max_wait=max_retry_wait)
        self.memory = Memory(self._send)
        self.sessions = Sessions(self._send)
        self.keys = Keys(self._send)
        self.webhooks = Webhooks(self._send)
        self.transfers = Transfers(self._send)

    def _send(self, call: Call) -> Any:
        return send(self._http, call, self._retry)

    # -- agent style (Dakera) ------------------------------------------------------------
    def store(self, agent_id: str, content: str, *, importance: float | None = None,
              tags: Sequence[str] | None = None, memory_type: str | None = None,
              metadata: Mapping[str, Any] | None = None, session_id: str | None = None,
              event_time: When | None = None) -> Json:
        """Store one memory for an agent; returns it as stored (with `id`)."""
        return self.memory.store(content, agent_id, metadata=metadata, session_id=session_id,
                                 importance=importance, memory_type=memory_type, tags=tags,
                                 event_time=event_time)

    def recall(self, agent_id: str, query: str, top_k: int = 5, **filters: Any) -> Rows:
        """The agent's memories most relevant to `query`, best first."""
        result: Rows = self._send(routes.recall(agent_id, query, top_k, filters, as_list=True))
        return result

    def session_start(self, agent_id: str, metadata: Mapping[str, Any] | None = None) -> Json:
        return self.sessions.start(agent_id, metadata)

    def session_end(self, session_id: str, summary: str | None = None) -> Json:
        return self.sessions.end(session_id, summary)

    # -- service ---------------------------------------------------------------------------
    def health(self) -> Json:
        result: Json = self._send(routes.plain("GET", "/health"))
        return result

    def namespaces(self) -> list[str]:
        """The names of the namespaces holding memories that this key may read."""
        result: list[str] = self._send(routes.namespaces())
        return result

    def whoami(self) -> Json:
        result: Json = self._send(routes.plain("GET", "/v1/auth/whoami"))
        return result

    def capabilities(self) -> Json:
        result: Json = self._send(routes.plain("GET", "/v1/capabilities"))
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Engram:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
