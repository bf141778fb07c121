"""The extractor a config names (model packages imported only when asked for), and the query default."""
from __future__ import annotations

from models.entities.base import Entity, EntityExtractor
from models.entities.combined import CombinedExtractor
from models.entities.config import EntityConfig
from models.entities.rules import RuleBasedExtractor


def build_extractor(cfg: EntityConfig) -> EntityExtractor:
    """The extractor `cfg` names; model packages are imported only when asked for."""
    rules = RuleBasedExtractor(day_first=cfg.day_first)
    if cfg.kind == "rules":
        return rules
    model: EntityExtractor
    if cfg.kind == "gliner":
        from models.entities.gliner_extractor import GlinerExtractor

        assert cfg.model is not None  # EntityConfig checks it
        model = GlinerExtractor(cfg.model, threshold=cfg.threshold, day_first=cfg.day_first)
    else:
        from models.entities.spacy_extractor import SpacyExtractor

        model = SpacyExtractor(cfg.model or "en_core_web_sm", day_first=cfg.day_first)
    return CombinedExtractor([rules, model]) if cfg.combine_with_rules else model


_DEFAULT_EXTRACTOR = RuleBasedExtractor()


def query_entities(text: str, extractor: EntityExtractor | None = None) -> list[Entity]:
    """Entities in a recall query (the rules unless an extractor is given)."""
    return (extractor or _DEFAULT_EXTRACTOR).extract(text)
