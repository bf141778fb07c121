"""Patterns. Every quantifier is bounded or possessive: 100k hostile characters stay linear."""
from __future__ import annotations

import re

from models.entities.words import _words

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAY = (r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?"
            r"|fri(?:day)?|sat(?:urday)?|sun(?:day)?)\.?")
_DAY = r"[0-3]?\d(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
_DATE_END = r"(?![\w/]|[.,-]\d)"
_DATE_RE = re.compile(
    rf"(?<![\w/.-])(?:{_WEEKDAY},?[ \t]{{1,3}}(?:the[ \t]{{1,3}})?)?(?:"
    rf"(?P<d1>{_DAY})(?:[ \t]{{1,3}}of)?[ \t]{{1,3}}(?P<m1>{_MONTH}),?[ \t]{{1,3}}(?P<y1>{_YEAR}){_DATE_END}"
    rf"|(?P<m2>{_MONTH})[ \t]{{1,3}}(?P<d2>{_DAY}),?[ \t]{{1,3}}(?P<y2>{_YEAR}){_DATE_END}"
    rf"|(?P<m3>{_MONTH}),?[ \t]{{1,3}}(?P<y3>{_YEAR}){_DATE_END}"
    rf"|(?P<y4>{_YEAR})(?P<s4>[-/.])(?P<m4>[01]?\d)(?P=s4)(?P<d4>[0-3]?\d)(?:(?=[tT]\d)|{_DATE_END})"
    rf"|(?P<a5>[0-3]?\d)(?P<s5>[/.-])(?P<b5>[0-3]?\d)(?P=s5)(?P<y5>{_YEAR}){_DATE_END})"
)
_MONTHS = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}

_URL_RE = re.compile(r"(?<![\w@.])(?:https?://|ftp://|www\.)[^\s<>\"'`{}|\\^\[\]]{1,2048}+", re.IGNORECASE)
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])")

_ID = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?"
_ORDER_WORDS = (r"order|ticket|case|invoice|inv|incident|booking|reservation|confirmation"
                r"|tracking|rma|claim|po|purchase[ \t]order|ref|reference")
_ORDER_KEYWORD_RE = re.compile(
    rf"\b(?:{_ORDER_WORDS})s?\b\.?[ \t]{{0,3}}(?P<no>(?:no|nr|num|number|id)\b\.?[ \t]{{0,3}})?"
    rf"(?P<mark>[#:][ \t]{{0,2}})?(?P<id>{_ID})(?!\w)"
)
_ORDER_CODE_RE = re.compile(
    r"(?<![\w-])(?P<p>ORD|ORDER|INC|INV|TKT|TCK|CASE|PO|REQ|RITM|CHG|PRB|RMA|CLM)[-_]?"
    r"(?P<rest>\d{2}[A-Z0-9]{0,20}(?:-[A-Z0-9]{1,20}){0,4})(?![\w-])")
_HASH_RE = re.compile(rf"(?<![\w&#/])#(?P<id>{_ID})(?!\w)")
_SKU_RE = re.compile(
    rf"(?<![\w-])skus?[ \t]{{0,2}}(?:(?:no|number|id)\b\.?[ \t]{{0,2}})?[:#-]?[ \t]{{0,2}}"
    rf"(?P<id>{_ID})(?!\w)"
)
_YEAR_ONLY = re.compile(r"(?:19|20)\d\d")
_ORDINALISH = re.compile(r"\d+[a-z]{1,3}", re.IGNORECASE)  # 3rd, 10am, 5kg: no ids
_HEX_COLOUR = re.compile(r"[0-9a-f]{3}|[0-9a-f]{6}", re.IGNORECASE)

_AMOUNT = r"\d{1,3}(?:,\d{3}){1,5}(?:\.\d{1,2})?|\d{1,12}(?:\.\d{1,2})?"
_MULT = r"[ \t]?(?:k|m|mn|bn|thousand|million|billion)"
_CODES = r"usd|eur|gbp|cad|aud|nzd|jpy|chf|inr|cny"
_MONEY_PREFIX_RE = re.compile(
    rf"(?<![\w$€£¥₹])(?P<cur>us\$|ca\$|c\$|au\$|a\$|nz\$|[$€£¥₹]|(?:{_CODES})(?=[ \t]?\d))[ \t]?"
    rf"(?P<amt>{_AMOUNT})(?P<mult>{_MULT})?(?![\w]|[.,]\d)")
_MONEY_SUFFIX_RE = re.compile(
    rf"(?<![\w.,$€£¥₹])(?P<amt>{_AMOUNT})(?P<mult>{_MULT})?[ \t]?"
    rf"(?P<cur>{_CODES}|dollars?|bucks|euros?|cents?|€|£)(?!\w)")
_MONEY_PREFIX_TRIGGER = re.compile(rf"[$€£¥₹]|{_CODES}")
_MONEY_SUFFIX_TRIGGER = re.compile(rf"{_CODES}|dollar|buck|euro|cent|€|£")
_CURRENCIES = {"$": "usd", "us$": "usd", "c$": "cad", "ca$": "cad", "a$": "aud", "au$": "aud",
               "nz$": "nzd", "€": "eur", "£": "gbp", "¥": "jpy", "₹": "inr", "dollar": "usd",
               "dollars": "usd", "bucks": "usd", "euro": "eur", "euros": "eur", "cent": "usd",
               "cents": "usd"}
_MULTIPLIERS = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "mn": 1_000_000,
                "million": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}

_PHONE_RE = re.compile(
    r"(?<![\w+./-])(?:\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,5}"
    r"|\(\d{3}\)[ ]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w]|[.-]\d)"
    r"|(?<!\w)(?:phone|tel|telephone|mobile|cell|fax|whatsapp)(?:[ \t]{1,2}(?:number|no\.?|#))?"
    r"[ \t]{0,2}[:.]?[ \t]{0,2}(?P<kp>\+?\d[\d \t().-]{5,18}\d)(?![\w]|[.-]\d)"
)
_TAG_RE = re.compile(
    r"(?<![\w.@/:#'’-])(?P<k>[A-Za-z][A-Za-z0-9_-]{1,31}+):(?P<v>[^\W_][\w.-]{0,63}+)")
_HANDLE_RE = re.compile(
    r"\b(?P<role>[A-Za-z]{3,12})\s+(?P<h>[a-z]{2,20}(?:[-_][a-z]{2,20}){1,3})\b(?![-_:@/\w]|\.\w)")
_NOT_TAG_KEYS = _words("""
http https ftp ftps mailto file tel sms data ws wss git ssh s3 gs urn javascript about
chrome re fw fwd cc bcc""")
_TAG_VALUE_TRAIL = "._-"

_UPPER = "".join(re.escape(chr(c)) for c in range(0x41, 0x2000) if chr(c).isupper())
_CAP_TOKEN = re.compile(
    rf"(?<![\w'’#@/\\.-])[{_UPPER}](?:[^\W\d_]|['’-](?=[^\W\d_]))*+['’]?(?!\w|[.@/\\]\w)")
_HAS_DIGIT = re.compile(r"\d")
_YEAR_ANY = re.compile(r"(?:19|20)\d\d")
_ORDER_TRIGGER = re.compile(
    r"order|ticket|case|invoice|inv|incident|booking|reservation|confirmation|tracking|rma|claim"
    r"|po|ref")
_CODE_TRIGGER = re.compile(r"[A-Z]{2}[-_]?\d")
_PHONE_TRIGGER = re.compile(r"\d[\d \t().-]{5,}\d")
_SENTENCE_SKIP = frozenset(" \t\r\n\"'“‘«([{*•–—-#>")
_SENTENCE_END = frozenset(".!?:…\n")
