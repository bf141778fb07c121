"""Webhook subscriptions and deliveries in SQLite (embedded): webhooks.db in data_dir, beside
control.db, shared by the routers (WAL; each write one BEGIN IMMEDIATE transaction)."""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shards.errors import NotFound
from shards.sqlite_schema import migrate
from shards.webhooks.base import (
    DELIVERED, DELIVERY_COLUMNS, FAILED, PENDING, Attempt, Delivery, NewDelivery, Subscription,
    delivery_from_row,
)

SCHEMA_V1 = """
BEGIN;
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,           -- JSON list
    namespaces TEXT NOT NULL,       -- JSON list of patterns
    secret TEXT NOT NULL,
    description TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX subscriptions_by_key ON subscriptions (key_id, created_at);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    memory_id TEXT,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_memory ON deliveries (namespace, memory_id) WHERE state = 'pending';
CREATE INDEX deliveries_recent ON deliveries (subscription_id, id);
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE state != 'pending';
CREATE TABLE dispatcher_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    until REAL NOT NULL DEFAULT 0
);
INSERT INTO dispatcher_lease (id) VALUES (1);
PRAGMA user_version = 1;
COMMIT;
"""
MIGRATIONS: list[str] = [SCHEMA_V1]
SUBSCRIPTION_COLUMNS = "id, key_id, url, events, namespaces, secret, created_at, description"


class SQLiteWebhookStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.location = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA secure_delete=ON")  # a redacted body's old text is overwritten
        migrate(self._db, "webhook store", self.location, MIGRATIONS)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- subscriptions -------------------------------------------------------------------
    def create_subscription(self, subscription: Subscription) -> None:
        s = subscription
        with self._tx() as db:
            db.execute(f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                       (s.id, s.key_id, s.url, json.dumps(list(s.events)), json.dumps(list(s.namespaces)),
                        s.secret, s.created_at, s.description))

    def subscriptions(self, key_id: str | None = None) -> list[Subscription]:
        sql = f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions"
        params: tuple[str, ...] = ()
        if key_id is not None:
            sql, params = sql + " WHERE key_id = ?", (key_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [_subscription(r) for r in rows]

    def get_subscription(self, subscription_id: str) -> Subscription:
        with self._lock:
            row = self._db.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE id = ?",
                                   (subscription_id,)).fetchone()
        if row is None:
            raise NotFound(f"webhook not found: {subscription_id}", "webhook_id")
        return _subscription(row)

    def delete_subscription(self, subscription_id: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,)).rowcount == 0:
                raise NotFound(f"webhook not found: {subscription_id}", "webhook_id")

    # -- deliveries ------------------------------------------------------------------------
    def enqueue(self, deliveries: Sequence[NewDelivery]) -> int:
        new = 0
        with self._tx() as db:
            for d in deliveries:
                new += db.execute(
                    "INSERT INTO deliveries (subscription_id, event_id, event_type, namespace, memory_id,"
                    " body, next_attempt_at, created_at)"
                    " SELECT ?,?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id = ?)"
                    " ON CONFLICT (subscription_id, event_id) DO NOTHING",
                    (d.subscription_id, d.event_id, d.event_type, d.namespace, d.memory_id, d.body,
                     d.created_at, d.created_at, d.subscription_id)).rowcount
        return new

    def pending_with_text(self, namespace: str, memory_ids: Sequence[str] | None) -> list[tuple[int, str]]:
        sql = ("SELECT id, body FROM deliveries WHERE state = 'pending' AND namespace = ?"
               " AND event_type IN ('memory.stored', 'memory.updated')")
        params: list[str] = [namespace]
        if memory_ids is not None:
            if not memory_ids:
                return []
            sql += f" AND memory_id IN ({','.join('?' * len(memory_ids))})"
            params += list(memory_ids)
        with self._lock:
            return [(int(r[0]), str(r[1])) for r in self._db.execute(sql, params).fetchall()]

    def replace_bodies(self, bodies: dict[int, str]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE deliveries SET body = ? WHERE id = ?",
                           [(body, delivery_id) for delivery_id, body in bodies.items()])

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                           [(now + lease_s, r[0]) for r in rows])
        return [delivery_from_row(r) for r in rows]

    def record_attempts(self, attempts: Sequence[Attempt], now: float) -> None:
        assert all(a.state in (PENDING, DELIVERED, FAILED) for a in attempts)
        with self._tx() as db:
            db.executemany(
                "UPDATE deliveries SET state = ?, last_status = ?, attempts = attempts + 1,"
                " next_attempt_at = ?, finished_at = ? WHERE id = ?",
                [(a.state, a.status, a.next_attempt_at, None if a.state == PENDING else now, a.delivery_id)
                 for a in attempts])

    def deliveries(self, subscription_id: str, limit: int) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscription_id = ?"
                " ORDER BY id DESC LIMIT ?", (subscription_id, limit)).fetchall()
        return [delivery_from_row(r) for r in rows]

    def prune(self, finished_before: float) -> int:
        with self._tx() as db:
            return int(db.execute("DELETE FROM deliveries WHERE state != 'pending' AND finished_at < ?",
                                  (finished_before,)).rowcount)

    def take_dispatcher_lease(self, holder: str, lease_s: float, now: float) -> bool:
        with self._tx() as db:
            return bool(db.execute(
                "UPDATE dispatcher_lease SET holder = ?, until = ? WHERE id = 1"
                " AND (holder = ? OR until < ? OR holder IS NULL)",
                (holder, now + lease_s, holder, now)).rowcount)


def _subscription(row: tuple[Any, ...]) -> Subscription:
    sid, key_id, url, events, namespaces, secret, created, description = row
    return Subscription(id=sid, key_id=key_id, url=url, events=tuple(json.loads(events)),
                        namespaces=tuple(json.loads(namespaces)), secret=secret,
                        created_at=float(created), description=description)

