"""The one sequence that copies a namespace from the shard that holds it to another.

    begin_copy (live: writes go on, logged)  or  freeze (not live: a killed run left it
    frozen) → export_head / import_head → every page of memories → [live: catch up with
    the change log for as long as the copy took, freeze, catch up the rest, refresh_head]
    → hand_over: handoff on the source, activate on the copy.

The resharding job (cluster/reshard.py) runs it between Serve's shards, the move benchmark
(cluster/move_bench.py) and the contract tests between Shards in one process, and the record
migration (cluster/migrate_records.py) from a record store not being served. What each step
allows is the shard's contract (tests/contract/test_namespace_moves.py); this module is only
their order.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class CopySource(Protocol):
    """What a copy reads from: a shard (serve.shard_calls.ShardCalls) or a record store."""

    async def begin_copy(self, namespace: str) -> bool: ...
    async def freeze(self, namespace: str) -> int | None: ...
    async def export_head(self, namespace: str) -> dict[str, Any]: ...
    async def export_memories(self, namespace: str, after_key: int, limit: int) -> tuple[list[Any], int]: ...
    async def export_changes(self, namespace: str, after_seq: int, limit: int
                             ) -> tuple[list[Any], list[str], int]: ...
    async def handoff(self, namespace: str) -> None: ...


class CopyTarget(Protocol):
    """What a copy writes to: the shard that will serve the namespace."""

    async def import_head(self, head: dict[str, Any], replace_live: bool = False) -> None: ...
    async def import_memories(self, namespace: str, rows: Sequence[tuple[Any, ...]]) -> int: ...
    async def import_changes(self, namespace: str, rows: Sequence[tuple[Any, ...]],
                             deleted_ids: Sequence[str]) -> int: ...
    async def refresh_head(self, head: dict[str, Any]) -> None: ...
    async def activate(self, namespace: str, expected_memories: int) -> None: ...


@dataclass
class NamespaceCopy:
    source: CopySource
    target: CopyTarget
    namespace: str
    page_size: int
    between_pages: Callable[[], None] = lambda: None  # the job checks its lease here
    memories: int = 0  # rows the pages carried
    caught_up_live: int = 0  # changes carried while writes went on
    caught_up_frozen: int = 0  # changes carried after the freeze (writes waiting)
    frozen_at: float | None = field(default=None)  # time.monotonic() of the freeze

    async def copy(self) -> int | None:
        """Copy the namespace; the memory count the copy must hold (None: the namespace is
        gone). The source is left frozen: hand_over (or the source's thaw) ends that."""
        started = time.monotonic()
        live = await self.source.begin_copy(self.namespace)
        expected = None if live else await self.freeze()
        if not live and expected is None:
            return None  # deleted since it was listed
        # replace_live: a copy that a killed run activated is not in the map yet, so nothing
        # has written to it; it is rebuilt from the source like a partial one.
        await self.copy_pages(replace_live=True)
        if live:
            # Catch up while writes go on (for as long as the copy took, at most: a namespace
            # written faster than it can be copied is frozen anyway), then freeze: writes
            # wait only for the changes made since the last round.
            seq = await self.catch_up(0, time.monotonic() - started)
            expected = await self.freeze()
            await self.catch_up(seq, None)
            await self.target.refresh_head(await self.source.export_head(self.namespace))
        return expected

    async def freeze(self) -> int | None:
        self.frozen_at = time.monotonic()
        return await self.source.freeze(self.namespace)

    async def copy_pages(self, replace_live: bool) -> None:
        """The head (sessions, entities, keys), then every page of memories."""
        await self.target.import_head(await self.source.export_head(self.namespace), replace_live)
        cursor = 0
        while cursor != -1:
            rows, cursor = await self.source.export_memories(self.namespace, cursor, self.page_size)
            if rows:
                self.memories += await self.target.import_memories(self.namespace, rows)
            self.between_pages()

    async def catch_up(self, seq: int, seconds: float | None) -> int:
        """Carry the changes logged after `seq` over to the copy, page by page, until a page
        comes back short (the log is drained) or `seconds` have passed; the seq reached."""
        deadline = None if seconds is None else time.monotonic() + max(seconds, 1.0)
        while True:
            rows, deleted, seq = await self.source.export_changes(self.namespace, seq, self.page_size)
            if rows or deleted:
                carried = await self.target.import_changes(self.namespace, rows, deleted)
                if self.frozen_at is None:
                    self.caught_up_live += carried
                else:
                    self.caught_up_frozen += carried
            self.between_pages()
            if len(rows) + len(deleted) < self.page_size:
                return seq
            if deadline is not None and time.monotonic() > deadline:
                return seq

    async def hand_over(self, expected: int) -> None:
        """The source stops serving the namespace; the copy starts, holding `expected`."""
        await self.source.handoff(self.namespace)
        await self.target.activate(self.namespace, expected)

    @property
    def caught_up(self) -> int:
        return self.caught_up_live + self.caught_up_frozen
