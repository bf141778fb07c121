"""One shard's storage (record store, vector index, keyword index) and shard routing; no Ray."""
