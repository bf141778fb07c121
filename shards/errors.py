"""Shard errors. Each keeps its fields in `args` so it pickles across Ray unchanged.

    ShardError (retriable flag)
    ├── NotFound            no such memory / session / namespace in the caller's scope
    ├── Conflict            an id or state clash the caller can resolve
    ├── InvalidInput        a value the shard cannot store (the API validates first)
    ├── QuotaExceeded       the write would take a namespace past its caller's limit
    └── StorageUnavailable  an index or store failed; retriable
        ├── NamespaceMoving   a resharding job is copying this namespace; retry shortly
        ├── NamespaceMoved    this namespace lives on another shard now; re-read the shard map
        ├── StaleShardMap     the caller's shard map is older than the shard's; re-read it
        └── PlacementChanged  another replica moved a namespace while this call ran; call again
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


class QuotaExceeded(ShardError):
    """The write would take a namespace past the memory limit its caller's key carries:
    nothing of it was stored (the check runs inside the write's transaction)."""

    def __init__(self, namespace: str, limit: int, would_hold: int) -> None:
        super().__init__(f"agent {namespace} may hold at most {limit} memories and this write "
                         f"would make it {would_hold}: forget some first, or ask an operator to "
                         "raise the key's limits.memories_per_namespace", "memories_per_namespace")
        self.args = (namespace, limit, would_hold)
        self.namespace, self.limit, self.would_hold = namespace, limit, would_hold


class StorageUnavailable(ShardError):
    retriable = True


class NamespaceMoving(StorageUnavailable):
    """The namespace is being copied to its new shard: writes (and, for a moment at the
    hand-off, reads) wait. The router retries; a client that still sees it gets 503."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"agent {namespace} is moving to another shard; retry shortly", "agent_id")
        self.args = (namespace,)
        self.namespace = namespace


class NamespaceMoved(StorageUnavailable):
    """This shard does not hold the namespace (it moved away, or it belongs elsewhere under
    the current shard map): the router re-reads the map and calls the right shard. `write`:
    whether the refused call would have created or changed it."""

    def __init__(self, namespace: str, write: bool = True) -> None:
        super().__init__(f"agent {namespace} is not on this shard; re-read the shard map", "agent_id")
        self.args = (namespace, write)
        self.namespace = namespace
        self.write = write


class StaleShardMap(StorageUnavailable):
    """The caller's shard map is older than this shard's (a reshard began, ended or changed
    hands since): re-read the map and call again. It says nothing about any namespace."""

    def __init__(self, caller_epoch: int, shard_epoch: int) -> None:
        super().__init__(f"the caller's shard map (epoch {caller_epoch}) is older than this "
                         f"shard's (epoch {shard_epoch}): re-read it", "agent_id")
        self.args = (caller_epoch, shard_epoch)


class PlacementChanged(StorageUnavailable):
    """Another replica of this shard changed where namespaces live (a resharding step) after
    this call read it, and before its first write committed: nothing was written. The shard
    re-reads the placement and runs the call again (shards/shard/moves.py)."""

    def __init__(self, read: int, found: int) -> None:
        super().__init__(f"the shard's placement changed (version {read} read, {found} found) "
                         "while a call ran; call again", None)
        self.args = (read, found)


class LayoutMismatch(ShardError):
    """The data on disk was written with another shard count or embedding dimension."""


def shard_error_in(exc: BaseException) -> ShardError | None:
    """The ShardError a remote call raised, inside whatever wrappers (Ray's RayTaskError keeps
    the original as `cause`) are around it."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None or isinstance(seen, ShardError):
            return seen
        seen = getattr(seen, "cause", None)
    return None
