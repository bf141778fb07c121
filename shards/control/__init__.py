"""The control store (API keys, the shard map, the reshard lease): the role in `base.py`, SQLite or PostgreSQL."""
