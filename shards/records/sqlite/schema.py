"""The SQLite record store's tables, triggers and row shapes (the column lists and the
converters from their rows)."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from shards.types import Memory, Session

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
    ns_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS memories (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    ns_id INTEGER NOT NULL REFERENCES namespaces(ns_id),
    id TEXT NOT NULL,
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    importance REAL NOT NULL,
    tags TEXT NOT NULL,
    metadata TEXT NOT NULL,
    session_id TEXT,
    session_key INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    event_time REAL NOT NULL,
    expires_at REAL,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_accessed_at REAL,
    vector BLOB NOT NULL,
    UNIQUE (ns_id, id)
);
CREATE INDEX IF NOT EXISTS memories_by_ns_time ON memories (ns_id, created_at);
-- Session order (created_at, key) within a session: a turn's neighbours in O(log n), however
-- long the session (it replaced memories_by_session, an index on session_key alone).
CREATE INDEX IF NOT EXISTS memories_by_session_order ON memories (session_key, created_at, key);
DROP INDEX IF EXISTS memories_by_session;
CREATE INDEX IF NOT EXISTS memories_by_id ON memories (id);
CREATE INDEX IF NOT EXISTS memories_expiring ON memories (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS sessions (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ns_id INTEGER NOT NULL REFERENCES namespaces(ns_id),
    started_at REAL NOT NULL,
    last_active_at REAL NOT NULL,
    ended_at REAL,
    ended_reason TEXT,
    summary TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    idle_timeout REAL
);
CREATE INDEX IF NOT EXISTS sessions_by_ns ON sessions (ns_id, started_at);
CREATE INDEX IF NOT EXISTS sessions_open ON sessions (ended_at, last_active_at);
CREATE TABLE IF NOT EXISTS idempotency (
    ns_id INTEGER NOT NULL,
    idem_key TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    PRIMARY KEY (ns_id, idem_key)
);
CREATE TABLE IF NOT EXISTS entities (
    ent_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ns_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    type TEXT NOT NULL,
    value TEXT NOT NULL,
    doc_freq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (ns_id, key)
);
CREATE TABLE IF NOT EXISTS memory_entities (
    mem_key INTEGER NOT NULL,
    ent_id INTEGER NOT NULL,
    value TEXT NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (mem_key, ent_id)
);
CREATE INDEX IF NOT EXISTS memory_entities_by_entity ON memory_entities (ent_id);
CREATE TABLE IF NOT EXISTS index_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL);
-- Namespaces a resharding job is moving in or out (shards/shard/placement.py says what each state
-- allows). A namespace with no row here is simply live on this shard, or absent.
CREATE TABLE IF NOT EXISTS namespace_states (name TEXT PRIMARY KEY, state TEXT NOT NULL);
-- Each namespace's vectors and filter columns, clustered by namespace: exact vector search
-- reads a namespace as one range (1k rows of a 1M-row shard: 4 ms, against 55 ms scattered
-- across the memories table). Kept in step by triggers, inside each write's transaction.
CREATE TABLE IF NOT EXISTS namespace_vectors (
    ns_id INTEGER NOT NULL,
    key INTEGER NOT NULL,
    memory_type TEXT NOT NULL,
    session_key INTEGER NOT NULL,
    event_time REAL NOT NULL,
    importance REAL NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (ns_id, key)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_insert AFTER INSERT ON memories BEGIN
    INSERT INTO namespace_vectors VALUES (NEW.ns_id, NEW.key, NEW.memory_type,
        COALESCE(NEW.session_key, 0), NEW.event_time, NEW.importance, NEW.vector);
END;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_update
AFTER UPDATE OF vector, memory_type, session_key, event_time, importance ON memories BEGIN
    UPDATE namespace_vectors SET memory_type = NEW.memory_type,
        session_key = COALESCE(NEW.session_key, 0), event_time = NEW.event_time,
        importance = NEW.importance, vector = NEW.vector
    WHERE ns_id = OLD.ns_id AND key = OLD.key;
END;
CREATE TRIGGER IF NOT EXISTS namespace_vectors_delete AFTER DELETE ON memories BEGIN
    DELETE FROM namespace_vectors WHERE ns_id = OLD.ns_id AND key = OLD.key;
END;
-- A namespace copied while it takes writes (a reshard's live copy) has a row in `moving`;
-- every memory written, changed or deleted in it meanwhile is named in `copy_log` with a
-- sequence number (the latest change of each memory), so that the copy can catch up with
-- exactly those: in rounds while writes go on, then once more after they stop. Triggers,
-- not code in each write path: no path can forget to log (access counts, purges included).
CREATE TABLE IF NOT EXISTS moving (ns_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS copy_log (
    ns_id INTEGER NOT NULL,
    memory_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (ns_id, memory_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS copy_log_by_seq ON copy_log (ns_id, seq);
CREATE TRIGGER IF NOT EXISTS copy_log_insert AFTER INSERT ON memories
WHEN NEW.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (NEW.ns_id, NEW.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = NEW.ns_id));
END;
CREATE TRIGGER IF NOT EXISTS copy_log_update AFTER UPDATE ON memories
WHEN NEW.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (NEW.ns_id, NEW.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = NEW.ns_id));
END;
CREATE TRIGGER IF NOT EXISTS copy_log_delete AFTER DELETE ON memories
WHEN OLD.ns_id IN (SELECT ns_id FROM moving) BEGIN
    INSERT OR REPLACE INTO copy_log (ns_id, memory_id, seq) VALUES (OLD.ns_id, OLD.id,
        (SELECT COALESCE(MAX(seq), 0) + 1 FROM copy_log WHERE ns_id = OLD.ns_id));
END;
"""

# Version 2: each namespace's usage, kept by triggers inside every write's transaction, so
# that quotas (serve/quotas.py) read it in O(1) and a write over one rolls back whole:
# memory_count, and content_bytes (the UTF-8 bytes of its memories' content). One
# transaction, the version inside it: a migration cut short leaves version 1 as it was.
USAGE_V2 = """
BEGIN;
ALTER TABLE namespaces ADD COLUMN memory_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN content_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE namespaces SET
    memory_count = (SELECT COUNT(*) FROM memories m WHERE m.ns_id = namespaces.ns_id),
    content_bytes = (SELECT COALESCE(SUM(LENGTH(CAST(m.content AS BLOB))), 0)
                     FROM memories m WHERE m.ns_id = namespaces.ns_id);
CREATE TRIGGER namespace_usage_insert AFTER INSERT ON memories BEGIN
    UPDATE namespaces SET memory_count = memory_count + 1,
        content_bytes = content_bytes + LENGTH(CAST(NEW.content AS BLOB))
    WHERE ns_id = NEW.ns_id;
END;
CREATE TRIGGER namespace_usage_delete AFTER DELETE ON memories BEGIN
    UPDATE namespaces SET memory_count = memory_count - 1,
        content_bytes = content_bytes - LENGTH(CAST(OLD.content AS BLOB))
    WHERE ns_id = OLD.ns_id;
END;
CREATE TRIGGER namespace_usage_update AFTER UPDATE OF content ON memories BEGIN
    UPDATE namespaces SET content_bytes = content_bytes
        - LENGTH(CAST(OLD.content AS BLOB)) + LENGTH(CAST(NEW.content AS BLOB))
    WHERE ns_id = NEW.ns_id;
END;
PRAGMA user_version = 2;
COMMIT;
"""

# migrations[i] takes the schema from version i to i + 1 (shards/sqlite_schema.py); a change
# appends one, never edits. Version 1 is the layout stores had before versions were kept.
# Version 3: the outbox of change events (shards/events.py), written in the transaction of
# the change they describe; the webhook dispatcher (serve/webhooks/) takes them from here.
OUTBOX_V3 = """
BEGIN;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    memory_id TEXT,
    occurred_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_by_memory ON events (namespace, memory_id) WHERE memory_id IS NOT NULL;
PRAGMA user_version = 3;
COMMIT;
"""
MIGRATIONS: list[str] = [SCHEMA, USAGE_V2, OUTBOX_V3]

_MEMORY_COLUMNS = (
    "m.key, m.id, n.name, m.content, m.memory_type, m.importance, m.tags, m.metadata, "
    "m.session_id, m.created_at, m.updated_at, m.event_time, m.expires_at, "
    "m.access_count, m.last_accessed_at"
)


_EXPORT_COLUMNS = (
    "key, id, content, memory_type, importance, tags, metadata, session_id, created_at,"
    " updated_at, event_time, expires_at, access_count, last_accessed_at, vector")


def _memory(row: sqlite3.Row | tuple[Any, ...]) -> tuple[int, Memory]:
    (key, mid, ns, content, mtype, imp, tags, meta, sid, created, updated, event, expires,
     access, last_access) = row
    return key, Memory(
        id=mid, namespace=ns, content=content, memory_type=mtype, importance=imp,
        tags=tuple(json.loads(tags)), metadata=json.loads(meta), session_id=sid,
        created_at=created, updated_at=updated, event_time=event, expires_at=expires,
        access_count=access, last_accessed_at=last_access,
    )


def _session(row: tuple[Any, ...]) -> Session:
    sid, ns, started, last, ended, reason, summary, meta, idle, count = row
    return Session(
        id=sid, namespace=ns, started_at=started, last_active_at=last, ended_at=ended,
        ended_reason=reason, summary=summary, metadata=json.loads(meta), memory_count=count,
        idle_timeout=idle,
    )


_SESSION_COLUMNS = (
    "s.id, n.name, s.started_at, s.last_active_at, s.ended_at, s.ended_reason, s.summary, "
    "s.metadata, s.idle_timeout, (SELECT COUNT(*) FROM memories m WHERE m.session_key = s.key)"
)
