"""Backups of an embedded data directory, taken while the service serves, and their restore.

What a backup holds is the truth only: control.db, webhooks.db (subscriptions and the
deliveries owed) and each shard's records.db (its outbox of events with it), each copied
with SQLite's online backup API (a consistent snapshot of that file, taken under a read
transaction, while writers go on). The vector and BM25 indexes are left out: they are derived
data, and a shard that opens its records beside empty indexes rebuilds them (shards/shard/
core.py). Each file is its own snapshot: a shard's records are consistent in themselves, and
namespaces never span shards; a key created during the backup may be missing from it.

The production form's stores are backed up as PostgreSQL is (docs/operations.md, Backups).
"""
from __future__ import annotations

import json
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from engram.progress import Progress

MANIFEST = "engram-backup.json"
FORMAT = 1


def _truth(data_dir: Path) -> list[Path]:
    """The files that hold the data directory's truth, relative to it."""
    found = [Path(name) for name in ("control.db", "webhooks.db") if (data_dir / name).is_file()]
    found += sorted(p.relative_to(data_dir) for p in (data_dir / "shards").glob("shard-*/records.db"))
    return found


def _snapshot(source: Path, target: Path) -> int:
    """Copy one SQLite database, consistently, while others write to it; its schema version."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no WAL beside it
            return int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()


def backup(data_dir: Path, out: Path) -> dict[str, Any]:
    """Write a .tar.gz of the data directory's truth to `out`; answers its manifest."""
    data_dir = data_dir.resolve()
    files = _truth(data_dir)
    if not any(f.name == "records.db" for f in files):
        raise ValueError(f"{data_dir} holds no shard records (shards/shard-*/records.db): is it "
                         "an Engram data directory? (storage.data_dir; `make serve` uses ./data)")
    if out.exists():
        raise ValueError(f"{out} exists: name a new file")
    manifest: dict[str, Any] = {"format": FORMAT, "taken_at": time.time(), "source": str(data_dir),
                                "files": {}}
    # In bytes: a shard's records are most of it, control.db next to nothing.
    progress = Progress("backing up (bytes)", sum((data_dir / rel).stat().st_size for rel in files) * 2)
    with tempfile.TemporaryDirectory(prefix="engram-backup-") as tmp:
        staging = Path(tmp)
        for rel in files:
            began = time.monotonic()
            version = _snapshot(data_dir / rel, staging / rel)
            manifest["files"][str(rel)] = {"schema_version": version,
                                           "bytes": (staging / rel).stat().st_size,
                                           "seconds": round(time.monotonic() - began, 3)}
            progress.advance((data_dir / rel).stat().st_size)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(staging / MANIFEST, arcname=MANIFEST)  # first: what the archive holds
            for rel in files:  # the second half: compressing each snapshot into the archive
                tar.add(staging / rel, arcname=str(rel))
                progress.advance((data_dir / rel).stat().st_size)
        partial.rename(out)  # a backup cut short never looks complete
        progress.done = progress.total or 0  # the files grew while they were read: still done
        progress.close()
    return manifest


def restore(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Unpack a backup into an empty (or missing) data directory; answers its manifest. The
    service started on it rebuilds the indexes from the records."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise ValueError(f"{data_dir} is not empty: restore into a new data directory (nothing "
                         "already stored is overwritten)")
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        if MANIFEST not in names:
            raise ValueError(f"{archive} is not an Engram backup (no {MANIFEST} in it)")
        manifest: dict[str, Any] = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        expected = set(manifest["files"]) | {MANIFEST}
        if set(names) != expected:
            raise ValueError(f"{archive} holds {sorted(set(names) ^ expected)} beyond or short of "
                             "its manifest: refusing it")
        data_dir.mkdir(parents=True, exist_ok=True)
        tar.extractall(data_dir, filter="data")  # no paths outside data_dir, no links
    (data_dir / MANIFEST).unlink()
    return manifest
