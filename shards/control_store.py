"""Control data that is not sharded: API keys (hashed) and the shard map."""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shards.errors import Conflict, LayoutMismatch, NotFound
from shards.routing import ShardMap

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    namespaces TEXT,            -- JSON list of grants; NULL means every namespace
    created_at REAL NOT NULL,
    expires_at REAL,
    created_by TEXT
);
CREATE TABLE IF NOT EXISTS moved_namespaces (name TEXT PRIMARY KEY);
"""


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (routers and the reshard job share the file)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so one SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scope: str
    namespaces: tuple[str, ...] | None  # None: every namespace
    created_at: float
    expires_at: float | None = None
    created_by: str | None = None


class SQLiteControlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- the shard map (shards/routing.py) ------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                             " DO UPDATE SET value = excluded.value", (key, value))

    def _bump_version(self, epoch: bool = False) -> None:
        self._set_meta("shard_map_version", str(int(self._meta("shard_map_version") or 0) + 1))
        if epoch:
            self._set_meta("shard_map_epoch", str(int(self._meta("shard_map_epoch") or 0) + 1))

    def shard_map(self, initial_count: int | None = None) -> ShardMap:
        """The recorded map; on first start (nothing recorded) `initial_count` shards."""
        with self._lock:
            if initial_count is not None:
                self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('shard_count', ?)",
                                 (str(initial_count),))
            return self._read_map()

    def _read_map(self) -> ShardMap:
        """One read transaction (a plain BEGIN: readers never queue behind each other)."""
        self._db.execute("BEGIN")
        try:
            return self._read_map_in_tx()
        finally:
            self._db.execute("COMMIT")

    def _read_map_in_tx(self) -> ShardMap:
        count = self._meta("shard_count")
        if count is None:
            raise LayoutMismatch("no shard map recorded yet: start the service once first",
                                 "shard_count")
        target = self._meta("reshard_target")
        moved = frozenset(r[0] for r in self._db.execute("SELECT name FROM moved_namespaces"))
        return ShardMap(int(count), None if target is None else int(target), moved,
                        int(self._meta("shard_map_version") or 0),
                        int(self._meta("shard_map_epoch") or 0),
                        aborting=self._meta("reshard_aborting") is not None)

    def check_deployed_shards(self, deployed: int) -> ShardMap:
        """Record the shard count on first start; afterwards refuse to run fewer Shard
        deployments than the data is spread over (more is how a reshard to more begins)."""
        current = self.shard_map(initial_count=deployed)
        if deployed < current.shards_needed:
            moving = (f" and is being moved to {current.target} shards"
                      if current.target is not None else "")
            raise LayoutMismatch(
                f"the data under {self.path.parent} is split over {current.count} shards"
                f"{moving}, but the config deploys only {deployed}; set shard_count: "
                f"{current.shards_needed} (to shrink, run `python -m cluster.reshard --to N` "
                "first, then deploy N)", "shard_count")
        return current

    def begin_reshard(self, target: int, job: str, lease_seconds: float,
                      now: float | None = None) -> ShardMap:
        """Record the target shard count and make `job` the one job moving namespaces.

        The same target resumes a reshard a killed job left. Only one job moves at a time:
        another is refused while the lease of the one before it is live (a killed job's
        lease runs out after `lease_seconds`). A job that takes over bumps the map epoch,
        and the shards then refuse every call the job before it still has in flight.
        """
        now = time.time() if now is None else now
        with self._lock, _immediate(self._db):
            count = int(self._meta("shard_count") or 0)
            current = self._meta("reshard_target")
            if self._meta("reshard_aborting") is not None:
                raise Conflict(f"the reshard to {current} shards is being undone: run "
                               "`cluster.reshard --abort` to its end before resharding again",
                               "target")
            if current is not None and int(current) != target:
                raise Conflict(f"a reshard to {current} shards is in progress: run it to the "
                               f"end (--to {current}) before starting another", "target")
            if current is None and target == count:
                return self._read_map_in_tx()
            self._take_lease(job, lease_seconds, now)
            if current is None:
                self._set_meta("reshard_target", str(target))
            return self._read_map_in_tx()

    def _take_lease(self, job: str, lease_seconds: float, now: float) -> None:
        """Make `job` the one mover; a job taking over bumps the epoch (fencing the last)."""
        holder, until = self._lease()
        if holder not in (None, job) and until > now:
            raise Conflict(f"reshard job {holder} is running (its lease has {until - now:.0f} s "
                           "left): wait for it to end; if it was killed, run again once its "
                           "lease has run out", "job")
        if holder != job:
            self._bump_version(epoch=True)
        self._set_lease(job, now + lease_seconds)

    def begin_abort(self, job: str, lease_seconds: float, now: float | None = None) -> ShardMap:
        """Undo the reshard in progress: from now on new namespaces are created at their
        home under the current count, and `job` moves the moved ones back (unmark_moved),
        then finish_abort. Run again, it resumes; the lease rules of begin_reshard hold."""
        now = time.time() if now is None else now
        with self._lock, _immediate(self._db):
            if self._meta("reshard_target") is None:
                raise Conflict("no reshard in progress: nothing to abort", "target")
            self._take_lease(job, lease_seconds, now)
            if self._meta("reshard_aborting") is None:
                self._set_meta("reshard_aborting", "1")
                self._bump_version(epoch=True)  # shards must learn where new ones now go
            return self._read_map_in_tx()

    def renew_reshard_lease(self, job: str, lease_seconds: float, now: float | None = None) -> None:
        """Keep `job` the mover for another `lease_seconds` (0: let the next run start at
        once); refused once it has lost the lease."""
        now = time.time() if now is None else now
        with self._lock, _immediate(self._db):
            self._check_holder(job)
            self._set_lease(job, now + lease_seconds)

    def release_reshard_lease(self, job: str) -> None:
        """`job` stops here: the next run may start at once, and a renewal `job` still had in
        flight is refused rather than taking the lease back."""
        with self._lock, _immediate(self._db):
            self._check_holder(job)
            self._set_lease(None, None)

    def _lease(self) -> tuple[str | None, float]:
        return self._meta("reshard_job"), float(self._meta("reshard_lease_until") or 0)

    def _set_lease(self, job: str | None, until: float | None) -> None:
        self._set_meta("reshard_job", job)
        self._set_meta("reshard_lease_until", None if until is None else repr(until))

    def _check_holder(self, job: str) -> None:
        if self._meta("reshard_target") is None:
            raise Conflict(f"no reshard in progress: job {job} holds nothing (if it did, "
                           "another job has finished the reshard since)", "target")
        holder = self._lease()[0]
        if holder != job:
            raise Conflict(f"reshard job {job} lost its lease to job {holder}: it stops here, "
                           "and the other job carries the reshard on", "job")

    def mark_moved(self, names: list[str], job: str) -> ShardMap:
        """These namespaces now live on their home under the target count."""
        with self._lock, _immediate(self._db):
            self._check_holder(job)
            self._db.executemany("INSERT OR IGNORE INTO moved_namespaces (name) VALUES (?)",
                                 [(n,) for n in names])
            self._bump_version()
            return self._read_map_in_tx()

    def unmark_moved(self, names: list[str], job: str) -> ShardMap:
        """While aborting: these namespaces are back at their home under the count."""
        with self._lock, _immediate(self._db):
            self._check_holder(job)
            self._db.executemany("DELETE FROM moved_namespaces WHERE name = ?",
                                 [(n,) for n in names])
            self._bump_version()
            return self._read_map_in_tx()

    def place(self, namespace: str) -> ShardMap:
        """A namespace first used during a reshard lives at its new home (no-op after one,
        and while the reshard is being undone: new ones then live under the count)."""
        with self._lock, _immediate(self._db):
            if self._meta("reshard_target") is not None and self._meta("reshard_aborting") is None:
                self._db.execute("INSERT OR IGNORE INTO moved_namespaces (name) VALUES (?)",
                                 (namespace,))
                self._bump_version()
            return self._read_map_in_tx()

    def finish_reshard(self, job: str) -> ShardMap:
        """Every namespace is at its new home: the target becomes the count (idempotent)."""
        with self._lock, _immediate(self._db):
            target = self._meta("reshard_target")
            if target is not None:
                self._check_holder(job)
                if self._meta("reshard_aborting") is not None:
                    raise Conflict("the reshard is being undone: finish the abort", "target")
                self._set_meta("shard_count", target)
                self._set_meta("reshard_target", None)
                self._set_lease(None, None)
                self._db.execute("DELETE FROM moved_namespaces")
                self._bump_version(epoch=True)
            return self._read_map_in_tx()

    def finish_abort(self, job: str) -> ShardMap:
        """Every moved namespace is back: the count stays, the reshard is gone (idempotent)."""
        with self._lock, _immediate(self._db):
            if self._meta("reshard_target") is not None:
                self._check_holder(job)
                if self._meta("reshard_aborting") is None:
                    raise Conflict("the reshard in progress is not being aborted", "target")
                if self._db.execute("SELECT COUNT(*) FROM moved_namespaces").fetchone()[0]:
                    raise Conflict("namespaces are still at their new home: move them back "
                                   "first", "target")
                self._set_meta("reshard_target", None)
                self._set_meta("reshard_aborting", None)
                self._set_lease(None, None)
                self._bump_version(epoch=True)
            return self._read_map_in_tx()

    def create_key(self, name: str, scope: str, namespaces: list[str] | None,
                   expires_at: float | None, created_by: str | None,
                   secret: str | None = None, key_id: str | None = None) -> tuple[ApiKey, str]:
        secret = secret or "ek_" + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id or "key_" + secrets.token_hex(8), name=name, scope=scope,
            namespaces=None if namespaces is None else tuple(namespaces),
            created_at=time.time(), expires_at=expires_at, created_by=created_by,
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_id, key_hash, name, scope, namespaces, created_at,"
                " expires_at, created_by) VALUES (?,?,?,?,?,?,?,?)",
                (key.key_id, hash_key(secret), name, scope,
                 None if namespaces is None else json.dumps(namespaces), key.created_at,
                 expires_at, created_by),
            )
        return key, secret

    def ensure_root_key(self, secret: str) -> ApiKey:
        """The root key from the environment: created or re-pointed to this secret."""
        with self._lock:
            self._db.execute("DELETE FROM api_keys WHERE key_id = 'root'")
        key, _ = self.create_key("root", "super_admin", None, None, None, secret=secret,
                                 key_id="root")
        return key

    def revoke_root_key(self) -> None:
        """No root key in the environment: the one recorded before stops working."""
        with self._lock:
            self._db.execute("DELETE FROM api_keys WHERE key_id = 'root'")

    def by_secret(self, secret: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key_id, name, scope, namespaces, created_at, expires_at, created_by"
                " FROM api_keys WHERE key_hash = ?",
                (hash_key(secret),),
            ).fetchone()
        return None if row is None else _key(row)

    def keys(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, scope, namespaces, created_at, expires_at, created_by"
                " FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [_key(r) for r in rows]

    def get_key(self, key_id: str) -> ApiKey:
        for key in self.keys():
            if key.key_id == key_id:
                return key
        raise NotFound(f"api key not found: {key_id}", "key_id")

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        if cur.rowcount == 0:
            raise NotFound(f"api key not found: {key_id}", "key_id")


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, scope, namespaces, created, expires, created_by = row
    return ApiKey(
        key_id=str(key_id), name=str(name), scope=str(scope),
        namespaces=None if namespaces is None else tuple(json.loads(str(namespaces))),
        created_at=float(created), expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        created_by=None if created_by is None else str(created_by),
    )
