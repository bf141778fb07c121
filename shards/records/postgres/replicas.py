"""PostgreSQL record store: what several replicas of one shard share, so that none of them
keeps state it cannot check (the SharedRecordStore protocol, shards/records/base.py).

- The placement (where namespaces live) is read at each call and guarded at the call's first
  write (core._lock_for_write): a resharding step taken through one replica reaches the
  others before any of their writes can land in a namespace that has stopped taking them.
- A namespace's version says when another replica's writes have reached the indexes: a
  replica re-reads its cached vectors and makes its index reads wait for them.
- The index log knows each entry's writer: a replica forgets only what it indexed itself,
  and any replica re-applies entries old enough that their writer must have died."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from shards.records.base import Placement
from shards.records.postgres.core import PostgresCore

_PLACEMENT_KEYS = ("placement_version", "shard_count", "reshard_target", "map_epoch")


class ReplicasMixin(PostgresCore):
    """Placement, namespace versions and the index log's writers: several replicas, one truth."""

    shared = True

    def placement(self) -> Placement:
        with self._read() as db:
            rows = db.execute(
                "SELECT 'meta', key, value FROM meta WHERE key = ANY(%s)"
                " UNION ALL SELECT 'state', name, state FROM namespace_states",
                (list(_PLACEMENT_KEYS),)).fetchall()
        meta = {str(r[1]): str(r[2]) for r in rows if r[0] == "meta"}
        count, target = meta.get("shard_count"), meta.get("reshard_target")
        return Placement(version=int(meta.get("placement_version") or 0),
                         shard_count=int(count) if count else None,
                         reshard_target=int(target) if target else None,
                         map_epoch=int(meta.get("map_epoch") or 0),
                         states={str(r[1]): str(r[2]) for r in rows if r[0] == "state"})

    @contextmanager
    def placement_guard(self, version: int) -> Iterator[None]:
        self._local.guard = [version]  # popped by the first write transaction's check
        try:
            yield
        finally:
            self._local.guard = None

    def namespace_version(self, ns_id: int) -> int | None:
        with self._read() as db:
            row = db.execute("SELECT version FROM namespaces WHERE ns_id = %s", (ns_id,)).fetchone()
        return None if row is None else int(row[0])

    @contextmanager
    def _unlocked_tx(self) -> Iterator[None]:
        """A transaction without the shard's write lock: for index-log bookkeeping, which
        writes no record and must not queue behind the writers."""
        with self._unavailable_on_loss(), self._pool.connection() as conn, conn.transaction():
            self._local.conn, self._local.locked = conn, False
            try:
                yield
            finally:
                self._local.conn = None

    def _bump(self, ns_ids: Sequence[int]) -> None:
        if ns_ids:
            self._db.execute("UPDATE namespaces SET version = version + 1 WHERE ns_id = ANY(%s)",
                             (sorted(set(ns_ids)),))

    def indexes_absorbed(self, keys: Sequence[int], ns_ids: Sequence[int]) -> None:
        with self._unlocked_tx():
            if keys:
                self._db.execute("DELETE FROM index_log WHERE writer = %s AND key = ANY(%s)",
                                 (self.writer, list(keys)))
            self._bump(ns_ids)

    def unabsorbed_entries(self, older_than_s: float, own_too: bool = False
                           ) -> tuple[list[int], list[int]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT seq, key FROM index_log WHERE logged_at < clock_timestamp() - %s * interval '1 second'"
                " OR (%s AND writer = %s) ORDER BY seq", (older_than_s, own_too, self.writer)).fetchall()
        return [int(r[0]) for r in rows], list(dict.fromkeys(int(r[1]) for r in rows))

    def entries_absorbed(self, seqs: Sequence[int], ns_ids: Sequence[int]) -> None:
        with self._unlocked_tx():
            if seqs:
                self._db.execute("DELETE FROM index_log WHERE seq = ANY(%s)", (list(seqs),))
            self._bump(ns_ids)

    def live_keys(self, keys: Sequence[int]) -> set[int]:
        if not keys:
            return set()
        with self._read() as db:
            return {int(r[0]) for r in db.execute(
                "SELECT key FROM memories WHERE key = ANY(%s)", (list(keys),))}
