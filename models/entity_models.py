"""Model-based entity extractors (GLiNER, spaCy): imported lazily, keyed exactly like the rules.

Neither package is a dependency of Engram. GLiNER pins an older `transformers` than Engram's
5.x, so it needs its own environment (or a deployment image with an older transformers and no
vLLM); spaCy installs alongside. Weights are read from disk only: HF_HUB_OFFLINE is set before
GLiNER loads, so a hub id must already be in the local cache.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from models.entities import Entity, dedupe, entity_from_span, normalise_key

log = logging.getLogger(__name__)

# GLiNER is zero-shot: the labels are plain-language descriptions of what to find.
DEFAULT_GLINER_LABELS: tuple[str, ...] = (
    "person", "organization", "location", "order number", "product sku", "email",
    "phone number", "date", "money",
)
GLINER_LABEL_TYPES = {
    "person": "person", "name": "person", "organization": "organization",
    "organisation": "organization", "company": "organization", "location": "location",
    "order number": "order", "ticket number": "order", "invoice number": "order",
    "product sku": "sku", "sku": "sku", "email": "email", "email address": "email",
    "phone number": "phone", "phone": "phone", "date": "date", "money": "money",
    "amount": "money", "url": "url",
}
SPACY_LABEL_TYPES = {
    "PERSON": "person", "ORG": "organization", "GPE": "location", "LOC": "location",
    "MONEY": "money", "DATE": "date",
}
SPACY_SCORE = 0.75  # spaCy's NER gives no per-span confidence


def chunks(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """`text` in pieces of at most `max_chars`, cut at whitespace, with their offsets."""
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + max_chars // 2, end)
            end = cut if cut > start else end
        yield start, text[start:end]
        start = end


class GlinerExtractor:
    """GLiNER span prediction (e.g. urchade/gliner_small-v2.1 from a local path or the cache)."""

    def __init__(self, model_name_or_path: str, labels: Sequence[str] = DEFAULT_GLINER_LABELS,
                 threshold: float = 0.5, *, max_chunk_chars: int = 1500,
                 day_first: bool = False) -> None:
        try:
            from gliner import GLiNER
        except ImportError as exc:
            raise ImportError(
                "GlinerExtractor needs the `gliner` package: pip install gliner. It pins an older "
                "transformers than Engram's 5.x, so install it in its own environment (or use "
                "entities.kind 'spacy' / 'rules')"
            ) from exc
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._model: Any = GLiNER.from_pretrained(model_name_or_path)
        self.name = f"gliner:{model_name_or_path}"
        self.labels = list(labels)
        self.threshold = threshold
        # GLiNER reads a few hundred words at a time and drops the rest silently.
        self.max_chunk_chars = max_chunk_chars
        self.day_first = day_first

    def extract(self, text: str) -> list[Entity]:
        out: list[Entity] = []
        for offset, piece in chunks(text, self.max_chunk_chars):
            for span in self._model.predict_entities(piece, self.labels, threshold=self.threshold):
                label = str(span["label"])
                type_ = GLINER_LABEL_TYPES.get(label.lower(), normalise_key(label).replace(" ", "_"))
                e = entity_from_span(text, offset + int(span["start"]), offset + int(span["end"]),
                                     type_, float(span["score"]), day_first=self.day_first)
                if e is not None:
                    out.append(e)
        return dedupe(out)


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
