"""CUDA paths of the embedder (and, with issue 3, the reranker): run where a GPU exists."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_sentence_transformer_embeds_on_cuda() -> None:
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbedderConfig(device="cuda"))
    assert embedder.device == "cuda"
    [a, b, c] = embedder.embed(["refund for order 4521", "order 4521 refund", "the weather is nice"])
    cos = lambda x, y: sum(p * q for p, q in zip(x, y))  # noqa: E731 - unit vectors
    assert len(a) == 384 and cos(a, b) > cos(a, c)
