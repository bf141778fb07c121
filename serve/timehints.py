"""Time in queries: absolute dates ("in May 2023") and, given a reference time, relative ones
("yesterday", "last week", "3 days ago") become a window and the words that name it.

Pure functions, UTC calendar. The window softly boosts memories whose event time falls in
it; the words go to the keyword channel, which indexes each memory's event date in words.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from shards.indexed_text import date_words

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS.pop("may", None)  # re-added below: "may" alone is mostly the verb
_MONTH_RE = "|".join(sorted((m for m in MONTHS), key=len, reverse=True))
WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}


@dataclass(frozen=True)
class TimeHint:
    start: float  # Unix seconds, inclusive
    end: float  # exclusive
    words: tuple[str, ...]  # date words for the keyword channel


def _day(d: datetime) -> datetime:
    return d.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_window(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _hint(start: datetime, end: datetime, words: list[str]) -> TimeHint:
    return TimeHint(start.timestamp(), end.timestamp(), tuple(words))


def _one_day(text: str, default_year: int | None) -> datetime | None:
    """'August 11', '11 August', 'Aug 11, 2023', '2023-08-11' → that day (UTC)."""
    months = _MONTH_RE + "|may"
    if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
        y, mo, d = map(int, m.groups())
    elif m := re.fullmatch(rf"({months})\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?", text):
        mo, d, y = _month_number(m.group(1)), int(m.group(2)), int(m.group(3) or default_year or 0)
    elif m := re.fullmatch(rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({months})(?:,?\s+(\d{{4}}))?", text):
        mo, d, y = _month_number(m.group(2)), int(m.group(1)), int(m.group(3) or default_year or 0)
    else:
        return None
    try:
        return datetime(y, mo, d, tzinfo=timezone.utc) if y else None
    except ValueError:
        return None


def range_hint(query: str) -> TimeHint | None:
    """'between August 11 and August 15 2023', 'from 1 May to 7 May 2023'."""
    q = query.lower()
    m = re.search(r"\b(?:between|from)\s+(.+?)\s+(?:and|to|until|till)\s+(.+?)(?=[?.!,;]|$|\s+(?:and|but|when|where|what|who)\b)", q)
    if not m:
        return None
    year = re.search(r"\b(19|20)\d{2}\b", q)
    default_year = int(year.group()) if year else None
    first, last = _one_day(m.group(1).strip(), default_year), _one_day(m.group(2).strip(), default_year)
    if first is None or last is None or last < first:
        return None
    words = sorted({calendar.month_name[first.month], calendar.month_name[last.month], str(first.year), str(last.year)})
    return _hint(first, last + timedelta(days=1), words)


def absolute_hint(query: str) -> TimeHint | None:
    """'8 May 2023', 'May 8, 2023', 'May 2023', '2023-05-08', a range of days."""
    if hint := range_hint(query):
        return hint
    q = query.lower()
    months = _MONTH_RE + "|may"
    if m := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", q):
        y, mo, d = map(int, m.groups())
        return _safe_day(y, mo, d)
    if m := re.search(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({months}),?\s+(\d{{4}})\b", q):
        return _safe_day(int(m.group(3)), _month_number(m.group(2)), int(m.group(1)))
    if m := re.search(rf"\b({months})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", q):
        return _safe_day(int(m.group(3)), _month_number(m.group(1)), int(m.group(2)))
    if m := re.search(rf"\b({months}),?\s+(\d{{4}})\b", q):
        month, year = _month_number(m.group(1)), int(m.group(2))
        start, end = _month_window(year, month)
        return _hint(start, end, [calendar.month_name[month], str(year)])
    return None


def _month_number(name: str) -> int:
    return 5 if name == "may" else MONTHS[name]


def _safe_day(y: int, mo: int, d: int) -> TimeHint | None:
    try:
        start = datetime(y, mo, d, tzinfo=timezone.utc)
    except ValueError:
        return None
    return _hint(start, start + timedelta(days=1), date_words(start.timestamp()).split())


def relative_hint(query: str, reference: float) -> TimeHint | None:
    """Relative expressions resolved against `reference` (the request's 'now')."""
    q = query.lower()
    now = datetime.fromtimestamp(reference, tz=timezone.utc)
    today = _day(now)
    if re.search(r"\byesterday\b", q):
        start = today - timedelta(days=1)
        return _hint(start, today, date_words(start.timestamp()).split())
    if re.search(r"\btoday\b|\bthis morning\b|\btonight\b", q):
        return _hint(today, today + timedelta(days=1), date_words(today.timestamp()).split())
    if m := re.search(r"\b(\d+|a|one|two|three|four|five|six|seven)\s+(day|week|month|year)s?\s+ago\b", q):
        n = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
             "seven": 7}.get(m.group(1)) or int(m.group(1))
        span = {"day": 1, "week": 7, "month": 30, "year": 365}[m.group(2)]
        center = today - timedelta(days=n * span)
        slack = timedelta(days=max(1, span // 2))
        return _hint(center - slack, center + slack + timedelta(days=1), [])
    if m := re.search(r"\b(last|this|past)\s+(week|month|year)\b", q):
        which, unit = m.groups()
        if unit == "week":
            monday = today - timedelta(days=today.weekday())
            start = monday - timedelta(days=7) if which == "last" else monday
            if which == "past":
                start = today - timedelta(days=7)
            return _hint(start, start + timedelta(days=7), [])
        if unit == "month":
            y, mo = now.year, now.month
            if which == "last":
                y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
            start, end = _month_window(y, mo)
            return _hint(start, end, [calendar.month_name[mo], str(y)])
        y = now.year - (which == "last")
        return _hint(datetime(y, 1, 1, tzinfo=timezone.utc), datetime(y + 1, 1, 1, tzinfo=timezone.utc), [str(y)])
    if m := re.search(r"\blast\s+(" + "|".join(WEEKDAYS) + r")\b", q):
        back = (today.weekday() - WEEKDAYS[m.group(1)]) % 7 or 7
        start = today - timedelta(days=back)
        return _hint(start, start + timedelta(days=1), date_words(start.timestamp()).split())
    if m := re.search(rf"\bin\s+({_MONTH_RE}|may)\b(?!\s*,?\s*\d{{4}})", q):
        month = _month_number(m.group(1))
        year = now.year if month <= now.month else now.year - 1  # the latest such month
        start, end = _month_window(year, month)
        return _hint(start, end, [calendar.month_name[month], str(year)])
    return None


def resolve(query: str, reference: float | None) -> TimeHint | None:
    """Absolute dates always; relative expressions only against a given reference time.

    A date that datetime cannot hold ("December 9999", "3000 years ago") is no hint: the
    query's words still search, and a query never fails for the dates it names."""
    try:
        return absolute_hint(query) or (relative_hint(query, reference)
                                        if reference is not None else None)
    except (ValueError, OverflowError):
        return None
