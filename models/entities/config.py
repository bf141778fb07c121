"""`EntityConfig`: the `entities` part of Engram's config tree (which extractor runs)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EntityConfig(BaseModel):
    """The `entities` section: which extractor runs on every stored memory and query."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: Literal["rules", "gliner", "spacy"] = "rules"
    # gliner: a local path or a hub id already in the cache; spacy: an installed pipeline
    # (default en_core_web_sm). Ignored for rules.
    model: str | None = None
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # GLiNER's span threshold; spaCy has none
    combine_with_rules: bool = True
    day_first: bool = False  # 05/08/2023 is 5 August when true, May 8 otherwise

    @model_validator(mode="after")
    def _gliner_needs_a_model(self) -> EntityConfig:
        if self.kind == "gliner" and not self.model:
            raise ValueError("entities.kind 'gliner' needs entities.model (a local path or hub id)")
        return self
