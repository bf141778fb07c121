"""The backfill job's input: the file's format, each field's column, cells as plain Python, a row's id."""
from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("engram.backfill")

FIELDS = ("namespace", "content", "importance", "tags", "memory_type", "event_time", "metadata", "id")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "jsonl"}


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
