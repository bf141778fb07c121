"""Control-store calls from a Router's event loop.

Every request of a replica shares one loop (cluster/ingress.py). SQLite on local disk
answers in ~0.1 ms, so it is called inline; a control store on a server (PostgreSQL) is
a network round trip, retried with backoff when the server is busy, so it runs on a worker
thread: a slow server then delays the requests that need it, not every request.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from shards.control.base import ControlStore

T = TypeVar("T")


async def control_call(store: ControlStore, fn: Callable[..., T], *args: Any) -> T:
    if not store.remote:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
