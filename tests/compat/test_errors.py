"""The error paths the `dakera` SDK maps to its exception classes, and that a rejected
request changes nothing already stored."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dakera import (
    AuthenticationError,
    AuthorizationError,
    BatchMemoryFilter,
    BatchRecallRequest,
    BatchStoreMemoryItem,
    BatchStoreMemoryRequest,
    DakeraClient,
    DakeraError,
    ErrorCode,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)

from tests.builders import Engram, KeyedClient

LIMIT = 100_000  # max_content_bytes, in UTF-8 bytes


def raises(exc: type[DakeraError], code: ErrorCode, call: Callable[[], Any]) -> DakeraError:
    with pytest.raises(exc) as info:
        call()
    assert info.value.code == code, info.value.response_body
    assert isinstance(info.value.message, str) and info.value.message
    return info.value


def invalid(call: Callable[[], Any], field: str) -> None:
    err = raises(ValidationError, ErrorCode.INVALID_REQUEST, call)
    assert err.status_code == 400
    assert err.response_body["field"] == field, err.response_body
    assert field in (err.details or "")


# -- 401 -----------------------------------------------------------------------------------
def test_unknown_key_is_401(engram: Engram, agent: str) -> None:
    with DakeraClient(engram.url, api_key="ek_not_a_real_key") as bad:
        err = raises(AuthenticationError, ErrorCode.INVALID_API_KEY, bad.whoami)
        assert err.status_code == 401
        raises(AuthenticationError, ErrorCode.INVALID_API_KEY, lambda: bad.store_memory(agent, "x"))
        raises(AuthenticationError, ErrorCode.INVALID_API_KEY, lambda: bad.recall(agent, "x"))
        raises(AuthenticationError, ErrorCode.INVALID_API_KEY, bad.list_keys)


def test_missing_key_is_401(engram: Engram, agent: str) -> None:
    with DakeraClient(engram.url) as anonymous:
        raises(AuthenticationError, ErrorCode.AUTHENTICATION_REQUIRED, anonymous.list_namespaces)
        raises(AuthenticationError, ErrorCode.AUTHENTICATION_REQUIRED,
               lambda: anonymous.start_session(agent))


# -- 403 -----------------------------------------------------------------------------------
def test_read_key_cannot_write(client: DakeraClient, keyed_client: KeyedClient, agent: str) -> None:
    m = client.store_memory(agent, "Readers may look but not touch")
    sid = client.start_session(agent)["id"]
    reader = keyed_client("read", [agent])
    assert reader.recall(agent, "readers").memories[0].id == m["id"]  # reading is fine
    assert reader.get_memory(None, m["id"])["id"] == m["id"]
    denied = ErrorCode.INSUFFICIENT_SCOPE
    err = raises(AuthorizationError, denied, lambda: reader.store_memory(agent, "sneaky write"))
    assert err.status_code == 403
    raises(AuthorizationError, denied, lambda: reader.forget(agent, m["id"]))
    raises(AuthorizationError, denied, lambda: reader.update_memory(agent, m["id"], content="changed"))
    raises(AuthorizationError, denied, lambda: reader.patch_memory_importance(m["id"], agent, 0.1))
    raises(AuthorizationError, denied, lambda: reader.start_session(agent))
    raises(AuthorizationError, denied, lambda: reader.end_session(sid))
    raises(AuthorizationError, denied, lambda: reader.touch_session(sid))
    raises(AuthorizationError, denied, lambda: reader.create_agent(agent))
    raises(AuthorizationError, denied, lambda: reader.delete_namespace(agent))
    raises(AuthorizationError, denied, reader.list_keys)
    raises(AuthorizationError, denied, lambda: reader.create_key("escalate", scope="admin"))
    assert client.get_memory(agent, m["id"])["content"] == "Readers may look but not touch"
    assert client.agent_stats(agent)["total_memories"] == 1
    assert client.get_session(sid)["ended_at"] is None


def test_write_key_cannot_manage_keys_or_namespaces(client: DakeraClient, keyed_client: KeyedClient,
                                                   agent: str) -> None:
    client.store_memory(agent, "kept")
    writer = keyed_client("write", [agent])
    raises(AuthorizationError, ErrorCode.INSUFFICIENT_SCOPE, lambda: writer.delete_namespace(agent))
    raises(AuthorizationError, ErrorCode.INSUFFICIENT_SCOPE, lambda: writer.create_key("k"))
    assert client.agent_stats(agent)["total_memories"] == 1


def test_key_for_another_namespace_is_403(client: DakeraClient, keyed_client: KeyedClient,
                                          agent: str) -> None:
    other = f"{agent}-other"
    theirs = client.store_memory(other, "Private to the other agent")
    sid = client.start_session(other)["id"]
    mine = keyed_client("admin", [agent])
    denied = ErrorCode.NAMESPACE_ACCESS_DENIED
    err = raises(AuthorizationError, denied, lambda: mine.store_memory(other, "not yours"))
    assert err.status_code == 403 and err.response_body["field"] == "agent_id"
    raises(AuthorizationError, denied, lambda: mine.recall(other, "private"))
    raises(AuthorizationError, denied, lambda: mine.search_memories(other, "private"))
    raises(AuthorizationError, denied, lambda: mine.get_memory(other, theirs["id"]))
    raises(AuthorizationError, denied, lambda: mine.forget(other, theirs["id"]))
    raises(AuthorizationError, denied, lambda: mine.batch_recall(BatchRecallRequest(agent_id=other)))
    raises(AuthorizationError, denied, lambda: mine.start_session(f"_dakera_agent_{other}"))
    raises(AuthorizationError, denied, lambda: mine.agent_stats(other))
    raises(AuthorizationError, denied, lambda: mine.agent_memories(other))
    raises(AuthorizationError, denied, lambda: mine.list_sessions(agent_id=other))
    raises(AuthorizationError, denied, lambda: mine.delete_namespace(other))
    raises(AuthorizationError, denied,
           lambda: mine.create_key("wider", scope="read", namespaces=[other]))
    # Ids alone reach nothing: another tenant's memory and session do not exist for this key.
    for call, resource in ((lambda: mine.get_memory(None, theirs["id"]), "memory"),
                           (lambda: mine.touch_session(sid), "session"),
                           (lambda: mine.end_session(sid), "session")):
        with pytest.raises(NotFoundError) as missing:
            call()
        assert missing.value.resource == resource
    assert sid not in {s["id"] for s in mine.list_sessions()}
    assert other not in {a["agent_id"] for a in mine.list_agents()}
    assert client.get_session(sid)["ended_at"] is None
    assert client.get_memory(other, theirs["id"])["content"] == "Private to the other agent"


# -- 404 -----------------------------------------------------------------------------------
def test_unknown_memory_is_404(client: DakeraClient, agent: str) -> None:
    client.store_memory(agent, "something exists here")
    for call in (lambda: client.get_memory(agent, "mem_missing"),
                 lambda: client.get_memory(None, "mem_missing"),
                 lambda: client.update_memory(agent, "mem_missing", content="x"),
                 lambda: client.patch_memory_importance("mem_missing", agent, 0.5)):
        with pytest.raises(NotFoundError) as err:
            call()
        assert err.value.status_code == 404 and err.value.resource == "memory"


def test_unknown_session_is_404(client: DakeraClient, agent: str) -> None:
    for call in (lambda: client.get_session("sess_missing"),
                 lambda: client.end_session("sess_missing"),
                 lambda: client.touch_session("sess_missing"),
                 lambda: client.session_memories("sess_missing"),
                 lambda: client.store_memory(agent, "into nothing", session_id="sess_missing")):
        with pytest.raises(NotFoundError) as err:
            call()
        assert err.value.resource == "session"


def test_unknown_agent_key_and_route_are_404(client: DakeraClient, agent: str) -> None:
    raises(NotFoundError, ErrorCode.NAMESPACE_NOT_FOUND, lambda: client.agent_stats(agent))
    raises(NotFoundError, ErrorCode.NAMESPACE_NOT_FOUND, lambda: client.delete_namespace(agent))
    raises(NotFoundError, ErrorCode.API_KEY_NOT_FOUND, lambda: client.delete_key("key_missing"))
    raises(NotFoundError, ErrorCode.ROUTE_NOT_FOUND, lambda: client.wake_up(agent))


# -- 400 -----------------------------------------------------------------------------------
def test_importance_out_of_range(client: DakeraClient, agent: str) -> None:
    m = client.store_memory(agent, "Importance stays in 0..1", importance=0.4)
    invalid(lambda: client.store_memory(agent, "too important", importance=1.5), "importance")
    invalid(lambda: client.store_memory(agent, "less than nothing", importance=-0.1), "importance")
    invalid(lambda: client.patch_memory_importance(m["id"], agent, 2.0), "importance")
    invalid(lambda: client.update_memory(agent, m["id"], content="changed", importance=-1), "importance")
    invalid(lambda: client.recall(agent, "q", min_importance=1.01), "min_importance")
    invalid(lambda: client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[
        BatchStoreMemoryItem(content="fine"), BatchStoreMemoryItem(content="bad", importance=7)])),
        "memories[1].importance")
    invalid(lambda: client.batch_recall(BatchRecallRequest(
        agent_id=agent, filter=BatchMemoryFilter(max_importance=3))), "filter.max_importance")
    got = client.get_memory(agent, m["id"])
    assert (got["content"], got["importance"]) == ("Importance stays in 0..1", 0.4)
    assert client.agent_stats(agent)["total_memories"] == 1  # the bad batch stored nothing


def test_unknown_memory_type(client: DakeraClient, agent: str) -> None:
    m = client.store_memory(agent, "typed memory")
    invalid(lambda: client.store_memory(agent, "x", memory_type="dream"), "memory_type")
    invalid(lambda: client.recall(agent, "x", memory_type="Episodic"), "memory_type")
    invalid(lambda: client.search_memories(agent, "x", memory_type="long-term"), "memory_type")
    invalid(lambda: client.update_memory(agent, m["id"], memory_type="dream"), "memory_type")
    invalid(lambda: client.agent_memories(agent, memory_type="dream"), "memory_type")
    invalid(lambda: client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[
        BatchStoreMemoryItem(content="x", memory_type="dream")])), "memories[0].memory_type")
    assert client.get_memory(agent, m["id"])["memory_type"] == "episodic"


@pytest.mark.parametrize("top_k", [0, -1, 101])
def test_top_k_out_of_range(client: DakeraClient, agent: str, top_k: int) -> None:
    invalid(lambda: client.recall(agent, "q", top_k=top_k), "top_k")
    invalid(lambda: client.search_memories(agent, "q", top_k=top_k), "top_k")


def test_top_k_at_the_cap(client: DakeraClient, agent: str) -> None:
    client.store_memory(agent, "only one")
    assert len(client.recall(agent, "q", top_k=100).memories) == 1


def test_wrong_types(client: DakeraClient, agent: str) -> None:
    m = client.store_memory(agent, "well typed")
    invalid(lambda: client.store_memory(agent, 12345), "content")  # type: ignore[arg-type]
    invalid(lambda: client.store_memory(agent, "x", tags="not-a-list"), "tags")  # type: ignore[arg-type]
    invalid(lambda: client.store_memory(agent, "x", tags=[1, 2]), "tags[0]")  # type: ignore[list-item]
    invalid(lambda: client.store_memory(agent, "x", metadata=["k"]), "metadata")  # type: ignore[arg-type]
    invalid(lambda: client.store_memory(agent, "x", importance="high"), "importance")  # type: ignore[arg-type]
    invalid(lambda: client.store_memory(42, "x"), "agent_id")  # type: ignore[arg-type]
    invalid(lambda: client.store_memory(agent, "x", event_time="last tuesday"), "event_time")
    invalid(lambda: client.recall(agent, "q", top_k="ten"), "top_k")  # type: ignore[arg-type]
    invalid(lambda: client.recall(agent, "q", since="yesterday"), "since")
    invalid(lambda: client.recall(agent, "q", routing="psychic"), "routing")
    invalid(lambda: client.recall(agent, None), "query")  # type: ignore[arg-type]
    invalid(lambda: client.update_memory(agent, m["id"], tags=[None]), "tags[0]")  # type: ignore[list-item]
    invalid(lambda: client.start_session(agent, metadata="x"), "metadata")  # type: ignore[arg-type]
    invalid(lambda: client.end_session(client.start_session(agent)["id"], summary=7), "summary")  # type: ignore[arg-type]
    assert client.get_memory(agent, m["id"])["tags"] == []


def test_other_bad_fields(client: DakeraClient, agent: str) -> None:
    invalid(lambda: client.store_memory(agent, "   "), "content")
    invalid(lambda: client.store_memory("", "x"), "agent_id")
    invalid(lambda: client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[])),
            "memories")
    invalid(lambda: client.start_session(agent, idle_timeout_secs=2_592_001), "idle_timeout_secs")
    invalid(lambda: client.session_memories(client.start_session(agent)["id"], content_preview_chars=0),
            "content_preview_chars")
    invalid(lambda: client.agent_memories(agent, limit=0), "limit")
    invalid(lambda: client.create_key("bad grant", namespaces=["a*b"]), "namespaces[0]")
    invalid(lambda: client.create_key("bad scope", scope="owner"), "scope")


# -- 413 -----------------------------------------------------------------------------------
def test_content_over_the_byte_limit_is_413(client: DakeraClient, agent: str) -> None:
    err = raises(PayloadTooLargeError, ErrorCode.PAYLOAD_TOO_LARGE,
                 lambda: client.store_memory(agent, "a" * (LIMIT + 1)))
    assert err.status_code == 413 and err.is_oversize and not err.is_quota
    assert err.response_body["field"] == "content"
    # The limit counts UTF-8 bytes, not characters: 50,001 two-byte characters are too many.
    raises(PayloadTooLargeError, ErrorCode.PAYLOAD_TOO_LARGE,
           lambda: client.store_memory(agent, "é" * (LIMIT // 2 + 1)))
    raises(PayloadTooLargeError, ErrorCode.PAYLOAD_TOO_LARGE,
           lambda: client.store_memories_batch(BatchStoreMemoryRequest(agent_id=agent, memories=[
               BatchStoreMemoryItem(content="small"), BatchStoreMemoryItem(content="x" * (LIMIT + 1))])))
    m = client.store_memory(agent, "é" * (LIMIT // 2))  # exactly at the limit is fine
    assert len(m["content"]) == LIMIT // 2
    with pytest.raises(PayloadTooLargeError) as big:
        client.update_memory(agent, m["id"], content="€" * (LIMIT // 3 + 1))
    assert big.value.response_body["field"] == "content"
    assert client.agent_stats(agent)["total_memories"] == 1
    assert client.get_memory(agent, m["id"])["content"] == "é" * (LIMIT // 2)
