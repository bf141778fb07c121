"""Plausible, varied memories and queries, generated offline (nothing is downloaded).

Each tenant has a theme (a support desk, an engineering team, a personal assistant, a
sales team): its memories and queries share a vocabulary, so recalls find real candidates
in both the vector and the BM25 channel, as they would for a real agent.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

FIRST = ["Jane", "Omar", "Li", "Ana", "Tom", "Priya", "Kofi", "Sofia", "Mateo", "Yuki", "Lena",
         "Ravi", "Chloe", "Ahmed", "Ingrid", "Diego", "Mei", "Noah", "Fatima", "Lukas"]
LAST = ["Doe", "Haddad", "Wei", "Souza", "Becker", "Nair", "Mensah", "Rossi", "Garcia", "Tanaka",
        "Novak", "Iyer", "Martin", "Khan", "Larsen", "Lopez", "Chen", "Smith", "Bello", "Weber"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
CITIES = ["Lisbon", "Nairobi", "Osaka", "Berlin", "Toronto", "Lyon", "Austin", "Pune", "Oslo", "Lima"]

PRODUCTS = ["laptop", "espresso machine", "running shoes", "standing desk", "noise-cancelling headphones",
            "wifi router", "winter jacket", "smartwatch", "4K monitor", "hiking backpack", "blender",
            "e-reader", "robot vacuum", "electric kettle", "office chair"]
PROBLEMS = ["stopped charging", "arrived with a cracked screen", "makes a rattling noise",
            "keeps disconnecting", "was delivered to the wrong address", "is missing the power cable",
            "overheats after an hour", "will not pair over bluetooth"]
CHANNELS = ["email", "SMS", "a phone call", "the in-app chat", "WhatsApp"]
COMPONENTS = ["billing service", "search API", "auth gateway", "mobile app", "data pipeline",
              "notification worker", "admin dashboard", "payments queue", "recommendation model"]
DECISIONS = ["ship", "delay", "split", "roll back", "feature-flag", "rewrite", "load test"]
CAUSES = ["a missing database index", "an expired TLS certificate", "a full disk on the cache node",
          "a retry storm from the mobile client", "a bad config push", "connection pool exhaustion"]
MEETINGS = ["weekly sync", "architecture review", "sprint planning", "incident postmortem",
            "quarterly planning", "security review"]
FOODS = ["Thai curry", "sushi", "vegan ramen", "Neapolitan pizza", "tapas", "Ethiopian injera"]
ALLERGENS = ["peanuts", "shellfish", "gluten", "lactose", "sesame"]
HOBBIES = ["bouldering", "sourdough baking", "chess", "trail running", "watercolour painting",
           "learning Portuguese", "birdwatching", "playing the cello"]
COMPANIES = ["Acme Logistics", "Northwind Health", "Globex Retail", "Initech Bank", "Umbrella Foods",
             "Stark Mobility", "Wayne Energy", "Hooli Media", "Vandelay Imports", "Soylent Labs"]
PLANS = ["Starter", "Team", "Business", "Enterprise"]
CONCERNS = ["data residency in the EU", "SSO support", "the price per seat", "uptime guarantees",
            "migration effort from their current vendor", "audit logging"]

THEMES = ["support", "engineering", "assistant", "sales"]
MEMORY_TYPES = ["episodic", "episodic", "episodic", "semantic", "semantic", "procedural"]


def person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _support(rng: random.Random) -> str:
    p, item = person(rng), rng.choice(PRODUCTS)
    return rng.choice([
        f"{p} reported that the {item} {rng.choice(PROBLEMS)}; ticket #{rng.randint(10000, 99999)}.",
        f"{p} prefers {rng.choice(CHANNELS)} and asked not to be contacted before {rng.randint(8, 11)} am.",
        f"Refund of ${rng.randint(15, 900)} for order #{rng.randint(100000, 999999)} ({item}) "
        f"approved by {p}.",
        f"{p} upgraded the warranty of the {item} to {rng.randint(2, 5)} years.",
        f"Replacement {item} shipped to {p} in {rng.choice(CITIES)}, tracking number "
        f"1Z{rng.randint(10**9, 10**10 - 1)}.",
        f"{p} is frustrated: third contact this month about the {item}; escalate to a senior agent.",
    ])


def _engineering(rng: random.Random) -> str:
    p, c = person(rng), rng.choice(COMPONENTS)
    return rng.choice([
        f"In the {rng.choice(MEETINGS)} we decided to {rng.choice(DECISIONS)} the {c} migration "
        f"until {rng.choice(MONTHS)}; owner {p}.",
        f"Incident INC-{rng.randint(1000, 9999)}: {c} p99 latency rose to {rng.randint(300, 5000)} ms "
        f"at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} UTC, root cause {rng.choice(CAUSES)}.",
        f"{p} is on call for the {c} the week of {rng.choice(MONTHS)} {rng.randint(1, 28)}.",
        f"Runbook: to restart the {c}, drain traffic first, then roll pods one at a time.",
        f"Backend status: the {c} API is done, tests are green, deploy planned for "
        f"{rng.choice(WEEKDAYS)}.",
        f"{p} asked for a design review of the {c} caching layer before the {rng.choice(MEETINGS)}.",
    ])


def _assistant(rng: random.Random) -> str:
    p = person(rng)
    return rng.choice([
        f"{p}'s birthday is on {rng.choice(MONTHS)} {rng.randint(1, 28)}; they would love a book on "
        f"{rng.choice(HOBBIES)}.",
        f"Booked a table for {rng.randint(2, 8)} at a {rng.choice(FOODS)} place in {rng.choice(CITIES)} "
        f"on {rng.choice(WEEKDAYS)} at {rng.randint(6, 9)} pm.",
        f"The user is allergic to {rng.choice(ALLERGENS)} and has been vegetarian since "
        f"{rng.randint(2005, 2024)}.",
        f"The user started {rng.choice(HOBBIES)} in {rng.choice(MONTHS)} and practises on "
        f"{rng.choice(WEEKDAYS)}s.",
        f"Flight to {rng.choice(CITIES)} on {rng.choice(MONTHS)} {rng.randint(1, 28)}, seat "
        f"{rng.randint(1, 40)}{rng.choice('ACDF')}, with {p}.",
        f"Reminder: renew the passport before {rng.choice(MONTHS)}; {p} recommended the express service.",
    ])


def _sales(rng: random.Random) -> str:
    p, co = person(rng), rng.choice(COMPANIES)
    return rng.choice([
        f"{co} is evaluating the {rng.choice(PLANS)} plan for {rng.randint(10, 2000)} seats; decision "
        f"expected by {rng.choice(MONTHS)}.",
        f"Call with {p} from {co}: budget ${rng.randint(20, 400)}k, main concern {rng.choice(CONCERNS)}.",
        f"{co} renewed for {rng.randint(1, 3)} years after a discount of {rng.randint(5, 25)} percent.",
        f"{p} ({co}) wants a demo of the reporting features on {rng.choice(WEEKDAYS)}.",
        f"Champion at {co} is {p}; the procurement contact changed in {rng.choice(MONTHS)}.",
        f"Lost {co} to a competitor: {rng.choice(CONCERNS)} was the deciding factor.",
    ])


_MEMORIES: dict[str, Callable[[random.Random], str]] = {
    "support": _support, "engineering": _engineering, "assistant": _assistant, "sales": _sales}

_QUERIES: dict[str, list[str]] = {
    "support": ["how does {p} like to be contacted", "refund for the {item}", "problems with the {item}",
                "which customers are frustrated", "warranty upgrades", "replacement shipped to {city}",
                "ticket about the {item} that {problem}"],
    "engineering": ["who is on call for the {c}", "incidents on the {c}", "what did we decide about "
                    "the {c} migration", "root cause of the latency spike", "how to restart the {c}",
                    "backend project status", "design review requests from {p}"],
    "assistant": ["when is {p}'s birthday", "gift ideas for {p}", "food allergies", "restaurant "
                  "booking in {city}", "flight to {city}", "what hobbies does the user have",
                  "passport renewal"],
    "sales": ["{co} budget and concerns", "deals expected to close in {month}", "who is the champion "
              "at {co}", "why did we lose deals", "demo requests", "renewals with a discount",
              "seats for the {plan} plan"],
}


def memory_text(rng: random.Random, theme: str) -> str:
    """One memory; now and then a longer note of a few related sentences."""
    make = _MEMORIES[theme]
    if rng.random() < 0.15:
        return " ".join(make(rng) for _ in range(rng.randint(2, 4)))
    return make(rng)


def query_text(rng: random.Random, theme: str) -> str:
    return rng.choice(_QUERIES[theme]).format(
        p=person(rng), item=rng.choice(PRODUCTS), city=rng.choice(CITIES), problem=rng.choice(PROBLEMS),
        c=rng.choice(COMPONENTS), co=rng.choice(COMPANIES), month=rng.choice(MONTHS),
        plan=rng.choice(PLANS))


def memory_item(rng: random.Random, theme: str, session_id: str | None = None) -> dict[str, Any]:
    """A store body's memory fields, as an agent would send them."""
    item: dict[str, Any] = {
        "content": memory_text(rng, theme),
        "importance": round(rng.betavariate(2, 3), 2),
        "memory_type": rng.choice(MEMORY_TYPES),
        "tags": [theme] + ([f"priority:{rng.choice(['low', 'high'])}"] if rng.random() < 0.3 else []),
        "metadata": {"source": rng.choice(["chat", "email", "meeting", "import"]), "loadtest": True},
        # Events from the last 90 days: recency and decay see a spread of ages.
        "event_time": int(time.time() - rng.uniform(0, 90 * 86_400)),
    }
    if session_id is not None:
        item["session_id"] = session_id
    return item


def recall_body(rng: random.Random, theme: str, namespace: str) -> dict[str, Any]:
    """Mostly plain recalls; some with the filters agents use (type, importance, time)."""
    body: dict[str, Any] = {"agent_id": namespace, "query": query_text(rng, theme),
                            "top_k": rng.choice([5, 5, 10, 10, 20])}
    roll = rng.random()
    if roll < 0.10:
        body["memory_type"] = rng.choice(["episodic", "semantic"])
    elif roll < 0.20:
        body["min_importance"] = 0.4
    elif roll < 0.25:
        body["since"] = int(time.time() - 30 * 86_400)
    return body


def summary_text(rng: random.Random, theme: str) -> str:
    return f"Session summary: {memory_text(rng, theme)}"
