"""The embedder's runtimes: ONNX Runtime (on CPU, for small passes by default) gives torch
float32's vectors, for the bundled MiniLM and for a model the tests build themselves;
choosing is configuration."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from models.config import EmbedderConfig
from models.embedders import (
    SMALL_PASS,
    SentenceTransformerEmbedder,
    build_embedder,
    cpu_has_native_bf16,
    pick_runtime,
)
from tests.tiny_models import tiny_sentence_model

TEXTS = [
    "Jane Doe asked about the delivery date of order #4521.",
    "ok",
    "The user prefers dark mode and weekly summaries on Monday mornings. " * 40,  # truncated
    "Meeting note on quarterly planning: decided to ship the billing work.",
]


def cosines(a: list[list[float]], b: list[list[float]]) -> list[float]:
    return [sum(x * y for x, y in zip(u, v)) for u, v in zip(a, b)]


@pytest.fixture(scope="module")
def minilm_torch() -> SentenceTransformerEmbedder:
    return build_embedder(EmbedderConfig(runtime="torch", precision="float32", device="cpu"))


def test_small_passes_run_on_onnxruntime_by_default(minilm_torch: SentenceTransformerEmbedder) -> None:
    auto = build_embedder(EmbedderConfig(device="cpu"))
    expected = minilm_torch.embed(TEXTS)
    if cpu_has_native_bf16():  # larger passes in torch bfloat16, faster there
        assert (auto.runtime, auto.precision) == ("onnxruntime+torch", "bfloat16")
    else:
        assert (auto.runtime, auto.precision) == ("onnxruntime", "float32")
    for i, text in enumerate(TEXTS):  # a query or a lone store: float32 vectors
        assert cosines(auto.embed([text]), [expected[i]])[0] > 0.9999
    assert min(cosines(auto.embed(TEXTS[:SMALL_PASS]), expected)) > 0.9999
    assert min(cosines(auto.embed(TEXTS), expected)) > 0.99  # bfloat16 rounding at most
    assert auto.embed([]) == []


def test_onnxruntime_alone_matches_torch_float32_in_order(minilm_torch: SentenceTransformerEmbedder) -> None:
    onnx = build_embedder(EmbedderConfig(device="cpu", runtime="onnxruntime", max_batch_size=2))
    assert (onnx.runtime, onnx.precision) == ("onnxruntime", "float32")
    # Batches smaller than the input, sorted by length inside: still in the caller's order.
    got = onnx.embed(TEXTS)
    assert min(cosines(got, minilm_torch.embed(TEXTS))) > 0.9999
    assert all(abs(sum(x * x for x in v) - 1) < 1e-5 for v in got)


def test_a_model_of_another_shape_exports_too(tmp_path: Path) -> None:
    path = tiny_sentence_model(tmp_path / "tiny")
    onnx = build_embedder(EmbedderConfig(model=str(path), device="cpu", runtime="onnxruntime"))
    torch_ = build_embedder(EmbedderConfig(model=str(path), device="cpu", runtime="torch"))
    assert onnx.runtime == "onnxruntime" and onnx.dim == torch_.dim == 32
    texts = ["red apple on monday", "the cat and the dog", "refund"]
    assert min(cosines(onnx.embed(texts), torch_.embed(texts))) > 0.9999


def test_choosing_the_runtime_is_configuration() -> None:
    assert pick_runtime("auto", "cuda", "auto") == "torch"
    assert pick_runtime("auto", "cpu", "float16") == "torch"
    assert pick_runtime("auto", "cpu", "float32") == "onnxruntime"  # faster at every size
    assert pick_runtime("auto", "cpu", "bfloat16") == "onnxruntime+torch"
    assert pick_runtime("torch", "cpu", "auto") == "torch"
    plain = build_embedder(EmbedderConfig(device="cpu", runtime="torch", precision="bfloat16"))
    assert (plain.runtime, plain.precision) == ("torch", "bfloat16")
    with pytest.raises(ValidationError, match="CPU only"):
        EmbedderConfig(runtime="onnxruntime", device="cuda")


def test_layers_after_pooling_stay_float32_beside_a_bfloat16_model(tmp_path: Path) -> None:
    """A Dense layer after the pooling: small passes (ONNX Runtime, float32 token embeddings)
    and large ones (torch, in bfloat16 where the CPU has it) both go through it."""
    path = tiny_sentence_model(tmp_path / "dense", dense=16)
    auto = build_embedder(EmbedderConfig(model=str(path), device="cpu", precision="bfloat16"))
    reference = build_embedder(EmbedderConfig(model=str(path), device="cpu", runtime="torch",
                                              precision="float32"))
    assert auto.runtime == "onnxruntime+torch" and auto.dim == 16
    texts = ["red apple on monday", "the cat and the dog", "refund", "blue car", "owl at night"]
    assert cosines(auto.embed(texts[:1]), reference.embed(texts[:1]))[0] > 0.9999
    assert min(cosines(auto.embed(texts), reference.embed(texts))) > 0.98


def test_a_model_that_does_not_export_stays_on_torch_unless_onnxruntime_was_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import models.embedders

    def no_export(*args: object) -> None:  # stands in for an exporter failure (not under test)
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(models.embedders, "OnnxTransformer", no_export)
    fallback = build_embedder(EmbedderConfig(device="cpu"))
    assert fallback.runtime == "torch" and len(fallback.embed(["still embeds"])[0]) == 384
    with pytest.raises(RuntimeError, match="unsupported operator.*runtime: torch"):
        build_embedder(EmbedderConfig(device="cpu", runtime="onnxruntime"))
    with pytest.raises(ValueError, match="CPU only"):
        pick_runtime("onnxruntime", "cuda", "auto")  # device auto that resolved to a GPU
