"""The record store, a shard's source of truth: the role in `base.py`, one backend per folder or file."""
