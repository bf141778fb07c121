"""Control data on Elasticsearch (production, beside an Elasticsearch record store): the
same rules as the SQLite control store (shards/control/sqlite.py), one index
`<index_prefix>control`.

The shard map and the reshard lease are one document, changed by optimistic concurrency
(read with its sequence number, written only if nobody wrote in between, else read again):
what SQLite's write transaction gives, for any number of routers and reshard jobs. API keys
are documents keyed by their secret's hash, so authenticating is a real-time get; key
writes refresh at once, so a key created on one router is listed by every other.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from shards.config import ElasticsearchConfig
from shards.control.base import ApiKey, MapState, hash_key
from shards.control.rules import ControlRules
from shards.errors import Conflict, LayoutMismatch, NotFound, StorageUnavailable
from shards.es_client import connect_config, ensure_strict_index, guarded, scan

PROPERTIES: dict[str, Any] = {
    "kind": {"type": "keyword"},
    "state": {"type": "object", "enabled": False},  # MapState, as stored
    "key_id": {"type": "keyword"},
    "name": {"type": "keyword"},
    "scope": {"type": "keyword"},
    "namespaces": {"type": "keyword"},
    "every_namespace": {"type": "boolean"},
    "created_at": {"type": "double"},
    "expires_at": {"type": "double"},
    "created_by": {"type": "keyword"},
}
MAP_ID = "shard_map"
CHANGE_ATTEMPTS = 50  # conditional writes lost to other writers before giving up
# Routers authenticate every request: a key found (or not) is remembered this long, so a key
# deleted through another router keeps working for up to this long there.
KEY_CACHE_SECONDS = 5.0


class ElasticsearchControlStore(ControlRules):
    remote = True  # every call is a network round trip (serve/control_calls.py)

    def __init__(self, client: Any, index: str, *, shards: int = 1, replicas: int = 1) -> None:
        self._es = client
        self.index = index
        self.location = f"Elasticsearch index {index}"
        self._secrets: dict[str, tuple[float, ApiKey | None]] = {}  # key hash → (until, key)
        self._call(self._ensure_index, shards, replicas)

    @classmethod
    def from_config(cls, es: ElasticsearchConfig) -> ElasticsearchControlStore:
        client = connect_config(es)
        try:
            return cls(client, f"{es.index_prefix}control", shards=1, replicas=es.number_of_replicas)
        except Exception:
            client.close()
            raise

    def _ensure_index(self, shards: int, replicas: int) -> None:
        if not ensure_strict_index(self._es, self.index, PROPERTIES, shards, replicas):
            raise LayoutMismatch(f"Elasticsearch index {self.index} holds another layout than "
                                 "Engram's control data; choose another "
                                 "elasticsearch.index_prefix", "control")

    def close(self) -> None:
        self._es.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return guarded(f"control store {self.index}", "control", fn, *args, **kwargs)

    def _get(self, doc_id: str) -> dict[str, Any] | None:
        """A document, real time; None when there is none (a 404 is an answer, not an error)."""
        from elasticsearch import NotFoundError

        def fetch() -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = self._es.get(index=self.index, id=doc_id).body
                return found
            except NotFoundError:
                return None
        found: dict[str, Any] | None = self._call(fetch)
        return found

    def _write(self, doc_id: str, document: dict[str, Any], **guard: Any) -> bool:
        """Index a document; False when the guard (op_type create, if_seq_no) refused it."""
        from elasticsearch import ConflictError

        def put() -> bool:
            try:
                self._es.index(index=self.index, id=doc_id, document=document, **guard)
                return True
            except ConflictError:
                return False
        done: bool = self._call(put)
        return done

    def _delete(self, doc_id: str) -> None:
        """Delete a document (one already gone, say by another router, is no error)."""
        from elasticsearch import NotFoundError

        def drop() -> None:
            try:
                self._es.delete(index=self.index, id=doc_id, refresh=True)
            except NotFoundError:
                pass
        self._call(drop)

    # -- the shard map --------------------------------------------------------------------
    def _get_map(self) -> tuple[MapState, tuple[int, int] | None]:
        """The state and its (seq_no, primary_term), None when nothing is recorded yet."""
        doc = self._get(MAP_ID)
        if doc is None:
            return MapState(), None
        raw = dict(doc["_source"]["state"])
        raw["moved"] = set(raw.get("moved") or ())
        return MapState(**raw), (int(doc["_seq_no"]), int(doc["_primary_term"]))

    def _read(self) -> MapState:
        return self._get_map()[0]

    def _change(self, rule: Callable[[MapState], None]) -> MapState:
        # A conditional write the client re-sent after a lost response comes back refused
        # although it landed: the rule then runs again on its own result, which is harmless
        # (a version bumped twice, a lease renewed twice; release_reshard_lease answers
        # Conflict, which the job reports).
        for attempt in range(CHANGE_ATTEMPTS):
            before, version = self._get_map()
            state = replace(before, moved=set(before.moved))
            rule(state)  # raises: nothing written
            if state == before:
                return state  # nothing to write: no needless conflict for the other routers
            stored = {**asdict(state), "moved": sorted(state.moved)}
            guard: dict[str, Any] = ({"op_type": "create"} if version is None else
                                     {"if_seq_no": version[0], "if_primary_term": version[1]})
            if self._write(MAP_ID, {"kind": "map", "state": stored}, **guard):
                return state
            # another writer changed it since the read: back off a little, apply the rule again
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
        raise StorageUnavailable(f"control store {self.index}: the shard map kept changing "
                                 f"under {CHANGE_ATTEMPTS} attempts; retry", "control")

    # -- API keys -------------------------------------------------------------------------
    def _put_key(self, key: ApiKey, key_hash: str, *, overwrite: bool = False) -> None:
        document = {"kind": "key", "key_id": key.key_id, "name": key.name, "scope": key.scope,
                    "namespaces": list(key.namespaces or ()), "every_namespace": key.namespaces is None,
                    "created_at": key.created_at, "expires_at": key.expires_at,
                    "created_by": key.created_by}
        guard = {"refresh": True} if overwrite else {"refresh": True, "op_type": "create"}
        if not self._write(f"key:{key_hash}", document, **guard):
            found = self._get(f"key:{key_hash}")
            # A create the client re-sent after a lost response finds itself: that is success.
            if found is None or found["_source"]["key_id"] != key.key_id:
                raise Conflict("an API key with this secret exists already", "key")
        self._secrets.pop(key_hash, None)

    def ensure_root_key(self, secret: str) -> ApiKey:
        """Every Router replica runs this as it starts, at once: no window without a root
        key, and no replica fails on another's write (the SQLite store's revoke-then-create
        is one process's transaction)."""
        key_hash = hash_key(secret)
        found = self._get(f"key:{key_hash}")
        if found is not None and found["_source"]["key_id"] == "root":
            return _key(found["_source"])
        key = ApiKey(key_id="root", name="root", scope="super_admin", namespaces=None,
                     created_at=time.time())
        self._put_key(key, key_hash, overwrite=True)
        for hit in self._key_hits({"term": {"key_id": "root"}}):  # the root key before this one
            if hit["_id"] != f"key:{key_hash}":
                self._delete(hit["_id"])
        return key

    def by_secret(self, secret: str) -> ApiKey | None:
        key_hash = hash_key(secret)
        now = time.monotonic()
        cached = self._secrets.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        doc = self._get(f"key:{key_hash}")
        key = None if doc is None else _key(doc["_source"])
        if len(self._secrets) > 10_000:  # guessed secrets must not grow it without bound
            self._secrets.clear()
        self._secrets[key_hash] = (now + KEY_CACHE_SECONDS, key)
        return key

    def _key_hits(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return list(scan(self._call, self._es.search, [{"created_at": "asc"}, {"key_id": "asc"}],
                         index=self.index,
                         query={"bool": {"filter": [{"term": {"kind": "key"}}, query]}}))

    def export_keys(self) -> list[tuple[ApiKey, str]]:
        return [(_key(h["_source"]), h["_id"].removeprefix("key:")) for h in self._key_hits({"match_all": {}})]

    def keys(self) -> list[ApiKey]:
        return [_key(h["_source"]) for h in self._key_hits({"match_all": {}})]

    def delete_key(self, key_id: str) -> None:
        hits = self._key_hits({"term": {"key_id": key_id}})
        if not hits:
            raise NotFound(f"api key not found: {key_id}", "key_id")
        for hit in hits:
            self._delete(hit["_id"])
        self._secrets.clear()


def _key(src: dict[str, Any]) -> ApiKey:
    return ApiKey(key_id=src["key_id"], name=src["name"], scope=src["scope"],
                  namespaces=None if src.get("every_namespace") else tuple(src.get("namespaces") or ()),
                  created_at=float(src["created_at"]),
                  expires_at=None if src.get("expires_at") is None else float(src["expires_at"]),
                  created_by=src.get("created_by"))
