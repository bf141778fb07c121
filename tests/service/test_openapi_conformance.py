"""Every served operation, called as a client would with valid input, answers what the
service's own OpenAPI describes: a status it lists, and a body its schema for that status
accepts. The fuzzing (test_fuzz.py) sends mostly bad input, so it checks the error bodies;
this walks the successes, and a few errors, of every operation in the document."""
from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import jsonschema
import pytest

from tests.builders import Engram


class Described:
    """The OpenAPI of the running service; every answer checked against it."""

    def __init__(self, engram: Engram) -> None:
        with engram.http() as c:
            self.spec = c.get("/openapi.json").json()
        self.called: set[tuple[str, str]] = set()
        self.templates = [(path, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+(?:/[^/]+)*?", path) + "$"))
                          for path in self.spec["paths"]]

    def operation(self, method: str, url: str) -> tuple[str, dict[str, Any]]:
        path = httpx.URL(url).path
        # The most specific template first: fewer parameters, then more literal text.
        for template, pattern in sorted(self.templates, key=lambda t: (t[0].count("{"), -len(t[0]))):
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                return template, self.spec["paths"][template][method.lower()]
        raise AssertionError(f"{method} {path}: no operation in the OpenAPI")

    def check(self, response: httpx.Response) -> httpx.Response:
        method = response.request.method
        template, operation = self.operation(method, str(response.request.url))
        self.called.add((method, template))
        described = operation["responses"].get(str(response.status_code))
        assert described is not None, f"{method} {template}: {response.status_code} is not described: {response.text[:300]}"
        content = described.get("content", {})
        media = response.headers["content-type"].split(";")[0]
        assert media in content, f"{method} {template}: {media} not among {sorted(content)}"
        if media == "application/json":
            schema = {**content[media]["schema"], "components": self.spec["components"]}
            try:
                jsonschema.validate(response.json(), schema)
            except jsonschema.ValidationError as exc:
                raise AssertionError(f"{method} {template} {response.status_code}: {exc.message} "
                                     f"at {list(exc.absolute_path)}") from None
        return response


@pytest.fixture
def described(engram: Engram) -> Described:
    return Described(engram)


def test_every_operation_answers_as_its_openapi_says(engram: Engram, described: Described) -> None:
    ns = f"conf-{uuid.uuid4().hex[:8]}"
    moved = f"{ns}-moved"
    check = described.check
    with engram.http() as c:
        for path in ("/health", "/health/live", "/health/ready", "/metrics", "/v1/ops/metrics", "/v1/ops/traffic",
                     "/v1/capabilities", "/v1/auth/whoami"):
            check(c.get(path)).raise_for_status()
        assert check(c.post("/v1/agents", json={"agent_id": ns})).status_code == 201
        sid = check(c.post("/v1/sessions/start", json={"agent_id": ns})).json()["session"]["id"]
        stored = check(c.post("/v1/memory/store", json={
            "agent_id": ns, "content": "Maria Lopez approved the refund for order 4521 in Berlin",
            "session_id": sid, "tags": ["billing"], "metadata": {"channel": "email"}})).json()
        mid = stored["memory"]["id"]
        check(c.post("/v1/memories/store/batch", json={"agent_id": ns, "memories": [
            {"content": "Maria Lopez asked about the Berlin office"}, {"content": "a second note",
                                                                        "session_id": sid}]}))
        check(c.post("/v1/memory/recall", json={"agent_id": ns, "query": "refund Maria", "top_k": 5}))
        check(c.post("/v1/memory/search", json={"agent_id": ns, "query": "refund", "top_k": 5}))
        check(c.post("/v1/memories/recall/batch", json={"agent_id": ns, "filter": {}}))
        check(c.get(f"/v1/memory/get/{mid}", params={"agent_id": ns}))
        check(c.put(f"/v1/memory/update/{mid}", params={"agent_id": ns},
                    json={"content": "Maria Lopez approved the refund for order 4522 in Berlin"}))
        check(c.patch(f"/v1/memories/{mid}/importance", json={"agent_id": ns, "importance": 0.9}))
        check(c.post("/v1/knowledge/graph", json={"agent_id": ns, "memory_id": mid}))
        check(c.get(f"/v1/memories/{mid}/graph"))
        check(c.get(f"/v1/memory/entities/{mid}"))
        check(c.post("/v1/extract", json={"text": "Maria Lopez flew to Berlin on 3 May"}))
        check(c.post(f"/v1/sessions/{sid}/touch"))
        check(c.get("/v1/sessions", params={"agent_id": ns}))
        check(c.get(f"/v1/sessions/{sid}"))
        check(c.get(f"/v1/sessions/{sid}/memories"))
        check(c.post(f"/v1/sessions/{sid}/end", json={"summary": "refund done"}))
        check(c.get("/v1/agents"))
        check(c.get(f"/v1/agents/{ns}/memories"))
        check(c.get(f"/v1/agents/{ns}/sessions"))
        check(c.get(f"/v1/agents/{ns}/stats"))
        check(c.get("/v1/namespaces"))

        created = check(c.post("/admin/keys", json={"name": "conf", "scope": "read", "namespaces": [ns],
                                                    "limits": {"requests_per_second": 5}})).json()
        check(c.get("/admin/keys"))
        check(c.patch(f"/admin/keys/{created['key_id']}", json={"name": "conf-2"}))
        check(c.delete(f"/admin/keys/{created['key_id']}"))

        hook = check(c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "namespaces": [ns],
                                                  "events": ["session.ended"]})).json()
        check(c.get("/v1/webhooks"))
        check(c.get(f"/v1/webhooks/{hook['id']}"))
        check(c.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 5}))
        check(c.delete(f"/v1/webhooks/{hook['id']}"))

        # A namespace exported, dropped, imported back; and an import called off.
        c.post("/v1/memory/store", json={"agent_id": moved, "content": "to be moved"}).raise_for_status()
        head = check(c.get(f"/admin/namespaces/{moved}/export/head")).json()["head"]
        page = check(c.get(f"/admin/namespaces/{moved}/export/memories", params={"limit": 100})).json()
        check(c.delete(f"/v1/namespaces/{moved}"))
        check(c.post(f"/admin/namespaces/{moved}/import/head", json={"head": head}))
        check(c.post(f"/admin/namespaces/{moved}/import/memories", json={"rows": page["rows"]}))
        check(c.post(f"/admin/namespaces/{moved}/import/finish", json={"memories": 1}))
        check(c.delete(f"/v1/namespaces/{moved}"))
        check(c.post(f"/admin/namespaces/{moved}/import/head", json={"head": head}))
        check(c.post(f"/admin/namespaces/{moved}/import/abort"))

        check(c.post("/v1/memory/forget", json={"agent_id": ns, "memory_ids": [mid]}))
        check(c.request("DELETE", "/v1/memories/forget/batch", json={"agent_id": ns, "filter": {"tags": ["none"]}}))

        # Errors answer the one error body, at a status the operation lists.
        assert check(c.get(f"/v1/memory/get/missing-{ns}", params={"agent_id": ns})).status_code == 404
        assert check(c.post("/v1/memory/recall", json={"agent_id": ns, "top_k": 5})).status_code == 400
        check(c.delete(f"/v1/namespaces/{ns}"))
    with engram.http("ek_wrong") as stranger:
        assert check(stranger.get("/v1/agents")).status_code == 401

    every = {(method.upper(), path) for path, ops in described.spec["paths"].items() for method in ops}
    assert every - described.called == set()
