"""PostgreSQL record store: the knowledge graph, memories linked through the entities they name."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shards.records.postgres.core import PostgresCore
from shards.types import EntityRef


class GraphMixin(PostgresCore):
    """Entities linked to memories, and the links between memories they make."""

    def _link_entities(self, ns_id: int, key: int, entities: Sequence[EntityRef]) -> None:
        for e in {e.key: e for e in entities}.values():
            self._db.execute(
                "INSERT INTO entities (ns_id, key, type, value) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT (ns_id, key) DO NOTHING", (ns_id, e.key, e.type, e.value))
            ent_id = self._scalar(
                "SELECT ent_id FROM entities WHERE ns_id = %s AND key = %s", (ns_id, e.key))
            self._db.execute(
                "INSERT INTO memory_entities (mem_key, ent_id, value, score) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT DO NOTHING", (key, ent_id, e.value, e.score))
            self._db.execute("UPDATE entities SET doc_freq = doc_freq + 1 WHERE ent_id = %s", (ent_id,))

    def _unlink_entities(self, key: int) -> None:
        self._db.execute(
            "UPDATE entities SET doc_freq = doc_freq - 1 WHERE ent_id IN"
            " (SELECT ent_id FROM memory_entities WHERE mem_key = %s)", (key,))
        self._db.execute("DELETE FROM memory_entities WHERE mem_key = %s", (key,))

    def entities_of(self, key: int) -> list[EntityRef]:
        with self._read() as db:
            rows = db.execute(
                "SELECT e.key, e.type, me.value, me.score FROM memory_entities me"
                " JOIN entities e USING (ent_id) WHERE me.mem_key = %s ORDER BY e.type, e.key",
                (key,)).fetchall()
        return [EntityRef(key=r[0], type=r[1], value=r[2], score=r[3]) for r in rows]

    def match_entities(self, namespace: str, keys: Sequence[str]) -> dict[int, tuple[str, int]]:
        """Entities of a namespace named by these keys → (key, doc_freq).

        A one-word person ("person:jane") also matches the full names it is part of
        ("person:jane doe"): queries use first names where memories have full ones. ILIKE
        under the "C" collation folds ASCII case only, as SQLite's LIKE does.
        """
        out: dict[int, tuple[str, int]] = {}
        with self._read() as db:
            ns_id = self._ns_id(namespace, create=False)
            if ns_id is None or not keys:
                return out
            for key in dict.fromkeys(keys):
                params: list[Any] = [ns_id, key]
                clause = "key = %s"
                kind, _, name = key.partition(":")
                if kind == "person" and name and " " not in name:
                    esc = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    clause += " OR key ILIKE %s ESCAPE '\\' OR key ILIKE %s ESCAPE '\\'"
                    params += [f"person:{esc} %", f"person:% {esc}"]
                for ent_id, k, df in db.execute(
                        f"SELECT ent_id, key, doc_freq FROM entities WHERE ns_id = %s AND ({clause})",
                        params):
                    out[int(ent_id)] = (str(k), int(df))
        return out

    def memories_of_entities(self, ent_ids: Sequence[int]) -> list[tuple[int, int]]:
        """(memory key, entity id) for every memory linked to these entities."""
        if not ent_ids:
            return []
        with self._read() as db:
            return [(int(r[0]), int(r[1])) for r in db.execute(
                "SELECT mem_key, ent_id FROM memory_entities WHERE ent_id = ANY(%s)",
                (list(ent_ids),))]

    def entity_links(self, mem_keys: Sequence[int], max_doc_freq: int) -> list[tuple[int, int, int, str, int]]:
        """Links out of these memories: (from key, to key, entity id, entity key, doc_freq).

        Entities in more than `max_doc_freq` memories are hubs (a speaker's own name, say):
        they link everything to everything and carry no information, so they are skipped.
        """
        if not mem_keys:
            return []
        with self._read() as db:
            rows = db.execute(
                "SELECT a.mem_key, b.mem_key, e.ent_id, e.key, e.doc_freq"
                " FROM memory_entities a JOIN entities e ON e.ent_id = a.ent_id"
                " JOIN memory_entities b ON b.ent_id = a.ent_id"
                " WHERE a.mem_key = ANY(%s) AND b.mem_key != a.mem_key AND e.doc_freq <= %s",
                (list(mem_keys), max_doc_freq)).fetchall()
        return [(int(r[0]), int(r[1]), int(r[2]), str(r[3]), int(r[4])) for r in rows]
