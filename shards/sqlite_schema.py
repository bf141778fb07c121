"""Versioned SQLite schemas (the record store's and the control store's), as PostgreSQL's
are (shards/postgres_pool.migrate): SQLite's own `PRAGMA user_version` holds the version.

Stores written before versions existed read 0 and hold version 1's tables (its script is
`CREATE ... IF NOT EXISTS` throughout, exactly what that code ran at every open), so they
migrate like any older store. A store written by a newer Engram is refused, naming both
versions: its tables may mean things this code would misread or overwrite."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from shards.errors import LayoutMismatch


def migrate(db: sqlite3.Connection, what: str, location: str, migrations: Sequence[str]) -> int:
    """Bring `db` to version len(migrations): migrations[i] takes version i to i + 1.
    Answers the version found. `what` and `location` name the store in the refusal."""
    target = len(migrations)
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    if found > target:
        raise LayoutMismatch(
            f"the {what} in {location} has schema version {found}, written by a newer Engram; "
            f"this one reads versions up to {target}: run the newer Engram again, or restore "
            "a backup taken before it ran", "schema_version")
    for version in range(found, target):
        # executescript commits first and runs each statement on its own; the version is
        # set last, so a migration cut short runs again (each step is written to be rerun).
        db.executescript(migrations[version])
        db.execute(f"PRAGMA user_version = {version + 1}")
    return found
