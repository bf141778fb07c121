"""One batch of the backfill job: rows validated into memories, stored ones skipped, the rest written."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import Counter
from typing import Any

from cluster.backfill_rows import field_value, memory_id
from serve.config import EngramConfig
from serve.schemas import parse_time
from shards.routing import ShardMap
from shards.types import NewMemory

log = logging.getLogger("engram.backfill")

RETRY_DEADLINE_S = 600.0  # how long a shard may be unavailable before the job gives up
CONFLICT = "id already names a different memory"


# -- the job -------------------------------------------------------------------------------
@dataclasses.dataclass
class Tally:
    read: int = 0
    stored: int = 0
    skipped: int = 0
    rejected: Counter[str] = dataclasses.field(default_factory=Counter)
    started: float = dataclasses.field(default_factory=time.time)
    complete: bool = False  # False in the report of a job that stopped before the end

    def summary(self) -> dict[str, Any]:
        seconds = max(time.time() - self.started, 1e-9)
        return {"complete": self.complete, "rows_read": self.read, "stored": self.stored, "skipped": self.skipped,
                "rejected": sum(self.rejected.values()), "rejected_reasons": dict(self.rejected),
                "seconds": round(seconds, 1), "memories_per_s": round(self.stored / seconds, 1)}


@dataclasses.dataclass
class Prepared:
    items: list[NewMemory]  # validated, not yet stored, vector still empty


class Backfill:
    def __init__(self, cfg: EngramConfig, app: str, mapping: dict[str, str], default_namespace: str | None,
                 tally: Tally, shard_map: ShardMap) -> None:
        from ray import serve

        from serve.clients import ServeShardClient
        from serve.service import MemoryService
        from serve.shard_calls import ShardCalls

        self.cfg = cfg
        self.shard_map = shard_map  # the app's, read from its Router when the job starts
        self.mapping = mapping
        self.default_namespace = default_namespace
        try:
            self.handles = [serve.get_deployment_handle(f"Shard{i}", app_name=app)
                            for i in range(cfg.shard_count)]
        except KeyError as exc:  # Serve knows no such deployment
            raise SystemExit(f"{exc.args[0] if exc.args else exc}: --config says {cfg.shard_count} "
                             f"shards for app {app!r}; pass the config the app was deployed with") from None
        # The API's own validation and entity extraction; the embedder is the actor pool.
        self.service = MemoryService(cfg, [ServeShardClient(h) for h in self.handles], embedder=None)  # type: ignore[arg-type]
        self.shards = [ShardCalls(PatientShard(ServeShardClient(h, max_batch=1), i))
                       for i, h in enumerate(self.handles)]
        self.tally = tally

    def row_memory(self, row: dict[str, Any], now: float) -> NewMemory:
        from serve.schemas import StoreBody

        values = {f: field_value(f, row.get(col)) for f, col in self.mapping.items()}
        namespace = values.pop("namespace", None) or self.default_namespace
        if namespace is None:
            from serve.errors import bad_request

            raise bad_request("namespace", "no namespace: map a column (--map namespace=COLUMN) "
                                           "or give --namespace")
        namespace = self.service.namespace_of(str(namespace), None, "namespace")
        body = StoreBody.model_validate({k: v for k, v in values.items() if v is not None})
        self.service.check_content(body.content)
        if body.metadata is not None:
            try:  # what the record store will write, and what a response must be able to carry
                json.dumps(body.metadata, allow_nan=False)
            except (TypeError, ValueError) as exc:
                from serve.errors import bad_request

                raise bad_request("metadata", f"not JSON: {exc}") from None
        if body.id is None:
            when = parse_time(body.event_time, "event_time")
            body = body.model_copy(update={"id": memory_id(namespace, body.content, when)})
        return self.service.new_memory(namespace, body, [], now, None)

    async def prepare(self, rows: list[dict[str, Any]]) -> Prepared:
        """Validate, then drop what is already stored (before it costs an embedding)."""
        from pydantic import ValidationError

        from serve.errors import ApiError

        now = time.time()
        fresh: dict[tuple[str, str], NewMemory] = {}
        for row in rows:
            try:
                item = self.row_memory(row, now)
            except ValidationError as exc:
                err = exc.errors()[0]
                self.tally.rejected[f"{'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}"] += 1
                continue
            except ApiError as exc:
                self.tally.rejected[exc.message] += 1
                continue
            except Exception as exc:  # one odd cell must not stop the other rows, or a re-run
                self.tally.rejected[f"unreadable row ({type(exc).__name__}: {str(exc)[:80]})"] += 1
                continue
            key = (item.namespace, item.id)
            if key in fresh:
                if fresh[key].content == item.content:  # the same row twice in one batch
                    self.tally.skipped += 1
                else:
                    self.tally.rejected[CONFLICT] += 1
                continue
            fresh[key] = item
        by_shard = self._by_shard(list(fresh.values()))
        statuses = await asyncio.gather(*(
            self.shards[k].stored_status([(m.namespace, m.id, m.content) for m in group])
            for k, group in by_shard.items()))
        keep: list[NewMemory] = []
        for group, status in zip(by_shard.values(), statuses):
            for item, state in zip(group, status):
                if state == "same":
                    self.tally.skipped += 1
                elif state == "different":
                    self.tally.rejected[CONFLICT] += 1
                else:
                    keep.append(item)
        return Prepared(keep)

    async def write(self, prepared: Prepared,
                    embedded: list[tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]]) -> None:
        """Write the prepared memories with their (vector, sentence vectors) (models.sentences.regroup)."""
        from shards.errors import Conflict, InvalidInput, NotFound

        refused = (Conflict, InvalidInput, NotFound)
        items = [dataclasses.replace(m, vector=vector, sentence_vectors=sentences)
                 for m, (vector, sentences) in zip(prepared.items, embedded, strict=True)]
        for k, group in self._by_shard(items).items():
            try:
                stored = list((await self.shards[k].write(group)).memories)
            except refused:  # a write is one transaction: settle the batch row by row
                stored = []
                for item in group:
                    try:
                        stored += (await self.shards[k].write([item])).memories
                    except refused as exc:
                        self.tally.rejected[CONFLICT if isinstance(exc, Conflict) else str(exc)[:120]] += 1
            for _, created in stored:
                if created:
                    self.tally.stored += 1
                else:
                    self.tally.skipped += 1

    def _by_shard(self, items: list[NewMemory]) -> dict[int, list[NewMemory]]:
        groups: dict[int, list[NewMemory]] = {}
        for item in items:
            groups.setdefault(self.shard_map.home(item.namespace), []).append(item)
        return groups


class PatientShard:
    """A shard's transport for a bulk job: each call is retried with capped backoff while the
    shard is busy, restarting or catching up its indexes (which can take minutes), up to
    RETRY_DEADLINE_S. A reshard under way ends the job (its namespaces are moving)."""

    def __init__(self, client: Any, index: int) -> None:
        self._client = client
        self._index = index

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from serve.errors import is_transient
        from serve.retrying import retrying
        from serve.shard_routing import move_error
        from shards.errors import NamespaceMoved

        def retriable(exc: BaseException) -> bool:
            if isinstance(move_error(exc), NamespaceMoved):
                raise SystemExit("a reshard moved namespaces while this backfill ran: run the "
                                 "backfill again once it has finished (nothing is stored "
                                 "twice)") from None
            return is_transient(exc)

        def on_retry(exc: BaseException, pause: float) -> None:
            log.warning("shard %d unavailable (%s); retrying in %.0f s", self._index,
                        type(exc).__name__, pause)

        return await retrying(lambda: self._client.call(method, *args, **kwargs),
                              retriable=retriable, deadline_s=RETRY_DEADLINE_S,
                              first_pause_s=0.5, max_pause_s=15.0, on_retry=on_retry)
