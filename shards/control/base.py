"""The control store's role: control data that is not sharded, API keys (hashed) and the
shard map with the reshard lease.

`ControlStore` names what every backend answers; the rules they share live in `rules.py`,
and SQLite (`sqlite.py`, embedded) or PostgreSQL (`postgres.py`, production) store them;
`factory.open_control_store` picks one from the config.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from shards.errors import Conflict, LayoutMismatch
from shards.routing import ShardMap


def hash_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so one SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyLimits:
    """What one key may use (None: no limit). Enforced by the Router (serve/quotas.py):
    requests per second with a burst (a token bucket), memories per namespace (checked inside
    the write's transaction), and the content bytes stored in all the key's namespaces."""

    requests_per_second: float | None = None
    burst: int | None = None  # requests at once above the rate; None: one second's worth
    memories_per_namespace: int | None = None
    stored_bytes: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def within(self, ceiling: KeyLimits) -> KeyLimits:
        """These limits, none looser than `ceiling`'s (a key a limited key creates cannot
        escape its creator's limits by being a new key)."""
        def tighter(mine: Any, theirs: Any) -> Any:
            return theirs if mine is None else mine if theirs is None else min(mine, theirs)
        return KeyLimits(**{k: tighter(v, getattr(ceiling, k)) for k, v in asdict(self).items()})

    def to_json(self) -> str | None:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}) if self.any() else None

    @classmethod
    def from_json(cls, text: str | None) -> KeyLimits:
        return cls() if not text else cls(**json.loads(text))


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scope: str
    namespaces: tuple[str, ...] | None  # None: every namespace
    created_at: float
    expires_at: float | None = None
    created_by: str | None = None
    limits: KeyLimits = KeyLimits()


# Not frozen: a rule changes it in place, inside one atomic read-modify-write.
@dataclass
class MapState:
    """The shard map and the reshard lease as stored: read, changed by one rule (rules.py), and
    written back whole in one transaction (SQLite; PostgreSQL under SELECT ... FOR UPDATE)."""

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


class ControlStore(Protocol):
    """API keys and the shard map, as the routers and the reshard job use them."""

    location: str  # where the control data is, for messages
    remote: bool  # on a server: callers on an event loop call it from a worker thread

    def close(self) -> None:
        """Release the connection."""
        ...

    # -- the shard map (shards/routing.py) ------------------------------------------------
    def shard_map(self, initial_count: int | None = None) -> ShardMap:
        """The recorded map; on first start (nothing recorded) `initial_count` shards."""
        ...

    def check_deployed_shards(self, deployed: int) -> ShardMap:
        """Record the shard count on first start; refuse fewer deployed shards than the data needs."""
        ...

    def begin_reshard(self, target: int, job: str, lease_seconds: float,
                      now: float | None = None) -> ShardMap:
        """Record the target shard count and make `job` the one job moving namespaces."""
        ...

    def begin_abort(self, job: str, lease_seconds: float, now: float | None = None) -> ShardMap:
        """Undo the reshard in progress, `job` moving the moved namespaces back."""
        ...

    def renew_reshard_lease(self, job: str, lease_seconds: float, now: float | None = None) -> None:
        """Keep `job` the mover for another `lease_seconds`; refused once it has lost the lease."""
        ...

    def release_reshard_lease(self, job: str) -> None:
        """`job` stops here: the next run may start at once."""
        ...

    def mark_moved(self, names: list[str], job: str) -> ShardMap:
        """These namespaces now live on their home under the target count."""
        ...

    def unmark_moved(self, names: list[str], job: str) -> ShardMap:
        """While aborting: these namespaces are back at their home under the count."""
        ...

    def place(self, namespace: str) -> ShardMap:
        """A namespace first used during a reshard lives at its new home."""
        ...

    def finish_reshard(self, job: str) -> ShardMap:
        """Every namespace is at its new home: the target becomes the count (idempotent)."""
        ...

    def finish_abort(self, job: str) -> ShardMap:
        """Every moved namespace is back: the count stays, the reshard is gone (idempotent)."""
        ...

    # -- API keys -------------------------------------------------------------------------
    def create_key(self, name: str, scope: str, namespaces: list[str] | None,
                   expires_at: float | None, created_by: str | None,
                   secret: str | None = None, key_id: str | None = None,
                   limits: KeyLimits | None = None) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once; only its hash is stored)."""
        ...

    def update_key(self, key: ApiKey) -> ApiKey:
        """Write a key's name, grants and limits as `key` has them (NotFound when there is
        no key with its id); its secret, scope and times stay."""
        ...

    def ensure_root_key(self, secret: str) -> ApiKey:
        """The root key from the environment: created or re-pointed to this secret."""
        ...

    def revoke_root_key(self) -> None:
        """No root key in the environment: the one recorded before stops working."""
        ...

    def get_key(self, key_id: str) -> ApiKey:
        """The key with this id (NotFound otherwise)."""
        ...

    def by_secret(self, secret: str) -> ApiKey | None:
        """The key this secret belongs to, if any."""
        ...

    def keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        ...

    def delete_key(self, key_id: str) -> None:
        """Delete a key (NotFound when there is none)."""
        ...

    # -- copying control data to another store (cluster/migrate_records.py) ---------------
    def export_keys(self) -> list[tuple[ApiKey, str]]:
        """Every key with the hash of its secret (the secrets themselves are not stored)."""
        ...

    def import_keys(self, keys: list[tuple[ApiKey, str]]) -> int:
        """Add the keys this store lacks (by key id); returns how many were added."""
        ...

    def export_state(self) -> MapState:
        """The shard map and the reshard lease as stored."""
        ...

    def import_state(self, state: MapState) -> ShardMap:
        """Take another store's shard map, only onto a store with none yet or the same one."""
        ...
