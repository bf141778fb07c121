"""The asyncio client: `AsyncEngram`, the same calls as `Engram`, awaited."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from engram import _routes as routes
from engram._routes import Call
from engram._transport import DEFAULT_URL, RetryPolicy, headers, send_async

Json = dict[str, Any]
Rows = list[Json]  # an alias: `Sessions.list` would shadow the builtin in annotations
When = int | float | str | datetime


class AsyncMemory:
    """Memories by namespace: `client.memory.store(content=…, namespace=…)`."""

    def __init__(self, run: Callable[[Call], Awaitable[Any]]) -> None:
        self._run = run

    async def store(self, content: str, namespace: str, *,
                    metadata: Mapping[str, Any] | None = None,
                    session_id: str | None = None, importance: float | None = None,
                    memory_type: str | None = None, tags: Sequence[str] | None = None,
                    event_time: When | None = None, id: str | None = None) -> Json:
        """Store one memory; returns it as stored (with `id`).

        `session_id` and `importance` found in `metadata` are lifted when not given (mem0 style).
        """
        item = routes.memory_item(content, metadata=metadata, session_id=session_id,
                                  importance=importance, memory_type=memory_type, tags=tags,
                                  event_time=event_time, id=id)
        result: Json = await self._run(routes.store(namespace, item))
        return result

    async def store_batch(self, namespace: str, items: Sequence[str | Mapping[str, Any]]) -> Json:
        """Store many memories at once: strings, or dicts of `store` arguments."""
        result: Json = await self._run(routes.store_batch(namespace, routes.batch_items(items)))
        return result

    async def recall(self, query: str, namespace: str, top_k: int = 5, **filters: Any) -> Json:
        """Ranked recall: {"results": [...], ...}; filters as the server names them
        (memory_type, tags, session_id, since, until, min_importance, routing, fusion, ...)."""
        result: Json = await self._run(routes.recall(namespace, query, top_k, filters))
        return result

    async def search(self, query: str, namespace: str, top_k: int = 10, **filters: Any) -> Rows:
        """Like recall without counting as access; returns the list of results."""
        result: Rows = await self._run(routes.search(namespace, query, top_k, filters))
        return result

    async def get(self, id: str, namespace: str | None = None) -> Json:
        result: Json = await self._run(routes.get(id, namespace))
        return result

    async def update(self, id: str, namespace: str, *, content: str | None = None,
                     metadata: Mapping[str, Any] | None = None, importance: float | None = None,
                     memory_type: str | None = None, tags: Sequence[str] | None = None,
                     event_time: When | None = None) -> Json:
        changes = {"content": content, "metadata": metadata, "importance": importance,
                   "memory_type": memory_type, "tags": None if tags is None else list(tags),
                   "event_time": event_time}
        result: Json = await self._run(routes.update(id, namespace, changes))
        return result

    async def set_importance(self, id: str, namespace: str, importance: float) -> Json:
        """Set a memory's importance (0 to 1); returns the memory."""
        result: Json = await self._run(routes.set_importance(id, namespace, importance))
        return result

    async def graph(self, id: str, depth: int = 1) -> Json:
        """The memories linked to this one through shared entities, `depth` hops out (1-5)."""
        result: Json = await self._run(routes.memory_graph(id, depth))
        return result

    async def forget(self, id: str | Sequence[str], namespace: str) -> Json:
        """Delete one memory or a list of them; returns {"deleted_count", "deleted_ids"}."""
        result: Json = await self._run(routes.forget(id, namespace))
        return result


class AsyncSessions:
    """Sessions by namespace: `client.sessions.start(namespace=…)`."""

    def __init__(self, run: Callable[[Call], Awaitable[Any]]) -> None:
        self._run = run

    async def start(self, namespace: str, metadata: Mapping[str, Any] | None = None, *,
                    idle_timeout_secs: int | None = None) -> Json:
        """Open a session; returns it (its id is `["id"]`)."""
        result: Json = await self._run(routes.session_start(namespace, metadata, idle_timeout_secs))
        return result

    async def end(self, session_id: str, summary: str | None = None) -> Json:
        """End a session; returns it as ended."""
        result: Json = await self._run(routes.session_end(session_id, summary))
        return result

    async def touch(self, session_id: str) -> Json:
        result: Json = await self._run(routes.session_touch(session_id))
        return result

    async def get(self, session_id: str) -> Json:
        result: Json = await self._run(routes.session_get(session_id))
        return result

    async def list(self, namespace: str | None = None, *, active_only: bool | None = None,
                   limit: int | None = None, offset: int | None = None) -> Rows:
        result: Rows = await self._run(routes.session_list(namespace, active_only, limit, offset))
        return result

    async def memories(self, session_id: str, *, limit: int | None = None,
                       offset: int | None = None) -> Rows:
        result: Rows = await self._run(routes.session_memories(session_id, limit, offset))
        return result


class AsyncKeys:
    """API keys (an admin key's business)."""

    def __init__(self, run: Callable[[Call], Awaitable[Any]]) -> None:
        self._run = run

    async def create(self, name: str, scope: str = "read", namespaces: Sequence[str] | None = None,
                     expires_in_days: int | None = None, limits: Mapping[str, Any] | None = None) -> Json:
        """Create a key; the secret is in `["key"]`, shown this once. `limits`:
        requests_per_second, burst, memories_per_namespace, stored_bytes (each optional)."""
        result: Json = await self._run(routes.key_create(name, scope, namespaces, expires_in_days, limits))
        return result

    async def update(self, key_id: str, *, name: str | None = None, namespaces: Sequence[str] | None = None,
                     limits: Mapping[str, Any] | None = None) -> Json:
        """Rename, re-grant or re-limit a key; only what is given changes."""
        result: Json = await self._run(routes.key_update(key_id, name, namespaces, limits))
        return result

    async def list(self) -> Rows:
        result: Rows = await self._run(routes.key_list())
        return result

    async def delete(self, key_id: str) -> Json:
        result: Json = await self._run(routes.key_delete(key_id))
        return result


class AsyncWebhooks:
    """Webhook subscriptions of this client's key (engram.webhooks.verify checks deliveries)."""

    def __init__(self, run: Callable[[Call], Awaitable[Any]]) -> None:
        self._run = run

    async def create(self, url: str, namespaces: Sequence[str], events: Sequence[str] | None = None,
               description: str | None = None) -> Json:
        """Subscribe `url` to events (default: all five) in namespaces matching the patterns
        (exact names or `prefix*`, within this key's grants). The signing secret is in
        `["secret"]`, shown this once."""
        result: Json = await self._run(routes.webhook_create(url, namespaces, events, description))
        return result

    async def list(self) -> Rows:
        result: Rows = await self._run(routes.webhook_list())
        return result

    async def get(self, webhook_id: str) -> Json:
        result: Json = await self._run(routes.webhook_get(webhook_id))
        return result

    async def delete(self, webhook_id: str) -> Json:
        result: Json = await self._run(routes.webhook_delete(webhook_id))
        return result

    async def deliveries(self, webhook_id: str, limit: int = 50) -> Rows:
        """The most recent first: state, attempts, the last answer."""
        result: Rows = await self._run(routes.webhook_deliveries(webhook_id, limit))
        return result


class AsyncEngram:
    """An asyncio client of one Engram service; the same calls as `Engram`, awaited.

    Args:
        base_url: the service, e.g. "http://127.0.0.1:3300".
        api_key: sent as a Bearer token; defaults to $ENGRAM_API_KEY, then $ENGRAM_ROOT_API_KEY.
        timeout: seconds per request.
        transport: an httpx transport (tests use `httpx.MockTransport`).
        max_attempts, max_retry_wait: retries of 429/503 answers, honouring Retry-After.
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None, *,
                 max_attempts: int = 3, max_retry_wait: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers(api_key),
                                       timeout=timeout, transport=transport)
        self._retry = RetryPolicy(attempts=max(1, max_attempts), max_wait=max_retry_wait)
        self.memory = AsyncMemory(self._send)
        self.sessions = AsyncSessions(self._send)
        self.keys = AsyncKeys(self._send)
        self.webhooks = AsyncWebhooks(self._send)

    async def _send(self, call: Call) -> Any:
        return await send_async(self._http, call, self._retry)

    # -- agent style (Dakera) ------------------------------------------------------------
    async def store(self, agent_id: str, content: str, *, importance: float | None = None,
                    tags: Sequence[str] | None = None, memory_type: str | None = None,
                    metadata: Mapping[str, Any] | None = None, session_id: str | None = None,
                    event_time: When | None = None) -> Json:
        """Store one memory for an agent; returns it as stored (with `id`)."""
        return await self.memory.store(content, agent_id, metadata=metadata,
                                       session_id=session_id, importance=importance,
                                       memory_type=memory_type, tags=tags, event_time=event_time)

    async def recall(self, agent_id: str, query: str, top_k: int = 5, **filters: Any) -> Rows:
        """The agent's memories most relevant to `query`, best first."""
        call = routes.recall(agent_id, query, top_k, filters, as_list=True)
        result: Rows = await self._send(call)
        return result

    async def session_start(self, agent_id: str, metadata: Mapping[str, Any] | None = None) -> Json:
        return await self.sessions.start(agent_id, metadata)

    async def session_end(self, session_id: str, summary: str | None = None) -> Json:
        return await self.sessions.end(session_id, summary)

    # -- service ---------------------------------------------------------------------------
    async def health(self) -> Json:
        result: Json = await self._send(routes.plain("GET", "/health"))
        return result

    async def namespaces(self) -> list[str]:
        """The names of the namespaces holding memories that this key may read."""
        result: list[str] = await self._send(routes.namespaces())
        return result

    async def whoami(self) -> Json:
        result: Json = await self._send(routes.plain("GET", "/v1/auth/whoami"))
        return result

    async def capabilities(self) -> Json:
        result: Json = await self._send(routes.plain("GET", "/v1/capabilities"))
        return result

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncEngram:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                       tb: TracebackType | None) -> None:
        await self.close()
