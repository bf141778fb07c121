"""The PostgreSQL record store's own promises, beyond the shard contract: its schema is
versioned (an older one is migrated in place, a newer one refused, naming its version), and
several stores over one shard's schema (replicas) write at once without a lost or doubled
write. A real server on loopback (cluster/local_servers/postgres_server.py)."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from cluster.local_servers.postgres_server import PostgresTestServer
from shards.config import PostgresConfig
from shards.errors import InvalidInput, LayoutMismatch, StorageUnavailable
from shards.records.postgres import PostgresRecordStore
from shards.records.postgres import core as postgres_core
from shards.records.postgres.schema import MIGRATIONS
from shards.types import RecallFilter, Scope
from tests.builders import mem

pytestmark = pytest.mark.postgres


def run(server: PostgresTestServer, cfg: PostgresConfig, sql: str, params: tuple[Any, ...] = ()
        ) -> list[tuple[Any, ...]]:
    """One statement in shard 0's schema, outside any store."""
    schema = f"{cfg.schema_prefix}shard_000"
    with server.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f'SET search_path TO "{schema}"')
        cur = conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def version(server: PostgresTestServer, cfg: PostgresConfig) -> int:
    [(found,)] = run(server, cfg, "SELECT version FROM schema_version WHERE store = 'records'")
    return int(found)


def test_a_schema_left_at_version_0_is_built(postgres: PostgresConfig,
                                             postgres_server: PostgresTestServer) -> None:
    # Version 0 by hand: the schema and its version table exist, no table of the store does
    # (an opener that died before its first migration committed leaves nothing else).
    schema = f"{postgres.schema_prefix}shard_000"
    with postgres_server.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f'CREATE SCHEMA "{schema}"')
    run(postgres_server, postgres, "CREATE TABLE schema_version (store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    run(postgres_server, postgres, "INSERT INTO schema_version VALUES ('records', 0)")
    store = PostgresRecordStore(postgres, 0)
    try:
        assert version(postgres_server, postgres) == len(MIGRATIONS)
        [(key, _, created)] = store.insert([mem("m1", "ns", "hello")], 1.0)
        assert created and store.find("m1", Scope.of("ns")) is not None
    finally:
        store.close()


def test_an_older_schema_is_migrated_and_keeps_its_records(
        postgres: PostgresConfig, postgres_server: PostgresTestServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    store = PostgresRecordStore(postgres, 0)
    store.insert([mem("m1", "ns", "written at version 1", tags=("a", "ü"))], 1.0)
    store.close()
    # A release with one more migration: the store written at version 1 is brought forward.
    newer = [*MIGRATIONS, "ALTER TABLE memories ADD COLUMN probe TEXT NOT NULL DEFAULT 'v2'"]
    monkeypatch.setattr(postgres_core, "MIGRATIONS", newer)
    store = PostgresRecordStore(postgres, 0)
    try:
        assert version(postgres_server, postgres) == len(newer)
        found = store.find("m1", Scope.of("ns"))
        assert found is not None and found[1].content == "written at version 1"
        assert found[1].tags == ("a", "ü")
        assert run(postgres_server, postgres, "SELECT probe FROM memories") == [("v2",)]
    finally:
        store.close()


def test_a_newer_schema_is_refused_naming_its_version(postgres: PostgresConfig,
                                                      postgres_server: PostgresTestServer) -> None:
    PostgresRecordStore(postgres, 0).close()
    newer = len(MIGRATIONS) + 1
    run(postgres_server, postgres, "UPDATE schema_version SET version = %s WHERE store = 'records'", (newer,))
    with pytest.raises(LayoutMismatch, match=f"version {newer}.*up to {len(MIGRATIONS)}"):
        PostgresRecordStore(postgres, 0)
    assert version(postgres_server, postgres) == newer  # refused, not touched


def test_replicas_write_at_once_without_losing_or_doubling_a_write(postgres: PostgresConfig) -> None:
    """Two stores over one shard (two replicas), three threads each, all storing the same
    memories (retries, in effect) and each its own: every id is stored once, every call
    answers the stored memory, and the index log names each key in commit order."""
    replicas = [PostgresRecordStore(postgres, 0) for _ in range(2)]
    errors: list[BaseException] = []
    answers: dict[str, set[int]] = {}
    lock = threading.Lock()

    def writer(store: PostgresRecordStore, worker: int) -> None:
        try:
            for i in range(15):
                shared = mem(f"shared-{i}", "ns", f"shared {i}", idempotency_key=f"k{i}")
                own = mem(f"own-{worker}-{i}", "ns", f"own {worker} {i}", tags=("t",))
                for key, memory, _ in store.insert([shared, own], float(i)):
                    with lock:
                        answers.setdefault(memory.id, set()).add(key)
                store.touch([(key, 1, float(i)) for key in answers.get(f"shared-{i}", ())])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(replicas[n % 2], n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert all(len(keys) == 1 for keys in answers.values())  # one key per id, everywhere
        memories, namespaces, _, _ = replicas[0].counts()
        assert (memories, namespaces) == (15 + 6 * 15, 1)
        shared = replicas[1].find("shared-3", Scope.of("ns"))
        assert shared is not None and shared[1].access_count == 6
        _, pending = replicas[0].pending_index_keys()
        assert sorted(pending) == replicas[1].all_keys()
    finally:
        for store in replicas:
            store.close()


def test_connections_dropped_by_the_server_are_replaced_before_a_call_uses_them(
        postgres: PostgresConfig, postgres_server: PostgresTestServer) -> None:
    """A restart or fail-over drops every connection of the pool: each is tried as it
    leaves the pool (shards/postgres_pool.py), so no request draws a dead one."""
    store = PostgresRecordStore(postgres, 0)
    try:
        store.insert([mem("m1", "ns", "before the loss")], 1.0)
        with postgres_server.connect() as conn:  # type: ignore[attr-defined]
            dropped = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE application_name = %s",
                                   (f"engram records {store.schema}"[:63],)).fetchone()[0]
        assert dropped >= 1
        found = store.find("m1", Scope.of("ns"))
        assert found is not None and found[1].content == "before the loss"
        store.insert([mem("m2", "ns", "after the loss")], 2.0)
        assert store.counts()[0] == 2
    finally:
        store.close()


def test_an_unreachable_server_is_retriable(postgres: PostgresConfig) -> None:
    unreachable = postgres.model_copy(update={"dsn": "postgresql://engram@127.0.0.1:9/engram",
                                              "connect_timeout_s": 1.0})
    with pytest.raises(StorageUnavailable) as refused:
        PostgresRecordStore(unreachable, 0)
    assert refused.value.retriable


def test_text_with_a_nul_character_is_refused_naming_its_field(postgres: PostgresConfig) -> None:
    """PostgreSQL text cannot hold NUL (SQLite's can): refused whole, nothing stored; in tags
    and metadata (JSON) it is escaped and kept."""
    store = PostgresRecordStore(postgres, 0)
    try:
        with pytest.raises(InvalidInput) as refused:
            store.insert([mem("ok", "ns", "fine"), mem("bad", "ns", "a\x00b")], 1.0)
        assert refused.value.field == "content" and store.counts()[0] == 0
        store.insert([mem("m1", "ns", "fine", tags=("nul\x00tag",), metadata={"k": "v\x00", "n": [1, {"ü": None}]})], 1.0)
        found = store.find("m1", Scope.of("ns"))
        assert found is not None
        assert found[1].tags == ("nul\x00tag",) and found[1].metadata == {"k": "v\x00", "n": [1, {"ü": None}]}
    finally:
        store.close()


def test_tag_filters_match_exactly_whatever_the_tags_hold(postgres: PostgresConfig) -> None:
    tags = {"plain": ("a",), "unicode": ("ü", "🚀"), "nul": ("x\x00y",), "quote": ('say "hi"', "b\\s")}
    store = PostgresRecordStore(postgres, 0)
    try:
        store.insert([mem(mid, "ns", mid, tags=t) for mid, t in tags.items()], 1.0)
        for mid, held in tags.items():
            for tag in held:
                listed, total = store.listing("ns", RecallFilter(tags_any=(tag, "absent")), 10, 0)
                assert [m.id for m in listed] == [mid] and total == 1
            listed, _ = store.listing("ns", RecallFilter(tags_all=held), 10, 0)
            assert [m.id for m in listed] == [mid]
        assert store.listing("ns", RecallFilter(tags_all=("a", "ü")), 10, 0) == ([], 0)
        assert store.listing("ns", RecallFilter(tags_any=("A",)), 10, 0) == ([], 0)
    finally:
        store.close()
