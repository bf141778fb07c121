"""Versioned SQLite schemas (the record, control and webhook stores'), as PostgreSQL's
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
        # One step, one write transaction taken before the version is read again: several
        # processes open a new file at once (a deployment's Router replicas), and the ones
        # that wait find the step done. Each step's statements run inside it, the version set
        # last: a step cut short leaves the version before it, all of it undone.
        db.execute("BEGIN IMMEDIATE")
        try:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) <= version:
                for statement in statements(migrations[version]):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return found


def statements(script: str) -> list[str]:
    """A migration script's statements (a trigger's body kept whole), less its own
    transaction control and version pragma: migrate() runs them in a transaction of its own."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            pending = ""
            bare = statement.rstrip(";").strip().upper()
            if bare in ("BEGIN", "COMMIT") or bare.startswith("PRAGMA USER_VERSION"):
                continue
            out.append(statement)
    if pending.strip():
        raise ValueError(f"a migration ends mid-statement: {pending.strip()[:80]}")
    return out
