"""Clients of the official `dakera` SDK (sync and async), pointed at the Engram under test.

The SDK is used exactly as a Dakera user would: no patched transport, its own retry
defaults, its own models parsing the answers.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from dakera import AsyncDakeraClient, DakeraClient

from tests.builders import Engram, KeyedClient


@pytest.fixture(scope="session")
def client(engram: Engram) -> Iterator[DakeraClient]:
    """The root (super_admin, every namespace) key."""
    with DakeraClient(engram.url, api_key=engram.root_key) as c:
        yield c


@pytest.fixture
def agent(ns: str) -> str:
    """A fresh agent id (Engram: one namespace) for this test alone."""
    return ns


@pytest.fixture
def keyed_client(engram: Engram) -> Iterator[KeyedClient]:
    """`keyed_client(scope, namespaces)`: a sync client holding a freshly minted key."""
    opened: list[DakeraClient] = []

    def make(scope: str, namespaces: list[str] | None) -> DakeraClient:
        c = DakeraClient(engram.url, api_key=engram.create_key(scope, namespaces))
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def aclient(engram: Engram) -> AsyncIterator[AsyncDakeraClient]:
    async with AsyncDakeraClient(engram.url, api_key=engram.root_key) as c:
        yield c
