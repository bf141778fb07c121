"""Model outputs: the same keys as the rules (entity_from_span), and text cut to a model's window."""
from __future__ import annotations

import re
from collections.abc import Iterator

from models.entities.base import Entity
from models.entities.keys import (
    _date_key,
    _id_core,
    _money_key,
    _order_id_ok,
    _org_key,
    _phone_key,
    _same_length_lower,
    _trim_url,
    _url_key,
    normalise_key,
)
from models.entities.patterns import (
    _DATE_RE,
    _HAS_DIGIT,
    _MONEY_PREFIX_RE,
    _MONEY_SUFFIX_RE,
    _ORDER_WORDS,
    _YEAR_ONLY,
)
from models.entities.words import NAME_SUFFIXES, STOP, TITLES


_LEADING_ORDER_WORDS = re.compile(
    rf"^(?:(?:{_ORDER_WORDS})s?\b\.?\s*)?(?:(?:no|nr|num|number|id)\b\.?\s*)?[#:]?\s*", re.IGNORECASE)
_LEADING_SKU_WORDS = re.compile(r"^(?:skus?\b\s*)?(?:(?:no|number|id)\b\.?\s*)?[#:-]?\s*", re.IGNORECASE)


def entity_from_span(text: str, start: int, end: int, type_: str, score: float,
                     *, day_first: bool = False) -> Entity | None:
    """An Entity for a model's span of `text`, keyed like the rules; None if it cannot be keyed.

    Dates and amounts a model finds but the rules cannot parse ("last week") are dropped: their
    keys would not be stable.
    """
    raw = text[start:end]
    lead = len(raw) - len(raw.lstrip())
    value = raw.strip().rstrip(".,;:!?")
    start += lead
    if not value:
        return None
    for suffix in ("'s", "’s"):
        if type_ in ("person", "organization") and value.endswith(suffix):
            value = value[: -len(suffix)]
    key: str | None
    if type_ == "person":
        words = value.split()
        while len(words) > 1 and normalise_key(words[0]) in TITLES:
            start += value.index(words[1], len(words[0]))
            value = value[value.index(words[1], len(words[0])):]
            words = words[1:]
        if len(words) > 1 and normalise_key(words[-1]) in NAME_SUFFIXES:
            words = words[:-1]
        key = normalise_key(" ".join(words))
        key = None if key in STOP or key in TITLES else key
    elif type_ == "organization":
        key = _org_key(value.split())
    elif type_ == "date":
        m = _DATE_RE.search(_same_length_lower(value))
        key = (_date_key(m, day_first) if m else
               value if _YEAR_ONLY.fullmatch(value) else None)
    elif type_ == "money":
        low = _same_length_lower(value)
        m = _MONEY_PREFIX_RE.search(low) or _MONEY_SUFFIX_RE.search(low)
        key = _money_key(m) if m else None
    elif type_ == "order":
        core = _id_core(_LEADING_ORDER_WORDS.sub("", value))
        key = core if _order_id_ok(core.replace(" ", ""), True) else None
    elif type_ == "sku":
        core = normalise_key(_LEADING_SKU_WORDS.sub("", value))
        key = core if _HAS_DIGIT.search(core) else None
    elif type_ == "email":
        key = value.lower() if "@" in value else None
    elif type_ == "phone":
        key = _phone_key(value)
    elif type_ == "url":
        key = _url_key(_trim_url(value))
    elif type_ == "tag":
        k, _, v = value.partition(":")
        key = f"{normalise_key(k)} {normalise_key(v)}" if k and v else None
    else:
        key = normalise_key(value)
    if not key:
        return None
    return Entity(type_, value, f"{type_}:{key}", start, start + len(value), min(max(score, 0.0), 1.0))


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
