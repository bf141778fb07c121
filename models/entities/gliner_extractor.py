"""GlinerExtractor: GLiNER's zero-shot span prediction, imported lazily, keyed like the rules.

GLiNER is not a dependency of Engram. It pins an older `transformers` than Engram's 5.x, so it
needs its own environment (or a deployment image with an older transformers and no vLLM).
Weights are read from disk only: HF_HUB_OFFLINE is set before GLiNER loads, so a hub id must
already be in the local cache.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from models.entities.base import Entity, dedupe
from models.entities.keys import normalise_key
from models.entities.spans import chunks, entity_from_span


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
