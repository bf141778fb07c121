"""The client on its own: error mapping, retries, idempotency keys, request shapes, imports.

`httpx.MockTransport` stands in for the server here only; the service tests use the real one.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from engram import (
    AsyncEngram,
    AuthenticationError,
    Conflict,
    Engram,
    EngramError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    Unavailable,
    ValidationError,
)

STORED: dict[str, Any] = {"memory": {"id": "mem_1", "content": "c", "agent_id": "ns"},
                          "embedding_time_ms": 3, "session_state": "active"}


class ScriptedServer:
    """Answers from a script (the last answer repeats) and keeps every request it got."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers) or [httpx.Response(200, json=STORED)]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)

    def client(self, **kwargs: Any) -> Engram:
        return Engram("http://engram.test", api_key="k", transport=httpx.MockTransport(self),
                      **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncEngram:
        return AsyncEngram("http://engram.test", api_key="k", transport=httpx.MockTransport(self),
                           **kwargs)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Retry waits, recorded instead of slept."""
    seen: list[float] = []

    async def fake_async_sleep(seconds: float) -> None:
        seen.append(seconds)

    # Our own seam, not asyncio.sleep: the session's event loop runs other tasks (Serve
    # handles' background loops) whose sleeps must neither be recorded nor skipped.
    monkeypatch.setattr("engram._transport.pause", seen.append)
    monkeypatch.setattr("engram._transport.pause_async", fake_async_sleep)
    yield seen


def error(status: int, code: str = "X", field: str | None = None, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"error": f"{code} happened", "code": code}
    if field:
        body["field"] = field
    return httpx.Response(status, json=body, headers=headers)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "cls"), [
    (400, ValidationError), (422, ValidationError), (401, AuthenticationError),
    (403, PermissionDenied), (404, NotFound), (409, Conflict), (413, PayloadTooLarge),
    (500, ServerError), (502, ServerError), (418, EngramError),
])
def test_status_maps_to_error_class(status: int, cls: type[EngramError]) -> None:
    server = ScriptedServer(error(status, "SOME_CODE", field="tags[0]"))
    with server.client() as client, pytest.raises(cls) as caught:
        client.memory.get("m1", namespace="ns")
    exc = caught.value
    assert type(exc) is cls
    assert (exc.status, exc.code, exc.field) == (status, "SOME_CODE", "tags[0]")
    assert exc.message == "SOME_CODE happened"
    assert not exc.retriable
    assert str(exc) == f"[{status}] SOME_CODE: SOME_CODE happened"
    assert len(server.requests) == 1  # never retried


def test_unavailable_is_a_retriable_server_error(waits: list[float]) -> None:
    server = ScriptedServer(error(503, "SERVICE_UNAVAILABLE", **{"Retry-After": "1"}))
    with server.client() as client, pytest.raises(ServerError) as caught:
        client.health()
    assert isinstance(caught.value, Unavailable)
    assert caught.value.retriable and caught.value.retry_after == 1.0


def test_error_body_that_is_not_json() -> None:
    server = ScriptedServer(httpx.Response(502, text="bad gateway"))
    with server.client() as client, pytest.raises(ServerError) as caught:
        client.health()
    exc = caught.value
    assert (exc.status, exc.code, exc.message) == (502, None, "bad gateway")


def test_connection_failure_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with Engram("http://engram.test", transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TransportError) as caught:
            client.health()
    assert caught.value.status is None and caught.value.retriable
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# -- retries ----------------------------------------------------------------------------------
def test_429_is_retried_after_retry_after(waits: list[float]) -> None:
    server = ScriptedServer(error(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "2"}),
                        httpx.Response(200, json=STORED))
    with server.client() as client:
        memory = client.memory.store("c", "ns")
    assert memory["id"] == "mem_1"
    assert waits == [2.0]
    assert len(server.requests) == 2


def test_retries_are_bounded_and_waits_capped(waits: list[float]) -> None:
    server = ScriptedServer(error(429, "RATE_LIMIT_EXCEEDED", **{"Retry-After": "3600"}))
    with server.client() as client, pytest.raises(RateLimited) as caught:
        client.recall("ns", "q")
    assert len(server.requests) == 3
    assert waits == [5.0, 5.0]
    assert caught.value.retry_after == 3600.0


def test_backoff_without_retry_after(waits: list[float]) -> None:
    server = ScriptedServer(error(503), error(503), httpx.Response(200, json={"status": "healthy"}))
    with server.client() as client:
        assert client.health() == {"status": "healthy"}
    assert waits == [0.25, 0.5]


def test_other_failures_are_not_retried(waits: list[float]) -> None:
    server = ScriptedServer(error(500, "INTERNAL_ERROR"), httpx.Response(200, json=STORED))
    with server.client() as client, pytest.raises(ServerError):
        client.memory.store("c", "ns")
    assert len(server.requests) == 1 and waits == []


async def test_async_client_retries_too(waits: list[float]) -> None:
    server = ScriptedServer(error(503, **{"Retry-After": "1"}), httpx.Response(200, json=STORED))
    async with server.async_client() as client:
        memory = await client.store(agent_id="ns", content="c")
    assert memory["id"] == "mem_1" and waits == [1.0]


# -- idempotency ------------------------------------------------------------------------------
def test_a_store_keeps_one_idempotency_key_across_retries(waits: list[float]) -> None:
    server = ScriptedServer(error(429, **{"Retry-After": "0"}), httpx.Response(200, json=STORED))
    with server.client() as client:
        client.memory.store("c", "ns")
        client.store(agent_id="ns", content="d")
    keys = [r.headers.get("idempotency-key") for r in server.requests]
    assert len(keys) == 3 and all(keys)
    assert keys[0] == keys[1]  # the retry of the first store
    assert keys[2] != keys[0]  # a second store is a new one


@pytest.mark.parametrize("call", [
    lambda c: c.memory.store_batch("ns", ["a", {"content": "b", "tags": ["t"]}]),
    lambda c: c.store(agent_id="ns", content="c"),
])
def test_stores_send_an_idempotency_key(call: Callable[[Engram], Any]) -> None:
    server = ScriptedServer(httpx.Response(200, json={"stored": [], "stored_count": 0, **STORED}))
    with server.client() as client:
        call(client)
    assert server.requests[0].headers.get("idempotency-key")


def test_reads_send_no_idempotency_key() -> None:
    server = ScriptedServer(httpx.Response(200, json={"memories": []}))
    with server.client() as client:
        client.memory.recall("q", "ns")
    assert "idempotency-key" not in server.requests[0].headers


# -- request and answer shapes ----------------------------------------------------------------
def test_metadata_session_and_importance_are_lifted() -> None:
    server = ScriptedServer()
    metadata = {"session_id": "sess_1", "importance": 0.9, "type": "decision"}
    with server.client() as client:
        client.memory.store(content="c", namespace="ns", metadata=metadata)
    body = server.body()
    assert body["session_id"] == "sess_1" and body["importance"] == 0.9
    assert body["metadata"] == metadata  # sent unchanged
    assert body["agent_id"] == "ns"
    assert "memory_type" not in body  # "type" is the caller's own label, not a memory type


def test_explicit_arguments_win_over_metadata() -> None:
    server = ScriptedServer()
    with server.client() as client:
        client.memory.store("c", "ns", metadata={"session_id": "a", "importance": 0.9},
                            session_id="b", importance=0.1)
        client.memory.store("c", "ns", metadata={"importance": True, "session_id": 7})
    assert (server.body(0)["session_id"], server.body(0)["importance"]) == ("b", 0.1)
    assert "session_id" not in server.body(1) and "importance" not in server.body(1)


def test_store_returns_the_memory_with_its_session_state() -> None:
    with ScriptedServer().client() as client:
        memory = client.memory.store("c", "ns")
    assert memory == {**STORED["memory"], "session_state": "active"}


def test_recall_shapes() -> None:
    ranked = {"id": "m1", "content": "c", "score": 0.5, "retrieval": None}
    context = {"id": "m0", "content": "b", "score": 0.0, "retrieval": "neighborhood", "context_of": "m1"}
    answer = {"memories": [ranked, context], "total_found": 1}
    server = ScriptedServer(httpx.Response(200, json=answer))
    with server.client() as client:
        namespaced = client.memory.recall(query="q", namespace="ns", top_k=3, tags=["a"])
        agent = client.recall(agent_id="ns", query="q")
    # Ranked results and the session context the server put inline are kept apart.
    assert namespaced == {"results": [ranked], "context": [context], "total_found": 1}
    assert agent == [ranked]
    assert server.body(0) == {"query": "q", "top_k": 3, "tags": ["a"], "agent_id": "ns"}


def test_get_encodes_the_id_and_names_the_agent() -> None:
    server = ScriptedServer(httpx.Response(200, json={"id": "a b/c:d"}))
    with server.client() as client:
        client.memory.get("a b/c:d", namespace="ns")
    assert server.requests[0].url.raw_path == b"/v1/memory/get/a%20b%2Fc:d?agent_id=ns"


def test_sessions_unwrap_the_session() -> None:
    session = {"id": "sess_1", "agent_id": "ns"}
    server = ScriptedServer(httpx.Response(201, json={"session": session}))
    with server.client() as client:
        assert client.sessions.start(namespace="ns", metadata={"k": "v"}) == session
        assert client.session_end(session_id="sess_1", summary="done") == session
    assert server.body(0) == {"agent_id": "ns", "metadata": {"k": "v"}}
    assert server.requests[1].url.path == "/v1/sessions/sess_1/end"
    assert server.body(1) == {"summary": "done"}


def test_api_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGRAM_API_KEY", raising=False)
    monkeypatch.setenv("ENGRAM_ROOT_API_KEY", "root")
    server = ScriptedServer(httpx.Response(200, json={}))
    with Engram("http://engram.test", transport=httpx.MockTransport(server)) as client:
        client.health()
    monkeypatch.setenv("ENGRAM_API_KEY", "user")
    with Engram("http://engram.test", transport=httpx.MockTransport(server)) as client:
        client.health()
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer root", "Bearer user"]


def test_naive_datetimes_are_refused() -> None:
    from datetime import datetime

    with ScriptedServer().client() as client, pytest.raises(ValueError, match="timezone"):
        client.memory.store("c", "ns", event_time=datetime(2024, 1, 1))


def test_errors_survive_pickling() -> None:
    import pickle

    err = RateLimited("slow down", status=429, code="RATE_LIMIT_EXCEEDED", retry_after=2.0)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.status, copy.code, copy.retry_after) == (RateLimited, 429,
                                                                       "RATE_LIMIT_EXCEEDED", 2.0)


# -- packaging --------------------------------------------------------------------------------
def test_importing_engram_pulls_in_no_service_dependencies() -> None:
    probe = ("import sys, engram, engram.cli; "
             "print([m for m in ('ray', 'torch', 'serve', 'shards', 'models', 'fastapi', "
             "'sentence_transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

