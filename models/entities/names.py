"""The capitalised-word tokens the rules' name heuristics read, and the word tests on them."""
from __future__ import annotations

import re
from dataclasses import dataclass

from models.entities.patterns import _SENTENCE_END, _SENTENCE_SKIP
from models.entities.words import (
    FIRST_NAMES,
    GREETINGS,
    ORG_LEGAL,
    ORG_WORDS,
    PARTICLES,
    PERSON_ROLES,
    STOP,
)


@dataclass
class _Tok:
    core: str  # the word without a possessive 's
    low: str
    start: int
    end: int  # end of core
    full_end: int  # end including the possessive
    possessive: bool
    initial: bool  # "J." in "J. Doe"
    sentence_start: bool
    connector: str = ""  # "of", "&", "van"...: the word between this token and the previous
    owns_title: bool = False  # "Acme's" in "Acme's CFO": an organisation, not a person


_MAX_RUN = 12
_CONNECTORS = frozenset({"of", "&", "and", "for"}) | PARTICLES


def _drop_first(run: list[_Tok]) -> list[_Tok]:
    """The run without its first token; the next one now opens it, whatever joined them."""
    run = run[1:]
    if run:
        run[0].connector = ""
    return run


_NAME_PREFIXES = ("mc", "mac", "de", "di", "da", "la", "le", "van", "von", "o")
_NUMBER_NEXT = re.compile(r"[ \t]#?\d")


def _camel(core: str) -> bool:
    """An upper-case letter inside a word (TypeScript), allowing McDonald, DeVries, O'Brien."""
    for piece in re.split(r"['’-]", core):
        inner = [i for i, c in enumerate(piece) if i and c.isupper()]
        if inner and piece[:inner[0]].lower() not in _NAME_PREFIXES:
            return True
    return False


def _verbish(low: str) -> bool:
    # "Refunded Jane", "Following Acme": sentence-initial verbs and adverbs, not first names.
    return len(low) > 4 and low.endswith(("ed", "ing", "ly")) and low not in FIRST_NAMES


def _not_a_name_word(t: _Tok) -> bool:
    return (t.low in STOP or t.low in GREETINGS or t.low in PERSON_ROLES or t.low in ORG_WORDS
            or t.low in ORG_LEGAL or (len(t.core) == 1 and not t.initial))


def _starts_sentence(text: str, pos: int) -> bool:
    i = pos - 1
    while i >= 0 and text[i] in _SENTENCE_SKIP:
        if text[i] == "\n":
            return True
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END
