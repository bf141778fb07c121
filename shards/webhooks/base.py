"""The webhook store's role: subscriptions, and the deliveries owed to them. Control data
(beside the API keys, not sharded): SQLite in data_dir embedded, PostgreSQL in production.

A delivery is one event owed to one subscription, unique per (subscription, event): the
dispatcher (serve/webhooks/) may take the same outbox event twice (a crash between copying
and dropping it) and owes it once. Its body is written once, so every attempt sends the same
bytes (and the same signature input). Its life: pending (attempts and next_attempt_at move
on each failure) → delivered, or failed once out of attempts; finished ones are kept a while
for the deliveries listing, then pruned."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Subscription:
    """Events of these types, in namespaces these patterns match (exact names or `prefix*`,
    as key grants are), sent to `url`, signed with `secret`. It sees no more than its
    creating key (`key_id`) may read, whatever its patterns say (serve/webhooks/)."""

    id: str
    key_id: str
    url: str
    events: tuple[str, ...]
    namespaces: tuple[str, ...]
    secret: str
    created_at: float
    description: str | None = None


@dataclass(frozen=True)
class NewDelivery:
    subscription_id: str
    event_id: str
    event_type: str
    namespace: str
    memory_id: str | None
    body: str  # the JSON envelope, sent as is on every attempt
    created_at: float


@dataclass(frozen=True)
class Delivery:
    id: int
    subscription_id: str
    event_id: str
    event_type: str
    namespace: str
    body: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: str | None
    created_at: float
    finished_at: float | None


class Attempt(NamedTuple):
    delivery_id: int
    state: str  # PENDING (to retry), DELIVERED or FAILED
    status: str  # the answer's status code, or the error
    next_attempt_at: float


# The columns a Delivery is read from, in both backends' tables.
DELIVERY_COLUMNS = ("id, subscription_id, event_id, event_type, namespace, body, state, attempts,"
                    " next_attempt_at, last_status, created_at, finished_at")


def delivery_from_row(row: tuple[Any, ...]) -> Delivery:
    (did, sid, eid, etype, ns, body, state, attempts, next_at, status, created, finished) = row
    return Delivery(id=int(did), subscription_id=sid, event_id=eid, event_type=etype, namespace=ns,
                    body=body, state=state, attempts=int(attempts), next_attempt_at=float(next_at),
                    last_status=status, created_at=float(created),
                    finished_at=None if finished is None else float(finished))


class WebhookStore(Protocol):
    location: str

    def close(self) -> None: ...

    # -- subscriptions -----------------------------------------------------------------
    def create_subscription(self, subscription: Subscription) -> None: ...

    def subscriptions(self, key_id: str | None = None) -> list[Subscription]:
        """Every subscription, or those one key created; oldest first."""
        ...

    def get_subscription(self, subscription_id: str) -> Subscription:
        """NotFound (field webhook_id) when there is none."""
        ...

    def delete_subscription(self, subscription_id: str) -> None:
        """With every delivery still owed to it. NotFound when there is none."""
        ...

    # -- deliveries ----------------------------------------------------------------------
    def enqueue(self, deliveries: Sequence[NewDelivery]) -> int:
        """Owe these (one already owed is left as it is); answers how many are new. A
        delivery to a subscription deleted meanwhile is dropped."""
        ...

    def replace_bodies(self, bodies: dict[int, str]) -> None:
        """New bodies for deliveries (id → body): a forget's redaction (see pending_with_text)."""
        ...

    def pending_with_text(self, namespace: str, memory_ids: Sequence[str] | None) -> list[tuple[int, str]]:
        """(delivery id, body) of pending memory.stored and memory.updated deliveries of these
        memories (None: of the whole namespace): what a forget must redact, and an update
        rewrite, before it goes out."""
        ...

    def claim_due(self, now: float, limit: int, lease_s: float) -> list[Delivery]:
        """Pending deliveries due by `now`, each held for `lease_s` (its next_attempt_at
        moved on, so another dispatcher does not take it meanwhile); oldest due first."""
        ...

    def record_attempts(self, attempts: Sequence[Attempt], now: float) -> None:
        """Attempts' outcomes, in one transaction: delivered, failed for good, or pending
        again from next_attempt_at; each delivery's attempts count up."""
        ...

    def deliveries(self, subscription_id: str, limit: int) -> list[Delivery]:
        """The most recent first."""
        ...

    def prune(self, finished_before: float) -> int:
        """Drop delivered and failed deliveries that finished before this time."""
        ...

    # -- one dispatcher at a time ------------------------------------------------------------
    def take_dispatcher_lease(self, holder: str, lease_s: float, now: float) -> bool:
        """True when `holder` holds the lease until now + lease_s (taken or renewed); False
        while another holder's lease runs."""
        ...
