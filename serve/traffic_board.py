"""Where every Router replica's live request figures meet (serve/traffic.py).

`TrafficBoard` keeps the last few minutes of finished seconds from each replica and merges
them. In the service it is one small Ray actor per Serve application (`RayTraffic`): every
Router replica sends it the seconds it finished, once a second, and asks it for the series.
The board is named and created by whichever replica asks first; it belongs to that replica,
so if that replica goes, the next send creates a new board (figures start again from then:
they are a live view, Prometheus keeps the history); meanwhile each replica answers from
its own seconds, marked partial. Outside Ray (an app built in a test)
`LocalTraffic` holds the one replica's figures in process.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from serve.traffic import SECONDS_KEPT, Second, TrafficWindow, merged_series

log = logging.getLogger(__name__)
SEND_EVERY_S = 1.0
ASK_TIMEOUT_S = 2.0
REPORTING_WITHIN_S = 5.0  # a replica that sent within this long counts as reporting
LOOKUP_BACKOFF_S = 5.0
MAX_WINDOW_S = SECONDS_KEPT


class TrafficBoard:
    """Finished seconds by replica, merged on request."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._seconds: dict[str, deque[Second]] = {}
        self._last_sent: dict[str, float] = {}

    def add(self, replica: str, seconds: Sequence[Second]) -> None:
        kept = self._seconds.setdefault(replica, deque())
        kept.extend(seconds)
        self._last_sent[replica] = self._clock()
        horizon = int(self._clock()) - SECONDS_KEPT
        for held in self._seconds.values():
            while held and held[0].t < horizon:
                held.popleft()
        for gone in [r for r, q in self._seconds.items() if not q and r != replica]:
            del self._seconds[gone]
            self._last_sent.pop(gone, None)

    def series(self, window_s: int) -> dict[str, Any]:
        now = self._clock()
        reporting = sum(1 for t in self._last_sent.values() if now - t <= REPORTING_WITHIN_S)
        every = (s for held in self._seconds.values() for s in held)
        return merged_series(every, now, window_s, reporting)


class LocalTraffic:
    """One process's figures: the window's finished seconds go to an in-process board."""

    def __init__(self, window: TrafficWindow) -> None:
        self.window = window
        self.board = TrafficBoard()

    async def series(self, window_s: int) -> dict[str, Any]:
        self.board.add("local", self.window.finished())
        return self.board.series(window_s)


class RayTraffic:
    """A Router replica's side of the shared board: sends its seconds, asks for the series.

    It keeps a copy of what it sent (its own last SECONDS_KEPT seconds): when no board
    answers, the route answers from that, marked partial."""

    def __init__(self, window: TrafficWindow, board_name: str, replica: str) -> None:
        self.window = window
        self.board_name = board_name
        self.replica = replica
        self.own = TrafficBoard()
        self._board: Any = None
        self._lookup = asyncio.Lock()
        self._retry_at = 0.0

    def _lookup_board(self) -> Any:
        import ray

        actor = ray.remote(num_cpus=0)(TrafficBoard)
        # get_if_exists: every replica names the same board; the first creates it.
        return actor.options(name=self.board_name, get_if_exists=True).remote()

    async def _handle(self) -> Any:
        """The board's handle. Finding or creating it asks Ray's control service, a blocking
        call: in a thread, one at a time, and not again for a while after it failed."""
        if self._board is not None:
            return self._board
        async with self._lookup:
            if self._board is None:
                if time.monotonic() < self._retry_at:
                    raise RuntimeError("traffic board unreachable; trying again shortly")
                try:
                    self._board = await asyncio.to_thread(self._lookup_board)
                except Exception:
                    self._retry_at = time.monotonic() + LOOKUP_BACKOFF_S
                    raise
            return self._board

    async def send_forever(self) -> None:
        """The replica's task for its life: each second, the seconds it finished (none
        is sent too: the board counts the replica as reporting)."""
        while True:
            await asyncio.sleep(SEND_EVERY_S)
            seconds = self.window.finished()
            self.own.add(self.replica, seconds)
            try:
                board = await self._handle()
                await asyncio.wait_for(board.add.remote(self.replica, seconds), ASK_TIMEOUT_S)
            except Exception:  # the board's owner went: the next round makes a new one
                log.info("traffic board unreachable; creating it again", exc_info=True)
                self._board = None

    async def series(self, window_s: int) -> dict[str, Any]:
        try:
            board = await self._handle()
            answer: dict[str, Any] = await asyncio.wait_for(board.series.remote(window_s), ASK_TIMEOUT_S)
            return answer
        except Exception:
            self._board = None
            return {**self.own.series(window_s), "partial": True}
