"""What the keyword index sees of a memory: its content, its tags and its event date in words."""
from __future__ import annotations

import calendar
from datetime import datetime, timezone

from shards.types import Memory


def date_words(ts: float) -> str:
    """'8 May 2023 Monday 2023-05-08' (UTC): so "May 2023" or "on Monday" can match by words."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    return f"{d.day} {calendar.month_name[d.month]} {d.year} {calendar.day_name[d.weekday()]} {d:%Y-%m-%d}"


def indexed_text(memory: Memory) -> str:
    parts = [memory.content]
    if memory.tags:
        parts.append(" ".join(memory.tags))
    parts.append(date_words(memory.event_time))
    return "\n".join(parts)
