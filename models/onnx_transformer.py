"""A sentence-transformers model's transformer, run by ONNX Runtime on CPU.

Exported from the torch model that sentence-transformers has just loaded (about a second
for MiniLM), so any model that loads there runs here, with no file to ship or cache. Only
the transformer moves: the pooling, dense and normalize modules after it still run in torch,
on the token embeddings ONNX Runtime returns (microseconds of work, in the model's own code).

Why: a recall's query is one short text, and torch's eager CPU path spends most of such a
pass on per-operator overhead. On the 2-core machine (MiniLM, one thread) a lone query took
5.7 ms here against 14.1 ms in torch float32 and ~9 ms in bfloat16, with vectors within
cosine 0.99999 of torch float32's (bfloat16: 0.996).
"""
from __future__ import annotations

import inspect
import tempfile
import warnings
from pathlib import Path
from typing import Any

# What a transformer module may take, in the order the export names them.
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# The embedder checks the export against torch on a probe; below this, it keeps torch.
MIN_PROBE_COSINE = 0.9999


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxTransformer:
    """Callable on a tokenized batch (sentence-transformers features): token embeddings."""

    def __init__(self, model: Any, threads: int) -> None:
        import onnxruntime
        import torch

        transformer = model[0]
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        probe = preprocess(["An export probe: order #4521 shipped to Jane Doe."])
        # The inputs the tokenizer gives that the model's forward also takes.
        accepted = inspect.signature(transformer.auto_model.forward).parameters
        self.input_names = [n for n in INPUT_NAMES if n in probe and n in accepted]
        wrapper = _by_keyword(transformer.auto_model, self.input_names)
        # The exporter warns about tracing and advanced indexing at every start; what counts
        # is whether the export computes what torch does, which the embedder's probe checks.
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = Path(tmp) / "transformer.onnx"
            torch.onnx.export(
                wrapper, tuple(probe[n] for n in self.input_names), exported,
                input_names=self.input_names, output_names=["token_embeddings"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*self.input_names, "token_embeddings"]},
                opset_version=17, dynamo=False)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads  # as torch_threads: one per replica by default
            options.inter_op_num_threads = 1
            # Loaded from the path while the folder exists: a model over 2 GB is exported
            # with its weights in files beside the graph.
            self._session = onnxruntime.InferenceSession(
                str(exported), options, providers=["CPUExecutionProvider"])
        # What the exported graph takes (the exporter drops an input the model ignores).
        self.input_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, features: dict[str, Any]) -> Any:
        import torch

        feeds = {n: features[n].cpu().numpy() for n in self.input_names}
        return torch.from_numpy(self._session.run(None, feeds)[0])


def _by_keyword(hf_model: Any, input_names: list[str]) -> Any:
    """The transformer as a module of positional inputs that it takes by keyword (its own
    positional order differs across transformers versions), returning token embeddings."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(input_names, inputs)), return_dict=True).last_hidden_state

    return TokenEmbeddings().eval()
