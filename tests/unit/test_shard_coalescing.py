"""A Router's concurrent recall reads to one shard share a handle call (serve/clients.py).

The handle here is a stand-in that records what it was sent: what is under test is how the
client queues, groups and answers calls, not Serve (tests/service/test_recall.py sends
concurrent recalls through the real one)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serve.clients import ServeShardClient
from shards.errors import NamespaceMoved


class Remote:
    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


class RecordingHandle:
    """Answers `call` and `call_many` as a shard would, after a pause long enough for
    other calls to queue behind the one in flight."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []  # (handle method, number of shard calls)
        self.call = Remote(self._call)
        self.call_many = Remote(self._call_many)

    @staticmethod
    def answer(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args and args[0] == "moved":
            raise NamespaceMoved("moved", write=False)
        return (method, args, kwargs.get("map_epoch"))

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(("call", 1))
        await asyncio.sleep(0.01)
        return self.answer(method, args, kwargs)

    async def _call_many(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[tuple[bool, Any]]:
        self.sent.append(("call_many", len(calls)))
        await asyncio.sleep(0.01)
        out: list[tuple[bool, Any]] = []
        for method, args, kwargs in calls:
            try:
                out.append((True, self.answer(method, args, kwargs)))
            except Exception as exc:
                out.append((False, exc))
        return out


def test_a_lone_recall_is_one_plain_call() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)
    result = asyncio.run(client.call("recall_candidates", "ns-a", map_epoch=3))
    assert result == ("recall_candidates", ("ns-a",), 3)
    assert handle.sent == [("call", 1)]


def test_concurrent_recalls_share_calls_and_each_gets_its_own_answer() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)

    async def run() -> list[Any]:
        first = asyncio.ensure_future(client.call("recall_candidates", "ns-0", map_epoch=0))
        await asyncio.sleep(0.001)  # in flight alone
        rest = [client.call("recall_candidates", f"ns-{i}", map_epoch=i) for i in range(1, 10)]
        return await asyncio.gather(first, *rest)

    results = asyncio.run(run())
    assert results == [("recall_candidates", (f"ns-{i}",), i) for i in range(10)]
    # The first goes alone; the nine that queued behind it go together.
    assert handle.sent == [("call", 1), ("call_many", 9)]


def test_one_refused_call_fails_only_its_own_request() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)

    async def run() -> list[Any]:
        names = ["ns-0", "ns-1", "moved", "ns-3"]
        return await asyncio.gather(*(client.call("recall_candidates", n) for n in names),
                                    return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[2], NamespaceMoved)
    assert [r[1] for i, r in enumerate(results) if i != 2] == [("ns-0",), ("ns-1",), ("ns-3",)]


MAX_COALESCED = 5


def test_batches_are_bounded_and_other_methods_are_not_coalesced() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle, max_batch=MAX_COALESCED)

    async def run() -> None:
        await asyncio.gather(*(client.call("recall_candidates", f"ns-{i}") for i in range(MAX_COALESCED + 3)),
                             client.call("write", "ns-w"), client.call("write", "ns-w"))

    asyncio.run(run())
    assert sorted(n for kind, n in handle.sent if kind == "call_many") == [3, MAX_COALESCED]
    assert handle.sent.count(("call", 1)) == 2  # the writes, each on its own


def test_a_failed_handle_call_reaches_every_waiter() -> None:
    class Broken(RecordingHandle):
        async def _call_many(self, calls: Any) -> Any:
            await asyncio.sleep(0.01)
            raise RuntimeError("replica died")

    client = ServeShardClient(Broken())

    async def run() -> list[Any]:
        return await asyncio.gather(*(client.call("recall_candidates", f"ns-{i}") for i in range(4)),
                                    return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, RuntimeError) for r in results)


def test_a_cancelled_waiter_does_not_stop_the_others() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)

    async def run() -> list[Any]:
        tasks = [asyncio.ensure_future(client.call("recall_candidates", "ns-0"))]
        await asyncio.sleep(0.001)  # in flight alone; the next three queue behind it
        tasks += [asyncio.ensure_future(client.call("recall_candidates", f"ns-{i}")) for i in (1, 2, 3)]
        await asyncio.sleep(0.001)
        tasks[2].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(run())
    assert isinstance(results[2], asyncio.CancelledError)
    assert [r[1] for i, r in enumerate(results) if i != 2] == [("ns-0",), ("ns-1",), ("ns-3",)]
    assert handle.sent == [("call", 1), ("call_many", 2)]


@pytest.mark.parametrize("count", [1, 3])
def test_waiters_queued_during_a_call_go_in_the_next(count: int) -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)

    async def run() -> None:
        first = [asyncio.ensure_future(client.call("recall_candidates", f"a-{i}")) for i in range(count)]
        await asyncio.sleep(0.001)  # the first call is in flight
        later = [asyncio.ensure_future(client.call("recall_candidates", f"b-{i}")) for i in range(3)]
        await asyncio.gather(*first, *later)

    asyncio.run(run())
    assert handle.sent == [("call", 1) if count == 1 else ("call_many", count), ("call_many", 3)]


def test_a_batch_of_one_sends_each_call_on_its_own() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle, max_batch=1)

    async def run() -> None:
        await asyncio.gather(*(client.call("recall_candidates", f"ns-{i}") for i in range(3)))

    asyncio.run(run())
    assert handle.sent == [("call", 1)] * 3


def test_a_short_answer_fails_the_batch_instead_of_hanging_a_waiter() -> None:
    class Short(RecordingHandle):
        async def _call_many(self, calls: Any) -> Any:
            answers = await super()._call_many(calls)
            return answers[:-1]

    client = ServeShardClient(Short())

    async def run() -> list[Any]:
        first = asyncio.ensure_future(client.call("recall_candidates", "ns-0"))
        await asyncio.sleep(0.001)
        rest = [client.call("recall_candidates", f"ns-{i}") for i in (1, 2)]
        return await asyncio.wait_for(asyncio.gather(first, *rest, return_exceptions=True), 5)

    results = asyncio.run(run())
    assert results[0] == ("recall_candidates", ("ns-0",), None)
    assert all(isinstance(r, RuntimeError) for r in results[1:])


def test_a_call_cancelled_below_the_sender_is_a_retriable_failure_and_sending_goes_on() -> None:
    """Serve cancels a handle call whose parent request was cancelled: that must reach the
    waiters as a 503-worthy error (not a cancellation of their own requests), and the
    reads queued meanwhile must still be sent."""
    from shards.errors import StorageUnavailable

    class CancelledBelow(RecordingHandle):
        async def _call_many(self, calls: Any) -> Any:
            self.sent.append(("call_many", len(calls)))
            await asyncio.sleep(0.01)
            raise asyncio.CancelledError()

    handle = CancelledBelow()
    client = ServeShardClient(handle)

    async def run() -> list[Any]:
        first = [asyncio.ensure_future(client.call("recall_candidates", f"a-{i}")) for i in range(2)]
        await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(client.call("recall_candidates", "b-0"))]
        return await asyncio.wait_for(asyncio.gather(*first, *later, return_exceptions=True), 5)

    results = asyncio.run(run())
    assert all(isinstance(r, StorageUnavailable) and r.retriable for r in results[:2])
    assert results[2] == ("recall_candidates", ("b-0",), None)  # sent after, on its own


def test_a_cancelled_sender_cancels_every_waiter_none_hangs() -> None:
    handle = RecordingHandle()
    client = ServeShardClient(handle)

    async def run() -> list[Any]:
        first = asyncio.ensure_future(client.call("recall_candidates", "a-0"))
        await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(client.call("recall_candidates", f"b-{i}")) for i in range(2)]
        await asyncio.sleep(0)
        assert client._sender is not None
        client._sender.cancel()  # the replica's loop shutting down
        return await asyncio.wait_for(asyncio.gather(first, *queued, return_exceptions=True), 5)

    results = asyncio.run(run())
    assert all(isinstance(r, asyncio.CancelledError) for r in results)


def test_the_sender_does_not_carry_the_first_requests_context() -> None:
    """Serve keys a handle call's parent request on a context variable: the sender's calls
    must not look like children of whichever request happened to start it."""
    import contextvars

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")
    seen: list[str] = []

    class Watching(RecordingHandle):
        async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
            seen.append(request_id.get())
            return await super()._call(method, *args, **kwargs)

    client = ServeShardClient(Watching())

    async def run() -> Any:
        request_id.set("request-A")
        return await client.call("recall_candidates", "ns-0")

    asyncio.run(run())
    assert seen == ["none"]
