"""A shard's memories: write, look up, update, delete, list, and count their recalls."""
from __future__ import annotations

import time
from collections.abc import Sequence

from shards.errors import NamespaceMoved, NamespaceMoving, NotFound
from shards.indexes.base import CONTEXT_TURNS
from shards.shard.indexing import IndexingMixin
from shards.types import Memory, MemoryChanges, NewMemory, RecallFilter, Scope, WriteResult


class MemoriesMixin(IndexingMixin):
    """Memories: each change is durable in the record store before the indexes follow."""

    def write(self, items: Sequence[NewMemory], now: float | None = None,
              memory_limit: int | None = None) -> WriteResult:
        """Store durably, then index. Answers (memory, created) per item, in order, and the
        sessions the items are turns of, as they stand after the write (a session the
        namespace lacks is a NotFound on field session_id, and nothing is stored).
        memory_limit: the most memories a namespace may hold after the write (the caller's
        key's quota); a write past it stores nothing (QuotaExceeded)."""
        now = time.time() if now is None else now
        with self._lock:
            for namespace in {item.namespace for item in items}:
                self._check(namespace, write=True)
            turns_of = sorted({(i.namespace, i.session_id) for i in items if i.session_id is not None})
            # Checked before anything is stored, and for every item: a retry of a memory
            # stored before is answered from what is stored, and must still be refused if
            # its session has gone since.
            for namespace, session_id in turns_of:
                if self.records.session_key(namespace, session_id) is None:
                    raise NotFound(f"session not found: {session_id}", "session_id")
            stored = self.records.insert(items, now, memory_limit)
            try:
                self._index_written(items, stored)
                if self._shared is not None:
                    # A retry of a store whose first try committed through a replica that
                    # died before indexing it: index it now (re-applying is harmless), so
                    # that this acknowledgement, too, means recallable at once.
                    again = [key for key, _, created in stored if not created]
                    if again:
                        self._apply(again)
            except Exception:
                # Stored but not (all) indexed (its reads of session context can fail
                # too): the next checkpoint re-applies the logged keys from the records.
                self._indexes_behind = True
                raise
            sessions = []
            for namespace, session_id in turns_of:
                session = self.records.get_session(session_id, Scope.of(namespace))
                if session is not None:
                    sessions.append(session)
        return WriteResult(memories=tuple((memory, created) for _, memory, created in stored),
                           sessions=tuple(sessions))

    def stored_status(self, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """For each (namespace, id, content): "absent"; "same" (already stored with this
        content: writing it again is a retry); or "different" (the id names another memory,
        which a write would refuse). Lets a bulk load skip what it stored before, unembedded."""
        out = []
        for namespace in {namespace for namespace, _, _ in items}:
            self._check(namespace, write=False)
        for namespace, memory_id, content in items:
            found = self.records.find(memory_id, Scope.of(namespace))
            out.append("absent" if found is None else
                       "same" if found[1].content == content else "different")
        return out

    def lookup(self, memory_id: str, scope: Scope) -> list[Memory]:
        """Every memory with this id that the scope reaches (ids are unique per namespace)."""
        self._check_scope(scope)
        return [m for _, m in self.records.find_all(memory_id, scope) if self._visible(m.namespace)]

    def update(self, namespace: str, memory_id: str, changes: MemoryChanges,
               now: float | None = None) -> Memory:
        now = time.time() if now is None else now
        with self._lock:
            self._check(namespace, write=True)
            key, memory = self.records.update(namespace, memory_id, changes, now)
            self._scrub_due = self._scrub_due or changes.content is not None  # the old text
            # Neighbours hold this turn's words as context: only new words change them.
            near = (self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)
                    if changes.content is not None else [])
            self._apply([key], keywords_only=[k for k, _ in near])
        return memory

    def delete(self, scope: Scope, memory_ids: Sequence[str],
               namespace: str | None = None, reason: str = "forget") -> list[Memory]:
        with self._lock:
            if namespace is not None:
                self._check(namespace, write=True)
            self._check_scope(scope, write=True)
            deleted, reindex = self.records.delete(scope, memory_ids, namespace, reason)
            self._apply([k for k, _ in deleted] + reindex)
        return [m for _, m in deleted]

    def purge_expired(self, now: float | None = None, limit: int = 1000) -> int:
        """Delete up to `limit` memories whose expiry has passed (the maintenance loop calls
        this). Recall already leaves them out, but left in the indexes they would take
        candidate places from live memories. A namespace being moved keeps them until it
        has arrived: its copy is counted."""
        now = time.time() if now is None else now
        with self._lock:
            due: dict[str, list[str]] = {}
            for namespace, memory_id in self.records.expired(now, limit):
                if namespace not in self._states:
                    due.setdefault(namespace, []).append(memory_id)
            purged = 0
            for namespace, ids in due.items():
                try:
                    purged += len(self.delete(Scope.of(namespace), ids, namespace, "expired"))
                except (NamespaceMoved, NamespaceMoving):  # not this shard's to change now
                    continue
            return purged

    def forget_matching(self, namespace: str, flt: RecallFilter) -> list[Memory]:
        with self._lock:
            self._check(namespace, write=True)
            deleted, reindex = self.records.delete_matching(namespace, flt)
            self._apply([k for k, _ in deleted] + reindex)
        return [m for _, m in deleted]

    def listing(self, namespace: str, flt: RecallFilter, limit: int, offset: int,
                newest_first: bool = True) -> tuple[list[Memory], int]:
        self._check(namespace, write=False)
        return self.records.listing(namespace, flt, limit, offset, newest_first)

    def record_access(self, namespace: str, memory_ids: Sequence[str], now: float | None = None) -> None:
        """Count recalls of these memories. Buffered: written at the next checkpoint, so a
        recall never waits for an fsync (a crash loses at most a few access counts)."""
        now = time.time() if now is None else now
        if not self._takes_writes(namespace):
            return  # being moved: its copy is taken; a few access counts are not worth a wait
        with self._lock:
            for mid in memory_ids:
                count, _ = self._accesses.get((namespace, mid), (0, now))
                self._accesses[(namespace, mid)] = (count + 1, now)

    def record_accesses(self, accesses: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Access counts a router gathered over its recalls, in one call. A namespace this
        shard no longer serves (moved meanwhile) is skipped, as record_access skips one in a
        move: a few access counts are not worth a retry."""
        for namespace, memory_ids in accesses:
            try:
                self._check(namespace, write=False)
            except (NamespaceMoved, NamespaceMoving):
                continue
            self.record_access(namespace, memory_ids)
