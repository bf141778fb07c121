"""Shard backends under one contract: every backend runs the same assertions."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shards.config import EmbeddedStorageConfig
from shards.shard import Shard

DIM = 8
OpenShard = Callable[..., Shard]


def _embedded(tmp: Path) -> OpenShard:
    def open_shard(shard_count: int = 2, dim: int = DIM, index: int = 0) -> Shard:
        return Shard.open_embedded(index, shard_count, dim, EmbeddedStorageConfig(data_dir=tmp))
    return open_shard


# Every backend runs this suite; the Elasticsearch/Milvus-server ones join with issue 5.
BACKENDS = [pytest.param("embedded", id="embedded")]


@pytest.fixture(params=BACKENDS)
def open_shard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenShard]:
    opened: list[Shard] = []

    def opener(*args: object, **kwargs: object) -> Shard:
        shard = _embedded(tmp_path)(*args, **kwargs)
        opened.append(shard)
        return shard

    yield opener
    for shard in opened:
        try:
            shard.close()
        except Exception:
            pass
