"""Embedders, rerankers and entity extractors; no Ray."""
