"""Cross-encoder rerankers (sentence-transformers `CrossEncoder`)."""
from __future__ import annotations

import os
from collections.abc import Sequence

from models.config import RerankerConfig
from models.embedders import pick_device


class CrossEncoderReranker:
    def __init__(self, cfg: RerankerConfig) -> None:
        if not cfg.model:
            raise ValueError("no reranker model configured (reranker.model)")
        import torch

        torch.set_num_threads(cfg.torch_threads)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self.device = pick_device(cfg.device)
        self.name = cfg.model
        self._model = CrossEncoder(cfg.model, device=self.device)
        self._batch_size = cfg.max_batch_size

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage to the query (higher is better), in order."""
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], batch_size=self._batch_size,
                                     show_progress_bar=False)
        return [float(s) for s in scores]
