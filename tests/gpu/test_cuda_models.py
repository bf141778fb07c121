"""CUDA paths of the embedder and the reranker: run where a GPU exists (skipped elsewhere)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_sentence_transformer_embeds_on_cuda() -> None:
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbedderConfig(device="cuda"))
    assert embedder.device == "cuda" and embedder.parallel_passes == 1  # batches fill a GPU
    texts = ["refund for order 4521", "order 4521 refund", "the weather is nice"]
    [a, b, c] = embedder.embed(texts)
    cos = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731 - unit vectors
    assert len(a) == 384 and cos(a, b) > cos(a, c)
    # The embedder runs the model itself: still SentenceTransformer.encode's vectors.
    reference = embedder._model.encode(texts, normalize_embeddings=True).tolist()
    assert min(cos(x, y) for x, y in zip([a, b, c], reference)) > 0.999


def test_embedder_runs_in_half_precision_on_cuda_and_stays_unit_length() -> None:
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbedderConfig(device="cuda"))
    assert embedder.precision == "float16"  # auto on CUDA
    [v] = embedder.embed(["refund for order 4521"])
    assert abs(sum(x * x for x in v) - 1.0) < 1e-4  # normalised in float32


def test_cross_encoder_reranks_on_cuda(tiny_cross_encoder_path) -> None:  # type: ignore[no-untyped-def]
    from models.config import RerankerConfig
    from models.rerankers import CrossEncoderReranker

    reranker = CrossEncoderReranker(RerankerConfig(model=str(tiny_cross_encoder_path), device="cuda"))
    assert reranker.device == "cuda"
    pairs = [("refund order", "refund for order 4"), ("refund order", "the cat and the dog")]
    on_gpu = reranker.score_pairs(pairs)
    on_cpu = CrossEncoderReranker(RerankerConfig(model=str(tiny_cross_encoder_path), device="cpu")).score_pairs(pairs)
    assert len(on_gpu) == 2 and all(abs(g - c) < 0.05 for g, c in zip(on_gpu, on_cpu))
