"""Typed model configuration (one part of Engram's config tree)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: Literal["sentence-transformers", "vllm"] = "sentence-transformers"
    # A name (the bundled all-MiniLM-L6-v2, or a hub id already in the local cache) or a path.
    model: str = DEFAULT_EMBEDDING_MODEL
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Weights' number format. auto: float16 on CUDA; bfloat16 on a CPU that computes it natively
    # (AVX512-BF16 or AMX: a lone query is weight-bandwidth bound, so half the bytes is ~30 %
    # less latency and ~2x batch throughput; vectors stay within cosine 0.996 of float32's);
    # float32 on other CPUs, where bfloat16 would be emulated and slower.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # What runs the transformer. auto, on CPU: ONNX Runtime (models/onnx_transformer.py,
    # exported at start from the loaded model, float32 vectors) for passes of up to 3 texts
    # (a query, a lone store: ~25-40 % faster than torch here), torch in `precision` for
    # larger passes where that is bfloat16 (faster there), ONNX Runtime for all where it is
    # float32. On CUDA, or with precision float16: torch. onnxruntime: every pass, float32,
    # CPU only. torch: every pass.
    runtime: Literal["auto", "torch", "onnxruntime"] = "auto"
    # One thread per replica (torch's, or ONNX Runtime's): two replicas with two threads
    # each collapse on 2 cores.
    torch_threads: int = Field(1, ge=1)
    max_batch_size: int = Field(64, ge=1)
    # Forward passes one replica runs at once, each on its own thread with torch_threads
    # threads: a batch store's texts are split over them, and batches from several clients
    # embed side by side (lone texts share one batched pass at a time). None: 2 on CPU,
    # where a pass keeps torch_threads cores busy, so a batch store used only one of the 2
    # cores (100k memories, 2-core machine, one run each: batch store 301 -> 462 memories/s
    # with 1 client, 331 -> 492 with 2; 63 % -> 88 % and 70 % -> 94 % of one pass's raw
    # rate); 1 on CUDA, where larger batches, not passes side by side, fill the device.
    # Raise it with num_cpus on a CPU node with more cores. vLLM batches itself: unset there.
    parallel_passes: int | None = Field(None, ge=1)
    # 0: a lone query is embedded at once (@serve.batch otherwise waits the whole timeout for
    # company: +6 ms p50 at 1 client); concurrent ones still share a pass, since they queue
    # while the previous pass runs.
    batch_wait_timeout_s: float = Field(0.0, ge=0)
    max_seq_length: int | None = Field(None, ge=8)
    # Some models want an instruction before queries (bge: "Represent this sentence...").
    query_prefix: str = ""
    # Besides each memory's own vector, one per sentence of a memory of several
    # (models/sentences.py): the vector channel alone went from R@10 0.513 to 0.625 on LoCoMo
    # dev, for about twice the tokens embedded per store. False: one vector per memory.
    sentence_vectors: bool = True

    @model_validator(mode="after")
    def _onnxruntime_on_cpu(self) -> EmbedderConfig:
        if self.runtime == "onnxruntime" and self.device == "cuda":
            raise ValueError("runtime: onnxruntime runs on CPU only: set device: cpu, or runtime: torch")
        return self

    @model_validator(mode="after")
    def _one_vllm_engine_call_at_a_time(self) -> EmbedderConfig:
        if self.kind == "vllm" and self.parallel_passes not in (None, 1):
            raise ValueError("parallel_passes: vLLM batches the texts it is given itself and is "
                             "not called from two threads; leave parallel_passes unset for kind vllm")
        return self


class RerankerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # A local folder (CrossEncoder.save_pretrained) or a hub id already in the local cache;
    # None: reranking is off and recall says so.
    model: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when present
    # auto: float16 on CUDA, float32 on CPU. bfloat16 on a CPU that computes it natively
    # halves the time (50 candidates: 480 -> 280 ms on one core here) but moves logits by
    # ~0.1, which can swap close passages: opt in where that is measured to be harmless.
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    torch_threads: int = Field(1, ge=1)
    # Pairs per forward pass; the Reranker fills passes with pairs from concurrent recalls.
    max_batch_size: int = Field(8, ge=1)
    batch_wait_timeout_s: float = Field(0.005, ge=0)
    # Most passages one recall may send to be reranked (the fused top-M).
    max_candidates: int = Field(50, ge=1)
    # Tokens per (query, passage) pair; None: the model's own limit (its position table).
    max_length: int | None = Field(None, ge=8)
