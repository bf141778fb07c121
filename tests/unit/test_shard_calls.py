"""The typed shard client mirrors the Shard: same methods, parameters, defaults and results.

A Shard method that changes shape fails here until serve/shard_calls.py changes with it, so
mypy's checks of the shard calls (made through ShardCalls) stay true to what the shard takes.
"""
from __future__ import annotations

import inspect

from serve.shard_calls import ShardCalls
from shards.shard import Shard


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_every_shard_method_has_its_typed_mirror() -> None:
    shard = public_methods(Shard)
    calls = public_methods(ShardCalls)
    assert sorted(Shard.REMOTE_METHODS) == sorted(calls)  # what a shard serves, no more
    for name, mirror in calls.items():
        assert inspect.iscoroutinefunction(getattr(ShardCalls, name)), name
        assert str(mirror) == str(shard[name]), f"ShardCalls.{name}{mirror} != Shard.{name}{shard[name]}"


def test_a_call_sends_the_shards_method_name_and_arguments() -> None:
    import asyncio
    from typing import Any

    sent: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    class Recorder:
        async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
            sent.append((method, args, kwargs))
            return []

    asyncio.run(ShardCalls(Recorder()).recall_candidates("ns", None, "q", None, 5,  # type: ignore[arg-type]
                                                          touch_session="s1"))
    assert sent == [("recall_candidates", ("ns", None, "q", None, 5, (), True, True),
                     {"neighbors": None, "touch_session": "s1"})]
