"""The entity-extractor role: the `EntityExtractor` protocol, its frozen `Entity`, pure helpers."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Entity:
    """One entity mention. `key` links memories; `score` is in [0, 1], higher is surer."""

    type: str
    value: str  # as written in the text, trimmed
    key: str  # "<type>:<normalised value>"
    start: int
    end: int
    score: float


class EntityExtractor(Protocol):
    name: str

    def extract(self, text: str) -> list[Entity]:
        """Entities in `text`, one per key (its first mention), sorted by start."""
        ...


def dedupe(entities: Iterable[Entity]) -> list[Entity]:
    """One entity per key: its first mention, with the highest score any mention had."""
    best: dict[str, Entity] = {}
    top: dict[str, float] = {}
    for e in sorted(entities, key=lambda e: (e.start, -e.score)):
        if e.key not in best:
            best[e.key] = e
        top[e.key] = max(top.get(e.key, 0.0), e.score)
    return [e if e.score == top[k] else Entity(e.type, e.value, e.key, e.start, e.end, top[k])
            for k, e in best.items()]


def entity_weight(doc_freq: int, n_docs: int) -> float:
    """How much a shared entity says about relevance: log(1 + n_docs / (1 + doc_freq)).

    IDF-like: an entity in few memories (an order number) weighs more than one in most of
    them (the account's own customer). Always > 0 when n_docs > 0, 0 for an empty namespace;
    negative inputs count as 0.
    """
    n, df = max(n_docs, 0), max(doc_freq, 0)
    return math.log1p(n / (1 + df))
