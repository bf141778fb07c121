"""Webhook subscriptions and deliveries on PostgreSQL (production): tables in the control
schema (`<schema_prefix>control`, versioned as the store "webhooks"), shared by every Router
replica. Claims take rows with FOR UPDATE SKIP LOCKED, so two dispatchers never hold one
delivery (only the lease holder dispatches; this keeps a lease that lapsed mid-round safe)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shards.config import PostgresConfig
from shards.errors import NotFound
from shards.postgres_pool import open_migrated, unavailable_as
from shards.webhooks.base import (
    DELIVERY_COLUMNS, PENDING, Attempt, Delivery, NewDelivery, Subscription, delivery_from_row,
)

V1_SQL = """
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT[] NOT NULL,
    namespaces TEXT[] NOT NULL,
    secret TEXT NOT NULL,
    description TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX webhook_subscriptions_by_key ON webhook_subscriptions (key_id, created_at);
CREATE TABLE webhook_deliveries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    memory_id TEXT COLLATE "C",
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_status TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_memory ON webhook_deliveries (namespace, memory_id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (subscription_id, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE state != 'pending';
CREATE TABLE webhook_dispatcher_lease (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    holder TEXT,
    until DOUBLE PRECISION NOT NULL DEFAULT 0
);
INSERT INTO webhook_dispatcher_lease (id) VALUES (TRUE);
"""
MIGRATIONS = [V1_SQL]
SUBSCRIPTION_COLUMNS = "id, key_id, url, events, namespaces, secret, created_at, description"


class PostgresWebhookStore:
    def __init__(self, pool: Any, location: str) -> None:
        self._pool = pool
        self.location = location

    @classmethod
    def from_config(cls, cfg: PostgresConfig) -> PostgresWebhookStore:
        pool, location = open_migrated(cfg, f"{cfg.schema_prefix}control", "webhooks", MIGRATIONS, "webhooks")
        return cls(pool, location)

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with unavailable_as("webhooks", self.location), self._pool.connection() as conn, conn.transaction():
            yield conn

    # -- subscriptions -------------------------------------------------------------------
    def create_subscription(self, subscription: Subscription) -> None:
        s = subscription
        with self._tx() as db:
            db.execute(f"INSERT INTO webhook_subscriptions ({SUBSCRIPTION_COLUMNS})"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                       (s.id, s.key_id, s.url, list(s.events), list(s.namespaces), s.secret,
                        s.created_at, s.description))

    def subscriptions(self, key_id: str | None = None) -> list[Subscription]:
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions"
                " WHERE %s::text IS NULL OR key_id = %s ORDER BY created_at, id", (key_id, key_id)).fetchall()
        return [_subscription(r) for r in rows]

    def get_subscription(self, subscription_id: str) -> Subscription:
        with self._tx() as db:
            row = db.execute(f"SELECT {SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = %s",
                             (subscription_id,)).fetchone()
        if row is None:
            raise NotFound(f"webhook not found: {subscription_id}", "webhook_id")
        return _subscription(row)

    def delete_subscription(self, subscription_id: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM webhook_subscriptions WHERE id = %s", (subscription_id,)).rowcount == 0:
                raise NotFound(f"webhook not found: {subscription_id}", "webhook_id")

    # -- deliveries ------------------------------------------------------------------------
    def enqueue(self, deliveries: Sequence[NewDelivery]) -> int:
        new = 0
        with self._tx() as db:
            for d in deliveries:
                new += db.execute(
                    "INSERT INTO webhook_deliveries (subscription_id, event_id, event_type, namespace,"
                    " memory_id, body, next_attempt_at, created_at)"
                    " SELECT %s, %s, %s, %s, %s, %s, %s, %s"
                    " WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = %s)"
                    " ON CONFLICT (subscription_id, event_id) DO NOTHING",
                    (d.subscription_id, d.event_id, d.event_type, d.namespace, d.memory_id, d.body,
                     d.created_at, d.created_at, d.subscription_id)).rowcount
        return new

    def pending_with_text(self, namespace: str, memory_ids: Sequence[str] | None) -> list[tuple[int, str]]:
        if memory_ids is not None and not memory_ids:
            return []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, body FROM webhook_deliveries WHERE state = 'pending' AND namespace = %s"
                " AND event_type IN ('memory.stored', 'memory.updated')"
                " AND (%s::text[] IS NULL OR memory_id = ANY(%s))",
                (namespace, None if memory_ids is None else list(memory_ids),
                 None if memory_ids is None else list(memory_ids))).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def replace_bodies(self, bodies: dict[int, str]) -> None:
        with self._tx() as db, db.cursor() as cur:
            cur.executemany("UPDATE webhook_deliveries SET body = %s WHERE id = %s",
                            [(body, delivery_id) for delivery_id, body in bodies.items()])

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        with self._tx() as db:
            rows = db.execute(
                "UPDATE webhook_deliveries d SET next_attempt_at = %s FROM ("
                "  SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= %s"
                "  ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED) due"
                f" WHERE d.id = due.id RETURNING {', '.join('d.' + c.strip() for c in DELIVERY_COLUMNS.split(','))}",
                (now + lease_s, now, limit)).fetchall()
        # RETURNING gives the moved next_attempt_at; the order is the claim's
        return sorted((delivery_from_row(r) for r in rows), key=lambda d: d.id)

    def record_attempts(self, attempts: Sequence[Attempt], now: float) -> None:
        with self._tx() as db, db.cursor() as cur:
            cur.executemany(
                "UPDATE webhook_deliveries SET state = %s, last_status = %s, attempts = attempts + 1,"
                " next_attempt_at = %s, finished_at = %s WHERE id = %s",
                [(a.state, a.status, a.next_attempt_at, None if a.state == PENDING else now, a.delivery_id)
                 for a in attempts])

    def deliveries(self, subscription_id: str, limit: int) -> list[Delivery]:
        with self._tx() as db:
            rows = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = %s"
                " ORDER BY id DESC LIMIT %s", (subscription_id, limit)).fetchall()
        return [delivery_from_row(r) for r in rows]

    def prune(self, finished_before: float) -> int:
        with self._tx() as db:
            return int(db.execute("DELETE FROM webhook_deliveries WHERE state != 'pending'"
                                  " AND finished_at < %s", (finished_before,)).rowcount)

    def take_dispatcher_lease(self, holder: str, lease_s: float, now: float) -> bool:
        with self._tx() as db:
            return bool(db.execute(
                "UPDATE webhook_dispatcher_lease SET holder = %s, until = %s"
                " WHERE holder = %s OR until < %s OR holder IS NULL",
                (holder, now + lease_s, holder, now)).rowcount)


def _subscription(row: tuple[Any, ...]) -> Subscription:
    sid, key_id, url, events, namespaces, secret, created, description = row
    return Subscription(id=sid, key_id=key_id, url=url, events=tuple(events), namespaces=tuple(namespaces),
                        secret=secret, created_at=float(created), description=description)

