"""SQLite record store: the outbox of change events, read and emptied by the webhook
dispatcher (each event was written in its change's transaction: SQLiteCore._emit)."""
from __future__ import annotations

import json
from collections.abc import Sequence

from shards.events import Event
from shards.records.sqlite.core import SQLiteCore


class OutboxMixin(SQLiteCore):
    """The oldest events first; dropped once the dispatcher has taken them."""

    def pending_events(self, limit: int) -> list[Event]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, type, namespace, occurred_at, data, memory_id FROM events"
                " ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Event(seq, eid, kind, ns, at, json.loads(data), mid)
                for seq, eid, kind, ns, at, data, mid in rows]

    def drop_events(self, seqs: Sequence[int]) -> int:
        with self._lock, self._tx():
            cur = self._db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
            return cur.rowcount
