"""PostgreSQL record store: the index log, which keys the indexes have yet to absorb."""
from __future__ import annotations

from shards.records.postgres.core import PostgresCore


class IndexLogMixin(PostgresCore):
    """Which memory keys the indexes have not durably absorbed yet."""

    def log_all_for_reindex(self) -> list[int]:
        """Log every memory for the indexes, before they are cleared for a rebuild: a
        rebuild cut short (a crash, an index server failing) is then finished by the next
        catch-up, where without the log the memories not yet re-added would stay unfound."""
        with self._tx() as db:
            return sorted(int(r[0]) for r in db.execute(
                "INSERT INTO index_log (key) SELECT key FROM memories ORDER BY key RETURNING key"))

    def pending_index_keys(self) -> tuple[int, list[int]]:
        """(highest seq, distinct memory keys) the indexes have not durably absorbed yet."""
        with self._read() as db:
            rows = db.execute("SELECT seq, key FROM index_log ORDER BY seq").fetchall()
        if not rows:
            return 0, []
        return int(rows[-1][0]), list(dict.fromkeys(int(r[1]) for r in rows))

    def mark_indexed(self, up_to_seq: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM index_log WHERE seq <= %s", (up_to_seq,))

    def counts(self) -> tuple[int, int, int, int]:
        with self._read():
            memories, namespaces, sessions, pending = (
                int(self._scalar(f"SELECT COUNT(*) FROM {t}"))
                for t in ("memories", "namespaces", "sessions", "index_log"))
        return memories, namespaces, sessions, pending
