"""Control data that is not sharded: API keys (hashed) and the shard map.

ControlStore holds the rules; SQLiteControlStore (embedded) and ElasticsearchControlStore
(shards/es_control_store.py, production) store them, and open_control_store picks one."""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from shards.config import EmbeddedStorageConfig
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


@dataclass
class MapState:
    """The shard map and the reshard lease as stored: read, changed by one rule below, and
    written back whole in one transaction (SQLite) or one conditional write (Elasticsearch)."""

    count: int | None = None
    target: int | None = None
    moved: set[str] = field(default_factory=set)
    version: int = 0
    epoch: int = 0
    aborting: bool = False
    job: str | None = None
    lease_until: float = 0.0

    def shard_map(self) -> ShardMap:
        if self.count is None:
            raise LayoutMismatch("no shard map recorded yet: start the service once first",
                                 "shard_count")
        return ShardMap(self.count, self.target, frozenset(self.moved), self.version, self.epoch,
                        aborting=self.aborting)

    def bump(self, epoch: bool = False) -> None:
        self.version += 1
        if epoch:
            self.epoch += 1

    def take_lease(self, job: str, lease_seconds: float, now: float) -> None:
        """Make `job` the one mover; a job taking over bumps the epoch (fencing the last)."""
        if self.job not in (None, job) and self.lease_until > now:
            raise Conflict(f"reshard job {self.job} is running (its lease has "
                           f"{self.lease_until - now:.0f} s left): wait for it to end; if it was "
                           "killed, run again once its lease has run out", "job")
        if self.job != job:
            self.bump(epoch=True)
        self.job, self.lease_until = job, now + lease_seconds

    def release(self) -> None:
        self.job, self.lease_until = None, 0.0

    def check_holder(self, job: str) -> None:
        if self.target is None:
            raise Conflict(f"no reshard in progress: job {job} holds nothing (if it did, "
                           "another job has finished the reshard since)", "target")
        if self.job != job:
            raise Conflict(f"reshard job {job} lost its lease to job {self.job}: it stops here, "
                           "and the other job carries the reshard on", "job")


class ControlStore:
    """API keys and the shard map. The rules live here; a subclass stores them (`_read`,
    `_change`: one atomic read-modify-write of the MapState, and the key methods)."""

    location = ""  # where the control data is, for messages
    remote = False  # on a server: callers on an event loop call it from a worker thread

    def close(self) -> None:
        raise NotImplementedError

    def _read(self) -> MapState:
        raise NotImplementedError

    def _change(self, rule: Callable[[MapState], None]) -> MapState:
        """Apply `rule` to the stored state atomically; a rule that raises changes nothing."""
        raise NotImplementedError

    def _apply(self, rule: Callable[[MapState], None]) -> MapState:
        """_change, refusing (before anything is written) a map with no count recorded."""
        def checked(state: MapState) -> None:
            rule(state)
            state.shard_map()  # raises LayoutMismatch where no count is recorded
        return self._change(checked)

    # -- the shard map (shards/routing.py) ------------------------------------------------
    def shard_map(self, initial_count: int | None = None) -> ShardMap:
        """The recorded map; on first start (nothing recorded) `initial_count` shards."""
        state = self._read()
        if state.count is None and initial_count is not None:
            def first(s: MapState) -> None:
                if s.count is None:
                    s.count = initial_count
            state = self._apply(first)
        return state.shard_map()

    def check_deployed_shards(self, deployed: int) -> ShardMap:
        """Record the shard count on first start; afterwards refuse to run fewer Shard
        deployments than the data is spread over (more is how a reshard to more begins)."""
        current = self.shard_map(initial_count=deployed)
        if deployed < current.shards_needed:
            moving = (f" and is being moved to {current.target} shards"
                      if current.target is not None else "")
            raise LayoutMismatch(
                f"the data in {self.location} is split over {current.count} shards"
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

        def rule(s: MapState) -> None:
            if s.aborting:
                raise Conflict(f"the reshard to {s.target} shards is being undone: run "
                               "`cluster.reshard --abort` to its end before resharding again",
                               "target")
            if s.target is not None and s.target != target:
                raise Conflict(f"a reshard to {s.target} shards is in progress: run it to the "
                               f"end (--to {s.target}) before starting another", "target")
            if s.target is None and target == (s.count or 0):
                return
            s.take_lease(job, lease_seconds, now)
            if s.target is None:
                s.target = target
        return self._apply(rule).shard_map()

    def begin_abort(self, job: str, lease_seconds: float, now: float | None = None) -> ShardMap:
        """Undo the reshard in progress: from now on new namespaces are created at their
        home under the current count, and `job` moves the moved ones back (unmark_moved),
        then finish_abort. Run again, it resumes; the lease rules of begin_reshard hold."""
        now = time.time() if now is None else now

        def rule(s: MapState) -> None:
            if s.target is None:
                raise Conflict("no reshard in progress: nothing to abort", "target")
            s.take_lease(job, lease_seconds, now)
            if not s.aborting:
                s.aborting = True
                s.bump(epoch=True)  # shards must learn where new ones now go
        return self._apply(rule).shard_map()

    def renew_reshard_lease(self, job: str, lease_seconds: float, now: float | None = None) -> None:
        """Keep `job` the mover for another `lease_seconds` (0: let the next run start at
        once); refused once it has lost the lease."""
        now = time.time() if now is None else now

        def rule(s: MapState) -> None:
            s.check_holder(job)
            s.lease_until = now + lease_seconds
        self._apply(rule)

    def release_reshard_lease(self, job: str) -> None:
        """`job` stops here: the next run may start at once, and a renewal `job` still had in
        flight is refused rather than taking the lease back."""
        def rule(s: MapState) -> None:
            s.check_holder(job)
            s.release()
        self._apply(rule)

    def mark_moved(self, names: list[str], job: str) -> ShardMap:
        """These namespaces now live on their home under the target count."""
        def rule(s: MapState) -> None:
            s.check_holder(job)
            s.moved.update(names)
            s.bump()
        return self._apply(rule).shard_map()

    def unmark_moved(self, names: list[str], job: str) -> ShardMap:
        """While aborting: these namespaces are back at their home under the count."""
        def rule(s: MapState) -> None:
            s.check_holder(job)
            s.moved.difference_update(names)
            s.bump()
        return self._apply(rule).shard_map()

    def place(self, namespace: str) -> ShardMap:
        """A namespace first used during a reshard lives at its new home (no-op after one,
        and while the reshard is being undone: new ones then live under the count)."""
        def rule(s: MapState) -> None:
            if s.target is not None and not s.aborting:
                s.moved.add(namespace)
                s.bump()
        return self._apply(rule).shard_map()

    def finish_reshard(self, job: str) -> ShardMap:
        """Every namespace is at its new home: the target becomes the count (idempotent)."""
        def rule(s: MapState) -> None:
            if s.target is None:
                return
            s.check_holder(job)
            if s.aborting:
                raise Conflict("the reshard is being undone: finish the abort", "target")
            s.count, s.target = s.target, None
            s.release()
            s.moved.clear()
            s.bump(epoch=True)
        return self._apply(rule).shard_map()

    def finish_abort(self, job: str) -> ShardMap:
        """Every moved namespace is back: the count stays, the reshard is gone (idempotent)."""
        def rule(s: MapState) -> None:
            if s.target is None:
                return
            s.check_holder(job)
            if not s.aborting:
                raise Conflict("the reshard in progress is not being aborted", "target")
            if s.moved:
                raise Conflict("namespaces are still at their new home: move them back "
                               "first", "target")
            s.target, s.aborting = None, False
            s.release()
            s.bump(epoch=True)
        return self._apply(rule).shard_map()

    # -- API keys -------------------------------------------------------------------------
    def create_key(self, name: str, scope: str, namespaces: list[str] | None,
                   expires_at: float | None, created_by: str | None,
                   secret: str | None = None, key_id: str | None = None) -> tuple[ApiKey, str]:
        secret = secret or "ek_" + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id or "key_" + secrets.token_hex(8), name=name, scope=scope,
            namespaces=None if namespaces is None else tuple(namespaces),
            created_at=time.time(), expires_at=expires_at, created_by=created_by,
        )
        self._put_key(key, hash_key(secret))
        return key, secret

    def ensure_root_key(self, secret: str) -> ApiKey:
        """The root key from the environment: created or re-pointed to this secret."""
        self.revoke_root_key()
        key, _ = self.create_key("root", "super_admin", None, None, None, secret=secret,
                                 key_id="root")
        return key

    def revoke_root_key(self) -> None:
        """No root key in the environment: the one recorded before stops working."""
        try:
            self.delete_key("root")
        except NotFound:
            pass

    def get_key(self, key_id: str) -> ApiKey:
        for key in self.keys():
            if key.key_id == key_id:
                return key
        raise NotFound(f"api key not found: {key_id}", "key_id")

    def _put_key(self, key: ApiKey, key_hash: str) -> None:
        raise NotImplementedError

    # -- copying control data to another store (cluster/migrate_records.py) ---------------
    def export_keys(self) -> list[tuple[ApiKey, str]]:
        """Every key with the hash of its secret (the secrets themselves are not stored)."""
        raise NotImplementedError

    def import_keys(self, keys: list[tuple[ApiKey, str]]) -> int:
        """Add the keys this store lacks (by key id); returns how many were added."""
        held = {k.key_id for k in self.keys()}
        added = [(k, h) for k, h in keys if k.key_id not in held]
        for key, key_hash in added:
            self._put_key(key, key_hash)
        return len(added)

    def export_state(self) -> MapState:
        return self._read()

    def import_state(self, state: MapState) -> ShardMap:
        """Take another store's shard map (its lease too): only onto a store with none yet,
        or with the very same map (a copy run again)."""
        def rule(s: MapState) -> None:
            if s.count is not None and (s.count, s.target, s.moved) != (state.count, state.target, state.moved):
                raise Conflict(f"the target already records another shard map ({s.count} shards): "
                               "copy into an empty store", "shard_count")
            for name, value in vars(state).items():
                setattr(s, name, set(value) if name == "moved" else value)
        return self._apply(rule).shard_map()

    def by_secret(self, secret: str) -> ApiKey | None:
        raise NotImplementedError

    def keys(self) -> list[ApiKey]:
        raise NotImplementedError

    def delete_key(self, key_id: str) -> None:
        raise NotImplementedError


class SQLiteControlStore(ControlStore):
    """Control data in one SQLite file, which the routers and the reshard job share."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.location = str(path.parent)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # The state keeps its existing layout: meta rows and one row per moved namespace.
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                             " DO UPDATE SET value = excluded.value", (key, value))

    def _load(self) -> MapState:
        count, target = self._meta("shard_count"), self._meta("reshard_target")
        return MapState(
            count=None if count is None else int(count),
            target=None if target is None else int(target),
            moved={r[0] for r in self._db.execute("SELECT name FROM moved_namespaces")},
            version=int(self._meta("shard_map_version") or 0),
            epoch=int(self._meta("shard_map_epoch") or 0),
            aborting=self._meta("reshard_aborting") is not None,
            job=self._meta("reshard_job"),
            lease_until=float(self._meta("reshard_lease_until") or 0))

    def _read(self) -> MapState:
        with self._lock:
            self._db.execute("BEGIN")  # one read transaction: readers never queue
            try:
                return self._load()
            finally:
                self._db.execute("COMMIT")

    def _change(self, rule: Callable[[MapState], None]) -> MapState:
        with self._lock, _immediate(self._db):
            before = self._load()
            state = replace(before, moved=set(before.moved))
            rule(state)
            for key, old, new in (
                ("shard_count", before.count, state.count),
                ("reshard_target", before.target, state.target),
                ("shard_map_version", before.version, state.version),
                ("shard_map_epoch", before.epoch, state.epoch),
                ("reshard_aborting", before.aborting or None, state.aborting or None),
                ("reshard_job", before.job, state.job),
                ("reshard_lease_until", before.lease_until or None, state.lease_until or None),
            ):
                if old != new:
                    self._set_meta(key, _meta_text(new))
            self._db.executemany("INSERT OR IGNORE INTO moved_namespaces (name) VALUES (?)",
                                 [(n,) for n in state.moved - before.moved])
            self._db.executemany("DELETE FROM moved_namespaces WHERE name = ?",
                                 [(n,) for n in before.moved - state.moved])
            return state

    def _put_key(self, key: ApiKey, key_hash: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO api_keys (key_id, key_hash, name, scope, namespaces, created_at,"
                " expires_at, created_by) VALUES (?,?,?,?,?,?,?,?)",
                (key.key_id, key_hash, key.name, key.scope,
                 None if key.namespaces is None else json.dumps(list(key.namespaces)),
                 key.created_at, key.expires_at, key.created_by),
            )

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

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        if cur.rowcount == 0:
            raise NotFound(f"api key not found: {key_id}", "key_id")

    def export_keys(self) -> list[tuple[ApiKey, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, scope, namespaces, created_at, expires_at, created_by, key_hash"
                " FROM api_keys ORDER BY created_at").fetchall()
        return [(_key(r[:7]), str(r[7])) for r in rows]


def _meta_text(value: object) -> str | None:
    """A MapState value as the meta table has always held it (None: no row)."""
    if value is None:
        return None
    if value is True:
        return "1"
    return repr(value) if isinstance(value, float) else str(value)


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, name, scope, namespaces, created, expires, created_by = row
    return ApiKey(
        key_id=str(key_id), name=str(name), scope=str(scope),
        namespaces=None if namespaces is None else tuple(json.loads(str(namespaces))),
        created_at=float(created), expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        created_by=None if created_by is None else str(created_by),
    )


def open_control_store(storage: EmbeddedStorageConfig) -> ControlStore:
    """The control data beside the records: SQLite in data_dir, or on the Elasticsearch
    cluster when the records are there (storage.record_store: elasticsearch)."""
    if storage.record_store == "sqlite":
        return SQLiteControlStore(storage.data_dir / "control.db")
    if (storage.data_dir / "control.db").exists():
        raise LayoutMismatch(
            f"{storage.data_dir} holds the control data (API keys, shard map) in SQLite, but "
            "storage.record_store is elasticsearch: set record_store: sqlite back, or copy the "
            "data with `python -m cluster.migrate_records` and point data_dir elsewhere",
            "record_store")
    es = storage.elasticsearch
    assert es is not None  # EmbeddedStorageConfig refuses elasticsearch records without it
    from shards.es_control_store import ElasticsearchControlStore

    return ElasticsearchControlStore.from_config(es)
