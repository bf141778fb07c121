"""Split a memory into the sentences that get vectors of their own.

One vector for a whole memory averages its sentences: a question about one of them meets
that sentence diluted by the rest (and a memory longer than the model's window is cut off).
So a memory of several sentences also gets one vector per sentence, and vector search
scores a memory by its best sentence as well as by its whole (max-sim over passages, as
in passage-level retrieval); its whole vector is the mean of its sentences' (regroup).
On LoCoMo dev this took the vector channel alone from R@10 0.513 to 0.643 (docs/benchmarks.md).

A sentence cut out of its memory loses who said it: "Melanie: We went camping. The kids
loved the lake." gives "The kids loved the lake." with no Melanie in it. So a memory that
opens with a short label (a speaker's "Name:", a "Title:") carries that label onto each of
its sentences, as chunk headers do in document retrieval. Without it the split gained
almost nothing on LoCoMo dev (0.513 to 0.530).

Pure text rules, no model: the same split at store and in the backfill job.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# A sentence ends at . ! ? or … followed by space, or at a line break. Abbreviations
# ("e.g. this") split wrongly now and then; a wrong split costs a slightly worse extra
# vector, never a lost one (the whole memory keeps its own vector).
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\s*\n+\s*")
MIN_WORDS = 3  # shorter pieces ("Wow!", "Thanks.") join the sentence before them
MAX_SENTENCES = 16  # bounds the cost of one very long memory
# "Name: …" or "Some Title: …" at the very start: at most three words before the colon.
_LABEL = re.compile(r"^\s*([^\s:][^:\n]{0,40}?):\s+(?=\S)")
MAX_LABEL_WORDS = 3


def sentences(text: str, max_sentences: int = MAX_SENTENCES) -> list[str]:
    """The memory's sentences, or [] when it is one sentence (its own vector covers it).

    Pieces under MIN_WORDS words are merged into a neighbour; past `max_sentences` the
    tail is merged into the last one.
    """
    pieces = [p.strip() for p in _BOUNDARY.split(text) if p and p.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1].split()) < MIN_WORDS:
            merged[-1] = f"{merged[-1]} {piece}"
        elif merged and len(piece.split()) < MIN_WORDS:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    if len(merged) > max_sentences:
        merged = merged[:max_sentences - 1] + [" ".join(merged[max_sentences - 1:])]
    if len(merged) <= 1:
        return []
    label = leading_label(text)
    if label:  # the first sentence holds it already
        merged = merged[:1] + [f"{label}: {s}" for s in merged[1:]]
    return merged


def leading_label(text: str) -> str | None:
    """"Melanie" for "Melanie: hi there"; None when the text does not open with a short label."""
    m = _LABEL.match(text)
    if m is None or len(m.group(1).split()) > MAX_LABEL_WORDS:
        return None
    return m.group(1).strip()


def texts_to_embed(contents: Sequence[str], per_sentence: bool,
                   max_sentences: int = MAX_SENTENCES) -> tuple[list[str], list[int]]:
    """Every text to embed for these memories, and how many each memory has: its content
    alone (1), or its sentences (2 or more). One embedder call for a whole batch."""
    texts: list[str] = []
    counts: list[int] = []
    for content in contents:
        parts = (sentences(content, max_sentences) if per_sentence else []) or [content]
        texts.extend(parts)
        counts.append(len(parts))
    return texts, counts


def regroup(vectors: Sequence[Sequence[float]], counts: Sequence[int]
            ) -> list[tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]]:
    """(the memory's vector, its sentences' vectors) per memory, from texts_to_embed's order.

    A memory of several sentences is not embedded whole: its vector is the normalised mean
    of its sentences'. That costs no second pass over its words, reaches past the model's
    window, and measured better than embedding the whole (LoCoMo dev, vector channel alone,
    with sentence scoring: R@10 0.643 against 0.625).
    """
    if len(vectors) != sum(counts):
        raise ValueError(f"{len(vectors)} vectors for {sum(counts)} texts")
    out: list[tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]] = []
    at = 0
    for n in counts:
        group = vectors[at:at + n]
        at += n
        if n == 1:
            out.append((tuple(float(x) for x in group[0]), ()))
            continue
        mean = np.asarray(group, dtype=np.float64).mean(axis=0)
        mean /= float(np.linalg.norm(mean)) or 1.0
        out.append((tuple(mean.tolist()), tuple(tuple(float(x) for x in v) for v in group)))
    return out
