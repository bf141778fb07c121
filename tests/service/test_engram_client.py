"""The client against the real service: every call it offers, the errors it maps, the CLI."""
from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from engram import (
    AuthenticationError,
    Engram,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ValidationError,
)
from engram.cli import main
from tests.builders import Engram as Service


class LosesFirstAnswer(httpx.BaseTransport):
    """Every request reaches the real service, but the first answer is swapped for a 503, as if
    it were lost on the way back: the client must retry, and the retry must not duplicate."""

    def __init__(self) -> None:
        self.real = httpx.HTTPTransport()
        self.answers = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.real.handle_request(request)
        self.answers += 1
        if self.answers > 1:
            return response
        response.read()
        response.close()
        return httpx.Response(503, headers={"Retry-After": "0"},
                              json={"error": "lost", "code": "SERVICE_UNAVAILABLE"})


@pytest.fixture
def client(engram: Service) -> Engram:
    return Engram(base_url=engram.url, api_key=engram.root_key)


def test_memory_round_trip(client: Engram, ns: str) -> None:
    stored = client.memory.store("The cat sleeps on the red sofa", ns, tags=["home"],
                                 memory_type="semantic", importance=0.6, id="cat-1")
    assert stored["id"] == "cat-1" and stored["memory_type"] == "semantic"
    assert client.memory.get("cat-1", namespace=ns)["content"] == "The cat sleeps on the red sofa"
    assert client.memory.get("cat-1")["namespace"] == ns  # found through the key's grants

    updated = client.memory.update("cat-1", ns, content="The cat sleeps on the blue sofa",
                                   importance=0.9)
    assert (updated["content"], updated["importance"]) == ("The cat sleeps on the blue sofa", 0.9)
    assert client.memory.search("blue sofa", ns)[0]["id"] == "cat-1"

    batch = client.memory.store_batch(ns, ["Dogs bark at night",
                                           {"content": "Fish swim", "tags": ["pets"]}])
    assert batch["stored_count"] == 2
    assert client.memory.recall("fish", ns, tags=["pets"])["results"][0]["content"] == "Fish swim"

    gone = client.memory.forget("cat-1", namespace=ns)
    assert gone["deleted_count"] == 1
    with pytest.raises(NotFound) as caught:
        client.memory.get("cat-1", namespace=ns)
    assert caught.value.status == 404 and caught.value.code == "NOT_FOUND"


def test_a_retried_store_is_stored_once(engram: Service, ns: str) -> None:
    flaky = LosesFirstAnswer()
    with Engram(base_url=engram.url, api_key=engram.root_key, transport=flaky) as client:
        stored = client.memory.store("Retries must not duplicate me", ns)
        assert flaky.answers == 2
        flaky.answers = 0
        batch = client.memory.store_batch(ns, ["batch one", "batch two"])
        assert flaky.answers == 2
        everything = client.memory.search("retries duplicate batch", ns, top_k=20)
    assert sorted(m["id"] for m in everything) == sorted(
        [stored["id"], *(m["id"] for m in batch["stored"])])


def test_sessions_listing(client: Engram, ns: str) -> None:
    first = client.sessions.start(ns, {"n": 1})
    second = client.sessions.start(ns, {"n": 2})
    client.sessions.end(first["id"])
    assert {s["id"] for s in client.sessions.list(ns)} == {first["id"], second["id"]}
    assert [s["id"] for s in client.sessions.list(ns, active_only=True)] == [second["id"]]
    assert client.sessions.touch(second["id"])["session_state"] == "active"


def test_errors_from_the_service(engram: Service, client: Engram, ns: str) -> None:
    with pytest.raises(ValidationError) as caught:
        client.memory.store("   ", ns)
    assert caught.value.field == "content" and caught.value.status == 400

    with pytest.raises(ValidationError) as caught:
        client.memory.recall("q", ns, top_k=0)
    assert caught.value.field == "top_k"

    with pytest.raises(PayloadTooLarge):
        client.memory.store("x" * 200_000, ns)

    with Engram(base_url=engram.url, api_key="ek_not_a_key") as stranger:
        with pytest.raises(AuthenticationError) as auth:
            stranger.recall(agent_id=ns, query="q")
    assert auth.value.code == "INVALID_API_KEY"

    reader = client.keys.create(name="reader", scope="read", namespaces=[f"{ns}-mine*"])
    with Engram(base_url=engram.url, api_key=reader["key"]) as limited:
        with pytest.raises(PermissionDenied) as denied:
            limited.recall(agent_id=ns, query="q")
        assert denied.value.code == "NAMESPACE_ACCESS_DENIED"
        with pytest.raises(PermissionDenied) as denied:
            limited.store(agent_id=f"{ns}-mine-1", content="c")
        assert denied.value.code == "INSUFFICIENT_SCOPE"
    client.keys.delete(reader["key_id"])

    with pytest.raises(NotFound) as missing:
        client.sessions.end("sess_does_not_exist")
    assert missing.value.status == 404


def test_cli(engram: Service, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> Any:
        assert main(["--url", engram.url, "--api-key", engram.root_key, "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    assert run("health")["status"] == "healthy"
    stored = run("store", "--namespace", ns, "--tag", "cli", "Paris is the capital of France")
    recalled = run("recall", "--namespace", ns, "--top-k", "1", "capital of France")
    assert recalled["results"][0]["id"] == stored["id"]

    key = run("keys", "create", "--name", "cli", "--scope", "write", "--namespace", ns)
    assert key["namespaces"] == [ns]
    assert key["key_id"] in {k["key_id"] for k in run("keys", "list")}
    # After the command as well: `engram keys update --json …`
    updated = run("keys", "update", key["key_id"], "--json", "--requests-per-second", "5", "--burst", "10")
    assert updated["limits"]["requests_per_second"] == 5 and updated["limits"]["burst"] == 10
    assert run("keys", "delete", key["key_id"])["success"] is True

    assert main(["--url", engram.url, "--api-key", "ek_wrong", "health"]) == 0  # health is open
    assert main(["--url", engram.url, "--api-key", "ek_wrong", "keys", "list"]) == 1
    assert "INVALID_API_KEY" in capsys.readouterr().err


def test_the_cli_prints_tables_for_people(engram: Service, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> str:
        assert main(["--url", engram.url, "--api-key", engram.root_key, *args]) == 0
        return capsys.readouterr().out

    assert "Paris" in run("store", "--namespace", ns, "--importance", "0.9", "Paris is the capital of France")
    run("store", "--namespace", ns, "Lyon is known for its food")
    header, rule, first, *rest = run("recall", "--namespace", ns, "capital of France").splitlines()
    assert header.split() == ["#", "score", "relevance", "importance", "recency", "channels", "id", "content"]
    assert set(rule) <= {"-", " "} and first.startswith("1 ") and "Paris is the capital" in first
    assert "vector" in first and len(rest) == 1  # the channels that found it; both memories
    created = run("keys", "create", "--name", "people", "--namespace", ns, "--stored-bytes", "1000")
    assert "shown this once" in created
    key_id = next(line.split()[1] for line in created.splitlines() if line.startswith("key_id"))
    listed = run("keys", "list")
    [row] = [line for line in listed.splitlines() if line.startswith(key_id)]
    assert "people" in row and ns in row and "stored_bytes=1000" in row
    run("keys", "delete", key_id)
