"""Bulk backfill of history as a Ray job: read a file, embed on an actor pool, write through the shards.

    ray job submit --working-dir . -- python -m cluster.backfill --input history.parquet \\
        --map namespace=customer_id --map content=text --map id=ticket_id

Reads Parquet, CSV or JSONL with Ray Data (a file or a folder of them). Each row becomes one
memory; `--map FIELD=COLUMN` names the column of a field (namespace or agent_id, content,
importance, tags, memory_type, event_time, metadata, id); a field whose column has its own
name needs no mapping. Rows are validated by the same rules as the HTTP API and their
entities extracted; vectors come from an actor pool (one GPU per actor where the cluster has
GPUs); memories are written by the running app's Shard deployments, through the shards' own
write path (record store durably first, then the indexes).

Re-running the same input stores nothing twice: a memory's id is the row's external id, or
a hash of its namespace, content and event time. A killed job resumes by running it again:
rows already stored are recognised before they are embedded and counted as skipped.
Progress goes to the job's log every few seconds; the job ends with a summary (rows read,
stored, skipped, rejected with reasons, memories/s) and, with --report, a JSON file of it.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import decimal
import hashlib
import json
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from models.sentences import regroup, texts_to_embed
from serve.config import EngramConfig
from serve.schemas import parse_time
from shards.routing import ShardMap
from shards.types import NewMemory

log = logging.getLogger("engram.backfill")

FIELDS = ("namespace", "content", "importance", "tags", "memory_type", "event_time", "metadata", "id")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}
RETRY_DEADLINE_S = 600.0  # how long a shard may be unavailable before the job gives up
CONFLICT = "id already names a different memory"


# -- input ---------------------------------------------------------------------------------
def column_mapping(pairs: list[str], columns: list[str]) -> dict[str, str]:
    """FIELD → column: the --map pairs, then every field that has a column of its own name
    (`agent_id` stands for `namespace`, as in the API)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        field = "namespace" if field == "agent_id" else field
        if not sep or field not in FIELDS or not column:
            raise SystemExit(f"--map {pair!r}: expected FIELD=COLUMN with FIELD one of "
                             f"{', '.join(FIELDS)} (or agent_id)")
        if column not in columns:
            raise SystemExit(f"--map {pair!r}: the input has no column {column!r} "
                             f"(it has: {', '.join(columns)})")
        mapping[field] = column
    for field in FIELDS:
        if field not in mapping and field in columns:
            mapping[field] = field
    if "namespace" not in mapping and "agent_id" in columns:
        mapping["namespace"] = "agent_id"
    return mapping


def input_format(path: str, given: str) -> str:
    if given != "auto":
        return given
    suffix = Path(path).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if Path(path).is_dir():
        kinds = {FORMATS[p.suffix.lower()] for p in Path(path).iterdir() if p.suffix.lower() in FORMATS}
        if len(kinds) == 1:
            return kinds.pop()
    raise SystemExit(f"--input {path}: cannot tell its format; pass --format parquet, csv or jsonl")


def read_dataset(path: str, fmt: str) -> Any:
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(path)
    if fmt == "csv":
        return ray.data.read_csv(path)
    return ray.data.read_json(path, lines=True)


def plain(value: Any) -> Any:
    """A pandas/numpy/arrow cell as plain Python (JSON-able); missing values become None."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalars and arrays
    if value is None or (not isinstance(value, (list, dict, str, bytes)) and value != value):
        return None  # NaN and NaT are the only values unequal to themselves
    if isinstance(value, datetime.datetime):  # pandas timestamps are datetimes; naive means UTC
        return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).timestamp()
    if isinstance(value, datetime.date):  # CSV dates arrive as dates: midnight UTC, as RFC 3339
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str) and not value.strip():
        return None  # an empty CSV cell is no value, not an empty one
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def field_value(field: str, value: Any) -> Any:
    """Text cells of list and object fields hold JSON (CSV has no lists); tags may also be
    comma-separated."""
    value = plain(value)
    if isinstance(value, str) and field in ("tags", "metadata"):
        text = value.strip()
        if not text:
            return None
        if text[0] in "[{":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return value  # the API's validation names the field
        if field == "tags":
            return [t.strip() for t in text.split(",") if t.strip()]
    if field == "id" and value is not None and not isinstance(value, str):
        return str(value)  # numeric external ids are ids all the same
    return value


def memory_id(namespace: str, content: str, event_time: float | None) -> str:
    """The id of a row without an external id: the same row always gets the same id (the
    event time normalised to Unix seconds, so 1715126400, 1715126400.0 and
    "2024-05-08T00:00:00Z" name one row)."""
    digest = hashlib.sha256(f"{namespace}\0{content}\0{event_time}".encode()).hexdigest()
    return f"mem_bf_{digest[:32]}"


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


def batches(dataset: Any, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows as plain Python from Arrow: ints stay ints when a column has nulls (pandas would
    make them floats: an id 123 read back as "123.0"), nulls are None, lists are lists."""
    for table in dataset.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
        yield table.to_pylist()


def check_mapping(mapping: dict[str, str], default_namespace: str | None) -> None:
    if "content" not in mapping:
        raise SystemExit("the input has no `content` column: map one with --map content=COLUMN")
    if "namespace" not in mapping and default_namespace is None:
        raise SystemExit("no namespace: map a column (--map namespace=COLUMN) or give --namespace NAME")
    if "id" not in mapping and "event_time" not in mapping:
        log.warning("neither an id nor an event_time column is mapped: rows of one namespace with "
                    "the same content get the same id and are stored once")


async def run(args: argparse.Namespace, cfg: EngramConfig, tally: Tally) -> None:
    import ray
    from ray import serve

    from models.embedders import build_embedder

    dataset = read_dataset(args.input, input_format(args.input, args.format))
    mapping = column_mapping(args.map, list(dataset.columns()))
    check_mapping(mapping, args.namespace)
    shard_map: ShardMap = await serve.get_deployment_handle("Router", app_name=args.app).shard_map.remote()
    if shard_map.target is not None:
        raise SystemExit(f"app {args.app!r} is being resharded to {shard_map.target} shards: run the "
                         "backfill once `cluster.reshard` has finished")
    job = Backfill(cfg, args.app, mapping, args.namespace, tally, shard_map)

    # GPUs free now: the Embedder and Reranker replicas hold theirs.
    gpus = int(ray.available_resources().get("GPU", 0))  # type: ignore[no-untyped-call]
    per_actor = 1 if gpus and args.gpus != 0 else 0
    actors = args.embed_actors or max(1, gpus if per_actor else 1)

    @ray.remote(max_restarts=2, max_task_retries=2)  # a lost node or an OOM is retried, not fatal
    class EmbedWorker:
        """One embedding model; on a GPU when the actor has one (device auto)."""

        def __init__(self, embedder_cfg: dict[str, Any]) -> None:
            from models.config import EmbedderConfig

            self.model = build_embedder(EmbedderConfig.model_validate(embedder_cfg))

        def embed(self, texts: list[str]) -> list[list[float]]:
            return self.model.embed(texts)

    pool = [EmbedWorker.options(num_gpus=per_actor, num_cpus=args.cpus_per_actor)  # type: ignore[attr-defined]
            .remote(cfg.embedder.model_dump(mode="json")) for _ in range(actors)]
    await check_app_matches(job, pool[0], args.app)
    log.info("backfill of %s: %d embedding actor(s), %s GPU each; columns %s",
             args.input, actors, per_actor, mapping)

    in_flight: deque[tuple[Prepared, list[int], Any]] = deque()
    job.tally.started = last_report = time.time()  # memories/s counts loading, not model start
    pace = Pace(args.max_rows_per_second)
    turn = 0
    for rows in batches(dataset, args.batch_size):
        await pace.wait(len(rows))
        job.tally.read += len(rows)
        prepared = await job.prepare(rows)
        if prepared.items:
            texts, counts = texts_to_embed([m.content for m in prepared.items],
                                           job.service.cfg.embedder.sentence_vectors)
            ref = pool[turn % len(pool)].embed.remote(texts)
            turn += 1
            in_flight.append((prepared, counts, ref))
        # Two batches in flight per actor: the pool embeds while the shards write.
        while len(in_flight) > 2 * len(pool):
            done, counts, ref = in_flight.popleft()
            await job.write(done, regroup(await ref, counts))
        if time.time() - last_report >= args.progress_seconds:
            last_report = time.time()
            s = job.tally.summary()
            log.info("progress: %d rows read, %d stored, %d skipped, %d rejected, %.1f memories/s",
                     s["rows_read"], s["stored"], s["skipped"], s["rejected"], s["memories_per_s"])
    while in_flight:
        done, counts, ref = in_flight.popleft()
        await job.write(done, regroup(await ref, counts))
    job.tally.complete = True


class Pace:
    """At most `per_second` rows a second (0: no limit): a backfill that leaves room for
    the live traffic of the same cluster."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.start = time.monotonic()
        self.rows = 0

    async def wait(self, rows: int) -> None:
        if self.per_second > 0:
            ahead = self.rows / self.per_second - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.rows += rows


async def check_app_matches(job: Backfill, worker: Any, app: str, timeout_s: float = 600) -> None:
    """Refuse to write anything unless the running app has the shards and the embedding
    model this job was configured with: a wrong shard count would file memories where
    recall never looks, and another model would store vectors no query matches."""
    from ray import serve

    dim = None
    for i in range(job.shard_map.count):
        index, count, dim = await job.shards[i].layout()
        if (index, count) != (i, job.shard_map.count):
            raise SystemExit(f"Shard{i} of app {app!r} holds shard {index} of {count}, but "
                             f"the app's shard map says {job.shard_map.count} shards: pass the "
                             "config the app was deployed with")
    probe = "engram backfill probe: is this the model the service embeds with?"
    served = serve.get_deployment_handle("Embedder", app_name=app).embed_many.remote([probe])
    try:
        [ours] = await asyncio.wait_for(asyncio.wrap_future(worker.embed.remote([probe]).future()), timeout_s)
    except asyncio.TimeoutError:
        raise SystemExit(f"no embedding actor started within {timeout_s:.0f} s: the cluster has no "
                         "free CPU or GPU for one (see `ray status`); lower --cpus-per-actor or "
                         "pass --gpus 0") from None
    [theirs] = await served
    cosine = sum(a * b for a, b in zip(ours, theirs))
    if len(ours) != dim or len(theirs) != dim or cosine < 0.98:
        raise SystemExit(f"this job's embedder ({job.cfg.embedder.model}, {len(ours)}-d) is not the "
                         f"service's ({len(theirs)}-d, cosine {cosine:.2f} on a probe): pass the "
                         "--config the app was deployed with")


def load_config(path: Path, app: str) -> EngramConfig:
    doc = yaml.safe_load(path.read_text())
    for application in doc.get("applications", []):
        if application.get("name") == app:
            return EngramConfig.from_args(application.get("args") or {})
    raise SystemExit(f"{path} has no application named {app!r}")


def print_summary(summary: dict[str, Any]) -> None:
    print("\n| backfill | |\n|---|---:|")
    for key in ("complete", "rows_read", "stored", "skipped", "rejected", "seconds", "memories_per_s"):
        print(f"| {key.replace('_', ' ')} | {summary[key]} |")
    for reason, count in sorted(summary["rejected_reasons"].items(), key=lambda kv: -kv[1]):
        print(f"| rejected: {reason} | {count} |")
    print("backfill summary: " + json.dumps(summary), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="a Parquet, CSV or JSONL file, or a folder of them")
    parser.add_argument("--format", choices=("auto", "parquet", "csv", "jsonl"), default="auto")
    parser.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
    parser.add_argument("--namespace", default=None, help="the namespace of rows that name none")
    parser.add_argument("--config", type=Path, default=Path("cluster/serve.yaml"),
                        help="the Serve config the app was deployed with (shard count, embedder)")
    parser.add_argument("--app", default="engram")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--embed-actors", type=int, default=0, help="0: one per GPU, or one on CPU")
    parser.add_argument("--gpus", type=int, choices=(0, 1), default=1,
                        help="1: one GPU per embedding actor where the cluster has GPUs; 0: CPU")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--progress-seconds", type=float, default=5.0)
    parser.add_argument("--max-rows-per-second", type=float, default=0,
                        help="read at most this many rows a second (0: no limit), to leave room for live traffic")
    parser.add_argument("--report", type=Path, default=None, help="write the summary here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)

    import ray

    cfg = load_config(args.config, args.app)
    ray.init(address="auto", log_to_driver=True)
    tally = Tally()
    try:
        asyncio.run(run(args, cfg, tally))
    finally:  # a job that fails midway still says how far it got (complete: false)
        summary = tally.summary()
        print_summary(summary)
        if args.report:
            args.report.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
