"""cluster.migrate_records copies a stopped Engram's records and control data to another
storage configuration, whole, leaving the source as it was; run again it skips what is
whole and redoes a namespace cut short. Real shards and control stores: the embedded
layout (SQLite) to PostgreSQL, on the server the tests start (cluster/local_servers/postgres_server.py)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.local_servers.postgres_server import PostgresTestServer
from cluster.migrate_records import migrate
from serve.config import EngramConfig
from shards.control.factory import open_control_store
from shards.routing import shard_for
from shards.shard import Shard
from shards.types import EntityRef, RecallFilter, Scope
from tests.builders import mem, vec

pytestmark = pytest.mark.postgres

NAMES = [f"agent-{i}" for i in range(6)]


def config(data_dir: Path) -> EngramConfig:
    return EngramConfig.from_args({"shard_count": 2, "storage": {"data_dir": str(data_dir)}})


@pytest.fixture()
def target(postgres_server: PostgresTestServer, tmp_path: Path) -> Iterator[EngramConfig]:
    """Records and control data on PostgreSQL under a schema prefix of the test's own (its
    schemas dropped after); the indexes embedded in a data_dir of their own."""
    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield EngramConfig.from_args({"shard_count": 2, "storage": {
        "data_dir": str(tmp_path / "new"), "record_store": "postgres",
        "postgres": {"dsn": postgres_server.dsn, "schema_prefix": prefix, "pool_max_size": 2}}})
    with postgres_server.connect() as conn:  # type: ignore[attr-defined]
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                                      (prefix,)).fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def schemas(server: PostgresTestServer, cfg: EngramConfig) -> set[str]:
    assert cfg.storage.postgres is not None
    prefix = cfg.storage.postgres.schema_prefix
    with server.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
                            (prefix,)).fetchall()
    return {str(r[0]).removeprefix(prefix) for r in rows}


def fill(cfg: EngramConfig) -> str:
    """Two shards of namespaces with sessions, entities and idempotency keys; a key and the
    shard map in the control store. Returns the key's secret."""
    control = open_control_store(cfg.storage)
    control.check_deployed_shards(2)
    _, secret = control.create_key("acme", "write", ["agent-*"], None, None)
    control.close()
    for index in range(2):
        shard = Shard.open_embedded(index, 2, 8, cfg.storage)
        for name in (n for n in NAMES if shard_for(n, 2) == index):
            session = shard.start_session(name, f"s-{name}", {"channel": "chat"})
            shard.write([mem("order", name, f"{name} asked about order 4521", seed=1,
                             session_id=session.id, idempotency_key=f"k-{name}",
                             entities=(EntityRef("order:4521", "order", "4521"),)),
                         mem("refund", name, f"{name} got a refund for order 4521", seed=2,
                             session_id=session.id,
                             entities=(EntityRef("order:4521", "order", "4521"),))])
        shard.close()
    return secret


def everything(cfg: EngramConfig) -> dict[str, object]:
    out: dict[str, object] = {}
    for index in range(2):
        shard = Shard.open_embedded(index, 2, 8, cfg.storage)
        for info in shard.namespaces(Scope(everything=True)):
            memories, _ = shard.listing(info.name, RecallFilter(), 100, 0, newest_first=False)
            out[info.name] = ([(m.id, m.content, m.session_id, m.tags) for m in memories],
                              [(s.id, s.metadata, s.memory_count) for s in shard.sessions(info.name, False, 10, 0)],
                              shard.memory_entities("order", Scope.of(info.name)))
        shard.close()
    return out


def test_a_copy_is_whole_and_the_source_unchanged(tmp_path: Path, target: EngramConfig,
                                                  postgres_server: PostgresTestServer) -> None:
    source = config(tmp_path / "old")
    secret = fill(source)
    before = everything(source)

    copied = migrate(source, target, page=1)
    assert (copied.namespaces, copied.memories, copied.keys) == (len(NAMES), 2 * len(NAMES), 1)
    assert everything(target) == before == everything(source)
    # records and control data are on the server, not in the target's data_dir
    held = schemas(postgres_server, target)
    assert "control" in held and len({s for s in held if s.startswith("shard_")}) == 2
    assert not [*target.storage.data_dir.rglob("records.db"), *target.storage.data_dir.rglob("control.db")]
    # the copy serves: recall through its freshly built indexes, by vector and by BM25
    name = NAMES[0]
    shard = Shard.open_embedded(shard_for(name, 2), 2, 8, target.storage)
    found = shard.recall_candidates(name, vec(2), "refund", RecallFilter(), 10)
    assert {c.memory.id for c in found} == {"order", "refund"}
    assert any("bm25" in c.ranks for c in found if c.memory.id == "refund")
    [(memory, created)] = shard.write([mem("x", name, f"{name} asked about order 4521", seed=1,
                                           idempotency_key=f"k-{name}")]).memories
    assert (memory.id, created) == ("order", False)  # its idempotency key came along
    shard.close()
    control = open_control_store(target.storage)
    assert control.by_secret(secret) is not None and control.shard_map().count == 2
    control.close()

    again = migrate(source, target)  # run again: nothing is copied twice
    assert (again.namespaces, again.skipped, again.memories) == (0, len(NAMES), 0)


def test_a_namespace_cut_short_is_copied_afresh(tmp_path: Path, target: EngramConfig) -> None:
    source = config(tmp_path / "old")
    fill(source)
    name = NAMES[0]
    index = shard_for(name, 2)
    # A first run stopped inside this namespace: its head imported, no memory yet.
    src = Shard.open_embedded(index, 2, 8, source.storage)
    head = src.records.export_head(name)
    src.close()
    half = Shard.open_embedded(index, 2, 8, target.storage)
    half.import_head(head)
    half.close()

    migrate(source, target)
    assert everything(target) == everything(source)
