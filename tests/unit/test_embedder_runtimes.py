"""The embedder's runtimes: ONNX Runtime (on CPU, for small passes by default) gives torch
float32's vectors, for the bundled MiniLM and for a model the tests build themselves;
choosing is configuration."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.config import EmbedderConfig
from models.embedders import (
    MIN_TEXTS_PER_PART,
    SMALL_PASS,
    SentenceTransformerEmbedder,
    build_embedder,
    cpu_has_native_bf16,
    pick_runtime,
    split_for_passes,
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


def test_torch_passes_give_sentence_transformers_own_vectors(minilm_torch: SentenceTransformerEmbedder) -> None:
    """The embedder runs the model itself (so that passes can share it across threads), in
    batches smaller than the input here: still SentenceTransformer.encode's vectors, in order."""
    minilm_torch._batch_size = 3
    try:
        got = minilm_torch.embed(TEXTS)
    finally:
        minilm_torch._batch_size = 64
    reference = minilm_torch._model.encode(TEXTS, normalize_embeddings=True).tolist()
    assert min(cosines(got, reference)) > 0.99999


@pytest.mark.parametrize("runtime", ["auto", "torch"])
def test_passes_on_several_threads_at_once_give_the_vectors_of_one_at_a_time(runtime: str) -> None:
    """The Embedder runs up to parallel_passes passes at once (2 on CPU by default) on one
    model, the tokenizer taking turns: auto mixes small passes (ONNX Runtime) with large
    ones (torch bfloat16 where the CPU has it, else ONNX Runtime); torch runs them all."""
    embedder = build_embedder(EmbedderConfig(device="cpu", runtime=runtime, max_batch_size=4))
    assert embedder.parallel_passes == 2
    passes = [[f"{text} (note {k})" for text in TEXTS] * 3 if k % 2 else [f"query {k}: {TEXTS[k % 4]}"]
              for k in range(12)]
    one_at_a_time = [embedder.embed(texts) for texts in passes]
    with ThreadPoolExecutor(max_workers=4) as pool:
        side_by_side = list(pool.map(embedder.embed, passes))
    for alone, together in zip(one_at_a_time, side_by_side):
        assert len(alone) == len(together)
        assert min(cosines(alone, together)) > 0.99999


def test_parallel_passes_is_configuration() -> None:
    assert build_embedder(EmbedderConfig(device="cpu", runtime="torch", parallel_passes=3)).parallel_passes == 3
    with pytest.raises(ValidationError, match="parallel_passes"):
        EmbedderConfig(parallel_passes=0)
    with pytest.raises(ValidationError, match="vLLM batches"):
        EmbedderConfig(kind="vllm", parallel_passes=2)


def test_the_embedder_deployment_splits_a_batch_over_its_passes_in_order() -> None:
    """embed_many, as Serve calls it (the class itself, no Ray): 40 texts in two parts of 20
    on two threads, answered in the caller's order."""
    import asyncio

    from serve.deployments import EmbedderDeployment

    deployment = EmbedderDeployment.func_or_class({"device": "cpu", "max_batch_size": 8})
    texts = [f"note {i}: order #{4500 + i} shipped to locker {i % 7}" for i in range(40)]
    got = asyncio.run(deployment.embed_many(texts))
    assert len(got) == 40 and min(cosines(got, deployment.model.embed(texts))) > 0.99999
    assert asyncio.run(deployment.embed_many([])) == []


def test_bfloat16_torch_passes_give_encodes_vectors() -> None:
    bf16 = build_embedder(EmbedderConfig(device="cpu", runtime="torch", precision="bfloat16"))
    reference = bf16._model.encode(TEXTS, normalize_embeddings=True, convert_to_tensor=True).float().tolist()
    assert min(cosines(bf16.embed(TEXTS), reference)) > 0.9999


def test_a_models_default_prompt_and_truncate_dim_apply_as_in_encode() -> None:
    """A model whose config names a default prompt gets it on every pass, small (ONNX
    Runtime) and large (torch), as encode adds it; truncate_dim cuts the vectors as encode
    does and as the embedder's dim counts."""
    embedder = build_embedder(EmbedderConfig(device="cpu", precision="float32"))
    unprompted = embedder.embed(TEXTS)
    embedder._model.prompts = {"passage": "passage: "}
    embedder._model.default_prompt_name = "passage"
    reference = embedder._model.encode(TEXTS, normalize_embeddings=True).tolist()
    assert min(cosines(embedder.embed(TEXTS), reference)) > 0.99999  # one pass of 4
    assert cosines(embedder.embed(TEXTS[:1]), reference[:1])[0] > 0.99999  # small pass
    assert min(cosines(embedder.embed(TEXTS), unprompted)) < 0.999  # the prompt changed them
    embedder._model.truncate_dim = 64
    short = embedder.embed(TEXTS)
    assert len(short[0]) == 64
    assert min(cosines(short, embedder._model.encode(TEXTS, normalize_embeddings=True).tolist())) > 0.99999


def test_a_batch_splits_over_parallel_passes_in_order_and_never_into_small_parts() -> None:
    texts = [f"t{i}" for i in range(100)]
    halves = split_for_passes(texts, 2)
    assert [len(p) for p in halves] == [50, 50] and sum(halves, []) == texts
    assert [len(p) for p in split_for_passes(texts[:35], 3)] == [18, 17]  # not three under 16
    assert split_for_passes(texts[:2 * MIN_TEXTS_PER_PART - 1], 2) == [texts[:2 * MIN_TEXTS_PER_PART - 1]]
    assert split_for_passes(texts, 1) == [texts]
    assert split_for_passes([], 2) == [[]]
