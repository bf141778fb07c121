"""The recorded shard map: a config that deploys fewer shards than the data is spread over
refuses to start and says why; more shards is how growing begins."""
from __future__ import annotations

from pathlib import Path

import pytest

from serve.app import build_app
from shards.control.sqlite import SQLiteControlStore
from shards.errors import Conflict, LayoutMismatch
from shards.routing import ShardMap, shard_for


def test_build_app_refuses_fewer_shards_than_the_data(tmp_path: Path) -> None:
    build_app({"shard_count": 3, "storage": {"data_dir": str(tmp_path)}})  # no data yet: fine
    SQLiteControlStore(tmp_path / "control.db").check_deployed_shards(3)  # what the Router records
    with pytest.raises(LayoutMismatch, match="split over 3 shards, but the config deploys only 2"):
        build_app({"shard_count": 2, "storage": {"data_dir": str(tmp_path)}})
    build_app({"shard_count": 3, "storage": {"data_dir": str(tmp_path)}})  # the same count is fine
    build_app({"shard_count": 4, "storage": {"data_dir": str(tmp_path)}})  # growing: fine


def test_shard_map_through_a_reshard(tmp_path: Path) -> None:
    control = SQLiteControlStore(tmp_path / "control.db")
    assert control.check_deployed_shards(2) == ShardMap(2)
    with pytest.raises(LayoutMismatch, match="no shard map recorded"):
        SQLiteControlStore(tmp_path / "other.db").shard_map()
    started = control.begin_reshard(3, "job-a", 60)
    assert (started.count, started.target, started.moved) == (2, 3, frozenset())
    assert control.begin_reshard(3, "job-a", 60) == started  # the same target again: resumes
    with pytest.raises(Conflict, match="reshard to 3 shards is in progress"):
        control.begin_reshard(4, "job-a", 60)
    with pytest.raises(LayoutMismatch, match="being moved to 3 shards"):
        control.check_deployed_shards(2)  # shard 2 may hold data now
    moving = next(n for n in (f"ns{i}" for i in range(100)) if shard_for(n, 3) != shard_for(n, 2))
    staying = next(n for n in (f"ns{i}" for i in range(100)) if shard_for(n, 3) == shard_for(n, 2))
    moved = control.mark_moved([moving], "job-a")
    assert moved.home(moving) == shard_for(moving, 3) and moved.home(staying) == shard_for(staying, 2)
    assert moved.version > started.version
    done = control.finish_reshard("job-a")
    assert (done.count, done.target, done.moved) == (3, None, frozenset())
    assert control.finish_reshard("job-a") == done  # idempotent
    with pytest.raises(Conflict, match="no reshard in progress"):
        control.mark_moved([moving], "job-a")
    # Shrinking records the smaller target; the app keeps running the larger count meanwhile.
    assert control.begin_reshard(2, "job-b", 60).shards_needed == 3


def test_unknown_config_keys_are_rejected(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="shard_cuont"):
        build_app({"shard_cuont": 2, "storage": {"data_dir": str(tmp_path)}})


def test_root_key_is_stored_hashed(tmp_path: Path) -> None:
    store = SQLiteControlStore(tmp_path / "control.db")
    store.ensure_root_key("ek_secret_value")
    assert store.by_secret("ek_secret_value") is not None and store.by_secret("other") is None
    store.close()
    assert b"ek_secret_value" not in (tmp_path / "control.db").read_bytes()
