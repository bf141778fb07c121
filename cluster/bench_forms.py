"""The storage forms `make bench` measures, and the table that sets them side by side.

- embedded: SQLite, Milvus Lite and tantivy in a fresh data directory (what `make serve` runs).
- production: records and control data on PostgreSQL (`storage.record_store: postgres`),
  vectors on a Milvus server, BM25 on noida-db, an Elasticsearch-API emulator (not
  Elasticsearch): cluster/serve.production.yaml's storage on servers that
  cluster/local_servers starts on 127.0.0.1 for the run and stops after. Everything else
  (replicas, embedder, shard count) is deployed as in the embedded form.

The servers are throwaway ones on the same two cores as Engram (PostgreSQL with fsync off;
Milvus standalone reached through a relay; an emulator for BM25): production/embedded says
what moving each part onto a server costs on one machine, not how a production cluster runs.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.local_servers.es_emulator import EsEmulator
from cluster.local_servers.milvus_server import MilvusTestServer
from cluster.local_servers.postgres_server import PostgresTestServer

FORMS = ("embedded", "production")


@dataclass(frozen=True)
class FormStorage:
    """A form's `storage` config section, with its servers running."""

    storage: dict[str, Any]
    # Secrets the stores read from the environment (the Serve replicas need them too).
    env: dict[str, str] = field(default_factory=dict)
    started_s: dict[str, float] = field(default_factory=dict)  # server -> seconds to start
    servers: dict[str, Any] = field(default_factory=dict)  # "postgres": its PostgresTestServer


def parse_forms(value: str) -> list[str]:
    forms = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [f for f in forms if f not in FORMS]
    if not forms or unknown or len(set(forms)) != len(forms):
        raise ValueError(f"--forms takes one or more of {', '.join(FORMS)}, each once, not {value!r}")
    return forms


def unavailable(form: str) -> str | None:
    """Why this form's servers cannot start here, or None."""
    if form == "embedded":
        return None
    missing = [why for why in (PostgresTestServer.unavailable(), MilvusTestServer.unavailable(),
                               EsEmulator.unavailable()) if why]
    return "; ".join(missing) or None


@contextmanager
def form_storage(form: str, data_dir: Path) -> Iterator[FormStorage]:
    """The storage of `form` over data_dir; the production servers run until the block ends."""
    if form == "embedded":
        yield FormStorage({"data_dir": str(data_dir)})
        return
    with ExitStack() as servers:
        postgres = servers.enter_context(PostgresTestServer())
        milvus = MilvusTestServer()
        milvus_uri = servers.enter_context(milvus)
        began = time.monotonic()
        es_url = servers.enter_context(EsEmulator())
        started = {"PostgreSQL": postgres.started_in_s, "Milvus": milvus.started_in_s,
                   "Elasticsearch-API emulator": time.monotonic() - began}
        yield FormStorage(
            {"data_dir": str(data_dir),  # holds nothing: every part of a shard is on a server
             "record_store": "postgres",
             "postgres": {"dsn": postgres.dsn},  # its password from ENGRAM_POSTGRES_PASSWORD
             "milvus_server": {"uri": milvus_uri},
             # One node: a replica could never be placed.
             "elasticsearch": {"url": es_url, "number_of_replicas": 0}},
            env={"ENGRAM_POSTGRES_PASSWORD": postgres.password}, started_s=started,
            servers={"postgres": postgres})


def comparison(by_form: dict[str, dict[str, Any]], client_counts: list[int],
               store_clients: int) -> list[tuple[str, float, float, str]]:
    """(measurement, embedded, production, unit) for the figures both forms measured."""
    emb, prod = by_form["embedded"], by_form["production"]
    rows: list[tuple[str, float, float, str]] = []

    def add(name: str, key: str, sub: str | None, unit: str) -> None:
        if key in emb and key in prod:
            a, b = (emb[key], prod[key]) if sub is None else (emb[key][sub], prod[key][sub])
            rows.append((name, float(a), float(b), unit))

    add("store, single (1 client, sequential)", "store_single_per_s", None, "memories/s")
    add("store, batch, 1 client", "store_batch_per_s_1", None, "memories/s")
    add(f"store, batch, {store_clients} clients", f"store_batch_per_s_{store_clients}", None, "memories/s")
    for c in client_counts:
        for p in ("p50", "p95"):
            add(f"recall via HTTP + Serve, {c} client(s), {p}", f"recall_serve_{c}", p, "ms")
        add(f"recall via HTTP + Serve, {c} client(s), throughput", f"recall_serve_{c}", "rps", "recalls/s")
    for c in client_counts:
        for p in ("p50", "p95"):
            add(f"recall in-process, {c} client(s), {p}", f"recall_inprocess_{c}", p, "ms")
    for key, name in (("shard_candidates", "shard only, top-50"),
                      ("keyword_index", "keyword index (BM25) alone"),
                      ("vector_index", "vector index (HNSW) alone")):
        for p in ("p50", "p95"):
            add(f"{name}, {p}", key, p, "ms")
    return rows


def print_comparison(by_form: dict[str, dict[str, Any]], client_counts: list[int],
                     store_clients: int) -> None:
    if "embedded" not in by_form or "production" not in by_form:
        return
    print("\nProduction form vs embedded (production/embedded: above 1 a latency is slower, "
          "below 1 a throughput is lower)\n")
    print("| measurement | embedded | production | production / embedded |\n|---|---:|---:|---:|")
    for name, emb, prod, unit in comparison(by_form, client_counts, store_clients):
        ratio = f"{prod / emb:.2f}" if emb else "-"
        print(f"| {name}, {unit} | {emb:.1f} | {prod:.1f} | {ratio} |")
