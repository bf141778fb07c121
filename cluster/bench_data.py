"""The benchmarks' synthetic memories and queries, and their latency percentiles."""
from __future__ import annotations

import random
import statistics

PEOPLE = ["Jane Doe", "Omar Haddad", "Li Wei", "Ana Souza", "Tom Becker", "Priya Nair", "Kofi Mensah"]
THINGS = ["laptop", "espresso machine", "running shoes", "standing desk", "headphones", "router",
          "winter jacket", "phone case", "monitor", "backpack", "blender", "e-reader"]
EVENTS = ["asked about the delivery date of", "reported a cracked screen on", "requested a refund for",
          "prefers email contact about", "upgraded the warranty of", "left a five star review of",
          "could not log in to track", "changed the shipping address for", "wants to exchange"]
TOPICS = ["backend project status", "quarterly planning", "database migration", "onboarding checklist",
          "incident postmortem", "pricing experiment", "mobile release", "security review"]


def synthetic(rng: random.Random, i: int) -> str:
    if i % 3:
        return (f"{rng.choice(PEOPLE)} {rng.choice(EVENTS)} the {rng.choice(THINGS)} "
                f"(order #{rng.randint(1000, 99999)}).")
    return (f"Meeting note on {rng.choice(TOPICS)}: decided to {rng.choice(['ship', 'delay', 'review', 'split'])} "
            f"the {rng.choice(['API', 'dashboard', 'billing', 'search'])} work, owner {rng.choice(PEOPLE)}.")


def query(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"what did {rng.choice(PEOPLE)} say about the {rng.choice(THINGS)}"
    return f"{rng.choice(TOPICS)} decisions"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s]
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99), "mean": statistics.mean(ms)}
