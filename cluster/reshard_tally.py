"""What a reshard run has done (cluster/reshard.py): its tally, its summary, its progress in the log."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from shards.routing import ShardMap

log = logging.getLogger("engram.reshard")


@dataclass
class Tally:
    started: float = field(default_factory=time.time)
    namespaces: int = 0
    memories: int = 0
    released: int = 0  # old copies deleted by this run after an earlier run moved them
    caught_up: int = 0  # memories written, changed or deleted during their namespace's copy
    complete: bool = False

    def summary(self, before: ShardMap, after: ShardMap | None) -> dict[str, Any]:
        seconds = max(time.time() - self.started, 1e-9)
        going_to = (after.target if after.target is not None else after.count) if after else before.target
        return {"complete": self.complete, "from_shards": before.count,
                "to_shards": going_to,
                "namespaces_moved": self.namespaces, "memories_moved": self.memories,
                "old_copies_released": self.released, "changes_caught_up": self.caught_up,
                "seconds": round(seconds, 1),
                "memories_per_s": round(self.memories / seconds, 1)}


class Progress:
    """Logs how far the job has got, at most every `seconds`."""

    def __init__(self, tally: Tally, seconds: float) -> None:
        self.tally, self.seconds, self.last = tally, seconds, time.monotonic()

    def report(self, direction: str) -> None:
        if time.monotonic() - self.last >= self.seconds:
            self.last = time.monotonic()
            log.info("moved %d namespaces (%d memories)%s so far", self.tally.namespaces,
                     self.tally.memories, direction)
