"""The cross-encoder reranker, loaded from disk through the real CrossEncoder path (no Ray)."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.config import RerankerConfig
from models.rerankers import CrossEncoderReranker
from serve.clients import LocalRerankerClient
from tests.tiny_models import MAX_LENGTH

QUERY = "refund for order 4521"
PASSAGES = [
    "my refund for order 4521 was paid on monday",
    "the cat is on the bus",
    "invoice and receipt by email",
    "a red apple and a yellow lemon",
]


@pytest.fixture(scope="module")
def model_path(tiny_cross_encoder_path: Path) -> Path:
    return tiny_cross_encoder_path


@pytest.fixture(scope="module")
def reranker(model_path: Path) -> CrossEncoderReranker:
    # CPU float32 even where a GPU exists: the comparisons below are to 1e-4.
    cfg = RerankerConfig(model=str(model_path), device="cpu", precision="float32", max_batch_size=3)
    return CrossEncoderReranker(cfg)


def test_scores_one_float_per_passage_in_order(reranker: CrossEncoderReranker) -> None:
    scores = reranker.score(QUERY, PASSAGES)
    assert len(scores) == len(PASSAGES) and all(isinstance(s, float) for s in scores)
    assert len(set(scores)) == len(scores)  # random weights, but distinct passages differ
    # Each score belongs to its passage, whatever the order or the batch it was computed in.
    reversed_scores = reranker.score(QUERY, PASSAGES[::-1])
    assert reversed_scores[::-1] == pytest.approx(scores, rel=1e-4, abs=1e-5)
    one_by_one = [reranker.score(QUERY, [p])[0] for p in PASSAGES]
    assert one_by_one == pytest.approx(scores, rel=1e-4, abs=1e-5)
    assert reranker.score(QUERY, []) == []


def test_pairs_of_different_queries_score_as_alone(reranker: CrossEncoderReranker) -> None:
    mixed = reranker.score_pairs([("cat", PASSAGES[1]), (QUERY, PASSAGES[0]), ("cat", PASSAGES[3])])
    alone = [reranker.score("cat", [PASSAGES[1]])[0], reranker.score(QUERY, [PASSAGES[0]])[0],
             reranker.score("cat", [PASSAGES[3]])[0]]
    assert mixed == pytest.approx(alone, rel=1e-4, abs=1e-5)


def test_device_auto_picks_cuda_when_present(model_path: Path) -> None:
    import torch

    auto = CrossEncoderReranker(RerankerConfig(model=str(model_path)))
    assert auto.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert len(auto.score(QUERY, PASSAGES)) == len(PASSAGES)


def test_the_models_own_length_limit(reranker: CrossEncoderReranker) -> None:
    assert reranker.max_length == MAX_LENGTH  # from the model's position table
    # Longer inputs are truncated to fit, not refused.
    [score] = reranker.score(QUERY, [" ".join(["refund order"] * 200)])
    assert score == score  # not NaN


def test_a_configured_max_length_truncates_earlier(model_path: Path) -> None:
    short = CrossEncoderReranker(RerankerConfig(model=str(model_path), device="cpu", precision="float32",
                                                max_length=8))
    assert short.max_length == 8
    full = CrossEncoderReranker(RerankerConfig(model=str(model_path), device="cpu", precision="float32"))
    # Only the first 8 tokens count: passages that differ later score the same.
    same_start = ["the cat is on the bus at night", "the cat is on the bus with a fox"]
    a, b = short.score(QUERY, same_start)
    assert a == pytest.approx(b)
    c, d = full.score(QUERY, same_start)
    assert c != pytest.approx(d)


def test_a_missing_model_says_how_to_provide_weights(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(OSError, match="reranker.model") as info:
        CrossEncoderReranker(RerankerConfig(model=str(missing)))
    assert str(missing) in str(info.value) and "save_pretrained" in str(info.value)
    with pytest.raises(OSError, match="Hugging Face cache"):
        CrossEncoderReranker(RerankerConfig(model="no-such-org/no-such-cross-encoder"))


def test_no_model_configured_is_refused() -> None:
    with pytest.raises(ValueError, match="reranker.model"):
        CrossEncoderReranker(RerankerConfig())


async def test_local_client_gives_the_rerankers_scores(reranker: CrossEncoderReranker) -> None:
    client = LocalRerankerClient(reranker)
    assert await client.score(QUERY, PASSAGES) == pytest.approx(reranker.score(QUERY, PASSAGES))
    assert await client.score(QUERY, []) == []


def test_bfloat16_is_opt_in_and_scores_move_by_rounding(model_path: Path, reranker: CrossEncoderReranker) -> None:
    assert reranker.precision == "float32"
    assert CrossEncoderReranker(RerankerConfig(model=str(model_path), device="cpu")).precision == "float32"
    half = CrossEncoderReranker(RerankerConfig(model=str(model_path), device="cpu", precision="bfloat16"))
    assert half.score(QUERY, PASSAGES) == pytest.approx(reranker.score(QUERY, PASSAGES), abs=0.25)
