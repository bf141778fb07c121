"""The webhook store's contract (subscriptions, deliveries owed, the dispatcher's lease), one
suite for SQLite (embedded) and PostgreSQL (production)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from shards.config import EmbeddedStorageConfig
from shards.errors import NotFound
from shards.webhooks.base import DELIVERED, FAILED, PENDING, Attempt, NewDelivery, Subscription, WebhookStore
from shards.webhooks.factory import open_webhook_store


@pytest.fixture()
def store(control_storage: EmbeddedStorageConfig) -> Iterator[WebhookStore]:
    opened = open_webhook_store(control_storage)
    yield opened
    opened.close()


@pytest.fixture()
def second(control_storage: EmbeddedStorageConfig, store: WebhookStore) -> Iterator[WebhookStore]:
    """A second store over the same data, as a second Router replica has."""
    opened = open_webhook_store(control_storage)
    yield opened
    opened.close()


def sub(sid: str, key_id: str = "key-a", created_at: float = 1.0) -> Subscription:
    return Subscription(id=sid, key_id=key_id, url="http://127.0.0.1:9/hook", events=("memory.stored",),
                        namespaces=("acme-*",), secret="whsec_c2VjcmV0", created_at=created_at,
                        description="a test")


def owed(sid: str, event_id: str, memory_id: str | None = "m1", at: float = 10.0,
         kind: str = "memory.stored") -> NewDelivery:
    return NewDelivery(sid, event_id, kind, "acme-1", memory_id, f'{{"id":"{event_id}"}}', at)


def test_subscriptions_are_kept_per_key(store: WebhookStore, second: WebhookStore) -> None:
    store.create_subscription(sub("wh_1", "key-a", 1.0))
    store.create_subscription(sub("wh_2", "key-b", 2.0))
    assert second.get_subscription("wh_1") == sub("wh_1", "key-a", 1.0)
    assert [s.id for s in second.subscriptions()] == ["wh_1", "wh_2"]
    assert [s.id for s in second.subscriptions("key-b")] == ["wh_2"]
    second.delete_subscription("wh_2")
    with pytest.raises(NotFound):
        store.get_subscription("wh_2")
    with pytest.raises(NotFound):
        store.delete_subscription("wh_2")


def test_an_event_is_owed_once_and_claimed_by_one(store: WebhookStore, second: WebhookStore) -> None:
    store.create_subscription(sub("wh_1"))
    assert store.enqueue([owed("wh_1", "evt_1"), owed("wh_1", "evt_2", at=11.0)]) == 2
    # the same event again (a dispatcher that crashed before dropping it from the outbox)
    assert second.enqueue([owed("wh_1", "evt_1"), owed("wh_gone", "evt_3")]) == 0
    claimed = store.claim_due(now=20.0, limit=10, lease_s=30.0)
    assert [d.event_id for d in claimed] == ["evt_1", "evt_2"]
    assert all(d.state == PENDING and d.attempts == 0 for d in claimed)
    assert second.claim_due(now=21.0, limit=10, lease_s=30.0) == []  # held by the first claim
    store.record_attempts([Attempt(claimed[0].id, DELIVERED, "200", 22.0),
                           Attempt(claimed[1].id, PENDING, "500", 40.0)], now=22.0)
    assert second.claim_due(now=39.0, limit=10, lease_s=30.0) == []
    [again] = second.claim_due(now=51.0, limit=10, lease_s=30.0)  # past both the retry and the hold
    assert (again.event_id, again.attempts, again.last_status) == ("evt_2", 1, "500")
    second.record_attempts([Attempt(again.id, FAILED, "500", 52.0)], now=52.0)
    recent = store.deliveries("wh_1", 10)
    assert [(d.event_id, d.state, d.attempts) for d in recent] == [("evt_2", FAILED, 2), ("evt_1", DELIVERED, 1)]
    assert recent[0].finished_at == 52.0 and recent[1].finished_at == 22.0
    assert store.prune(finished_before=30.0) == 1  # evt_1, finished at 22
    assert [d.event_id for d in store.deliveries("wh_1", 10)] == ["evt_2"]


def test_deleting_a_subscription_drops_what_it_was_owed(store: WebhookStore) -> None:
    store.create_subscription(sub("wh_1"))
    store.enqueue([owed("wh_1", "evt_1")])
    store.delete_subscription("wh_1")
    assert store.claim_due(now=100.0, limit=10, lease_s=1.0) == []


def test_a_forget_finds_the_pending_with_text_deliveries_to_redact(store: WebhookStore) -> None:
    store.create_subscription(sub("wh_1"))
    store.enqueue([owed("wh_1", "evt_1", "m1"), owed("wh_1", "evt_2", "m2"),
                   owed("wh_1", "evt_3", "m1", kind="memory.forgotten")])
    found = store.pending_with_text("acme-1", ["m1"])
    assert [body for _, body in found] == ['{"id":"evt_1"}']
    assert len(store.pending_with_text("acme-1", None)) == 2 and store.pending_with_text("acme-1", []) == []
    store.replace_bodies({found[0][0]: '{"id":"evt_1","redacted":true}'})
    bodies = {d.event_id: d.body for d in store.deliveries("wh_1", 10)}
    assert bodies["evt_1"] == '{"id":"evt_1","redacted":true}' and bodies["evt_2"] == '{"id":"evt_2"}'


def test_one_dispatcher_holds_the_lease_at_a_time(store: WebhookStore, second: WebhookStore) -> None:
    assert store.take_dispatcher_lease("router-a", 10.0, now=100.0)
    assert not second.take_dispatcher_lease("router-b", 10.0, now=105.0)
    assert store.take_dispatcher_lease("router-a", 10.0, now=108.0)  # renewed: until 118
    assert not second.take_dispatcher_lease("router-b", 10.0, now=117.0)
    assert second.take_dispatcher_lease("router-b", 10.0, now=119.0)  # router-a went quiet
    assert not store.take_dispatcher_lease("router-a", 10.0, now=120.0)
