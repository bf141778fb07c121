"""The storage forms `make bench` measures and the table that sets them side by side."""
from __future__ import annotations

from pathlib import Path

import pytest

from cluster.bench_forms import comparison, form_storage, parse_forms, unavailable


def test_forms_are_named_once_each() -> None:
    assert parse_forms("embedded") == ["embedded"]
    assert parse_forms("embedded, production") == ["embedded", "production"]
    for wrong in ("", "embedded,embedded", "elasticsearch", "production,cloud"):
        with pytest.raises(ValueError, match="--forms"):
            parse_forms(wrong)


def test_the_embedded_form_needs_no_server(tmp_path: Path) -> None:
    assert unavailable("embedded") is None
    with form_storage("embedded", tmp_path) as storage:
        assert storage.storage == {"data_dir": str(tmp_path)}
        assert storage.env == {} and storage.started_s == {}


def test_each_production_figure_stands_beside_the_embedded_one() -> None:
    embedded = {"store_batch_per_s_2": 500.0, "recall_serve_1": {"p50": 20.0, "p95": 30.0, "rps": 50.0}}
    production = {"store_batch_per_s_2": 250.0, "recall_serve_1": {"p50": 50.0, "p95": 90.0, "rps": 20.0},
                  "keyword_index": {"p50": 30.0, "p95": 33.0}}  # one form only: left out
    rows = comparison({"embedded": embedded, "production": production}, [1], store_clients=2)
    assert [(name, emb, prod) for name, emb, prod, _ in rows] == [
        ("store, batch, 2 clients", 500.0, 250.0),
        ("recall via HTTP + Serve, 1 client(s), p50", 20.0, 50.0),
        ("recall via HTTP + Serve, 1 client(s), p95", 30.0, 90.0),
        ("recall via HTTP + Serve, 1 client(s), throughput", 50.0, 20.0),
    ]
