"""Resharding, a shard's side: moving a namespace in or out, live, and undoing a move."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shards.errors import Conflict, PlacementChanged, StaleShardMap
from shards.indexes.base import CONTEXT_TURNS
from shards.shard.namespaces import NamespacesMixin
from shards.types import Scope


# Placement changes are resharding steps, seconds apart: a call overtaken by one twice in a
# row is rare, and the router retries a third.
PLACEMENT_ATTEMPTS = 3


class MovesMixin(NamespacesMixin):
    """Resharding: this shard's side of moving a namespace in or out, and of undoing a move."""

    # -- resharding: moving a namespace between shards (cluster/reshard.py) ---------------
    # The job drives each move: source.begin_copy → export → destination.import_head and
    # import_memories (the namespace still takes writes, logged) → export_changes →
    # destination.import_changes until the log is drained → source.freeze → the last
    # changes → destination.refresh_head (writes wait only for this last catch-up) →
    # source.handoff → destination.activate → the shard map records the
    # move → source.release. Every step is idempotent, so a killed job re-runs from the top
    # (a source it left frozen is copied whole while frozen).
    def routing(self) -> tuple[int, int | None]:
        return self.routing_count, self.reshard_target

    def check_epoch(self, caller_epoch: int | None) -> None:
        """A router whose map predates the current reshard (or its end) re-reads it first:
        within one epoch every router agrees on the counts and differs only in which
        namespaces it knows have moved, which the shards' own checks cover."""
        if caller_epoch is not None and caller_epoch < self.map_epoch:
            raise StaleShardMap(caller_epoch, self.map_epoch)

    def call_at_epoch(self, caller_epoch: int | None, method: str, *args: Any, **kwargs: Any) -> Any:
        """`method` for a caller whose shard map has this epoch (None: no map, e.g. a test).
        Run on the thread that runs every call, so no set_routing comes between the two.

        Several replicas (a shared record store): the placement is read first, and the
        call's first write commits only if no replica has changed it since; otherwise
        nothing was written, and the call runs again on the placement as it is now."""
        if self._shared is None:
            self.check_epoch(caller_epoch)
            return getattr(self, method)(*args, **kwargs)
        attempts = 0
        while True:
            self._read_placement()
            self.check_epoch(caller_epoch)
            try:
                with self._shared.placement_guard(self._placement_version):
                    return getattr(self, method)(*args, **kwargs)
            except PlacementChanged:
                attempts += 1
                if attempts == PLACEMENT_ATTEMPTS:
                    raise  # retriable: the router tries again shortly

    def set_routing(self, count: int, target: int | None, epoch: int = 0) -> None:
        """The shard map's count, reshard target and epoch, as the job moves through it."""
        with self._lock:
            self.records.set_meta("map_epoch", str(epoch))
            self.map_epoch = epoch
            self.records.set_meta("shard_count", str(count))
            self.records.set_meta("reshard_target", "" if target is None else str(target))
            self.routing_count, self.reshard_target = count, target

    def namespace_table(self) -> list[tuple[str, str | None]]:
        """(name, move state or None) of every namespace this shard holds or is moving."""
        names = dict.fromkeys(self.records.namespace_names())
        return sorted({**names, **self._states}.items())

    def _set_state(self, namespace: str, state: str | None) -> None:
        self.records.set_namespace_state(namespace, state)
        if state is None:
            self._states.pop(namespace, None)
        else:
            self._states[namespace] = state

    def begin_copy(self, namespace: str) -> bool:
        """Start copying a namespace while it goes on taking writes, each change logged for
        the catch-up after the freeze. False: there is nothing to copy live (it is gone, or
        a killed run left it frozen: it is then copied whole, frozen)."""
        with self._lock:
            state = self._states.get(namespace)
            if state not in (None, self.COPYING):
                return False
            if self.records.namespace_id(namespace) is None:
                return False
            self.records.start_change_log(namespace)  # afresh, also for a copy begun again
            self._set_state(namespace, self.COPYING)
            return True

    def freeze(self, namespace: str) -> int | None:
        """Stop writes to a namespace (reads go on) so that it can be copied, or its copy
        caught up; returns its memory count. Pending access counts are written first, to
        travel with it."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None and self.records.namespace_id(namespace) is None:
                return None  # deleted since the job listed it: nothing to move
            if state is not None and state not in self.LEAVING:
                raise Conflict(f"cannot move {namespace} from shard {self.index}: "
                               f"{'it is not here' if state is None else state}", "namespace")
            if state in (None, self.COPYING):
                self._set_state(namespace, self.FROZEN)
            self._flush_accesses()
            return self.records.namespace_size(namespace)

    def handoff(self, namespace: str) -> None:
        """The copy is complete: stop reads too, until the map sends them to the new shard."""
        with self._lock:
            if self._states.get(namespace) not in (self.FROZEN, self.HANDOFF):
                raise Conflict(f"{namespace} is not frozen on shard {self.index}", "namespace")
            self.records.stop_change_log(namespace)  # the copy has caught up
            self._set_state(namespace, self.HANDOFF)

    # -- a live namespace's copy, for `engram export` (serve/routes/transfer.py) -----------
    def dump_head(self, namespace: str) -> dict[str, Any]:
        """export_head of a namespace that stays live: a read, no move begun."""
        self._check(namespace, write=False)  # a copy being filled or handed off: Moving
        return self.records.export_head(namespace)

    def dump_memories(self, namespace: str, after_key: int, limit: int) -> tuple[list[Any], int]:
        """export_memories of a namespace that stays live (pages by key: memories stored
        while the pages are read may or may not be in the copy)."""
        self._check(namespace, write=False)
        return self.records.export_memories(namespace, after_key, limit)

    def _check_exportable(self, namespace: str) -> None:
        if self._states.get(namespace) not in self.LEAVING:
            raise Conflict(f"begin_copy or freeze {namespace} before exporting it (writes "
                           "would be lost)", "namespace")

    def export_head(self, namespace: str) -> dict[str, Any]:
        self._check_exportable(namespace)
        return self.records.export_head(namespace)

    def export_memories(self, namespace: str, after_key: int, limit: int) -> tuple[list[Any], int]:
        self._check_exportable(namespace)
        return self.records.export_memories(namespace, after_key, limit)

    def import_head(self, head: dict[str, Any], replace_live: bool = False) -> None:
        """Begin (or begin again) a namespace's copy here; it stays invisible until activate.

        replace_live: a live copy here is one that a killed run activated before the map
        recorded the move (the source still holds the namespace, frozen, so nothing can have
        written here since); the job says so only then."""
        namespace = head["name"]
        with self._lock:
            state = self._states.get(namespace)
            present = self.records.namespace_id(namespace) is not None
            if present and state != self.INCOMING and not replace_live:
                raise Conflict(f"{namespace} is live on shard {self.index}: refusing to "
                               "overwrite it with a copy", "namespace")
            self._set_state(namespace, self.INCOMING)
            if present:
                self._drop(namespace, announce=False)
            self.records.import_head(head)

    def import_memories(self, namespace: str, rows: Sequence[tuple[Any, ...]]) -> int:
        with self._lock:
            self._check_incoming(namespace)
            # replace: during a live copy a memory forgotten and stored again under its id
            # comes back in a later page (its new key is higher) while the first is here.
            stored, context_changed = self.records.import_memories(namespace, rows, replace=True)
            self._index_new(stored)
            self._apply([], keywords_only=context_changed)
            return len(stored)

    def _check_incoming(self, namespace: str) -> None:
        if self._states.get(namespace) != self.INCOMING:
            raise Conflict(f"{namespace} is not being imported on shard {self.index}",
                           "namespace")

    def export_changes(self, namespace: str, after_seq: int, limit: int
                       ) -> tuple[list[Any], list[str], int]:
        """A page of what changed in a namespace since begin_copy, after `after_seq`:
        (changed memories as export rows, deleted ids, the seq to ask after next). While it
        still takes writes more can follow; once frozen, a short page is the end."""
        if self._states.get(namespace) not in self.LEAVING:
            raise Conflict(f"begin_copy {namespace} before exporting its changes", "namespace")
        return self.records.export_changes(namespace, after_seq, limit)

    def import_changes(self, namespace: str, rows: Sequence[tuple[Any, ...]],
                       deleted_ids: Sequence[str]) -> int:
        """Catch a live copy up: changed memories replace their copies, deleted ones go."""
        with self._lock:
            self._check_incoming(namespace)
            stored, context_changed = self.records.import_memories(namespace, rows, replace=True)
            # No events: the original's own deletes sent them.
            deleted, reindex = self.records.delete(Scope.of(namespace), deleted_ids, namespace, None)
            touched = [k for k, _, _ in stored]
            # Turns around a changed one hold its words as BM25 context: where it is now, and
            # (context_changed, reindex) where it or a deleted one was.
            near = [k for key in touched
                    for k, _ in self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)]
            fresh = set(touched) | {k for k, _ in deleted}
            self._apply(touched + [k for k, _ in deleted],
                        keywords_only=[k for k in dict.fromkeys(near + context_changed + reindex)
                                       if k not in fresh])
            return len(stored) + len(deleted)

    def refresh_head(self, head: dict[str, Any]) -> None:
        """After import_changes: sessions, entities and keys as the frozen source has them."""
        with self._lock:
            self._check_incoming(head["name"])
            self.records.refresh_head(head)

    def activate(self, namespace: str, expected_memories: int) -> None:
        """Serve the imported copy, once it holds every memory the source had."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None and self.records.namespace_id(namespace) is not None:
                return  # activated before
            held = self.records.namespace_size(namespace)
            if state != self.INCOMING or held != expected_memories:
                raise Conflict(f"copy of {namespace} on shard {self.index} holds {held} of "
                               f"{expected_memories} memories; import it again", "namespace")
            self._set_state(namespace, None)

    # -- undoing a move (cluster/reshard.py --abort) ---------------------------------------
    def thaw(self, namespace: str) -> None:
        """A move of this namespace is called off: it is live here again, as before it began
        (the map still points here). Idempotent."""
        with self._lock:
            if self._states.get(namespace) not in self.LEAVING:
                return
            self.records.stop_change_log(namespace)
            self._set_state(namespace, None)

    def discard(self, namespace: str, unrouted: bool = False) -> int:
        """Drop a copy that a called-off move left here: one being filled, or (`unrouted`,
        which only the job can know from the map) one activated that the map never
        pointed to, so nothing has written to it. Idempotent."""
        with self._lock:
            state = self._states.get(namespace)
            present = self.records.namespace_id(namespace) is not None
            if state == self.INCOMING or (state is None and present and unrouted):
                dropped = self._drop(namespace, announce=False) if present else 0
                self._set_state(namespace, None)
                return dropped
            if state is None and not present:
                return 0
            raise Conflict(f"{namespace} is {state or 'live'} on shard {self.index}: not a "
                           "copy to discard", "namespace")

    def release(self, namespace: str) -> int:
        """Delete the source's copy once the map points at the new shard."""
        with self._lock:
            state = self._states.get(namespace)
            if state is None:
                if self.records.namespace_id(namespace) is not None:
                    raise Conflict(f"{namespace} is live on shard {self.index}: not releasing",
                                   "namespace")
                return 0  # released before
            if state != self.HANDOFF:
                raise Conflict(f"{namespace} is {state} on shard {self.index}, not handed off",
                               "namespace")
            dropped = self._drop(namespace, announce=False) if self.records.namespace_id(namespace) else 0
            self._set_state(namespace, None)
            return dropped
