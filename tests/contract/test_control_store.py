"""The control store's contract (API keys, the shard map and the reshard lease), one suite
for SQLite (embedded) and PostgreSQL (production); then what only the PostgreSQL store has
(schema versions, a lost server)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from cluster.local_servers.postgres_server import PostgresTestServer
from shards.config import EmbeddedStorageConfig, PostgresConfig
from shards.control.base import ControlStore, KeyLimits
from shards.control.factory import open_control_store
from shards.control.postgres import PostgresControlStore
from shards.control.sqlite import SQLiteControlStore
from shards.errors import Conflict, LayoutMismatch, NotFound, StorageUnavailable
from shards.routing import shard_for

T = TypeVar("T")

MOVING = [n for n in (f"agent-{i}" for i in range(200)) if shard_for(n, 2) == 1][:3]


def test_the_lease_admits_one_job_and_fences_the_one_before(control: ControlStore) -> None:
    initial = control.check_deployed_shards(2)
    first = control.begin_reshard(3, "job-a", 30, now=1000.0)
    assert first.epoch > initial.epoch
    assert control.begin_reshard(3, "job-a", 30, now=1010.0) == first  # itself: resumes
    with pytest.raises(Conflict, match="reshard job job-a is running"):
        control.begin_reshard(3, "job-b", 30, now=1020.0)
    control.renew_reshard_lease("job-a", 30, now=1030.0)  # good until 1060
    with pytest.raises(Conflict, match="job-a is running"):
        control.begin_reshard(3, "job-b", 30, now=1059.0)
    # job-a went quiet: after its lease, job-b takes over under a newer epoch.
    taken = control.begin_reshard(3, "job-b", 30, now=1061.0)
    assert taken.epoch > first.epoch and taken.target == 3
    for stale in (lambda: control.renew_reshard_lease("job-a", 30, now=1062.0),
                  lambda: control.mark_moved(MOVING[:1], "job-a"),
                  lambda: control.finish_reshard("job-a")):
        with pytest.raises(Conflict, match="job-a lost its lease to job job-b"):
            stale()
    # A job that stops early renews for 0 s: the next run need not wait.
    control.renew_reshard_lease("job-b", 0, now=1070.0)
    assert control.begin_reshard(3, "job-c", 30, now=1070.5).target == 3
    done = control.finish_reshard("job-c")
    assert (done.count, done.target) == (3, None)
    # After the end, no job holds anything, and a new reshard starts clean.
    with pytest.raises(Conflict, match="no reshard in progress"):
        control.renew_reshard_lease("job-c", 30)
    assert control.begin_reshard(2, "job-d", 30).target == 2


def test_the_control_store_undoes_a_reshard(control: ControlStore) -> None:
    control.check_deployed_shards(2)
    with pytest.raises(Conflict, match="nothing to abort"):
        control.begin_abort("job-a", 30)
    control.begin_reshard(3, "job-a", 30, now=1000.0)
    control.mark_moved(["x"], "job-a")
    with pytest.raises(Conflict, match="job-a is running"):
        control.begin_abort("job-b", 30, now=1001.0)
    control.renew_reshard_lease("job-a", 0, now=1002.0)
    aborting = control.begin_abort("job-b", 30, now=1003.0)
    assert aborting.aborting and aborting.target == 3 and aborting.moved == {"x"}
    with pytest.raises(Conflict, match="being undone"):
        control.begin_reshard(3, "job-c", 30, now=2000.0)
    assert "y" not in control.place("y").moved  # new namespaces stay under the count
    with pytest.raises(Conflict, match="finish the abort"):
        control.finish_reshard("job-b")
    with pytest.raises(Conflict, match="move them back"):
        control.finish_abort("job-b")
    control.unmark_moved(["x"], "job-b")
    done = control.finish_abort("job-b")
    assert (done.count, done.target, done.moved, done.aborting) == (2, None, frozenset(), False)
    assert done.epoch > aborting.epoch
    assert control.finish_abort("job-b") == done  # again: no-op
    assert control.begin_reshard(4, "job-d", 30).target == 4  # a new reshard starts clean


def test_an_unset_root_key_is_revoked(control: ControlStore) -> None:
    control.ensure_root_key("ek_root_secret")
    assert control.by_secret("ek_root_secret") is not None
    control.revoke_root_key()
    assert control.by_secret("ek_root_secret") is None


def test_keys_are_found_by_secret_listed_and_deleted(control: ControlStore) -> None:
    key, secret = control.create_key("acme", "write", ["acme-*"], None, "root")
    everything, _ = control.create_key("ops", "admin", None, 1e12, None)
    assert control.by_secret(secret) == key and control.by_secret("ek_wrong") is None
    assert control.get_key(everything.key_id).namespaces is None  # None: every namespace
    assert [k.key_id for k in control.keys()] == [key.key_id, everything.key_id]
    control.delete_key(key.key_id)
    assert control.by_secret(secret) is None
    with pytest.raises(NotFound):
        control.delete_key(key.key_id)


def test_a_key_keeps_its_limits_and_an_update_changes_only_name_grants_and_limits(
        control: ControlStore) -> None:
    limits = KeyLimits(requests_per_second=2.5, burst=5, memories_per_namespace=100)
    key, secret = control.create_key("acme", "write", ["acme-*"], None, "root", limits=limits)
    assert control.by_secret(secret) == key and key.limits == limits
    changed = control.update_key(replace(key, name="acme-2", namespaces=("acme-1",),
                                         limits=KeyLimits(stored_bytes=10_000)))
    assert changed == replace(key, name="acme-2", namespaces=("acme-1",),
                              limits=KeyLimits(stored_bytes=10_000))
    assert control.by_secret(secret) == changed and control.export_keys()[0][0] == changed
    assert control.update_key(replace(changed, limits=KeyLimits())).limits == KeyLimits()
    with pytest.raises(NotFound):
        control.update_key(replace(key, key_id="key_gone"))


def test_two_stores_over_the_same_data_see_each_others_changes(control: ControlStore,
                                                              reopen_control: ControlStore) -> None:
    control.check_deployed_shards(2)
    control.begin_reshard(3, "job-a", 30, now=1000.0)
    assert reopen_control.mark_moved(["x"], "job-a").moved == {"x"}  # the other router's write
    assert control.shard_map().moved == {"x"} and control.shard_map().target == 3
    with pytest.raises(Conflict, match="job-a is running"):
        reopen_control.begin_reshard(3, "job-b", 30, now=1001.0)


def test_nothing_is_written_before_a_shard_count_is_recorded(control: ControlStore) -> None:
    with pytest.raises(LayoutMismatch, match="no shard map recorded"):
        control.begin_reshard(3, "job-a", 30, now=1000.0)
    first = control.shard_map(initial_count=2)
    assert (first.count, first.target, first.moved) == (2, None, frozenset())
    assert control.begin_reshard(3, "job-b", 30, now=1001.0).target == 3  # no lease was left


def at_once(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Run the calls in threads released together; each one's answer or exception."""
    gate = threading.Barrier(len(calls))
    answers: list[T | Exception] = [RuntimeError("did not run")] * len(calls)

    def run(i: int) -> None:
        gate.wait()
        try:
            answers[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the answer under test
            answers[i] = exc
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_routers_racing_for_the_lease_get_one_winner(control: ControlStore,
                                                     reopen_control: ControlStore) -> None:
    control.check_deployed_shards(2)
    stores = [control, reopen_control] * 4  # two routers, four callers each
    answers = at_once([lambda s=s, i=i: s.begin_reshard(3, f"job-{i}", 30, now=1000.0)
                       for i, s in enumerate(stores)])
    won = [i for i, a in enumerate(answers) if not isinstance(a, Exception)]
    assert len(won) == 1, answers
    assert all(isinstance(a, Conflict) and "is running" in str(a)
               for i, a in enumerate(answers) if i not in won), answers
    holder = f"job-{won[0]}"
    # Racing changes are all kept: none is lost to another written over it.
    before = control.shard_map()
    names = [f"ns-{i}" for i in range(len(stores))]
    marked = at_once([lambda s=s, n=n: s.mark_moved([n], holder)
                      for s, n in zip(stores, names)])
    assert not [a for a in marked if isinstance(a, Exception)], marked
    after = reopen_control.shard_map()
    assert after.moved == set(names) and after.version == before.version + len(names)


# -- PostgreSQL only -----------------------------------------------------------------------

@pytest.mark.postgres
def test_a_newer_control_schema_is_refused_naming_its_version(
        postgres: PostgresConfig, postgres_server: PostgresTestServer) -> None:
    PostgresControlStore.from_config(postgres).close()
    with postgres_server.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f'UPDATE "{postgres.schema_prefix}control".schema_version SET version = 7'
                     " WHERE store = 'control'")
    with pytest.raises(LayoutMismatch, match="at version 7, and this code knows versions up to 2"):
        PostgresControlStore.from_config(postgres)


@pytest.mark.postgres
def test_a_lost_postgres_server_is_storage_unavailable(
        postgres: PostgresConfig, postgres_server: PostgresTestServer) -> None:
    control = PostgresControlStore.from_config(postgres)
    try:
        key, secret = control.create_key("acme", "write", None, None, None)
        with postgres_server.connect() as conn:  # type: ignore[attr-defined]
            conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                         " WHERE application_name = 'engram control'")
        # Each connection is tried as it leaves the pool: the dropped ones are replaced there.
        assert control.by_secret(secret) == key
    finally:
        control.close()
    nowhere = postgres.model_copy(update={"dsn": "postgresql://engram@127.0.0.1:1/engram",
                                          "connect_timeout_s": 1.0})
    with pytest.raises(StorageUnavailable, match="cannot reach PostgreSQL"):
        PostgresControlStore.from_config(nowhere)


@pytest.mark.postgres
def test_postgres_records_refuse_a_data_dir_with_sqlite_control_data(
        postgres: PostgresConfig, tmp_path: Path) -> None:
    SQLiteControlStore(tmp_path / "control.db").close()
    storage = EmbeddedStorageConfig(data_dir=tmp_path, record_store="postgres", postgres=postgres)
    with pytest.raises(LayoutMismatch, match="record_store is postgres.*cluster.migrate_records"):
        open_control_store(storage)


@pytest.mark.postgres
def test_router_replicas_starting_at_once_agree_on_the_root_key(postgres: PostgresConfig) -> None:
    stores = [PostgresControlStore.from_config(postgres) for _ in range(3)]
    try:
        for secret in ("ek_root_one", "ek_root_two"):  # first start, then a new secret
            answers = at_once([lambda s=s: s.ensure_root_key(secret) for s in stores * 2])
            assert all(a == answers[0] for a in answers), answers
            assert [k.key_id for k in stores[0].keys()] == ["root"]
            assert stores[1].by_secret(secret) == answers[0]
        assert stores[2].by_secret("ek_root_one") is None
    finally:
        for store in stores:
            store.close()
