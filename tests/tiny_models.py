"""Tiny models the tests build themselves: no weights can be downloaded here.

`tiny_sentence_model(directory)` does the same for a sentence-transformers bi-encoder (a
2-layer BERT and mean pooling), which `SentenceTransformer(path)` loads as any model saved
with `save`. `tiny_cross_encoder(directory)` writes a 2-layer BERT sequence classifier and its WordPiece
tokenizer with `save_pretrained`, so `CrossEncoder(path)` loads it exactly as it loads a real
model from disk. Its weights are random (seeded, so every build is the same model): good for
wiring, order and batching tests, not for relevance. Training it to prefer passages that
share words with the query was tried and dropped: a few hundred steps (the budget here) left
it near chance, as such tiny transformers plateau long before they learn to match tokens.
"""
from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the a is of to and for my with on was at by it "
    "apple banana cherry grape lemon mango melon peach pear plum "
    "red blue green yellow purple orange black white brown pink "
    "cat dog horse mouse tiger lion bear wolf fox owl "
    "car bus train plane boat bike truck ship tram taxi "
    "refund order invoice payment shipping delivery account password email receipt "
    "monday tuesday friday morning evening winter summer spring autumn night "
    "0 1 2 3 4 5 6 7 8 9 ##0 ##1 ##2 ##3 ##4 ##5 ##6 ##7 ##8 ##9 . , ? !"
).split()
MAX_LENGTH = 64


def tiny_cross_encoder(directory: Path, seed: int = 0) -> Path:
    """Build and save a tiny random cross-encoder under `directory`; returns its path."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + WORDS) + "\n", encoding="utf-8")
    # from_pretrained over a folder holding only vocab.txt: the one way to build a WordPiece
    # tokenizer that transformers 4 and 5 both accept (5 ignores a `vocab_file` argument).
    tokenizer = BertTokenizerFast.from_pretrained(str(directory), model_max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=MAX_LENGTH, num_labels=1,
        # Larger than BERT's 0.02 so that random scores differ clearly between passages.
        initializer_range=0.5,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_sentence_model(directory: Path, seed: int = 0, dense: int | None = None) -> Path:
    """Build and save a tiny random sentence-transformers model (32-d) under `directory`;
    dense: a Dense layer to that size after the pooling (as LaBSE-style models have)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    encoder = directory / "encoder"
    encoder.mkdir(parents=True, exist_ok=True)
    (encoder / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(encoder), model_max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=MAX_LENGTH)
    BertModel(config).eval().save_pretrained(encoder)
    tokenizer.save_pretrained(encoder)
    transformer = models.Transformer(str(encoder), max_seq_length=MAX_LENGTH)
    dim = getattr(transformer, "get_embedding_dimension", transformer.get_word_embedding_dimension)()
    pooling = models.Pooling(dim, pooling_mode="mean")
    modules = [transformer, pooling]
    if dense is not None:
        modules.append(models.Dense(in_features=dim, out_features=dense))
    SentenceTransformer(modules=modules, device="cpu").save(str(directory / "model"))
    return directory / "model"
