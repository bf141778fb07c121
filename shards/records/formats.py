"""The formats every record store backend shares (SQLite in `sqlite/`, PostgreSQL in
`postgres/`): how a memory's vectors are packed into one column, which columns an update
sets, how stats and refusals read, and the session.ended events of a transaction that ends
sessions. Kept apart from the protocol (base.py) so that base.py names the role and nothing else.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

from shards.events import SESSION_ENDED, session_data
from shards.types import MemoryChanges, Scope


def announce_ended(store: Any, session_ids: Sequence[str], now: float) -> None:
    """session.ended for each session (inside the transaction that ended them): for either
    backend's store, which have get_session and _emit alike."""
    for session_id in session_ids:
        session = store.get_session(session_id, Scope(everything=True))
        if session is not None:
            store._emit(SESSION_ENDED, session.namespace, session_data(session), now)


def pack_vector(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def pack_vectors(vector: Sequence[float], sentence_vectors: Sequence[Sequence[float]]) -> bytes:
    """A memory's vector column: its own vector, then one per sentence (none for a memory of
    one sentence). One column keeps every copy of a memory (triggers, export and import for
    resharding) carrying its sentences with no schema of their own; a column written before
    sentence vectors existed is simply a stack of one."""
    return pack_vector(vector) + b"".join(pack_vector(v) for v in sentence_vectors)


def unpack_vector(blob: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(blob) // 4}f", blob)


def changed_columns(changes: MemoryChanges, now: float) -> list[tuple[str, Any]]:
    """The memories columns an update sets, with their stored values (updated_at always)."""
    columns: list[tuple[str, Any]] = [("updated_at", now)]
    for column, value in (("content", changes.content), ("importance", changes.importance),
                          ("memory_type", changes.memory_type), ("event_time", changes.event_time),
                          ("expires_at", changes.expires_at)):
        if value is not None:
            columns.append((column, value))
    if changes.tags is not None:
        columns.append(("tags", json.dumps(list(changes.tags))))
    if changes.metadata is not None:
        columns.append(("metadata", json.dumps(changes.metadata)))
    if changes.vector is not None:
        columns.append(("vector", pack_vectors(changes.vector, changes.sentence_vectors)))
    return columns


def session_taken(session_id: str) -> str:
    """Why a namespace's copy cannot be imported where one of its sessions' ids is taken."""
    return (f"session {session_id} already exists here (session ids are unique across the "
            "service): import into another service, or delete the namespace that holds it first")


def stats_by_type(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A namespace's memory stats from (type, count, importance sum, oldest, newest) rows."""
    total = sum(r[1] for r in rows)
    return {
        "by_type": {r[0]: r[1] for r in rows},
        "avg_importance": (sum(r[2] for r in rows) / total) if total else None,
        "oldest": min((r[3] for r in rows), default=None),
        "newest": max((r[4] for r in rows), default=None),
    }
