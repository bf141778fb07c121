"""The CLI's answers for people: aligned tables and `key: value` lines (`--json` prints the
service's JSON instead, for scripts). No dependency: plain text that pipes and wraps well."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]
Column = tuple[str, Callable[[Row], Any]]  # heading, and how a row gives its cell

WIDEST_TEXT = 60  # a memory's content is cut to this in a table


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items() if v is not None) or "-"
    return str(value)


def clip(text: Any, width: int = WIDEST_TEXT) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def table(rows: Sequence[Row], columns: Sequence[Column]) -> str:
    grid = [[heading for heading, _ in columns]]
    grid += [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip() for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pairs(record: Row, keys: Sequence[str] | None = None) -> str:
    chosen = keys if keys is not None else list(record)
    width = max((len(k) for k in chosen), default=0)
    return "\n".join(f"{k.ljust(width)}  {cell(record.get(k))}" for k in chosen)


# -- per command ---------------------------------------------------------------------------
def _field(name: str) -> Callable[[Row], Any]:
    return lambda r: r.get(name)


def _part(name: str) -> Callable[[Row], Any]:
    return lambda r: r.get("score_breakdown", {}).get(name)


RECALL: list[Column] = [
    ("#", lambda r: r["_rank"]),
    ("score", lambda r: r.get("score")),
    ("relevance", _part("relevance")),
    ("importance", _part("importance")),
    ("recency", _part("recency")),
    ("channels", lambda r: r.get("channels")),
    ("id", lambda r: r.get("id")),
    ("content", lambda r: clip(r.get("content", ""))),
]
KEYS: list[Column] = [
    ("id", lambda r: r.get("key_id") or r.get("id")),
    ("name", lambda r: r.get("name")),
    ("scope", lambda r: r.get("scope")),
    ("namespaces", lambda r: r.get("namespaces") or "all"),
    ("limits", lambda r: r.get("limits")),
    ("expires_at", lambda r: r.get("expires_at")),
]

WEBHOOKS: list[Column] = [
    ("id", _field("id")),
    ("url", _field("url")),
    ("events", _field("events")),
    ("namespaces", _field("namespaces")),
    ("description", lambda r: clip(r.get("description") or "")),
]


def recall(answer: Row) -> str:
    results = [{**r, "_rank": i} for i, r in enumerate(answer.get("results", []), 1)]
    if not results:
        return "no memories matched"
    return table(results, RECALL)


def stored(memory: Row) -> str:
    return pairs(memory, ["id", "namespace", "content", "importance", "memory_type", "tags", "session_id"])


def keys(rows: Sequence[Row]) -> str:
    return table(rows, KEYS) if rows else "no keys"


def created_key(answer: Row) -> str:
    shown = pairs(answer, [k for k in ("key_id", "name", "scope", "namespaces", "expires_at") if k in answer])
    return f"{shown}\nkey  {answer.get('key')}\n(the key is shown this once: keep it now)"


def webhooks(rows: Sequence[Row]) -> str:
    return table(rows, WEBHOOKS) if rows else "no webhooks"


def created_webhook(answer: Row) -> str:
    shown = pairs(answer, ["id", "url", "events", "namespaces"])
    return (f"{shown}\nsecret      {answer.get('secret')}\n(the secret is shown this once: deliveries are "
            "signed with it; check them with engram.webhooks.verify)")


def summary(answer: Any) -> str:
    """Anything else: a record as `key: value` lines, a list as a table of its fields."""
    if isinstance(answer, Mapping):
        return pairs(answer)
    if isinstance(answer, list) and answer and all(isinstance(r, Mapping) for r in answer):
        columns = list(dict.fromkeys(k for r in answer for k in r))
        return table(answer, [(k, _field(k)) for k in columns])
    return cell(answer)
