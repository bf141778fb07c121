"""What a memory's sentences are, and how their vectors travel with it."""
from __future__ import annotations

import numpy as np
import pytest

from models.sentences import MAX_SENTENCES, leading_label, regroup, sentences, texts_to_embed
from shards.indexes.exact import split_stacks, stack_scores
from shards.records.formats import pack_vectors


def test_one_sentence_gets_no_extra_vectors() -> None:
    assert sentences("Refund approved for #4521 after photos were reviewed") == []
    assert sentences("Wow! Thanks.") == []  # short pieces join: still one sentence


def test_sentences_split_at_ends_and_line_breaks_and_short_pieces_join() -> None:
    text = "The order arrived cracked. Wow! Refund approved after review.\nShip a new one today"
    assert sentences(text) == ["The order arrived cracked. Wow!", "Refund approved after review.",
                               "Ship a new one today"]


def test_a_leading_label_is_carried_onto_every_sentence() -> None:
    text = "Melanie: We went camping last week. The kids loved the lake near the site."
    assert sentences(text) == ["Melanie: We went camping last week.",
                               "Melanie: The kids loved the lake near the site."]
    assert leading_label("Support agent: hi there") == "Support agent"
    assert leading_label("https://example.com: a page") is None  # no space after the colon
    assert leading_label("Four words long here: no") is None
    assert leading_label("No label at all") is None


def test_a_long_memory_is_bounded() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    got = sentences(text)
    assert len(got) == MAX_SENTENCES
    assert got[-1].endswith("Sentence number 39 is here.")


def test_texts_to_embed_and_regroup_round_trip() -> None:
    contents = ["One sentence only here", "First part is here. Second part is here."]
    texts, counts = texts_to_embed(contents, per_sentence=True)
    # A memory of several sentences is embedded by its sentences only.
    assert texts == [contents[0], "First part is here.", "Second part is here."]
    assert counts == [1, 2]
    vectors = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    [(one, none), (mean, parts)] = regroup(vectors, counts)
    assert one == (1.0, 0.0) and none == ()
    assert parts == ((0.0, 1.0), (1.0, 0.0))
    assert mean == pytest.approx((2 ** -0.5, 2 ** -0.5))  # their normalised mean
    assert texts_to_embed(contents, per_sentence=False) == (contents, [1, 1])
    with pytest.raises(ValueError, match="2 vectors for 3 texts"):
        regroup(vectors[:2], counts)


def test_vector_stacks_split_and_score_by_the_best_sentence() -> None:
    dim = 2
    blobs = [pack_vectors((1.0, 0.0), ()),
             pack_vectors((0.0, 1.0), ((1.0, 0.0), (0.6, 0.8))),
             pack_vectors((0.6, 0.8), ())]
    whole, sent, owners = split_stacks(blobs, dim)
    assert whole.shape == (3, 2) and sent.shape == (2, 2) and owners.tolist() == [1, 1]
    query = np.array([1.0, 0.0], dtype=np.float32)
    scores = stack_scores(whole @ query, sent @ query, owners)
    # memory 0: its whole matches (1.0); memory 1: whole 0, best sentence 1 → 0.3·0 + 0.7·1
    assert scores.tolist() == pytest.approx([1.0, 0.7, 0.6])
