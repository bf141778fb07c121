"""What every job of a shard reads: its parts (declared here, set by Shard.__init__ in
core.py), the states of a namespace being moved, and which namespaces this shard serves."""
from __future__ import annotations

import threading

from shards.errors import NamespaceMoved, NamespaceMoving
from shards.indexes.base import KeywordIndex, VectorIndex
from shards.indexes.exact import ExactVectorCache
from shards.records.base import RecordStore, SharedRecordStore
from shards.routing import shard_for
from shards.types import Scope


class ShardBase:
    """The shard's state, which the job mixins share, and the checks every request passes."""

    # A namespace on its way in or out (record store `namespace_states`):
    #   copying  (source) being copied live: reads and writes served, its changes logged
    #   frozen   (source) being copied or caught up: reads served, writes wait (NamespaceMoving)
    #   handoff  (source) copied: everything waits until the router's map points elsewhere
    #   incoming (destination) being filled: invisible, nothing served
    COPYING, FROZEN, HANDOFF, INCOMING = "copying", "frozen", "handoff", "incoming"
    LEAVING = (COPYING, FROZEN, HANDOFF)  # the states of a namespace on its way out

    index: int
    dim: int
    records: RecordStore
    vectors: VectorIndex
    keywords: KeywordIndex
    _lock: threading.RLock
    _accesses: dict[tuple[str, str], tuple[int, float]]  # recalls counted, not yet written
    exact_search_max_rows: int
    _exact: ExactVectorCache
    _indexes_behind: bool
    _scrub_due: bool  # something was deleted since the last checkpoint (records.scrub())
    graph_seeds: int
    hub_fraction: float
    hub_min: int
    session_window: int
    session_decay: float
    routing_count: int
    reshard_target: int | None
    map_epoch: int
    _states: dict[str, str]  # namespace → its move state (absent: live here, or not here)
    # Several replicas over one shared record store (PostgreSQL): the placement above is
    # re-read at each call, at this version, and each namespace's version last seen here says
    # whether the exact-search cache and the index reads predate other replicas' writes.
    _shared: SharedRecordStore | None
    _placement_version: int
    _seen_versions: dict[int, int]

    def _read_placement(self) -> None:
        """Take the placement as the shared record store holds it now (several replicas)."""
        assert self._shared is not None
        placement = self._shared.placement()
        self._placement_version = placement.version
        if placement.shard_count is not None:
            self.routing_count = placement.shard_count
        self.reshard_target = placement.reshard_target
        self.map_epoch = placement.map_epoch
        self._states = placement.states

    def _observe(self, ns_id: int) -> None:
        """Before reading a namespace's indexes or cached vectors: if another replica's
        writes reached the indexes since this one last looked, drop the cached vectors and
        make the next index reads wait for those writes (read-your-writes across replicas)."""
        if self._shared is None:
            return
        version = self._shared.namespace_version(ns_id)
        if version is None or self._seen_versions.get(ns_id) == version:
            return
        self._exact.invalidate([ns_id])
        self.vectors.others_wrote()
        self.keywords.others_wrote()
        # Read before the searches: a write absorbed after this read bumps it past this.
        self._seen_versions[ns_id] = version

    # -- which namespaces this shard serves -----------------------------------------------
    def _is_home(self, namespace: str) -> bool:
        """Under the shard map, would a new namespace of this name be created here?"""
        return shard_for(namespace, self.reshard_target or self.routing_count) == self.index

    def _check(self, namespace: str, write: bool) -> None:
        """Serve this namespace, or say why not: NamespaceMoving (retry shortly) while a
        reshard has it frozen or handed off, NamespaceMoved (re-read the map) when it lives elsewhere. A
        router with a stale map can therefore never read or write the wrong copy."""
        state = self._states.get(namespace)
        if state is not None and state != self.COPYING:
            if state != self.FROZEN or write:
                raise NamespaceMoving(namespace)
            return
        if not self._is_home(namespace) and self.records.namespace_id(namespace) is None:
            raise NamespaceMoved(namespace, write)

    def _check_scope(self, scope: Scope, write: bool = False) -> None:
        """A scope of exactly one namespace is that namespace's request: check it. (Wider
        scopes are fan-outs to every shard, which answer what they hold.)"""
        only = scope.single()
        if only is not None:
            self._check(only, write)

    def _takes_writes(self, namespace: str) -> bool:
        return self._states.get(namespace) in (None, self.COPYING)

    def _visible(self, namespace: str) -> bool:
        """Fan-out answers (lists, lookups by id) leave out a copy still being filled and a
        copy handed off (its successor may already have changed): a namespace may be missing
        from a list for the moment of a hand-off, never shown stale."""
        return self._states.get(namespace) not in (self.INCOMING, self.HANDOFF)
