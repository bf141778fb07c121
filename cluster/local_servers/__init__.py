"""Servers started on 127.0.0.1 for the tests and the benchmarks, never for production.

Each starts one real server from a package installed on this machine, in a temporary
directory on a free loopback port, and stops it and removes its directory after (it also
dies with the process that started it):

- `postgres_server.PostgresTestServer`: PostgreSQL from Debian's `postgresql` package
  (initdb and postgres as user `nobody` when root), with fsync off.
- `milvus_server.MilvusTestServer`: Milvus 2.3.5 standalone from the PyPI package `milvus`,
  in a network namespace of its own, reached through a relay on 127.0.0.1.
- `es_emulator.EsEmulator`: noida-db, an Elasticsearch-API emulator, not Elasticsearch.

They are set up to be thrown away (no durability, no tuning, no auth beyond PostgreSQL's
password): production points `storage.postgres`, `storage.milvus_server` and
`storage.elasticsearch` at servers run as services (cluster/README.md).
"""
