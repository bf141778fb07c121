"""SQLite record store: moving a namespace to another shard, whole or live (cluster/reshard.py)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shards.errors import Conflict, NotFound
from shards.records.formats import session_taken
from shards.records.sqlite.schema import _EXPORT_COLUMNS
from shards.records.sqlite.sessions import SessionsMixin
from shards.types import Memory


class MovesMixin(SessionsMixin):
    """Export and import of a namespace, and the change log of a live copy."""

    # -- moving a namespace to another shard (cluster/reshard.py) -------------------------
    def namespace_states(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT name, state FROM namespace_states").fetchall())

    def set_namespace_state(self, name: str, state: str | None) -> None:
        with self._lock:
            if state is None:
                self._db.execute("DELETE FROM namespace_states WHERE name = ?", (name,))
            else:
                self._db.execute(
                    "INSERT INTO namespace_states (name, state) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET state = excluded.state", (name, state))

    def namespace_names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM namespaces ORDER BY name")]

    def export_head(self, name: str) -> dict[str, Any]:
        """Everything of a namespace but its memories: the namespace row, sessions, entities
        (with their final document frequencies) and idempotency keys."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            q = self._db.execute
            return {
                "name": name,
                "namespace": q("SELECT created_at, metadata FROM namespaces WHERE ns_id = ?",
                               (ns_id,)).fetchone(),
                "sessions": q("SELECT id, started_at, last_active_at, ended_at, ended_reason,"
                              " summary, metadata, idle_timeout FROM sessions WHERE ns_id = ?"
                              " ORDER BY key", (ns_id,)).fetchall(),
                "entities": q("SELECT key, type, value, doc_freq FROM entities WHERE ns_id = ?"
                              " ORDER BY ent_id", (ns_id,)).fetchall(),
                "idempotency": q("SELECT idem_key, memory_id FROM idempotency WHERE ns_id = ?",
                                 (ns_id,)).fetchall(),
                "memories": q("SELECT COUNT(*) FROM memories WHERE ns_id = ?", (ns_id,)).fetchone()[0],
            }

    def export_memories(self, name: str, after_key: int, limit: int) -> tuple[list[tuple[Any, ...]], int]:
        """A page of a namespace's memories in key (= storage) order, each with its entity
        links, and the cursor for the next page (-1: done)."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            rows = self._db.execute(
                f"SELECT {_EXPORT_COLUMNS} FROM memories WHERE ns_id = ? AND key > ?"
                " ORDER BY key LIMIT ?", (ns_id, after_key, limit)).fetchall()
            out = [self._exported(row) for row in rows]
        return out, (rows[-1][0] if len(rows) == limit else -1)

    def _exported(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """An export row: the memory's columns after its key, then its entity links."""
        links = self._db.execute(
            "SELECT e.key, me.value, me.score FROM memory_entities me"
            " JOIN entities e USING (ent_id) WHERE me.mem_key = ? ORDER BY e.key", (row[0],)).fetchall()
        return (*row[1:], links)

    # -- live copies (a reshard moving a namespace that keeps taking writes) ---------------
    def start_change_log(self, name: str) -> None:
        """Name every memory of this namespace that changes from now on (afresh: a copy
        started again forgets what its earlier try logged)."""
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            self._db.execute("DELETE FROM copy_log WHERE ns_id = ?", (ns_id,))
            self._db.execute("INSERT OR IGNORE INTO moving (ns_id) VALUES (?)", (ns_id,))

    def stop_change_log(self, name: str) -> None:
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is not None:
                self._db.execute("DELETE FROM moving WHERE ns_id = ?", (ns_id,))
                self._db.execute("DELETE FROM copy_log WHERE ns_id = ?", (ns_id,))

    def export_changes(self, name: str, after_seq: int, limit: int
                       ) -> tuple[list[tuple[Any, ...]], list[str], int]:
        """A page of the memories changed since start_change_log, oldest change first after
        `after_seq`: (export rows of those that exist now, ids of those deleted, the seq to
        ask after next). Fewer than `limit` changes: the log is drained, for now."""
        with self._lock:
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not found: {name}", "namespace")
            logged = self._db.execute(
                "SELECT memory_id, seq FROM copy_log WHERE ns_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?", (ns_id, after_seq, limit)).fetchall()
            found, deleted = [], []
            for memory_id, _ in logged:
                row = self._db.execute(
                    f"SELECT {_EXPORT_COLUMNS} FROM memories WHERE ns_id = ? AND id = ?",
                    (ns_id, memory_id)).fetchone()
                if row is None:
                    deleted.append(memory_id)
                else:
                    found.append(row)
            # In storage order: memories stored together (one created_at) reach the copy in
            # the order they were stored, which is how a session orders its turns.
            rows = [self._exported(row) for row in sorted(found, key=lambda r: r[0])]
        return rows, deleted, (logged[-1][1] if logged else after_seq)

    def refresh_head(self, head: dict[str, Any]) -> None:
        """Bring a copy's namespace row, sessions, entities (with their document
        frequencies) and idempotency keys up to the source's, after its memories caught up."""
        name = head["name"]
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            self._db.execute("UPDATE namespaces SET metadata = ? WHERE ns_id = ?",
                             (head["namespace"][1], ns_id))
            self._db.executemany(
                "INSERT INTO sessions (id, ns_id, started_at, last_active_at, ended_at,"
                " ended_reason, summary, metadata, idle_timeout) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at,"
                " last_active_at = excluded.last_active_at, ended_at = excluded.ended_at,"
                " ended_reason = excluded.ended_reason, summary = excluded.summary,"
                " metadata = excluded.metadata, idle_timeout = excluded.idle_timeout",
                [(s[0], ns_id, *s[1:]) for s in head["sessions"]])
            self._db.executemany(
                "INSERT INTO entities (ns_id, key, type, value, doc_freq) VALUES (?,?,?,?,?)"
                " ON CONFLICT (ns_id, key) DO UPDATE SET type = excluded.type,"
                " value = excluded.value, doc_freq = excluded.doc_freq",
                [(ns_id, *e) for e in head["entities"]])
            self._db.executemany(
                "INSERT OR REPLACE INTO idempotency (ns_id, idem_key, memory_id) VALUES (?,?,?)",
                [(ns_id, *i) for i in head["idempotency"]])

    def import_head(self, head: dict[str, Any]) -> None:
        """Start a namespace's copy here (absent until now), in one transaction."""
        name = head["name"]
        with self._lock, self._tx():
            if self._ns_id(name, create=False) is not None:
                raise Conflict(f"namespace already here: {name}", "namespace")
            for session in head["sessions"]:
                if self._db.execute("SELECT 1 FROM sessions WHERE id = ?", (session[0],)).fetchone():
                    raise Conflict(session_taken(session[0]), "sessions")
            created_at, metadata = head["namespace"]
            cur = self._db.execute("INSERT INTO namespaces (name, created_at, metadata)"
                                   " VALUES (?, ?, ?)", (name, created_at, metadata))
            ns_id = int(cur.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO sessions (id, ns_id, started_at, last_active_at, ended_at,"
                " ended_reason, summary, metadata, idle_timeout) VALUES (?,?,?,?,?,?,?,?,?)",
                [(s[0], ns_id, *s[1:]) for s in head["sessions"]])
            self._db.executemany(
                "INSERT INTO entities (ns_id, key, type, value, doc_freq) VALUES (?,?,?,?,?)",
                [(ns_id, *e) for e in head["entities"]])
            self._db.executemany(
                "INSERT INTO idempotency (ns_id, idem_key, memory_id) VALUES (?,?,?)",
                [(ns_id, *i) for i in head["idempotency"]])

    def import_memories(self, name: str, rows: Sequence[tuple[Any, ...]], replace: bool = False
                        ) -> tuple[list[tuple[int, Memory, bool]], list[int]]:
        """Add a page of exported memories (after import_head), logged for the indexes like
        any write; returns (key, memory, True) per row, as insert does, and the keys of the
        turns around the memories they replaced, whose keyword context changed (`replace`: a
        live copy catching up with changed memories).

        A replaced memory keeps its key here: a session orders its turns by (created_at, key),
        and a turn re-inserted under a new key would jump behind the turns stored with it.
        A live copy's pages may name sessions and entities begun after its head was taken:
        they are added bare here, and refresh_head fills them in."""
        out: list[tuple[int, Memory, bool]] = []
        reindex: list[int] = []
        with self._lock, self._tx():
            ns_id = self._ns_id(name, create=False)
            if ns_id is None:
                raise NotFound(f"namespace not imported: {name}", "namespace")
            entity_ids = dict(self._db.execute(
                "SELECT key, ent_id FROM entities WHERE ns_id = ?", (ns_id,)).fetchall())
            for (mid, content, mtype, imp, tags, meta, sid, created, updated, event, expires,
                 access, last_access, vector, links) in rows:
                old = self._get(ns_id, mid)
                if old is not None:
                    if not replace:
                        raise Conflict(f"memory already imported: {mid}", "id")
                    reindex += self._log_session_neighbors(old[0])
                    self._db.execute("DELETE FROM memory_entities WHERE mem_key = ?", (old[0],))
                    self._db.execute("DELETE FROM memories WHERE key = ?", (old[0],))
                for ent_key, value, _ in links:
                    if ent_key not in entity_ids:
                        cur = self._db.execute(
                            "INSERT INTO entities (ns_id, key, type, value) VALUES (?,?,?,?)",
                            (ns_id, ent_key, ent_key.split(":", 1)[0], value))
                        entity_ids[ent_key] = int(cur.lastrowid or 0)
                if sid is not None and self._session_key(ns_id, sid) is None:
                    self._db.execute(
                        "INSERT INTO sessions (id, ns_id, started_at, last_active_at)"
                        " VALUES (?,?,?,?)", (sid, ns_id, created, created))
                session_key = None if sid is None else self._session_key(ns_id, sid)
                cur = self._db.execute(
                    "INSERT INTO memories (key, ns_id, id, content, memory_type, importance,"
                    " tags, metadata, session_id, session_key, created_at, updated_at,"
                    " event_time, expires_at, access_count, last_accessed_at, vector)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (None if old is None else old[0], ns_id, mid, content, mtype, imp, tags,
                     meta, sid, session_key, created, updated, event, expires, access,
                     last_access, vector))
                key = int(cur.lastrowid or 0)
                self._db.execute("INSERT INTO index_log (key) VALUES (?)", (key,))
                self._db.executemany(
                    "INSERT INTO memory_entities (mem_key, ent_id, value, score) VALUES (?,?,?,?)",
                    [(key, entity_ids[ent_key], value, score) for ent_key, value, score in links])
                found = self._get(ns_id, mid)
                assert found is not None
                out.append((key, found[1], True))
        imported = {key for key, _, _ in out}
        return out, [k for k in dict.fromkeys(reindex) if k not in imported]
