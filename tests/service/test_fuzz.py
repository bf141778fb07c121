"""Fuzzing the service's own OpenAPI (schemathesis 4): every served operation, with a root key
and with a key scoped to namespaces of its own, gets generated paths, queries and bodies; no
answer is a 5xx, and every answer conforms to the OpenAPI: a status it lists, the content
type it gives, and a body its schema for that status accepts (serve/responses.py). Bounded: a few examples per operation, each request to 127.0.0.1 with a
timeout. (schemathesis's pytest plugin does not run under pytest 9: its strategies are
driven by hypothesis here, one operation at a time.)"""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NOT_SET

from tests.builders import Engram

# What would reach beyond the fuzzing's own data on the shared test service: deleting
# namespaces (names are drawn at random, but another test's could be drawn) and API keys.
EXCLUDED = {("DELETE", "/v1/namespaces/{namespace}"), ("DELETE", "/admin/keys/{key_id}")}
EXAMPLES = 8  # per operation and key
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def server_errors(engram: Engram, key: str) -> list[str]:
    """Fuzz every operation with this key; answers what failed (operation: the failure)."""
    schema = schemathesis.openapi.from_url(f"{engram.url}/openapi.json")
    failures: list[str] = []
    sent: list[tuple[str, bool]] = []  # (operation, whether a body went with it)
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path.replace(":path}", "}")) in EXCLUDED:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            sent.append((operation.label, case.body is not NOT_SET))
            case.call_and_validate(base_url=engram.url, headers={"Authorization": f"Bearer {key}"},
                                   checks=CHECKS, timeout=30)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - every operation's failure, then one assert
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    # The fuzzing reached every operation, and the bodies the OpenAPI describes went out.
    assert len({label for label, _ in sent}) >= 40, sorted({label for label, _ in sent})
    assert len({label for label, body in sent if body}) >= 14
    return failures


def drop_webhooks(engram: Engram, key: str) -> None:
    """The subscriptions the fuzzing made (to drawn loopback ports) go with it."""
    with engram.http(key) as c:
        mine = c.get("/v1/auth/whoami").json()["key_id"]  # a root key lists every key's
        for hook in c.get("/v1/webhooks").json()["webhooks"]:
            if hook["key_id"] == mine:
                c.delete(f"/v1/webhooks/{hook['id']}")


def test_no_operation_answers_a_server_error_or_off_its_description_to_a_root_key(engram: Engram) -> None:
    try:
        assert server_errors(engram, engram.root_key) == []
    finally:
        drop_webhooks(engram, engram.root_key)


def test_no_operation_answers_a_server_error_or_off_its_description_to_a_scoped_key(engram: Engram) -> None:
    key = engram.create_key("write", [f"fuzz-{uuid.uuid4().hex[:8]}-*"], name="fuzz")
    try:
        assert server_errors(engram, key) == []
    finally:
        drop_webhooks(engram, key)
