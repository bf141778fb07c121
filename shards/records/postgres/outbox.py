"""PostgreSQL record store: the outbox of change events, read and emptied by the webhook
dispatcher (each event was written in its change's transaction: PostgresCore._emit)."""
from __future__ import annotations

import json
from collections.abc import Sequence

from shards.events import Event
from shards.records.postgres.core import PostgresCore


class OutboxMixin(PostgresCore):
    """The oldest events first; dropped once the dispatcher has taken them. Any replica may
    read them: taking an event twice is harmless (deliveries are unique per event)."""

    def pending_events(self, limit: int) -> list[Event]:
        with self._read() as db:
            rows = db.execute(
                "SELECT seq, id, type, namespace, occurred_at, data, memory_id FROM events"
                " ORDER BY seq LIMIT %s", (limit,)).fetchall()
        return [Event(seq, eid, kind, ns, at, json.loads(data), mid)
                for seq, eid, kind, ns, at, data, mid in rows]

    def drop_events(self, seqs: Sequence[int]) -> int:
        if not seqs:
            return 0
        # No write lock: deleting taken events races with nothing (a concurrent redaction of
        # one just updates a row that goes).
        with self._unavailable_on_loss(), self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM events WHERE seq = ANY(%s)", (list(seqs),))
            return int(cur.rowcount)
