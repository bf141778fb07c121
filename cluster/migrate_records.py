"""Copy an Engram's records and control data from one storage configuration to another,
with the service stopped: typically from the embedded layout (SQLite: records.db per shard
and control.db on a volume) to PostgreSQL (`storage.record_store: postgres`).

    python -m cluster.migrate_records --from old.yaml --to cluster/serve.production.yaml

Both files are Serve configs (their `storage` and `shard_count` are what counts). The copy
is namespace by namespace, through the same export and import a reshard uses, into each
shard's record store (one PostgreSQL schema per shard, `<schema_prefix>shard_<index>`):
memories with their vectors (nothing is embedded again), sessions, entity links,
idempotency keys and access counts; then the API keys (by their secrets' hashes) and the
shard map into the target's control store (`<schema_prefix>control`). The target's
indexes are built as its shards take the memories in: give the target a Milvus
`collection_prefix` and an Elasticsearch `index_prefix` of its own.

The source is only read: if anything goes wrong, deploy the old config again. Run again,
the copy resumes: namespaces already whole on the target (as many memories as the source)
are skipped, one cut short is copied afresh; a source that served writes between two runs
needs an empty target instead. A reshard in progress must be finished or aborted first. Writes made to the
source while this runs are not copied: stop the service (or scale its Routers to 0) first.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.backfill import load_config
from cluster.namespace_copy import NamespaceCopy
from serve.clients import LocalShardClient
from serve.shard_calls import ShardCalls
from serve.config import EngramConfig
from shards.config import EmbeddedStorageConfig
from shards.control.factory import open_control_store
from shards.errors import LayoutMismatch, StorageUnavailable
from shards.shard import RecordStore, Shard, open_record_store, shard_dir


@dataclass
class Copied:
    namespaces: int = 0
    skipped: int = 0
    memories: int = 0
    keys: int = 0


def absolute(cfg: EngramConfig) -> EngramConfig:
    """A relative data_dir is taken from the working directory, as `make serve` does."""
    storage = cfg.storage.model_copy(update={"data_dir": cfg.storage.data_dir.resolve()})
    return cfg.model_copy(update={"storage": storage})


def records_at(storage: EmbeddedStorageConfig) -> tuple[object, ...]:
    """Where a config keeps its records and control data, to compare two configs by."""
    if storage.record_store == "postgres":
        assert storage.postgres is not None  # the config refuses postgres records without it
        return ("postgres", storage.postgres.dsn, storage.postgres.schema_prefix)
    return ("sqlite", storage.data_dir)


def source_records(storage: EmbeddedStorageConfig, index: int) -> RecordStore | None:
    """Shard `index`'s records where the source keeps them; None: that shard holds nothing."""
    root = shard_dir(storage.data_dir, index)
    if storage.record_store == "sqlite" and not (root / "records.db").exists():
        return None
    return open_record_store(storage, root, index)


def copy_shard(source: RecordStore, target: Shard, page: int, copied: Copied) -> None:
    if source.namespace_states() or source.get_meta("reshard_target"):
        raise SystemExit(f"shard {target.index} of the source is in the middle of a reshard: "
                         "finish it (or abort it) with cluster.reshard first")
    epoch = int(source.get_meta("map_epoch") or 0)
    target.set_routing(target.routing_count, None, epoch)
    held = dict(target.namespace_table())  # name → move state (None: live)
    for name in source.namespace_names():
        if name in held and held[name] is None and \
                target.records.namespace_size(name) == source.namespace_size(name):
            copied.skipped += 1  # whole on the target from an earlier run
            continue
        # The reshard's own copy (cluster/namespace_copy.py), not live: the service is stopped.
        # A copy cut short is copied afresh (replace_live).
        copy = NamespaceCopy(StoppedRecords(source), ShardCalls(LocalShardClient(target)), name, page)
        expected = asyncio.run(copy.copy())
        asyncio.run(copy.target.activate(name, expected or 0))
        copied.memories += copy.memories
        copied.namespaces += 1


class StoppedRecords:
    """A record store not being served, as a namespace copy's source: never live (nothing
    writes to it), so a copy reads its head and pages and has no changes to catch up."""

    def __init__(self, records: RecordStore) -> None:
        self._records = records

    async def begin_copy(self, namespace: str) -> bool:
        return False

    async def freeze(self, namespace: str) -> int | None:
        return int(self._records.export_head(namespace)["memories"])

    async def export_head(self, namespace: str) -> dict[str, Any]:
        return self._records.export_head(namespace)

    async def export_memories(self, namespace: str, after_key: int, limit: int
                              ) -> tuple[list[Any], int]:
        rows, after = self._records.export_memories(namespace, after_key, limit)
        return list(rows), after

    async def export_changes(self, namespace: str, after_seq: int, limit: int
                             ) -> tuple[list[Any], list[str], int]:
        return [], [], after_seq

    async def handoff(self, namespace: str) -> None:
        raise RuntimeError("a stopped service's records are copied, never handed off")


def migrate(source: EngramConfig, target: EngramConfig, page: int = 500) -> Copied:
    if records_at(source.storage) == records_at(target.storage):
        raise SystemExit("--from and --to name the same records: nothing to copy")
    copied = Copied()
    source_control = open_control_store(source.storage)
    target_control = open_control_store(target.storage)
    try:
        state = source_control.export_state()
        if state.count is None:
            raise SystemExit("the source has no shard map: it was never started")
        if state.target is not None:
            raise SystemExit(f"the source is resharding to {state.target} shards: finish it "
                             "(or abort it) with cluster.reshard first")
        for index in range(state.count):
            records = source_records(source.storage, index)
            if records is None:
                continue
            try:
                dim = int(records.get_meta("embedding_dim") or 0)
                if not dim:
                    continue  # a shard that never stored anything
                shard = Shard.open_embedded(index, state.count, dim, target.storage)
                try:
                    copy_shard(records, shard, page, copied)
                    shard.checkpoint()
                finally:
                    shard.close()
            finally:
                records.close()
        # Last: a target with the shard map is one a copy reached the end of.
        copied.keys = target_control.import_keys(source_control.export_keys())
        target_control.import_state(state)
    finally:
        source_control.close()
        target_control.close()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True,
                        help="the Serve config the data was written under")
    parser.add_argument("--to", dest="target", type=Path, required=True,
                        help="the Serve config to copy it to")
    parser.add_argument("--app", default="engram")
    parser.add_argument("--page-size", type=int, default=500, help="memories per import call")
    args = parser.parse_args(argv)
    source = absolute(load_config(args.source, args.app))
    target = absolute(load_config(args.target, args.app))
    if source.shard_count != target.shard_count:
        raise SystemExit(f"--from deploys {source.shard_count} shards and --to {target.shard_count}: "
                         "copy at one count, then reshard with cluster.reshard")
    started = time.monotonic()
    try:
        copied = migrate(source, target, args.page_size)
    except (LayoutMismatch, StorageUnavailable) as exc:
        raise SystemExit(str(exc)) from None
    seconds = time.monotonic() - started
    print("\n| migrate_records | |\n|---|---:|")
    for label, value in (("namespaces copied", copied.namespaces),
                         ("namespaces already whole", copied.skipped),
                         ("memories copied", copied.memories), ("API keys copied", copied.keys),
                         ("seconds", f"{seconds:.1f}"),
                         ("memories/s", f"{copied.memories / seconds:.0f}" if seconds else "-")):
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
