"""Time in queries: absolute dates, ranges, and relative expressions against a reference."""
from __future__ import annotations

from datetime import datetime, timezone

from serve.timehints import resolve
from shards.indexed_text import date_words

REF = datetime(2023, 5, 9, 15, 0, tzinfo=timezone.utc).timestamp()  # a Tuesday


def day(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=timezone.utc).timestamp()


def test_absolute_dates_need_no_reference() -> None:
    for q in ("what happened on 8 May 2023", "the May 8, 2023 meeting", "notes from 2023-05-08"):
        hint = resolve(q, None)
        assert hint is not None and (hint.start, hint.end) == (day(2023, 5, 8), day(2023, 5, 9))
    month = resolve("what did we sign in May 2023", None)
    assert month is not None and (month.start, month.end) == (day(2023, 5, 1), day(2023, 6, 1))
    assert {"May", "2023"} <= set(month.words)


def test_ranges() -> None:
    hint = resolve("Where was John between August 11 and August 15 2023?", None)
    assert hint is not None and (hint.start, hint.end) == (day(2023, 8, 11), day(2023, 8, 16))
    assert resolve("between us and them", None) is None


def test_relative_expressions_only_with_a_reference() -> None:
    assert resolve("what did we do yesterday", None) is None
    y = resolve("what did we do yesterday", REF)
    assert y is not None and (y.start, y.end) == (day(2023, 5, 8), day(2023, 5, 9))
    last_week = resolve("plans from last week", REF)
    assert last_week is not None and (last_week.start, last_week.end) == (day(2023, 5, 1), day(2023, 5, 8))
    in_march = resolve("the trip in March", REF)
    assert in_march is not None and in_march.start == day(2023, 3, 1)
    assert resolve("may I ask something", REF) is None  # the verb, not the month


def test_event_dates_are_indexed_in_words() -> None:
    assert date_words(day(2023, 5, 8) + 3600) == "8 May 2023 Monday 2023-05-08"
