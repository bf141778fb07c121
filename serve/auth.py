"""API keys: who is calling, what scope they hold, which namespaces their grants cover."""
from __future__ import annotations

import time
from dataclasses import dataclass

from serve.errors import ApiError
from shards.control.base import ApiKey, ControlStore
from shards.types import Scope

SCOPES = {"read": 1, "write": 2, "admin": 3, "super_admin": 4}
# Dakera spells an agent's namespace `_dakera_agent_<agent_id>`; here both name one namespace.
AGENT_PREFIX = "_dakera_agent_"


def canonical_namespace(name: str) -> str:
    return name[len(AGENT_PREFIX):] if name.startswith(AGENT_PREFIX) else name


def dakera_namespace(name: str) -> str:
    """How Dakera spells an agent's namespace on the wire (`CreateAgentResponse`, listings)."""
    return AGENT_PREFIX + name


def grants_scope(namespaces: tuple[str, ...] | None) -> Scope:
    """Grants → Scope: None or "*" reach everything; "p*" is a prefix; anything else exact."""
    if namespaces is None:
        return Scope(everything=True)
    names: set[str] = set()
    prefixes: list[str] = []
    for grant in namespaces:
        if grant.endswith("*"):
            prefix = canonical_namespace(grant[:-1])
            if prefix == "":
                return Scope(everything=True)
            prefixes.append(prefix)
        else:
            names.add(canonical_namespace(grant))
    return Scope(names=frozenset(names), prefixes=tuple(prefixes))


def valid_grant(grant: str) -> bool:
    """A grant is an exact name or a name with one trailing `*`."""
    return bool(grant) and "*" not in grant[:-1]


@dataclass(frozen=True)
class Principal:
    key: ApiKey
    scope: Scope

    @property
    def level(self) -> int:
        return SCOPES.get(self.key.scope, 0)

    def require_level(self, needed: str) -> None:
        if self.level < SCOPES[needed]:
            raise ApiError(403, "INSUFFICIENT_SCOPE",
                           f"this key has scope '{self.key.scope}'; this route needs '{needed}'")

    def require(self, namespace: str, needed: str) -> None:
        self.require_level(needed)
        if not self.scope.covers(namespace):
            raise ApiError(403, "NAMESPACE_ACCESS_DENIED",
                           f"this key has no grant for namespace {namespace!r}",
                           field="agent_id")

    def covers_grants(self, namespaces: list[str] | None) -> bool:
        """Whether every namespace a new key would reach is one this key reaches too."""
        if self.scope.everything:
            return True
        if namespaces is None:
            return False
        for grant in namespaces:
            if grant.endswith("*"):
                prefix = canonical_namespace(grant[:-1])
                if not any(prefix.startswith(p) for p in self.scope.prefixes):
                    return False
            elif not self.scope.covers(canonical_namespace(grant)):
                return False
        return True


def authenticate(control: ControlStore, authorization: str | None) -> Principal:
    if not authorization:
        raise ApiError(401, "AUTHENTICATION_REQUIRED",
                       "send your API key as `Authorization: Bearer <key>`")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "AUTHENTICATION_REQUIRED",
                       "send your API key as `Authorization: Bearer <key>`")
    key = control.by_secret(secret.strip())
    if key is None:
        raise ApiError(401, "INVALID_API_KEY", "unknown API key")
    if key.expires_at is not None and key.expires_at <= time.time():
        raise ApiError(401, "API_KEY_EXPIRED", "this API key has expired")
    return Principal(key=key, scope=grants_scope(key.namespaces))
