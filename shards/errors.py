"""Shard errors. Each keeps its fields in `args` so it pickles across Ray unchanged.

    ShardError (retriable flag)
    ├── NotFound            no such memory / session / namespace in the caller's scope
    ├── Conflict            an id or state clash the caller can resolve
    ├── InvalidInput        a value the shard cannot store (the API validates first)
    └── StorageUnavailable  an index or store failed; retriable
"""
from __future__ import annotations


class ShardError(Exception):
    retriable = False

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, field)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class NotFound(ShardError):
    pass


class Conflict(ShardError):
    pass


class InvalidInput(ShardError):
    pass


class StorageUnavailable(ShardError):
    retriable = True


class LayoutMismatch(ShardError):
    """The data on disk was written with another shard count or embedding dimension."""
