"""Webhooks against the running service, with receivers on 127.0.0.1: every event type
arrives signed, each event once per subscription and identified; a receiver that is down for
a while gets what it missed (and nothing of a memory forgotten meanwhile); one that answers
500 is retried with backoff, then the delivery is marked failed; and a subscription never
sees more than its creating key may read, even after the key is narrowed."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cluster.ingress import free_ports
from engram.webhooks import verify
from tests.builders import Engram

WAIT_S = 45.0  # ample: deliveries go out within a dispatcher round (0.2 s in the tests' config)


class Receiver:
    """An HTTP receiver on 127.0.0.1 that records what it gets and answers `status`."""

    def __init__(self, port: int | None = None, status: int = 204) -> None:
        self.port = port or free_ports(1)[0]
        self.status = status
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def events(self, secret: str) -> list[dict[str, Any]]:
        """Every delivery received, its signature checked."""
        return [verify(secret, headers, body) for headers, body in list(self.received)]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def eventually(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def subscribe(c: httpx.Client, url: str, namespaces: list[str], events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "namespaces": namespaces, "description": "test receiver"}
    if events is not None:
        body["events"] = events
    r = c.post("/v1/webhooks", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_every_event_type_arrives_signed_and_once(engram: Engram, ns: str, receiver: Receiver) -> None:
    key = engram.create_key("write", [ns])
    with engram.http(key) as c, engram.http() as root:
        hook = subscribe(c, receiver.url, [ns])
        assert hook["secret"].startswith("whsec_") and hook["events"] == [
            "memory.stored", "memory.updated", "memory.forgotten", "session.ended", "namespace.deleted"]
        assert "secret" not in c.get(f"/v1/webhooks/{hook['id']}").json()
        session = c.post("/v1/sessions/start", json={"agent_id": ns}).json()["session"]["id"]
        stored = c.post("/v1/memory/store", json={"agent_id": ns, "content": "Ines prefers aisle seats",
                                                   "session_id": session, "tags": ["travel"]}).json()["memory"]
        eventually(lambda: receiver.events(hook["secret"]), "the stored event")
        c.put(f"/v1/memory/update/{stored['id']}", params={"agent_id": ns},
              json={"content": "Ines prefers window seats"}).raise_for_status()
        # delivered before the forget below (which would redact it while it waits)
        eventually(lambda: len(receiver.received) >= 2, "the updated event")
        c.post(f"/v1/sessions/{session}/end", json={}).raise_for_status()
        c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": [stored["id"]]}).raise_for_status()
        root.delete(f"/v1/namespaces/{ns}").raise_for_status()
        events = eventually(lambda: len(receiver.received) >= 5 and receiver.events(hook["secret"]),
                            "five deliveries")
    by_type = {e["type"]: e for e in events}
    # (sent several at a time: receivers may see them in any order, each with its timestamp)
    assert sorted(by_type) == sorted(["memory.stored", "memory.updated", "session.ended", "memory.forgotten",
                                      "namespace.deleted"])
    assert by_type["memory.updated"]["data"]["content"] == "Ines prefers window seats"
    assert by_type["memory.stored"]["data"]["id"] == stored["id"]
    assert by_type["memory.stored"]["data"]["tags"] == ["travel"] and by_type["memory.stored"]["namespace"] == ns
    assert by_type["session.ended"]["data"]["id"] == session
    assert by_type["memory.forgotten"]["data"] == {"id": stored["id"], "namespace": ns, "reason": "forget"}
    assert by_type["namespace.deleted"]["data"]["namespace"] == ns
    ids = [h["webhook-id"] for h, _ in receiver.received]
    assert len(set(ids)) == 5 and ids == [e["id"] for e in events]
    headers = receiver.received[0][0]
    assert headers["engram-event-type"] == "memory.stored" and headers["engram-delivery-attempt"] == "1"
    time.sleep(1.0)  # nothing more comes: each event once
    assert len(receiver.received) == 5


def test_a_receiver_down_for_a_while_gets_what_it_missed(engram: Engram, ns: str) -> None:
    later = Receiver()  # not listening yet: every attempt is refused
    with engram.http() as root:
        hook = subscribe(root, later.url, [ns], ["memory.stored", "memory.forgotten"])
        kept = root.post("/v1/memory/store", json={"agent_id": ns, "content": "Ines lives in Braga"}).json()["memory"]
        gone = root.post("/v1/memory/store", json={"agent_id": ns, "content": "Ines's door code is 4471"}).json()["memory"]
        root.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": [gone["id"]]}).raise_for_status()
        eventually(lambda: any(d["attempts"] >= 1 for d in root.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]),
                   "a first attempt, refused")
        later.start()
        try:
            events = eventually(lambda: len(later.received) >= 3 and later.events(hook["secret"]), "three deliveries")
            deliveries = eventually(
                lambda: [d for d in root.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
                         if d["state"] == "delivered"] if len(later.received) >= 3 else None, "recorded")
        finally:
            later.stop()
    stored = {e["data"]["id"]: e["data"] for e in events if e["type"] == "memory.stored"}
    assert stored[kept["id"]]["content"] == "Ines lives in Braga"
    # forgotten before it could be delivered: its stored event went out without its text
    assert stored[gone["id"]]["content"] is None and stored[gone["id"]]["redacted"] is True
    assert "4471" not in json.dumps(events)
    assert all(d["state"] == "delivered" for d in deliveries) and max(d["attempts"] for d in deliveries) >= 2


def test_a_receiver_answering_500_is_retried_then_marked_failed(engram: Engram, ns: str) -> None:
    failing = Receiver(status=500).start()
    try:
        with engram.http() as root:
            hook = subscribe(root, failing.url, [ns], ["memory.stored"])
            root.post("/v1/memory/store", json={"agent_id": ns, "content": "a note nobody takes"}).raise_for_status()
            [failed] = eventually(
                lambda: [d for d in root.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
                         if d["state"] == "failed"], "the delivery marked failed")
    finally:
        failing.stop()
    max_attempts = engram.config["webhooks"]["max_attempts"]
    assert failed["attempts"] == max_attempts and failed["last_status"] == "500"
    assert [h["webhook-id"] for h, _ in failing.received] == [failed["event_id"]] * max_attempts
    assert [h["engram-delivery-attempt"] for h, _ in failing.received] == [str(n) for n in range(1, max_attempts + 1)]
    # the signed timestamps move with the attempts: retried with a growing wait, not at once
    stamps = [int(h["webhook-timestamp"]) for h, _ in failing.received]
    assert stamps[-1] - stamps[0] >= 1


def test_a_subscription_sees_only_what_its_key_may_read(engram: Engram, receiver: Receiver) -> None:
    elsewhere = Receiver().start()  # the root key's subscription, to a tenant the key may not read
    try:
        only_what_the_key_reads(engram, receiver, elsewhere)
    finally:
        elsewhere.stop()


def only_what_the_key_reads(engram: Engram, receiver: Receiver, elsewhere: Receiver) -> None:
    run = uuid.uuid4().hex[:8]
    mine, also_mine, theirs = f"wh-{run}-a1", f"wh-{run}-a2", f"wh-{run}-b1"
    key = engram.create_key("write", [f"wh-{run}-a*"])
    with engram.http(key) as c, engram.http() as root:
        too_wide = c.post("/v1/webhooks", json={"url": receiver.url, "namespaces": [f"wh-{run}-*"]})
        assert too_wide.status_code == 403 and too_wide.json()["field"] == "namespaces"
        hook = subscribe(c, receiver.url, [f"wh-{run}-a*"], ["memory.stored"])
        other = subscribe(root, elsewhere.url, [theirs], ["memory.stored"])
        assert c.get(f"/v1/webhooks/{other['id']}").status_code == 404  # another key's: not there
        assert [h["id"] for h in c.get("/v1/webhooks").json()["webhooks"]] == [hook["id"]]
        for namespace in (mine, theirs):
            root.post("/v1/memory/store", json={"agent_id": namespace, "content": f"a note in {namespace}"})
        eventually(lambda: receiver.received and elsewhere.received, "a delivery to each")
        time.sleep(1.0)
        assert [e["namespace"] for e in receiver.events(hook["secret"])] == [mine]
        assert [e["namespace"] for e in elsewhere.events(other["secret"])] == [theirs]
        # Narrowed to a2: a1's events no longer reach the subscription.
        key_id = c.get("/v1/auth/whoami").json()["key_id"]
        root.patch(f"/admin/keys/{key_id}", json={"namespaces": [also_mine]}).raise_for_status()
        root.post("/v1/memory/store", json={"agent_id": mine, "content": "after the narrowing"}).raise_for_status()
        root.post("/v1/memory/store", json={"agent_id": also_mine, "content": "still granted"}).raise_for_status()
        eventually(lambda: len(receiver.received) >= 2, "the a2 delivery")
        time.sleep(1.0)
        assert [e["namespace"] for e in receiver.events(hook["secret"])] == [mine, also_mine]
        # Deleted with its key: nothing more, and its webhooks are inert.
        c.delete(f"/v1/webhooks/{hook['id']}").raise_for_status()
        assert c.get(f"/v1/webhooks/{hook['id']}").status_code == 404
        root.delete(f"/v1/webhooks/{other['id']}").raise_for_status()


def test_bad_webhooks_are_refused_naming_the_field(engram: Engram, ns: str) -> None:
    with engram.http() as root:
        for body, field in [({"url": "http://example.com/hook", "namespaces": [ns]}, "url"),
                            ({"url": "ftp://127.0.0.1/hook", "namespaces": [ns]}, "url"),
                            ({"url": "http://127.0.0.1:9/hook", "namespaces": []}, "namespaces"),
                            ({"url": "http://127.0.0.1:9/hook", "namespaces": ["a*b"]}, "namespaces[0]"),
                            ({"url": "http://127.0.0.1:9/hook", "namespaces": [ns], "events": ["memory.read"]},
                             "events[0]")]:
            r = root.post("/v1/webhooks", json=body)
            assert r.status_code in (400, 422) and r.json()["field"] == field, (body, r.text)
        assert root.get("/v1/webhooks/wh_missing").status_code == 404
        assert root.get("/v1/webhooks/wh_missing/deliveries").status_code == 404


def test_the_client_and_the_cli_manage_webhooks(engram: Engram, ns: str, receiver: Receiver,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from engram import Engram as Client
    from engram.cli import main

    def run(*args: str) -> str:
        assert main(["--url", engram.url, "--api-key", engram.root_key, *args]) == 0
        return capsys.readouterr().out

    created = run("webhooks", "create", "--to", receiver.url, "--namespace", ns, "--event", "memory.stored",
                  "--description", "from the cli")
    assert "whsec_" in created and "shown this once" in created
    hook_id = next(line.split()[1] for line in created.splitlines() if line.startswith("id "))
    assert hook_id in run("webhooks", "list") and "from the cli" in run("webhooks", "list")
    with Client(engram.url, api_key=engram.root_key) as client:
        client.memory.store("Ines takes the 8:10 train", ns)
        eventually(lambda: client.webhooks.deliveries(hook_id)[0]["state"] == "delivered"
                   if client.webhooks.deliveries(hook_id) else None, "a delivery")
        assert client.webhooks.get(hook_id)["description"] == "from the cli"
        assert json.loads(run("webhooks", "deliveries", hook_id, "--json"))[0]["attempts"] == 1
        run("webhooks", "delete", hook_id)
        assert hook_id not in [h["id"] for h in client.webhooks.list()]
