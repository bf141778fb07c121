"""Cross-encoder rerankers (sentence-transformers `CrossEncoder`) from a configured name or path."""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from models.config import RerankerConfig
from models.embedders import pick_device

log = logging.getLogger(__name__)


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a single-logit cross-encoder.

    A score is the model's raw logit: unbounded, higher is better, no sigmoid. The model's own
    saved activation is overridden (ms-marco models save Identity, others Sigmoid) so that every
    model gives the same kind of number, and strong matches keep their gaps instead of all
    saturating near 1.0; callers that need a fixed scale normalise (recall min-max spreads them).
    """

    def __init__(self, cfg: RerankerConfig) -> None:
        if not cfg.model:
            raise ValueError("no reranker model configured (reranker.model)")
        import torch

        # One thread per replica: several replicas with several threads each collapse on 2 cores.
        torch.set_num_threads(cfg.torch_threads)
        # Weights come from disk only: a hub id must already be in the local cache.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder

        self.device = pick_device(cfg.device)
        self.name = cfg.model
        try:
            model = CrossEncoder(cfg.model, device=self.device, local_files_only=True,
                                 activation_fn=torch.nn.Identity())
        except OSError as exc:
            raise OSError(
                f"cannot load reranker model {cfg.model!r} from disk ({exc}); set reranker.model "
                "to a local folder saved with CrossEncoder.save_pretrained, or pre-download the "
                "hub model into the Hugging Face cache on every node that runs the Reranker"
            ) from exc
        if model.num_labels != 1:
            raise ValueError(f"reranker model {cfg.model!r} has {model.num_labels} labels; a "
                             "reranker gives one relevance logit per pair (num_labels=1)")
        self.max_length = cfg.max_length or self._model_max_length(model)
        model.max_seq_length = self.max_length
        self.precision = cfg.precision
        if self.precision == "auto":  # bfloat16 stays opt-in on CPU (RerankerConfig.precision)
            self.precision = "float16" if self.device == "cuda" else "float32"
        if self.precision != "float32":
            model.to(getattr(torch, self.precision))
        self._model = model
        self._batch_size = cfg.max_batch_size
        log.info("reranker loaded", extra={"model": self.name, "device": self.device,
                                           "max_length": self.max_length})

    @staticmethod
    def _model_max_length(model: Any) -> int:
        """The longest input the model takes: its position table, or its tokenizer's limit."""
        limits = [int(model.tokenizer.model_max_length)]
        config = getattr(model.model, "config", None)
        positions = getattr(config, "max_position_embeddings", None)
        if positions:
            limits.append(int(positions))
        return min(limits)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance (raw logit, higher is better) of each passage to the query, in order."""
        if not passages:
            return []
        return self.score_pairs([(query, p) for p in passages])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Scores for (query, passage) pairs of any queries, in order; max_batch_size per pass."""
        if not pairs:
            return []
        logits = self._model.predict(list(pairs), batch_size=self._batch_size,
                                     show_progress_bar=False, convert_to_numpy=True)
        return [float(x) for x in logits]
