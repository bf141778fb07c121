"""`engram export` and `engram import`: a namespace as JSON lines, moved through the API.

The file: one header line, {"engram_export": 1, "namespace": ..., "head": {...}} (sessions,
entities, idempotency keys), then one line per memory, {"memory": [...]}, its vector and entity
links included, in storage order. The service encodes and checks the rows
(serve/routes/transfer.py); this side only carries them, with a progress bar.

An export reads a namespace that stays live: memories stored while it runs may or may not be
in it. An import writes the namespace under its exported name, which must not exist in the target
service; it stays invisible until every memory is in, and an import that fails part way is
dropped, so running it again starts it over.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engram.client import Engram
from engram.errors import EngramError
from engram.progress import Progress

FORMAT = 1
PAGE = 200  # memories per request, both ways (a page's JSON stays well under the body limit)


def export_namespace(client: Engram, namespace: str, out: Path) -> dict[str, Any]:
    if out.exists():
        raise ValueError(f"{out} exists: name a new file")
    head = client.transfers.export_head(namespace)
    bar = Progress(f"exporting {namespace}", int(head.get("memories") or 0) or None)
    written = 0
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"engram_export": FORMAT, "namespace": namespace, "head": head},
                           ensure_ascii=False, sort_keys=True) + "\n")
        after: int | None = 0
        while after is not None:
            page = client.transfers.export_memories(namespace, after, PAGE)
            for row in page["rows"]:
                f.write(json.dumps({"memory": row}, ensure_ascii=False) + "\n")
            written += len(page["rows"])
            bar.advance(len(page["rows"]))
            after = page["next"]
    bar.close()
    partial.rename(out)  # an export cut short never looks complete
    return {"namespace": namespace, "memories": written, "file": str(out)}


def import_namespace(client: Engram, source: Path) -> dict[str, Any]:
    """Import under the exported name (session ids travel unchanged, and a shard holds each
    once). A failure part way drops what was imported, so the next try starts clean."""
    with source.open(encoding="utf-8") as f:
        header = json.loads(f.readline() or "null")
        if not isinstance(header, dict) or header.get("engram_export") != FORMAT:
            raise ValueError(f"{source} is not an engram export (format {FORMAT})")
        target = str(header["namespace"])
        total = sum(1 for _ in f)
    bar = Progress(f"importing {target}", total)
    client.transfers.import_head(target, header["head"])
    imported = 0
    try:
        with source.open(encoding="utf-8") as f:
            f.readline()
            page: list[Any] = []
            for line in f:
                page.append(json.loads(line)["memory"])
                if len(page) == PAGE:
                    imported += client.transfers.import_memories(target, page)
                    bar.advance(len(page))
                    page = []
            if page:
                imported += client.transfers.import_memories(target, page)
                bar.advance(len(page))
        client.transfers.import_finish(target, imported)
    except BaseException:
        try:
            client.transfers.import_abort(target)
        except EngramError:
            pass  # the original error says more; the next import starts over anyway
        raise
    bar.close()
    return {"namespace": target, "memories": imported}
