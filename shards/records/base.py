"""The record store's role: a shard's source of truth for memories, sessions, namespaces and
the entity graph, with the index log the shard's indexes catch up from.

`RecordStore` names what every backend answers (SQLite in `sqlite/`, PostgreSQL in
`postgres/`); the contract suite (tests/contract) runs the same assertions on each.
Memories are addressed two ways: by (namespace, id), as clients name them, and by an integer
key, unique in the shard, which the indexes hold. Rows are the frozen types of
shards/types.py; the formats every backend shares are in formats.py.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, runtime_checkable

from shards.events import Event
from shards.types import (
    EntityRef,
    Memory,
    MemoryChanges,
    NamespaceInfo,
    NewMemory,
    RecallFilter,
    Scope,
    Session,
)


class RecordStore(Protocol):
    """One shard's records. Every write is durable when it returns, and logs the keys it
    touched for the indexes in the same step."""

    location: str  # where the records are, for messages

    def close(self) -> None:
        """Release the connection."""
        ...

    def scrub(self) -> None:
        """After deletes: make the deleted rows' text unreadable in the store's own files
        where the store can (the shard's checkpoint calls this when something was deleted)."""
        ...

    # -- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A value kept with the records (layout, shard map, index formats), None when unset."""
        ...

    def set_meta(self, key: str, value: str) -> None:
        """Keep a value with the records."""
        ...

    # -- namespaces ---------------------------------------------------------------------
    def namespace_id(self, name: str) -> int | None:
        """The namespace's internal id (what the indexes filter on), None when absent."""
        ...

    def ensure_namespace(self, name: str, now: float, metadata: dict[str, Any] | None = None) -> bool:
        """Create the namespace if missing; returns True when it was created."""
        ...

    def namespaces(self, scope: Scope) -> list[NamespaceInfo]:
        """The namespaces the scope covers, by name, with their counts."""
        ...

    def memory_stats(self, namespace: str) -> dict[str, Any]:
        """Counts by memory type, mean importance, oldest and newest creation time."""
        ...

    def usage(self, scope: Scope) -> dict[str, tuple[int, int]]:
        """(memories, UTF-8 bytes of their content) per namespace the scope covers, from the
        counters the write transactions keep (O(namespaces), whatever they hold)."""
        ...

    def drop_namespace(self, name: str, announce: bool = True) -> list[int]:
        """Delete a namespace with everything in it; returns the memory keys to unindex.
        announce: write namespace.deleted to the outbox (not for a reshard's leftover copy)."""
        ...

    def namespace_names(self) -> list[str]:
        """Every namespace held here, by name."""
        ...

    def namespace_count(self, ns_id: int) -> int:
        """How many memories the namespace with this id holds."""
        ...

    def namespace_size(self, namespace: str) -> int:
        """How many memories the namespace with this name holds."""
        ...

    def counts(self) -> tuple[int, int, int, int]:
        """(memories, namespaces, sessions, index-log entries pending) in the shard."""
        ...

    # -- memories -----------------------------------------------------------------------
    def insert(self, items: Sequence[NewMemory], now: float,
               memory_limit: int | None = None) -> list[tuple[int, Memory, bool]]:
        """Store memories in one step, idempotently; (key, memory, created) per item."""
        ...

    def find_all(self, memory_id: str, scope: Scope) -> list[tuple[int, Memory]]:
        """Every memory with this id in a namespace the scope covers, by namespace name."""
        ...

    def find(self, memory_id: str, scope: Scope) -> tuple[int, Memory] | None:
        """The first of find_all, None when the scope reaches none."""
        ...

    def by_keys(self, namespace: str, keys: Iterable[int]) -> dict[int, Memory]:
        """Hydrate index hits; keys outside `namespace` are dropped here, whatever the index said."""
        ...

    def vectors(self, keys: Sequence[int], dim: int) -> dict[int, tuple[int, tuple[float, ...], Memory]]:
        """For indexing: key → (ns_id, the memory's own vector, memory) of the keys that still exist."""
        ...

    def namespace_vector_rows(self, ns_id: int) -> list[tuple[int, bytes, int, int, float, float]]:
        """(key, vector stack blob, type code, session key or 0, event time, importance) per memory."""
        ...

    def vector_stacks(self, ns_id: int, keys: Sequence[int]) -> dict[int, bytes]:
        """key → vector stack blob (pack_vectors) of these memories of one namespace."""
        ...

    def session_keys(self, keys: Sequence[int]) -> dict[int, int]:
        """key → session key of those of these memories that are session turns."""
        ...

    def all_keys(self) -> list[int]:
        """Every memory key in the shard, ascending."""
        ...

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges, now: float) -> tuple[int, Memory]:
        """Apply changes to one memory (NotFound when absent); its key and the memory after."""
        ...

    def delete(self, scope: Scope, memory_ids: Sequence[str], namespace: str | None = None,
               reason: str | None = "forget") -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete memories by id within the scope; (the deleted, the keys to re-index).
        reason: the memory.forgotten events' ("forget", "expired"); None: no event."""
        ...

    def delete_matching(self, namespace: str, flt: RecallFilter) -> tuple[list[tuple[int, Memory]], list[int]]:
        """Delete every memory of a namespace that matches the filter, expired ones included."""
        ...

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        """(namespace, memory id) of up to `limit` memories whose expiry has passed."""
        ...

    def touch(self, accesses: Sequence[tuple[int, int, float]]) -> None:
        """Add (key, count, last time) accesses; recall boosts frequently used memories."""
        ...

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        """A page of a namespace's memories matching the filter, and the total that match."""
        ...

    # -- sessions -----------------------------------------------------------------------
    def session_key(self, namespace: str, session_id: str) -> int | None:
        """The session's internal key (what the indexes filter on), None when absent."""
        ...

    def start_session(self, namespace: str, session_id: str, metadata: dict[str, Any],
                      now: float, idle_timeout: float | None = None) -> Session:
        """Open a session, creating its namespace if needed (Conflict when the id is taken)."""
        ...

    def get_session(self, session_id: str, scope: Scope) -> Session | None:
        """The session, None when absent or outside the scope."""
        ...

    def end_session(self, session_id: str, scope: Scope, now: float, summary: str | None,
                    reason: str) -> Session:
        """End a session (again: only its summary changes); NotFound when absent."""
        ...

    def touch_session(self, session_id: str, scope: Scope, now: float) -> Session:
        """Mark an open session active now; NotFound when absent."""
        ...

    def sessions(self, namespace: str, active_only: bool, limit: int, offset: int) -> list[Session]:
        """A page of a namespace's sessions, newest first."""
        ...

    def all_sessions(self, scope: Scope, active_only: bool, limit: int) -> list[Session]:
        """Up to `limit` sessions of the namespaces the scope covers, newest first."""
        ...

    def end_idle_sessions(self, default_timeout: float, now: float) -> int:
        """End every open session idle longer than its own timeout (or the default; 0 = never)."""
        ...

    def session_neighbor_rows(self, key: int, before: int, after: int) -> list[tuple[int, Memory]]:
        """(key, memory) of the memories just before and after this one in its session."""
        ...

    def session_sides(self, key: int, before: int, after: int
                      ) -> tuple[list[tuple[int, Memory]], list[tuple[int, Memory]]]:
        """The memories before this one in its session (nearest last) and after it (nearest first)."""
        ...

    def session_side_keys(self, keys: Sequence[int], before: int, after: int
                          ) -> dict[int, tuple[list[int], list[int]]]:
        """session_sides for many keys, keys only; keys outside a session are left out."""
        ...

    def session_neighbor_keys(self, keys: Sequence[int], before: int, after: int) -> dict[int, list[int]]:
        """Each key's session neighbours in session order."""
        ...

    # -- knowledge graph ----------------------------------------------------------------
    def entities_of(self, key: int) -> list[EntityRef]:
        """The entities a memory names, by type and key."""
        ...

    def match_entities(self, namespace: str, keys: Sequence[str]) -> dict[int, tuple[str, int]]:
        """Entities of a namespace named by these keys → (key, doc_freq)."""
        ...

    def memories_of_entities(self, ent_ids: Sequence[int]) -> list[tuple[int, int]]:
        """(memory key, entity id) for every memory linked to these entities."""
        ...

    def entity_links(self, mem_keys: Sequence[int], max_doc_freq: int) -> list[tuple[int, int, int, str, int]]:
        """Links out of these memories through entities that are not hubs: (from, to, id, key, doc_freq)."""
        ...

    # -- moving a namespace to another shard (cluster/reshard.py) -------------------------
    def namespace_states(self) -> dict[str, str]:
        """The move state of each namespace being moved in or out (shards/shard/placement.py)."""
        ...

    def set_namespace_state(self, name: str, state: str | None) -> None:
        """Record a namespace's move state (None: live here, or absent)."""
        ...

    def export_head(self, name: str) -> dict[str, Any]:
        """Everything of a namespace but its memories: its row, sessions, entities, idempotency keys."""
        ...

    def export_memories(self, name: str, after_key: int, limit: int) -> tuple[list[tuple[Any, ...]], int]:
        """A page of a namespace's memories in key order with their entity links, and the next cursor (-1: done)."""
        ...

    def start_change_log(self, name: str) -> None:
        """Name every memory of this namespace that changes from now on (afresh)."""
        ...

    def stop_change_log(self, name: str) -> None:
        """Stop logging the namespace's changes and forget those logged."""
        ...

    def export_changes(self, name: str, after_seq: int, limit: int
                       ) -> tuple[list[tuple[Any, ...]], list[str], int]:
        """A page of the changes since start_change_log: (export rows, deleted ids, next seq)."""
        ...

    def refresh_head(self, head: dict[str, Any]) -> None:
        """Bring a copy's namespace row, sessions, entities and idempotency keys up to the source's."""
        ...

    def import_head(self, head: dict[str, Any]) -> None:
        """Start a namespace's copy here (absent until now), in one step."""
        ...

    def import_memories(self, name: str, rows: Sequence[tuple[Any, ...]], replace: bool = False
                        ) -> tuple[list[tuple[int, Memory, bool]], list[int]]:
        """Add a page of exported memories; (key, memory, True) per row and the keys to re-index."""
        ...

    # -- index log ----------------------------------------------------------------------
    def log_all_for_reindex(self) -> list[int]:
        """Log every memory for the indexes (before a rebuild clears them); returns their keys."""
        ...

    def pending_index_keys(self) -> tuple[int, list[int]]:
        """(highest seq, distinct memory keys) the indexes have not durably absorbed yet."""
        ...

    def mark_indexed(self, up_to_seq: int) -> None:
        """Forget the index-log entries up to this seq: the indexes hold them durably."""
        ...

    # -- the outbox of change events (shards/events.py) --------------------------------
    def pending_events(self, limit: int) -> list[Event]:
        """Up to `limit` events not yet taken by the webhook dispatcher, oldest first."""
        ...

    def drop_events(self, seqs: Sequence[int]) -> int:
        """Remove taken events from the outbox; answers how many went."""
        ...


class Placement(NamedTuple):
    """Where namespaces live, as a shard's records hold it: what every replica of the shard
    must agree on before it serves a call (shards/shard/placement.py)."""

    version: int  # bumped by every change of the fields below, in the same transaction
    shard_count: int | None
    reshard_target: int | None
    map_epoch: int
    states: dict[str, str]  # namespace → its move state


@runtime_checkable
class SharedRecordStore(RecordStore, Protocol):
    """A record store that several replicas of one shard read and write at once (PostgreSQL).

    Each replica keeps nothing it cannot check: it reads the placement at each call and runs
    the call's writes under a guard that refuses them if the placement changed meanwhile;
    it validates what it caches of a namespace by the namespace's version; and the index log
    tells whose entries are whose, so that a replica forgets only what it indexed itself and
    any replica re-applies what a dead one left."""

    shared: bool  # True: the Shard runs in its several-replica mode

    def placement(self) -> Placement:
        """The placement as committed now, in one read."""
        ...

    def placement_guard(self, version: int) -> AbstractContextManager[None]:
        """Within the block, the first write transaction of this thread raises
        PlacementChanged (and writes nothing) unless the placement is still at `version`
        once it holds the shard's write lock."""
        ...

    def namespace_version(self, ns_id: int) -> int | None:
        """A counter bumped each time the indexes absorb a change of this namespace (None: no
        such namespace). A replica whose cache or index reads predate it refreshes them."""
        ...

    def indexes_absorbed(self, keys: Sequence[int], ns_ids: Sequence[int]) -> None:
        """This replica's indexes hold these keys: forget the index-log entries it wrote
        for them, and bump the versions of these namespaces."""
        ...

    def unabsorbed_entries(self, older_than_s: float, own_too: bool = False
                           ) -> tuple[list[int], list[int]]:
        """(seqs, distinct keys) of index-log entries older than this, whoever wrote them
        (a replica that died between its commit and its index writes left them), and with
        own_too every entry this replica wrote (its index writes failed)."""
        ...

    def entries_absorbed(self, seqs: Sequence[int], ns_ids: Sequence[int]) -> None:
        """The indexes hold these entries' keys (re-applied from the records): forget them."""
        ...

    def live_keys(self, keys: Sequence[int]) -> set[int]:
        """Which of these memory keys still exist (another replica may have deleted some
        while this one indexed them)."""
        ...
