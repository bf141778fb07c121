"""LoCoMo as the benchmark reads it (cluster/locomo.py): sessions, dates, photos, evidence, questions."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


# -- the data --------------------------------------------------------------------------------
def parse_date(text: str) -> datetime:
    """LoCoMo session dates, e.g. '1:56 pm on 8 May, 2023' (taken as UTC)."""
    cleaned = re.sub(r"\s+", " ", text.strip())
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y", "%I:%M %p on %d %B %Y"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"unparsed session date: {text!r}")


def photo_note(turn: dict[str, Any]) -> str:
    """A shared image as text: its caption (`blip_caption`), the only description a chat
    client would have. (`query` is the search that found the image; `img_url` is a link.)"""
    caption = turn.get("blip_caption")
    if not isinstance(caption, str) or not caption.strip():
        return ""
    caption = re.sub(r"^(a )?(photo|photograph|photography|picture|image) of\s+", "",
                     caption.strip(), flags=re.IGNORECASE)
    return f" [shares a photo of {caption}]"


def sessions_of(conv: dict[str, Any]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """(N, date text, turns) for every non-empty session_N, in order."""
    out = []
    for key, turns in conv.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(turns, list) and turns:
            n = int(m.group(1))
            out.append((n, conv.get(f"session_{n}_date_time", ""), turns))
    return sorted(out, key=lambda s: s[0])


def normalise_evidence(raw: list[Any], turns: set[str]) -> list[str]:
    """'D8:6; D9:17' → both; 'D:11:26' → 'D11:26'; 'D30:05' → 'D30:5'; ids naming no turn dropped."""
    gold: list[str] = []
    for item in raw or []:
        for token in re.split(r"[;,\s]+", str(item)):
            m = re.fullmatch(r"D:?(\d+):(\d+)", token.strip())
            if not m:
                continue
            dia = f"D{int(m.group(1))}:{int(m.group(2))}"
            if dia in turns and dia not in gold:
                gold.append(dia)
    return gold


def load_questions(convs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    questions, skipped = [], 0
    for conv in convs:
        turns = {t["dia_id"] for _, _, ts in sessions_of(conv["conversation"]) for t in ts}
        for i, qa in enumerate(conv["qa"]):
            gold = normalise_evidence(qa.get("evidence", []), turns)
            if not gold:
                skipped += 1
                continue
            questions.append({"sample_id": conv["sample_id"], "index": i, "question": qa["question"],
                              "category": qa.get("category"), "gold": gold,
                              "answer": qa.get("answer", qa.get("adversarial_answer"))})
    return questions, skipped
