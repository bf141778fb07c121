"""The control store's rules, which every backend shares: a backend stores the MapState and
the keys, these methods decide what may change (the lease, the epoch, the moved set)."""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from shards.control.base import ApiKey, KeyLimits, MapState, hash_key
from shards.errors import Conflict, LayoutMismatch, NotFound
from shards.routing import ShardMap


class ControlRules:
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
                   secret: str | None = None, key_id: str | None = None,
                   limits: KeyLimits | None = None) -> tuple[ApiKey, str]:
        secret = secret or "ek_" + secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id or "key_" + secrets.token_hex(8), name=name, scope=scope,
            namespaces=None if namespaces is None else tuple(namespaces),
            created_at=time.time(), expires_at=expires_at, created_by=created_by,
            limits=limits or KeyLimits(),
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

    def update_key(self, key: ApiKey) -> ApiKey:
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
