"""Derived indexes, rebuilt from the record store: vectors (Milvus Lite or server, exact search) and keywords (tantivy or Elasticsearch)."""
