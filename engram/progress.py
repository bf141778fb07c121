"""A progress bar on stderr for the CLI's long commands (no dependency: one line, redrawn)."""
from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.total, self.stream, self.width = label, total, stream, width
        self.done = 0
        self._draw()

    def advance(self, count: int) -> None:
        self.done += count
        self._draw()

    def close(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        if self.total:
            filled = min(self.width, self.width * self.done // self.total)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}"
        self.stream.write(f"\r{self.label} {bar}")
        self.stream.flush()
