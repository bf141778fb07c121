"""Several processes open a new data directory at once, as a deployment's Router replicas do
on a first start: every SQLite store's migrations run once, in whichever process gets there
first, and every opener ends at the current version (one opener used to fail, "duplicate
column name: limits", when two ran the same step)."""
from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from shards.control.sqlite import MIGRATIONS as CONTROL_MIGRATIONS
from shards.webhooks.sqlite import MIGRATIONS as WEBHOOK_MIGRATIONS

OPENERS = 6


def open_stores(data_dir: str, start: object) -> None:
    from shards.control.sqlite import SQLiteControlStore
    from shards.webhooks.sqlite import SQLiteWebhookStore

    start.wait()  # type: ignore[attr-defined]
    SQLiteControlStore(Path(data_dir) / "control.db").close()
    SQLiteWebhookStore(Path(data_dir) / "webhooks.db").close()


def test_openers_racing_on_a_new_directory_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(OPENERS)
    openers = [context.Process(target=open_stores, args=(str(tmp_path), start)) for _ in range(OPENERS)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(120)
    assert [p.exitcode for p in openers] == [0] * OPENERS
    for name, migrations in (("control.db", CONTROL_MIGRATIONS), ("webhooks.db", WEBHOOK_MIGRATIONS)):
        with sqlite3.connect(tmp_path / name) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations)
