"""Entity extraction for the memory graph: fast rules by default, a NER model when configured.

Memories that share an entity `key` are linked in the graph (DESIGN.md §7), so a key must be
stable across spellings ("Jane Doe", "jane-doe", "JANE_DOE" and the tag "customer:jane-doe" all
give `person:jane doe`), and precision matters more than recall: a false key links unrelated
memories. Unknown capitalised words therefore need evidence (a title, a known first name, a
mid-sentence occurrence) and carry lower scores than typed patterns.

Types: person, organization, location (a small list of well-known places only), order, sku,
email, phone, url, money, date, tag.

Layout: `base.py` names the role (`EntityExtractor`, the frozen `Entity`, `dedupe`,
`entity_weight`); `config.py` holds `EntityConfig` (the `entities` part of the config tree);
`factory.py` builds the extractor a config names. Backends: `rules.py` (the default, no model;
its word lists, patterns, keys and name tokens in `words.py`, `patterns.py`, `keys.py` and
`names.py`), `gliner_extractor.py` and `spacy_extractor.py` (imported only when configured,
keyed like the rules through `spans.py`), and `combined.py` (several merged by key).
"""
from __future__ import annotations

from models.entities.base import Entity, EntityExtractor, dedupe, entity_weight
from models.entities.combined import CombinedExtractor
from models.entities.config import EntityConfig
from models.entities.factory import build_extractor, query_entities
from models.entities.keys import normalise_key
from models.entities.rules import RuleBasedExtractor
from models.entities.spans import entity_from_span

__all__ = [
    "CombinedExtractor",
    "Entity",
    "EntityConfig",
    "EntityExtractor",
    "RuleBasedExtractor",
    "build_extractor",
    "dedupe",
    "entity_from_span",
    "entity_weight",
    "normalise_key",
    "query_entities",
]
