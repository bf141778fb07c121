"""SpacyExtractor: spaCy's statistical NER, imported lazily, keyed like the rules.

spaCy is not a dependency of Engram; it installs alongside (pip install spacy, then a pipeline).
"""
from __future__ import annotations

from typing import Any

from models.entities.base import Entity, dedupe
from models.entities.spans import chunks, entity_from_span

SPACY_LABEL_TYPES = {
    "PERSON": "person", "ORG": "organization", "GPE": "location", "LOC": "location",
    "MONEY": "money", "DATE": "date",
}
SPACY_SCORE = 0.75  # spaCy's NER gives no per-span confidence


class SpacyExtractor:
    """spaCy's statistical NER (PERSON, ORG, GPE/LOC, MONEY, DATE)."""

    def __init__(self, model: str = "en_core_web_sm", *, max_chunk_chars: int = 100_000,
                 day_first: bool = False) -> None:
        try:
            import spacy
        except ImportError as exc:
            raise ImportError(
                "SpacyExtractor needs spaCy and a pipeline: pip install spacy && "
                f"python -m spacy download {model}"
            ) from exc
        try:
            self._nlp: Any = spacy.load(model)
        except OSError as exc:  # spaCy's E050: no such package or path
            raise ImportError(
                f"spaCy pipeline {model!r} is not installed: python -m spacy download {model}"
            ) from exc
        # Only the entity recogniser is needed; the parser and lemmatiser cost most of the time.
        for pipe in ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter"):
            if pipe in self._nlp.pipe_names:
                self._nlp.disable_pipe(pipe)
        self.name = f"spacy:{model}"
        self.max_chunk_chars = max_chunk_chars
        self.day_first = day_first

    def extract(self, text: str) -> list[Entity]:
        out: list[Entity] = []
        for offset, piece in chunks(text, self.max_chunk_chars):
            for ent in self._nlp(piece).ents:
                type_ = SPACY_LABEL_TYPES.get(ent.label_)
                if type_ is None:
                    continue
                e = entity_from_span(text, offset + ent.start_char, offset + ent.end_char, type_,
                                     SPACY_SCORE, day_first=self.day_first)
                if e is not None:
                    out.append(e)
        return dedupe(out)
