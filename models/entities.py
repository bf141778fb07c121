"""Entity extraction for the memory graph: fast rules by default, a NER model when configured.

Memories that share an entity `key` are linked in the graph (DESIGN.md §7), so a key must be
stable across spellings ("Jane Doe", "jane-doe", "JANE_DOE" and the tag "customer:jane-doe" all
give `person:jane doe`), and precision matters more than recall: a false key links unrelated
memories. Unknown capitalised words therefore need evidence (a title, a known first name, a
mid-sentence occurrence) and carry lower scores than typed patterns.

Types: person, organization, location (a small list of well-known places only), order, sku,
email, phone, url, money, date, tag.

Speed (RuleBasedExtractor, best of 9 runs, 2-core x86 AMD EPYC, CPython 3.11, cores shared with
other jobs at load ~8): 0.02 ms for a ~180-character memory with no digits, `@` or `:`; 0.08-0.15
ms for a dense one (order, date, money, e-mail, tags and names). 100k characters of mixed text
take ~50 ms; the worst hostile 100k inputs in the tests take under 0.5 s. Every pattern is
bounded or possessive and sits behind a cheap trigger, so input size stays linear.

Limitations: English-centric word lists; names are found only when capitalised (lower-case
queries such as "what did jane doe buy" find no person: match query n-grams against stored
keys for that); "Dr Smith" and "Jane Smith" are different keys; `$` is read as USD;
05/08/2023 is month-first unless `day_first`; relative dates ("last Monday") are not resolved;
an unknown capitalised word mid-sentence ("we run Kubernetes") becomes a low-score (0.5) person,
so a consumer that wants only confident names can drop scores below 0.6. Beyond the brief's rule,
a known first name at a sentence start ("Jane called.") is accepted without further evidence.

Model-based extractors (GLiNER, spaCy) live in models/entity_models.py and import lazily;
`EntityConfig` (the `entities` part of the config tree) is defined here, not in models/config.py.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class Entity:
    """One entity mention. `key` links memories; `score` is in [0, 1], higher is surer."""

    type: str
    value: str  # as written in the text, trimmed
    key: str  # "<type>:<normalised value>"
    start: int
    end: int
    score: float


class EntityExtractor(Protocol):
    name: str

    def extract(self, text: str) -> list[Entity]:
        """Entities in `text`, one per key (its first mention), sorted by start."""
        ...


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


# ---------------------------------------------------------------------------------------------
# Word lists (lower-case). Compact on purpose: they guard precision, they are no dictionary.

def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


TITLES = _words("""
mr mrs ms miss mx dr prof professor sir dame madam madame mme mlle lord lady rev reverend fr
capt captain col gen lt sgt officer judge hon president ceo cto cfo coo cmo cio vp svp evp
senator rep gov governor mayor coach nurse""")
GREETINGS = _words("hi hello hey dear thanks thank cheers congrats congratulations bye attn")
# Tag keys (customer:jane-doe) whose value names a person / an organisation.
PERSON_ROLES = _words("""
customer user client contact owner assignee author person employee agent patient member guest
requester reporter recipient""")
ORG_ROLES = _words("company org organization organisation vendor supplier merchant employer brand")
# Generational suffixes: kept in the value, dropped from the key.
NAME_SUFFIXES = _words("jr sr ii iii iv")
PARTICLES = _words("van von de der den da di du del della la le bin ibn al")
# Legal forms are dropped from an organisation's key ("Acme Inc." ~ "Acme Corp" ~ "Acme");
# descriptive words are kept ("Acme Bank" is not "Acme Labs").
ORG_LEGAL = _words("""
inc incorporated ltd limited llc llp plc corp corporation co company gmbh ag sa sas sarl srl
spa bv nv pty oy ab kk lp""")
ORG_WORDS = _words("""
bank university college institute foundation group labs lab technologies technology systems
solutions holdings partners associates ventures capital airlines airways insurance
pharmaceuticals pharma bancorp hospital clinic school academy agency ministry council society
association trust industries enterprises networks software studios media motors energy
consulting logistics""")
ORG_OF_PREFIXES = _words("bank university college institute ministry department school")
FIRST_NAMES = _words("""
james john robert michael william david richard joseph thomas charles christopher daniel
matthew anthony steven paul andrew joshua kenneth kevin brian george edward ronald timothy
jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon
benjamin samuel gregory alexander patrick raymond dennis jerry tyler aaron jose adam henry
nathan douglas zachary peter kyle noah ethan jeremy walter christian keith roger terry sean
gerald carl dylan harold jesse bryan lawrence arthur gabriel bruce logan albert alan juan
wayne elijah randy roy vincent ralph eugene russell bobby mason philip louis liam oliver
lucas leo finn tom tim jim bob steve mike dave dan sam ben alex max nick tony joe fred ted
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty
sandra margaret ashley kimberly emily donna michelle carol amanda melissa deborah stephanie
dorothy rebecca sharon laura cynthia amy kathleen angela shirley brenda emma anna pamela
nicole samantha katherine christine helen debra rachel carolyn janet maria catherine heather
diane olivia julie joyce ruth lauren kelly christina joan evelyn judith andrea hannah megan
cheryl jacqueline martha teresa gloria sara janice ann kathryn abigail sophia frances jean
alice judy isabella julia denise danielle marilyn beverly natalie theresa diana brittany
doris kayla alexis lori marie jane sophie chloe amelia ava mia ella zoe lucy kate emily
priya raj rahul amit anil arjun deepak ananya vikram sanjay neha pooja anjali ravi suresh
mohammed muhammad ahmed ali fatima aisha omar hassan yusuf layla mustafa khalid
wei ming hiroshi yuki kenji haruto sakura takeshi mei hana jun
carlos luis jorge miguel javier sofia lucia valentina mateo diego pedro ana alejandro pablo
francesca giulia marco luca giuseppe matteo hans klaus anke lars sven ingrid olga ivan
dmitri sergei natasha pierre francois camille amelie""")
KNOWN_ORGS = _words("""
google alphabet amazon apple microsoft meta facebook instagram whatsapp netflix tesla ibm intel
nvidia amd oracle salesforce adobe stripe paypal shopify visa mastercard amex uber lyft airbnb
spotify slack zoom atlassian github gitlab dropbox twitter linkedin samsung sony walmart costco
ikea fedex ups dhl usps zendesk intercom hubspot twilio openai anthropic verizon comcast hsbc
barclays deloitte accenture mckinsey ebay etsy klarna revolut notion figma asana trello
docusign mailchimp sap siemens toyota honda bmw volkswagen nike adidas starbucks""")
PLACES = frozenset("""
america canada mexico brazil argentina chile colombia peru uk usa england scotland wales
ireland france germany spain portugal italy netherlands belgium switzerland austria sweden
norway denmark finland poland ukraine russia turkey greece egypt nigeria kenya ethiopia india
pakistan bangladesh china japan korea vietnam thailand singapore malaysia indonesia
philippines australia london paris berlin madrid rome amsterdam dublin vienna prague warsaw
lisbon barcelona munich zurich stockholm oslo copenhagen helsinki brussels moscow istanbul
dubai mumbai delhi bangalore bengaluru tokyo osaka seoul beijing shanghai toronto vancouver
montreal chicago boston seattle denver miami atlanta dallas houston california texas florida
""".split()) | {"new york", "san francisco", "los angeles", "hong kong", "united states",
                "united kingdom", "new zealand", "south africa", "new jersey", "san diego",
                "las vegas", "north america", "south america", "europe", "asia", "africa"}
# Capitalised words that are not names: sentence starters, calendar words, support nouns,
# imperative verbs (a run such as "Ask Jane" must not become the person "Ask Jane").
STOP = _words("""
i i'm i've i'll i'd me my mine myself you your yours he him his she her hers it its we us our
ours they them their this that these those there here who whom whose what which when where
why how whatever whoever the a an and or but nor so yet for if then than as at by in on of to
from with without about above below into onto over under after before during since until
till upon via per within across along among around behind beyond near off out up down
through toward towards while because although though unless whether once also is are was
were be been being am do does did done has have had having can could will would shall should
may might must let lets not no yes ok okay please just only still again never always often
sometimes maybe perhaps however therefore otherwise meanwhile overall finally additionally
anyway actually basically currently recently today tomorrow yesterday tonight now later soon
already sorry regards best sincerely kind warm welcome note notes nb ps fyi re fw fwd subject
update updates summary reminder todo action item items morning afternoon evening night week
weekend month year quarter day days monday tuesday wednesday thursday friday saturday sunday
mon tue tues wed thu thur thurs fri sat sun january february march april june july august
september october november december jan feb mar apr jun jul aug sep sept oct nov dec
christmas easter thanksgiving halloween ramadan diwali hanukkah eid customers clients users
agents support team staff manager admin order orders refund refunds return returns payment
payments invoice invoices ticket tickets case cases issue issues account accounts
subscription plan plans product products shipping delivery package price total status email
phone address name date time problem error bug request question answer help service services
center centre portal guide manual policy page form report docs documentation faq terms
conditions privacy settings dashboard login password billing checkout cart discount coupon
promo sale store shop first second third last next new old final all any each every some
none both either neither another other such many much more most few several ask asked call
called email emailed send sent tell told remind reminded ping pinged notify check checked
meet met spoke talked gave give get got make made take took see saw use used follow reply
replied forward schedule book cancel cancelled canceled add added remove removed review
reviewed confirm confirmed escalate escalated assign assigned invite invited visit visited
pay paid ship shipped buy bought sell sold need needs want wants like likes prefer prefers
love loves hate say says said important urgent high low medium good great bad happy quick
world everyone everybody folks guys english french german spanish italian portuguese chinese
japanese korean russian arabic hindi dutch american british european canadian australian
indian internet web online app api sdk url pdf csv json ai memory memories preference
preferences fact facts""")

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
# Patterns. Every quantifier is bounded or possessive: 100k hostile characters stay linear.

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


# ---------------------------------------------------------------------------------------------
# Rules

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


class RuleBasedExtractor:
    """Regular expressions for typed values, conservative heuristics for names; no model."""

    name: str = "rules"

    def __init__(self, *, day_first: bool = False) -> None:
        self.day_first = day_first

    def extract(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        claimed = bytearray(len(text))

        def free(s: int, e: int) -> bool:
            return claimed.find(1, s, e) == -1

        def claim(s: int, e: int) -> None:
            claimed[s:e] = b"\x01" * (e - s)

        def add(type_: str, s: int, e: int, key: str, score: float) -> None:
            found.append(Entity(type_, text[s:e], f"{type_}:{key}", s, e, score))
            claim(s, e)

        if "://" in text or "www." in text or "WWW." in text:
            for m in _URL_RE.finditer(text):
                s, e = m.start(), m.start() + len(_trim_url(m.group()))
                if e - s > 8:
                    add("url", s, e, _url_key(text[s:e]), 0.99)
        if "@" in text:
            for m in _EMAIL_RE.finditer(text):
                if free(*m.span()):
                    add("email", *m.span(), m.group().lower(), 0.99)
        if _HAS_DIGIT.search(text):
            self._numbers(text, free, add)
        if ":" in text:
            self._tags(text, free, add, found)
        if "-" in text or "_" in text:
            self._handles(text, free, found)
        self._names(text, claimed, found)
        return dedupe(found)

    def _numbers(self, text: str, free: _Free, add: _Add) -> None:
        # Patterns run on a lower-cased copy (case-insensitive matching costs twice as much),
        # each behind a trigger that is far cheaper than the pattern.
        low = _same_length_lower(text)
        for m in _DATE_RE.finditer(low) if _YEAR_ANY.search(text) else ():
            key = _date_key(m, self.day_first)
            if key and free(*m.span()):
                add("date", *m.span(), key, 0.95)
        for m in _SKU_RE.finditer(low) if "sku" in low else ():
            core = normalise_key(m["id"])
            if _HAS_DIGIT.search(core) and len(core) >= 2 and free(*m.span()):
                add("sku", *m.span(), core, 0.95)
        for m in _ORDER_KEYWORD_RE.finditer(low) if _ORDER_TRIGGER.search(low) else ():
            core = _id_core(m["id"])
            # "to order 1000 units" is a verb; "order 1000" alone reads as an order number.
            marked = bool(m["no"] or m["mark"])
            verb = not marked and low[max(0, m.start() - 3):m.start()] == "to "
            if not verb and _order_id_ok(core.replace(" ", ""), marked) and free(*m.span()):
                add("order", *m.span(), core, 0.9)
        for m in _ORDER_CODE_RE.finditer(text) if _CODE_TRIGGER.search(text) else ():
            if free(*m.span()):
                add("order", *m.span(), f"{m['p'].lower()} {normalise_key(m['rest'])}", 0.9)
        for m in _HASH_RE.finditer(text) if "#" in text else ():
            raw = m["id"]
            if (_order_id_ok(raw.replace("-", ""), True) and not _YEAR_ONLY.fullmatch(raw)
                    and not _ORDINALISH.fullmatch(raw)
                    and not (_HEX_COLOUR.fullmatch(raw) and not raw.isdigit()) and free(*m.span())):
                add("order", *m.span(), _id_core(raw), 0.8)
        for pattern, trigger in ((_MONEY_PREFIX_RE, _MONEY_PREFIX_TRIGGER),
                                 (_MONEY_SUFFIX_RE, _MONEY_SUFFIX_TRIGGER)):
            for m in pattern.finditer(low) if trigger.search(low) else ():
                key = _money_key(m)
                if key and free(*m.span()):
                    add("money", *m.span(), key, 0.95)
        for m in _PHONE_RE.finditer(low) if _PHONE_TRIGGER.search(text) else ():
            s, e = m.span("kp") if m["kp"] else m.span()
            key = _phone_key(text[s:e])
            if key and free(s, e):
                add("phone", s, e, key, 0.85)

    def _handles(self, text: str, free: _Free, found: list[Entity]) -> None:
        """'customer jane-doe', 'user j_smith': a person role before a handle names a person,
        keyed like the same name written out ("Jane Doe") or tagged (customer:jane-doe)."""
        for m in _HANDLE_RE.finditer(text):
            if normalise_key(m["role"]) not in PERSON_ROLES or not free(m.start("h"), m.end("h")):
                continue
            found.append(Entity("person", m["h"], f"person:{normalise_key(m['h'])}",
                                m.start("h"), m.end("h"), 0.8))

    def _tags(self, text: str, free: _Free, add: _Add, found: list[Entity]) -> None:
        for m in _TAG_RE.finditer(text):
            k, raw = m["k"], m["v"]
            v = raw.rstrip(_TAG_VALUE_TRAIL)
            after = text[m.end():m.end() + 1]
            if (not v or k.lower() in _NOT_TAG_KEYS or (after and (after.isalnum() or after in "@/:"))
                    or not free(m.start(), m.start("v") + len(v))):
                continue
            s, vs, ve = m.start(), m.start("v"), m.start("v") + len(v)
            k_norm, v_norm = normalise_key(k), normalise_key(v)
            add("tag", s, ve, f"{k_norm} {v_norm}", 0.9)
            parts = [p for p in re.split(r"[-_.]", v) if p]
            if not (1 <= len(parts) <= 4 and all(p.isalpha() for p in parts)):
                continue
            if k_norm in PERSON_ROLES:
                found.append(Entity("person", v, f"person:{v_norm}", vs, ve, 0.9))
            elif k_norm in ORG_ROLES:
                found.append(Entity("organization", v, f"organization:{_org_key(parts)}", vs, ve, 0.9))

    # -- names ------------------------------------------------------------------------------

    def _names(self, text: str, claimed: bytearray, found: list[Entity]) -> None:
        runs: list[list[_Tok]] = []
        prev: _Tok | None = None
        for m in _CAP_TOKEN.finditer(text):
            s, e = m.span()
            if claimed.find(1, s, e) != -1:
                prev = None
                continue
            word = m.group()
            possessive = word.endswith(("'s", "’s")) or word.endswith(("'", "’"))
            core = word[:-2] if word.endswith(("'s", "’s")) else word.rstrip("'’")
            tok = _Tok(core, core.lower(), s, s + len(core), e, possessive,
                       len(core) == 1 and text[e:e + 1] == ".", _starts_sentence(text, s))
            joined = prev is not None and self._joins(text, prev, tok)
            if joined:
                runs[-1].append(tok)
            else:
                runs.append([tok])
            prev = tok
        if not runs:
            return
        # Mid-sentence evidence: a capitalised word that opens a run away from a sentence start.
        mid = {run[0].low for run in runs if not run[0].sentence_start}
        for run, after in zip(runs, runs[1:]):
            if run[-1].possessive and after[0].low in TITLES and after[0].start == run[-1].full_end + 1:
                run[-1].owns_title = True
        names: list[Entity] = []
        seen: set[tuple[object, ...]] = set()
        for run in runs:
            # Runs longer than a few names joined by "and" are title-case headings or junk; a
            # run seen before (same words, same context) gives the same, already-kept entities.
            if len(run) > _MAX_RUN:
                continue
            sig = (text[run[-1].full_end:run[-1].full_end + 3],
                   *((t.core, t.connector, t.sentence_start, t.initial, t.possessive, t.owns_title)
                     for t in run))
            if sig not in seen:
                seen.add(sig)
                names.extend(self._classify(text, run, mid))
        # "Acme Corp ... the Acme office": the bare word is the organisation, not a person.
        orgs = {e.key[len("organization:"):] for e in names if e.type == "organization"}
        for ent in names:
            bare = ent.key[len("person:"):]
            if ent.type == "person" and ent.score <= 0.5 and bare in orgs:
                ent = Entity("organization", ent.value, f"organization:{bare}", ent.start, ent.end,
                             ent.score)
            found.append(ent)

    @staticmethod
    def _joins(text: str, prev: _Tok, tok: _Tok) -> bool:
        if prev.possessive or tok.start - prev.full_end > 8:
            return False
        gap = text[prev.full_end:tok.start]
        if gap == " " or gap == "  ":
            return True
        if gap == ". " and (prev.initial or prev.low in TITLES):
            return True
        if len(gap) >= 3 and gap[0] == " " == gap[-1] and gap[1:-1] in _CONNECTORS:
            tok.connector = gap[1:-1]
            return True
        return False

    def _classify(self, text: str, run: list[_Tok], mid: set[str]) -> list[Entity]:
        whole = normalise_key(text[run[0].start:run[-1].end])
        if whole in PLACES:
            return [self._emit(text, "location", run, 0.75)]
        for n in (3, 2):  # "New York Times", "San Francisco Bay": keep the place, drop the rest
            if len(run) > n and normalise_key(text[run[0].start:run[n - 1].end]) in PLACES:
                return [self._emit(text, "location", run[:n], 0.75)]
        if whole in KNOWN_ORGS:
            return [self._emit(text, "organization", run, 0.8)]
        org = self._organization(text, run, mid)
        if org is not None:
            return org
        # Leading titles, greetings and roles signal a person; other common words are dropped.
        signal, stripped, sentence_start = 0.0, False, run[0].sentence_start
        while run:
            t = run[0]
            if t.low in TITLES:
                signal = 0.9
            elif t.low in GREETINGS:
                signal = max(signal, 0.8)
            elif t.low in PERSON_ROLES and (len(run) > 2 or (len(run) == 2 and run[1].low in FIRST_NAMES)):
                signal = max(signal, 0.8)
            elif (t.low in STOP or t.low in PERSON_ROLES or (len(t.core) == 1 and not t.initial)
                  or (sentence_start and not stripped and _verbish(t.low))):
                if not sentence_start:
                    return []  # "the New York Times", "our Enterprise Plan": a title-case phrase
                stripped = True
            else:
                break
            run = _drop_first(run)
        if not run:
            return []
        org = self._organization(text, run, mid)
        if org is not None:
            return org
        # A title in the middle ("Acme CEO Jane Doe"): what follows it is the person.
        for j in range(len(run) - 1, 0, -1):
            if run[j].low in TITLES:
                run, signal, stripped, sentence_start = _drop_first(run[j:]), 0.9, False, False
                break
        # A common word left inside ("Black Friday", "Acme Support") makes a phrase, not a name.
        if not run or any(_not_a_name_word(t) for t in run):
            return []
        # "Jane and John Doe", "Tom & Jerry": separate names; "van", "de" stay inside one.
        parts: list[list[_Tok]] = [[]]
        for t in run:
            if t.connector and t.connector not in PARTICLES:
                parts.append([])
            parts[-1].append(t)
        out: list[Entity] = []
        for part in parts:
            e = self._person_or_known(text, part, signal, stripped or sentence_start, mid)
            if e is not None:
                out.append(e)
            signal, stripped, sentence_start = 0.0, False, False
        return out

    def _organization(self, text: str, run: list[_Tok], mid: set[str]) -> list[Entity] | None:
        """"Acme Corp", "Acme Bank", "Bank of America" (and what follows), else None."""
        if len(run) >= 2 and run[0].low in ORG_OF_PREFIXES and run[1].connector == "of":
            j = 2
            while j < min(len(run), 5) and not run[j].connector:
                j += 1  # "Bank of New York Mellon"
            ents = [self._emit(text, "organization", run[:j], 0.85, org=True)]
            rest = _drop_first(run[j - 1:])
            return ents + (self._classify(text, rest, mid) if rest else [])
        for j in range(len(run) - 1, 0, -1):
            if run[j].low not in ORG_LEGAL and run[j].low not in ORG_WORDS:
                continue
            # "The Acme Group and Globex Inc": the organisation starts after the last "and".
            k = max((n for n in range(j + 1) if run[n].connector in ("and", "for")), default=0)
            i = k
            while i < j and (run[i].low in STOP or run[i].low in GREETINGS):
                i += 1
            org = run[i:j + 1]
            named = any(t.low not in ORG_WORDS and t.low not in ORG_LEGAL and t.low not in STOP
                        for t in org)
            if not named or (org[0].connector and i > k) or len(org) > 6:
                return None
            before = self._classify(text, run[:k], mid) if k else []
            rest = _drop_first(run[j:])
            after = self._classify(text, rest, mid) if rest else []
            return [*before, self._emit(text, "organization", org, 0.85, org=True), *after]
        return None

    def _person_or_known(self, text: str, part: list[_Tok], signal: float, unsure_start: bool,
                         mid: set[str]) -> Entity | None:
        while len(part) > 1 and part[-1].low in NAME_SUFFIXES:
            part = part[:-1]
        if len(part) > 4 or all(t.initial for t in part):
            return None  # a title-case heading, or bare initials
        first = part[0].low
        key = normalise_key(text[part[0].start:part[-1].end])
        if key in KNOWN_ORGS:
            return self._emit(text, "organization", part, 0.8)
        if first in KNOWN_ORGS:  # "Google HQ", "Apple Support": key on the company
            return self._emit(text, "organization", part[:1], 0.8)
        if key in PLACES:
            return self._emit(text, "location", part, 0.75)
        # Acronyms (NASA, FYI) are not people; known ones were caught just above.
        if any(len(t.core) > 1 and t.core.isupper() for t in part):
            return None
        known_first = first.split("-")[0] in FIRST_NAMES
        if not signal and not known_first:
            if any(_camel(t.core) for t in part):
                return None  # TypeScript, YouTube: products
            if _NUMBER_NEXT.match(text, part[-1].full_end):
                return None  # Room 4B, Version 3, Machine Learning 101: labels
            if part[-1].owns_title:
                return self._emit(text, "organization", part, 0.6)
        if signal:
            score = signal
        elif known_first:
            score = 0.85 if len(part) > 1 else 0.75
        elif len(part) > 1:
            score = 0.6
        elif unsure_start and first not in mid:
            return None  # one capitalised word at a sentence start: no evidence it is a name
        else:
            score = 0.5
        return self._emit(text, "person", part, score)

    @staticmethod
    def _emit(text: str, type_: str, toks: list[_Tok], score: float, *, org: bool = False) -> Entity:
        s, e = toks[0].start, toks[-1].end
        key = _org_key(text[s:e].split()) if org else normalise_key(text[s:e])
        return Entity(type_, text[s:e], f"{type_}:{key}", s, e, score)


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


class _Free(Protocol):
    def __call__(self, s: int, e: int, /) -> bool: ...


class _Add(Protocol):
    def __call__(self, type_: str, s: int, e: int, key: str, score: float, /) -> None: ...


def _same_length_lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)  # "İ" lower-cases to 2


def _starts_sentence(text: str, pos: int) -> bool:
    i = pos - 1
    while i >= 0 and text[i] in _SENTENCE_SKIP:
        if text[i] == "\n":
            return True
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _trim_url(url: str) -> str:
    url = url.rstrip(".,;:!?'\"")
    while url.endswith((")", "]")) and url.count("(") < url.count(")") + (url[-1] == "]"):
        url = url[:-1].rstrip(".,;:!?")
    return url


def dedupe(entities: Iterable[Entity]) -> list[Entity]:
    """One entity per key: its first mention, with the highest score any mention had."""
    best: dict[str, Entity] = {}
    top: dict[str, float] = {}
    for e in sorted(entities, key=lambda e: (e.start, -e.score)):
        if e.key not in best:
            best[e.key] = e
        top[e.key] = max(top.get(e.key, 0.0), e.score)
    return [e if e.score == top[k] else Entity(e.type, e.value, e.key, e.start, e.end, top[k])
            for k, e in best.items()]


# ---------------------------------------------------------------------------------------------
# Model outputs: the same keys as the rules.

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


# ---------------------------------------------------------------------------------------------
# Composition and use

_NAME_TYPES = frozenset({"person", "organization", "location"})


class CombinedExtractor:
    """Several extractors merged by key. Where their name spans overlap with different keys
    ("Acme" as a person from the rules, "Acme Corp" as an organisation from a model), the
    higher score wins, ties going to the earlier extractor."""

    def __init__(self, extractors: Sequence[EntityExtractor]) -> None:
        if not extractors:
            raise ValueError("CombinedExtractor needs at least one extractor")
        self.extractors = tuple(extractors)
        self.name = "+".join(x.name for x in self.extractors)

    def extract(self, text: str) -> list[Entity]:
        ranked: list[tuple[float, int, Entity]] = []
        others: list[Entity] = []
        for i, x in enumerate(self.extractors):
            for e in x.extract(text):
                if e.type in _NAME_TYPES:
                    ranked.append((-e.score, i, e))
                else:
                    others.append(e)
        kept: list[Entity] = []
        for _, _, e in sorted(ranked, key=lambda r: (r[0], r[1])):
            if all(k.key == e.key or k.end <= e.start or e.end <= k.start for k in kept):
                kept.append(e)
        return dedupe(others + kept)


def build_extractor(cfg: EntityConfig) -> EntityExtractor:
    """The extractor `cfg` names; model packages are imported only when asked for."""
    rules = RuleBasedExtractor(day_first=cfg.day_first)
    if cfg.kind == "rules":
        return rules
    from models.entity_models import GlinerExtractor, SpacyExtractor

    model: EntityExtractor
    if cfg.kind == "gliner":
        assert cfg.model is not None  # EntityConfig checks it
        model = GlinerExtractor(cfg.model, threshold=cfg.threshold, day_first=cfg.day_first)
    else:
        model = SpacyExtractor(cfg.model or "en_core_web_sm", day_first=cfg.day_first)
    return CombinedExtractor([rules, model]) if cfg.combine_with_rules else model


_DEFAULT_EXTRACTOR = RuleBasedExtractor()


def query_entities(text: str, extractor: EntityExtractor | None = None) -> list[Entity]:
    """Entities in a recall query (the rules unless an extractor is given)."""
    return (extractor or _DEFAULT_EXTRACTOR).extract(text)


def entity_weight(doc_freq: int, n_docs: int) -> float:
    """How much a shared entity says about relevance: log(1 + n_docs / (1 + doc_freq)).

    IDF-like: an entity in few memories (an order number) weighs more than one in most of
    them (the account's own customer). Always > 0 when n_docs > 0, 0 for an empty namespace;
    negative inputs count as 0.
    """
    n, df = max(n_docs, 0), max(doc_freq, 0)
    return math.log1p(n / (1 + df))
