"""The benchmark's scores (cluster/locomo.py): Recall@k, MRR, nDCG@10, and their table by category."""
from __future__ import annotations

import math
import statistics
from typing import Any

from cluster.locomo_data import CATEGORIES

KS = (1, 5, 10, 20)
TOP_K = 20


# -- metrics ---------------------------------------------------------------------------------
def score(gold: list[str], returned: list[str]) -> dict[str, float]:
    g = set(gold)
    seen: set[str] = set()
    ranked = []  # first occurrence of each id only
    for d in returned[:TOP_K]:
        if d not in seen:
            seen.add(d)
            ranked.append(d)
        else:
            ranked.append("?dup")
    out = {f"R@{k}": len(g & set(ranked[:k])) / len(g) for k in KS}
    first = next((i for i, d in enumerate(ranked, 1) if d in g), None)
    out["MRR"] = 1 / first if first else 0.0
    dcg = sum(1 / math.log2(i + 1) for i, d in enumerate(ranked[:10], 1) if d in g)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(g), 10) + 1))
    out["nDCG@10"] = dcg / idcg
    out["rank"] = first or 0
    return out


METRICS = [f"R@{k}" for k in KS] + ["MRR", "nDCG@10"]


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows)}
    for m in METRICS + ["R@20+ctx"]:
        out[m] = statistics.mean(r["metrics"][m] for r in rows) if rows else float("nan")
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def groups(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = [("overall (1-4)", aggregate([r for r in rows if r["category"] in (1, 2, 3, 4)]))]
    for cat in (1, 2, 3, 4, 5):
        out.append((f"cat{cat} {CATEGORIES[cat]}", aggregate([r for r in rows if r["category"] == cat])))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| questions | n | " + " | ".join(METRICS) + " |", "|---|---:|" + "---:|" * len(METRICS)]
    for name, agg in groups(rows):
        cells = " | ".join("–" if not agg["n"] else f"{agg[m]:.3f}" for m in METRICS)
        lines.append(f"| {name} | {agg['n']} | {cells} |")
    return "\n".join(lines)
