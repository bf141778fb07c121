"""CombinedExtractor: several extractors merged by key (the rules plus a model, by default)."""
from __future__ import annotations

from collections.abc import Sequence

from models.entities.base import Entity, EntityExtractor, dedupe


_NAME_TYPES = frozenset({"person", "organization", "location"})


class CombinedExtractor:
    """Several extractors merged by key. Where their name spans overlap with different keys
    ("Acme" as a person from the rules, "Acme Corp" as an organisation from a model), the
    higher score wins, ties going to the earlier extractor."""

    def __init__(self, extractors: Sequence[EntityExtractor]) -> None:
        if not extractors:
            raise ValueError("CombinedExtractor needs at least one extractor")
        self.extractors = tuple(extractors)
        self.name = "+".join(x.name for x in self.extractors)

    def extract(self, text: str) -> list[Entity]:
        ranked: list[tuple[float, int, Entity]] = []
        others: list[Entity] = []
        for i, x in enumerate(self.extractors):
            for e in x.extract(text):
                if e.type in _NAME_TYPES:
                    ranked.append((-e.score, i, e))
                else:
                    others.append(e)
        kept: list[Entity] = []
        for _, _, e in sorted(ranked, key=lambda r: (r[0], r[1])):
            if all(k.key == e.key or k.end <= e.start or e.end <= k.start for k in kept):
                kept.append(e)
        return dedupe(others + kept)
