"""vLLM embedder (`task="embed"`) for GPU nodes; vLLM is an optional install."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.config import EmbedderConfig
from models.embedders import resolve_model_path


class VLLMEmbedder:
    def __init__(self, cfg: EmbedderConfig) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(
                "embedder kind 'vllm' needs vLLM on the GPU nodes (pip install vllm); "
                "use kind 'sentence-transformers' elsewhere"
            ) from exc
        self._llm: Any = LLM(model=resolve_model_path(cfg.model), task="embed", enforce_eager=False)
        self._query_prefix = cfg.query_prefix
        probe = self._llm.embed(["probe"])
        self.dim = len(probe[0].outputs.embedding)
        self.name = cfg.model
        self.device = "cuda"
        self.parallel_passes = 1  # the engine batches what it is given (EmbedderConfig refuses more)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import math

        out = []
        for result in self._llm.embed(list(texts)):
            v = list(map(float, result.outputs.embedding))
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            out.append([x / norm for x in v])
        return out

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed([self._query_prefix + t for t in texts])
