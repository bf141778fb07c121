"""A shard's index maintenance: bringing the vector and keyword indexes in line with the
record store (after a write, from the index log, or rebuilt whole) and the checkpoint."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from shards.indexed_text import indexed_text
from shards.indexes.base import CONTEXT_TURNS, IndexRow, memory_type_code
from shards.shard.placement import ShardBase
from shards.types import Memory, NewMemory, Scope

log = logging.getLogger(__name__)

# Several replicas: an index-log entry this old whose writer has not forgotten it is taken for
# a dead writer's, and re-applied from the records by whichever replica checkpoints next. (A
# live writer indexes its entries within its request; re-applying one twice is only work.)
UNABSORBED_GRACE_S = 30.0


class IndexingMixin(ShardBase):
    """Index maintenance: the indexes follow the record store, whose index log says what they may lack."""

    def _index_rows(self, keys: Sequence[int]) -> tuple[list[IndexRow], list[int]]:
        found = self.records.vectors(keys, self.dim)
        session_keys = self.records.session_keys(list(found)) if found else {}
        rows = [
            IndexRow(
                key=k, ns_id=ns_id, vector=vector, content=indexed_text(memory),
                context=self._conversation_context(k) if k in session_keys else "",
                memory_type=memory_type_code(memory.memory_type),
                session_key=session_keys.get(k, 0), event_time=memory.event_time,
                importance=memory.importance,
            )
            for k, (ns_id, vector, memory) in found.items()
        ]
        return rows, [k for k in keys if k not in found]

    def _conversation_context(self, key: int) -> str:
        """The turns around this one in its session, for BM25's lower-weight context field."""
        near = self.records.session_neighbor_rows(key, CONTEXT_TURNS, CONTEXT_TURNS)
        return "\n".join(memory.content for _, memory in near)

    def _apply_rows(self, rows: Sequence[IndexRow], keyword_rows: Sequence[IndexRow] = ()) -> None:
        """Index rows a write has just built from what it wrote (no read back): both indexes
        for `rows`, the keyword index alone for `keyword_rows`."""
        try:
            self._exact.invalidate(list({r.ns_id for r in rows}))
            self.vectors.upsert(rows)
            self.keywords.upsert([*rows, *keyword_rows])
            self._settle([r.key for r in (*rows, *keyword_rows)], {r.ns_id for r in rows})
        except Exception:
            self._indexes_behind = True  # as in _apply: the keys are in the index log
            raise

    def _settle(self, keys: Sequence[int], ns_ids: Iterable[int]) -> None:
        """Several replicas, after this one indexed `keys`: take back out of the indexes any
        that another replica deleted meanwhile (its own index delete may have come before
        these writes), then forget this replica's log entries for them and bump their
        namespaces' versions, so that the other replicas' next reads see them."""
        if self._shared is None or not keys:
            return
        live = self._shared.live_keys(keys)
        gone = [k for k in keys if k not in live]
        if gone:
            self._exact.invalidate_keys(gone)
            self.vectors.delete(gone)
            self.keywords.delete(gone)
        self._shared.indexes_absorbed(keys, sorted(set(ns_ids)))

    def _apply(self, keys: Sequence[int], keywords_only: Sequence[int] = ()) -> None:
        """Bring both indexes in line with the record store for these keys (and the keyword
        index alone for `keywords_only`: turns whose context changed, not their vector).
        Reads every row back: the path of repairs, updates, deletes and imports."""
        try:
            for start in range(0, len(keys), 1000):
                chunk = keys[start:start + 1000]
                rows, gone = self._index_rows(chunk)
                self._scrub_due = self._scrub_due or bool(gone)
                self._exact.invalidate(list({r.ns_id for r in rows}))
                self._exact.invalidate_keys(gone)
                self.vectors.delete(gone)
                self.keywords.delete(gone)
                self.vectors.upsert(rows)
                self.keywords.upsert(rows)
                self._settle(chunk, {r.ns_id for r in rows})
            if keywords_only:
                rows, gone = self._index_rows(keywords_only)
                self.keywords.delete(gone)
                self.keywords.upsert(rows)
                self._settle(keywords_only, ())
        except Exception:
            # The write is durable and its keys are in the index log; the next checkpoint
            # must re-apply them before it trims the log, or an index server's failure
            # here would leave them unindexed for good.
            self._indexes_behind = True
            raise

    def catch_up_indexes(self) -> int:
        """Re-index whatever the record store logged that the indexes may have missed."""
        with self._lock:
            if self._shared is not None:
                return self._reapply_unabsorbed(0.0)  # whoever logged them: a start repairs all
            _, keys = self.records.pending_index_keys()
            if keys:
                log.info("catching up indexes", extra={"shard": self.index, "keys": len(keys)})
                self._apply(keys)
            self.checkpoint()
            return len(keys)

    def checkpoint(self) -> None:
        """Make the indexes durable, then forget the log entries they now hold."""
        with self._lock:
            self._flush_accesses()
            if self._scrub_due:
                # A forgotten memory's text leaves the record store's files at the first
                # checkpoint after it (secure deletes, and the WAL truncated).
                self.keywords.flush()
                self.records.scrub()
                self._scrub_due = False
            if self._shared is not None:
                # Each replica forgets its own entries as it indexes them (_settle): what is
                # left after the grace period, a replica that died mid-write left; and this
                # one's own, if its index writes failed.
                self._reapply_unabsorbed(UNABSORBED_GRACE_S, own_too=self._indexes_behind)
                self._indexes_behind = False  # not reached while an index is still down
                return
            seq, keys = self.records.pending_index_keys()
            if not keys:
                return
            if self._indexes_behind:
                self._apply(keys)  # raises again while the index is still down: the log stays
                self._indexes_behind = False
            self.vectors.flush()
            self.keywords.flush()
            self.records.mark_indexed(seq)

    def _reapply_unabsorbed(self, older_than_s: float, own_too: bool = False) -> int:
        """Several replicas: re-apply from the records the index-log entries older than
        this, whoever wrote them (and with own_too all of this replica's), and forget them.
        Answers how many keys."""
        assert self._shared is not None
        seqs, keys = self._shared.unabsorbed_entries(older_than_s, own_too)
        if keys:
            log.info("re-applying unabsorbed index-log entries",
                     extra={"shard": self.index, "keys": len(keys)})
            self._apply(keys)
            self.vectors.flush()
            self.keywords.flush()
        if seqs:
            self._shared.entries_absorbed(seqs, ())
        return len(keys)

    def _flush_accesses(self) -> None:
        pending, self._accesses = self._accesses, {}
        touched = [(found[0], count, when) for (ns, mid), (count, when) in pending.items()
                   if (found := self.records.find(mid, Scope.of(ns))) is not None]
        self.records.touch(touched)

    def rebuild_indexes(self) -> int:
        """Drop both indexes and rebuild them from the record store alone."""
        with self._lock:
            keys = self.records.log_all_for_reindex()  # first: a rebuild cut short resumes
            self._exact.clear()
            self.vectors.clear()
            self.keywords.clear()
            self._apply(keys)
            self.vectors.flush()
            self.keywords.flush()
            if self._shared is not None:
                self._reapply_unabsorbed(0.0)  # what other replicas wrote meanwhile
            else:
                seq, _ = self.records.pending_index_keys()
                self.records.mark_indexed(seq)
            return len(keys)

    def _index_written(self, items: Sequence[NewMemory],
                       stored: Sequence[tuple[int, Memory, bool]]) -> None:
        """Index what a write created from the items themselves: the vectors and contents
        are in hand, so nothing just written is read back. Reads left: each namespace's id
        and each session's key (point reads), and the turns before a session's first new one
        (their context now holds it, and they hold the new turns' context). A crash before
        this ends leaves the keys in the record store's index log for _apply to repair."""
        new = [(key, item, memory) for item, (key, memory, created) in zip(items, stored) if created]
        if not new:
            return
        ns_ids: dict[str, int] = {}
        for namespace in {item.namespace for _, item, _ in new}:
            ns_id = self.records.namespace_id(namespace)
            assert ns_id is not None  # the write has just created it
            ns_ids[namespace] = ns_id
        by_session: dict[tuple[str, str], list[tuple[int, Memory]]] = {}
        for key, item, memory in new:
            if item.session_id is not None:
                by_session.setdefault((item.namespace, item.session_id), []).append((key, memory))
        context: dict[int, str] = {}
        session_keys: dict[int, int] = {}
        keyword_rows: list[IndexRow] = []
        for (namespace, session_id), turns in by_session.items():
            session_key = self.records.session_key(namespace, session_id) or 0
            # The new turns come after every stored one (they are the newest), so a session
            # reads in order as its stored tail, then the batch's turns. Two turns of context
            # for each of the two stored turns before the first new one: four read.
            tail, _ = self.records.session_sides(turns[0][0], 2 * CONTEXT_TURNS, 0)
            sequence = tail + turns
            first_new = len(tail)
            for at in range(max(0, first_new - CONTEXT_TURNS), len(sequence)):
                key, memory = sequence[at]
                near = sequence[max(0, at - CONTEXT_TURNS):at] + sequence[at + 1:at + 1 + CONTEXT_TURNS]
                text = "\n".join(m.content for _, m in near)
                if at >= first_new:
                    context[key], session_keys[key] = text, session_key
                else:  # a stored turn: its vector is unchanged, only its keyword context
                    keyword_rows.append(self._row(key, ns_ids[namespace], (), memory, text, session_key))
        rows = [self._row(key, ns_ids[item.namespace], item.vector, memory, context.get(key, ""),
                          session_keys.get(key, 0)) for key, item, memory in new]
        self._apply_rows(rows, keyword_rows)

    @staticmethod
    def _row(key: int, ns_id: int, vector: Sequence[float], memory: Memory, context: str,
             session_key: int) -> IndexRow:
        return IndexRow(key=key, ns_id=ns_id, vector=tuple(vector), content=indexed_text(memory),
                        context=context, memory_type=memory_type_code(memory.memory_type),
                        session_key=session_key, event_time=memory.event_time,
                        importance=memory.importance)

    def _index_new(self, stored: Sequence[tuple[int, Memory, bool]]) -> None:
        """Index what an import created (rows read back: an import carries no vectors in
        the form the indexes take)."""
        created = [key for key, _, was_created in stored if was_created]
        if not created:
            return
        # The turns before each session's first new turn now have it as context (the record
        # store logged them too, for a crash before this line). New turns come after every
        # stored one, so the later new turns' neighbours are new as well.
        first_new: dict[str, int] = {}
        for key, memory, was_created in stored:
            if was_created and memory.session_id is not None:
                first_new.setdefault(memory.session_id, key)
        earlier = [k for key in first_new.values()
                   for k, _ in self.records.session_neighbor_rows(key, CONTEXT_TURNS, 0)]
        self._apply(created, keywords_only=earlier)
