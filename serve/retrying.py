"""The one loop that calls again until a call answers: the Router's shard calls while a
namespace moves (serve/shard_routing.py), the backfill's while a shard restarts or catches
up (cluster/backfill.py), and the resharding job's while a shard takes the new map
(cluster/reshard.py). They differ only in what is worth another try and for how long.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def retrying(attempt: Callable[[], Awaitable[T]], *,
                   retriable: Callable[[BaseException], bool],
                   deadline_s: float, first_pause_s: float, max_pause_s: float,
                   recover: Callable[[BaseException], Awaitable[bool]] | None = None,
                   on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """Await `attempt()` until it answers. A failure `retriable` accepts is tried again after
    a pause that doubles up to `max_pause_s` (cut short at the deadline, so the last try
    falls on it), for as long as `deadline_s` since the first try has not passed; any other
    failure, or one after the deadline, is raised as it is.

    recover: run after each retriable failure, before the pause; True means try again at
    once (the Router re-read the shard map and it had changed). on_retry: told the failure
    and the pause about to be taken (logging)."""
    deadline = time.monotonic() + deadline_s
    pause = first_pause_s
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not retriable(exc) or time.monotonic() > deadline:
                raise
            if recover is not None and await recover(exc):
                continue
            wait = max(0.0, min(pause, deadline - time.monotonic()))
            if on_retry is not None:
                on_retry(exc, wait)
            await asyncio.sleep(wait)
            pause = min(pause * 2, max_pause_s)
