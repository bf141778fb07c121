"""The recorded shard count: a config that disagrees refuses to start and says why."""
from __future__ import annotations

from pathlib import Path

import pytest

from serve.app import build_app
from shards.control_store import SQLiteControlStore
from shards.errors import LayoutMismatch


def test_build_app_refuses_another_shard_count(tmp_path: Path) -> None:
    build_app({"shard_count": 2, "storage": {"data_dir": str(tmp_path)}})  # no data yet: fine
    SQLiteControlStore(tmp_path / "control.db").check_shard_count(2)  # what the Router records
    with pytest.raises(LayoutMismatch, match="split over 2 shards but the config asks for 3"):
        build_app({"shard_count": 3, "storage": {"data_dir": str(tmp_path)}})
    build_app({"shard_count": 2, "storage": {"data_dir": str(tmp_path)}})  # the same count is fine


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
