"""Keys: normalisation, and typed-value keys shared by the rules and by model outputs (spans.py)."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

from models.entities.patterns import (
    _CURRENCIES,
    _HAS_DIGIT,
    _MONTHS,
    _MULTIPLIERS,
    _ORDINALISH,
    _YEAR_ONLY,
)
from models.entities.words import ORG_LEGAL

# ---------------------------------------------------------------------------------------------
# Normalisation

_NON_ALNUM = re.compile(r"[\W_]+")


def normalise_key(text: str) -> str:
    """Lower-case, accents folded, every run of punctuation/space/_ to one space, trimmed."""
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", text.casefold()).strip()


def _org_key(words: Sequence[str]) -> str:
    kept = list(words)
    while len(kept) > 1 and normalise_key(kept[-1]) in ORG_LEGAL:
        kept.pop()
    return normalise_key(" ".join(kept))


_KNOWN_PREFIX = re.compile(r"^(ord|order|inc|inv|tkt|tck|case|po|req|ritm|chg|prb|rma|clm)(\d)")


def _id_core(raw: str) -> str:
    core = normalise_key(raw)
    m = _KNOWN_PREFIX.match(core)  # INC0042 and INC-0042 are one ticket
    return f"{core[:m.end(1)]} {core[m.end(1):]}" if m else core


def _url_key(url: str) -> str:
    key = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.lower())
    return key.removeprefix("www.").rstrip("/")

# ---------------------------------------------------------------------------------------------
# Typed-value keys, shared by the rules and by model outputs (entity_from_span).


def _date_key(m: re.Match[str], day_first: bool) -> str | None:
    g = m.groupdict()
    try:
        if g["y4"]:
            y, mo, d = int(g["y4"]), int(g["m4"]), int(g["d4"])
        elif g["y5"]:
            a, b = int(g["a5"]), int(g["b5"])
            d, mo = (a, b) if day_first or g["s5"] == "." else (b, a)
            if mo > 12 >= d:
                d, mo = mo, d
            y = int(g["y5"])
        elif g["y1"]:
            y, mo, d = int(g["y1"]), _month(g["m1"]), int(g["d1"].rstrip("stndrh"))
        elif g["y2"]:
            y, mo, d = int(g["y2"]), _month(g["m2"]), int(g["d2"].rstrip("stndrh"))
        else:
            return f"{int(g['y3']):04d}-{_month(g['m3']):02d}"
        date(y, mo, d)
    except ValueError:
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}"


def _month(name: str) -> int:
    return _MONTHS[name.lower().rstrip(".")[:3]]


def _money_key(m: re.Match[str]) -> str | None:
    cur, amt, mult = m["cur"], m["amt"], m["mult"]
    try:
        value = Decimal(amt.replace(",", ""))
    except InvalidOperation:
        return None
    if mult:
        value *= _MULTIPLIERS[mult.strip().lower()]
    code = cur.strip().lower()
    if code.startswith("cent"):
        value /= 100
    code = _CURRENCIES.get(code, code)
    text = format(value.normalize(), "f")
    if "." in text and len(text.rsplit(".", 1)[1]) == 1:
        text += "0"  # 49.9 -> 49.90
    return f"{text} {code}"


def _phone_key(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw)
    plus = raw.lstrip().startswith("+")
    if not (7 if not plus else 8) <= len(digits) <= 15:
        return None
    return ("+" if plus else "") + digits


def _order_id_ok(core: str, marked: bool) -> bool:
    if len(core) < 3 or not _HAS_DIGIT.search(core):
        return False
    if core.isdigit():
        # "order 1000 units", "in case 2024": bare numbers need 4+ digits and no year shape.
        return marked or (len(core) >= 4 and not _YEAR_ONLY.fullmatch(core))
    return marked or not _ORDINALISH.fullmatch(core)


def _same_length_lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # "İ" lower-cases to 2


def _trim_url(url: str) -> str:
    url = url.rstrip(".,;:!?'\"")
    while url.endswith((")", "]")) and url.count("(") < url.count(")") + (url[-1] == "]"):
        url = url[:-1].rstrip(".,;:!?")
    return url
