"""How the backfill job reads cells and names rows (the job itself: tests/service/test_backfill.py)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import datetime
import decimal

from cluster.backfill_rows import check_mapping, column_mapping, field_value, input_format, memory_id


def test_columns_of_the_fields_own_names_need_no_mapping() -> None:
    assert column_mapping([], ["agent_id", "content", "tags", "other"]) == {
        "namespace": "agent_id", "content": "content", "tags": "tags"}
    assert column_mapping(["agent_id=customer", "content=body"], ["customer", "body", "content"]) == {
        "namespace": "customer", "content": "body"}


@pytest.mark.parametrize("pair", ["nonsense", "colour=text", "content=missing_column"])
def test_a_bad_column_mapping_says_what_to_do(pair: str) -> None:
    with pytest.raises(SystemExit, match="--map"):
        column_mapping([pair], ["text", "customer"])


@pytest.mark.parametrize(("field", "cell", "value"), [
    ("tags", np.array(["a", "b"]), ["a", "b"]),            # Parquet lists arrive as arrays
    ("tags", "a, b,,c", ["a", "b", "c"]),                 # CSV: comma-separated
    ("tags", '["x", "y"]', ["x", "y"]),                   # or JSON
    ("metadata", '{"k": 1}', {"k": 1}),
    ("metadata", {"k": np.int64(2)}, {"k": 2}),
    ("importance", np.float64(0.7), 0.7),
    ("importance", math.nan, None),                       # a missing cell is no value
    ("event_time", pd.Timestamp("2024-05-08T00:00:00"), 1715126400.0),  # naive is UTC
    ("event_time", pd.Timestamp("2024-05-08T02:00:00+02:00"), 1715126400.0),
    ("event_time", "2024-05-08", "2024-05-08"),           # text is parsed by the API's rules
    ("event_time", datetime.date(2024, 5, 8), "2024-05-08"),  # CSV dates arrive as dates
    ("event_time", pd.NaT, None),
    ("metadata", {"d": datetime.date(2024, 5, 8), "x": decimal.Decimal("1.5"), "b": b"hi"},
     {"d": "2024-05-08", "x": 1.5, "b": "hi"}),            # what JSON can hold
    ("id", "", None),                                     # an empty CSV cell is no id
    ("namespace", "   ", None),
    ("id", np.int64(42), "42"),                           # numeric external ids are ids
    ("content", "  kept as is ", "  kept as is "),
])
def test_cells_become_plain_values(field: str, cell: object, value: object) -> None:
    assert field_value(field, cell) == value


def test_a_job_without_content_or_namespace_refuses_to_start() -> None:
    with pytest.raises(SystemExit, match="content"):
        check_mapping({"namespace": "customer"}, None)
    with pytest.raises(SystemExit, match="namespace"):
        check_mapping({"content": "text"}, None)
    check_mapping({"content": "text"}, "support-bot")  # a constant namespace will do


def test_a_row_without_an_id_always_gets_the_same_one() -> None:
    a = memory_id("acme", "refund approved", 1715126400)
    assert a == memory_id("acme", "refund approved", 1715126400) and a.startswith("mem_bf_")
    assert len({a, memory_id("acme", "refund approved", 1715126401),
                memory_id("acme-2", "refund approved", 1715126400),
                memory_id("acme", "refund denied", 1715126400)}) == 4


def test_format_comes_from_the_name_or_is_asked_for(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert input_format("h.parquet", "auto") == "parquet"
    assert input_format("h.ndjson", "auto") == "jsonl"
    assert input_format("h.data", "csv") == "csv"
    with pytest.raises(SystemExit, match="--format"):
        input_format(str(tmp_path / "h.data"), "auto")
