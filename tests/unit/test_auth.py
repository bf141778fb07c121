"""Grants: exact names, prefix patterns, Dakera's agent-namespace spelling."""
from __future__ import annotations

from serve.auth import Principal, canonical_namespace, grants_scope, valid_grant
from shards.control.base import ApiKey


def key(scope: str, namespaces: tuple[str, ...] | None) -> Principal:
    k = ApiKey(key_id="k", name="k", scope=scope, namespaces=namespaces, created_at=0.0)
    return Principal(key=k, scope=grants_scope(namespaces))


def test_prefix_and_exact_grants() -> None:
    scope = grants_scope(("acme-*", "shared"))
    assert scope.covers("acme-1") and scope.covers("acme-") and scope.covers("shared")
    assert not scope.covers("bolt-1") and not scope.covers("acme") and not scope.covers("shared-2")


def test_dakera_agent_namespace_spelling_is_the_same_namespace() -> None:
    assert canonical_namespace("_dakera_agent_bob") == "bob"
    assert grants_scope(("_dakera_agent_acme-*",)).covers("acme-7")
    assert grants_scope(("*",)).everything and grants_scope(None).everything


def test_a_key_can_only_grant_what_it_holds() -> None:
    admin = key("admin", ("acme-*",))
    assert admin.covers_grants(["acme-eu-*", "acme-1"])
    assert not admin.covers_grants(["bolt-*"])
    assert not admin.covers_grants(None)  # unrestricted
    assert not admin.covers_grants(["acm*"])  # wider than acme-*


def test_grant_syntax() -> None:
    assert valid_grant("acme-*") and valid_grant("a") and not valid_grant("a*b") and not valid_grant("")
