"""Benchmark (not a test): embeddings/s and rerank latency on the GPU (or the CPU, to check it runs).

    python -m cluster.gpu_bench [--device cuda] [--texts 2048] [--batch 256]

Measures, through Engram's own loading code (models/embedders.py, models/rerankers.py):
- embeddings/s for all-MiniLM-L6-v2 (the bundled weights) and for a bge-large-sized model
  (BERT, 24 layers, hidden 1024: bge-large's shape, with RANDOM weights, since no weights
  can be downloaded here; throughput depends on the shape, not on the values);
- rerank latency for one recall's 50 candidates with a MiniLM-L6-sized cross-encoder (random
  weights, same reason), p50/p95 over repeated calls.
The random models are built once into a temp folder and loaded from disk like real ones.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from cluster.bench_data import synthetic


def build_large_embedder(directory: Path) -> Path:
    """A sentence-transformers folder: MiniLM's tokenizer and pooling, a bge-large-shaped BERT."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel

    from models.embedders import resolve_model_path

    model = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=model.tokenizer.vocab_size, hidden_size=1024, num_hidden_layers=24,
                        num_attention_heads=16, intermediate_size=4096, max_position_embeddings=512)
    transformer, pooling = model[0], model[1]
    # sentence-transformers 6 keeps the network as `model` (auto_model is a read-only alias);
    # older releases as `auto_model`. The pooling layer declares its width under either name.
    setattr(transformer, "model" if "model" in transformer._modules else "auto_model", BertModel(config).eval())  # type: ignore[no-untyped-call]
    for width in ("embedding_dimension", "word_embedding_dimension"):
        if hasattr(pooling, width):
            setattr(pooling, width, 1024)
    model.save(str(directory))
    return directory


def build_cross_encoder(directory: Path) -> Path:
    """A MiniLM-L6-shaped cross-encoder (6 layers, hidden 384) with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from models.embedders import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=384, num_hidden_layers=6,
                        num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512,
                        num_labels=1)  # type: ignore[call-arg]  # a PretrainedConfig kwarg
    BertForSequenceClassification(config).eval().save_pretrained(directory)  # type: ignore[no-untyped-call]
    tokenizer.save_pretrained(directory)
    return directory


def embeddings_per_s(model: str, device: str, texts: list[str], batch: int) -> tuple[float, str, int]:
    from models.config import EmbedderConfig
    from models.embedders import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(EmbedderConfig.model_validate(
        {"model": model, "device": device, "max_batch_size": batch}))
    embedder.embed(texts[:batch])  # warm-up: kernels, allocator
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start), embedder.precision, embedder.dim


def rerank_latency(model: str, device: str, runs: int) -> tuple[float, float, str]:
    from models.config import RerankerConfig
    from models.rerankers import CrossEncoderReranker

    reranker = CrossEncoderReranker(RerankerConfig.model_validate(
        {"model": model, "device": device, "max_batch_size": 64}))
    rng = random.Random(1)
    pairs = [("what did Jane say about the refund for her laptop", synthetic(rng, i)) for i in range(50)]
    for _ in range(3):
        reranker.score_pairs(pairs)
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        reranker.score_pairs(pairs)
        ms.append((time.perf_counter() - start) * 1000)
    ordered = sorted(ms)
    return statistics.median(ms), ordered[math.ceil(0.95 * len(ordered)) - 1], reranker.precision


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rerank-runs", type=int, default=50)
    args = parser.parse_args(argv)

    rng = random.Random(7)
    texts = [synthetic(rng, i) for i in range(args.texts)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="engram-gpu-bench-") as tmp:
        large = build_large_embedder(Path(tmp) / "bge-large-shaped")
        cross = build_cross_encoder(Path(tmp) / "cross-encoder-minilm-shaped")
        for label, model in (("all-MiniLM-L6-v2 (bundled weights)", "all-MiniLM-L6-v2"),
                             ("bge-large-shaped BERT-24x1024 (random weights)", str(large))):
            rate, precision, dim = embeddings_per_s(model, args.device, texts, args.batch)
            rows.append((f"embed {label}, {dim}-d, {precision}, batch {args.batch}", f"{rate:,.0f} texts/s"))
        p50, p95, precision = rerank_latency(str(cross), args.device, args.rerank_runs)
        rows.append((f"rerank 50 candidates, MiniLM-L6-shaped cross-encoder (random weights), {precision}",
                     f"p50 {p50:.1f} / p95 {p95:.1f} ms"))
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} torch thread(s)"
    print(f"\nGPU benchmark on {name} ({args.texts} texts of ~15 words)\n")
    print("| measurement | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
