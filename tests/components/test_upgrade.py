"""A data directory written before this code opens under it and answers the same recalls;
one written by a newer Engram is refused, naming both versions.

tests/fixtures/datadir-0ab4e24 was written by commit 0ab4e24, before the stores kept schema
versions (the command is in tests/fixtures/make_datadir.py). Each test copies it: opening
it migrates it."""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time as time_module
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shards.control.sqlite import MIGRATIONS as CONTROL_MIGRATIONS
from shards.control.sqlite import SQLiteControlStore
from shards.errors import LayoutMismatch
from shards.records.sqlite.schema import MIGRATIONS
from shards.shard import Shard
from shards.shard.opening import shard_dir
from tests.fixtures.make_datadir import SHARD_COUNT, recalls, service_over

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir-0ab4e24"


@pytest.fixture()
def old_data(tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(FIXTURE, copy)
    return copy


@pytest.fixture()
def opened(old_data: Path) -> Iterator[tuple[Any, Any]]:
    service, shards, control = service_over(old_data)
    yield service, control
    for shard in shards:
        shard.close()
    control.close()


def written_at(data_dir: Path) -> float:
    """When the fixture was written: its last memory's creation time."""
    latest = 0.0
    for index in range(SHARD_COUNT):
        with sqlite3.connect(shard_dir(data_dir, index) / "records.db") as db:
            latest = max(latest, db.execute("SELECT COALESCE(MAX(created_at), 0) FROM memories").fetchone()[0])
    return latest


class ClockAt:
    """The time module as serve.recall uses it, stopped at one instant."""

    def __init__(self, at: float) -> None:
        self.at = at

    def time(self) -> float:
        return self.at

    @staticmethod
    def perf_counter() -> float:
        return time_module.perf_counter()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_data_directory_from_before_answers_the_same_recalls(opened: tuple[Any, Any], old_data: Path,
                                                                caplog: pytest.LogCaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    service, control = opened
    # Recall blends importance × decay by age, so the same memories rank differently a day
    # later: recall as of when the fixture's answers were recorded, seconds after its writes.
    monkeypatch.setattr("serve.recall.time", ClockAt(written_at(old_data) + 2.0))
    # The old indexes open as they were written: a fixture missing a file (a .gitignore
    # once left Milvus Lite's data/ folder out of it) would be rebuilt and tested for less.
    rebuilt = [r.getMessage() for r in caplog.get_records("setup") if r.levelname == "WARNING"]
    assert not rebuilt, f"the fixture is incomplete: {rebuilt}"
    expected = json.loads((FIXTURE / "expected.json").read_text())
    answers = asyncio.run(recalls(service))
    for namespace, queries in expected["recalls"].items():
        for query, top in queries.items():
            assert answers[namespace][query] == top, (namespace, query)
    # The control data came along: the key it held still opens its namespace.
    key = control.by_secret(expected["key"])
    assert key is not None and key.namespaces == ("upgrade-alice",)
    # and both stores now carry this code's schema version
    assert user_version(old_data / "control.db") == len(CONTROL_MIGRATIONS)
    rows = []
    for index in range(SHARD_COUNT):
        records = shard_dir(old_data, index) / "records.db"
        assert user_version(records) == len(MIGRATIONS)
        with sqlite3.connect(records) as db:
            rows += db.execute(
                "SELECT n.memory_count, n.content_bytes, COUNT(m.key),"
                " COALESCE(SUM(LENGTH(CAST(m.content AS BLOB))), 0)"
                " FROM namespaces n LEFT JOIN memories m USING (ns_id) GROUP BY n.ns_id").fetchall()
    # Version 2's usage counters start from what the namespaces held.
    assert all(r[0] == r[2] and r[1] == r[3] for r in rows) and sum(r[0] for r in rows) > 0, rows


def test_records_from_a_newer_engram_are_refused_naming_both_versions(old_data: Path) -> None:
    from shards.config import EmbeddedStorageConfig

    records = shard_dir(old_data, 1) / "records.db"
    with sqlite3.connect(records) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 4}")
    with pytest.raises(LayoutMismatch, match=f"schema version {len(MIGRATIONS) + 4}.*up to {len(MIGRATIONS)}"):
        Shard.open_embedded(1, SHARD_COUNT, 384, EmbeddedStorageConfig(data_dir=old_data))
    with sqlite3.connect(records) as db:  # refused, and left as it was
        assert int(db.execute("PRAGMA user_version").fetchone()[0]) == len(MIGRATIONS) + 4


def test_a_control_store_from_a_newer_engram_is_refused_naming_both_versions(old_data: Path) -> None:
    with sqlite3.connect(old_data / "control.db") as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(LayoutMismatch, match=f"schema version 7.*up to {len(CONTROL_MIGRATIONS)}"):
        SQLiteControlStore(old_data / "control.db")
