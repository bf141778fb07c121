"""The Elasticsearch client of the BM25 index (shards/indexes/elasticsearch.py), and how its
errors map onto the shard's: busy or unreachable is retriable (StorageUnavailable), a refusal is not."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shards.config import ElasticsearchConfig
from shards.errors import ShardError, StorageUnavailable

# Statuses a busy or restarting cluster answers: the client retries them with backoff.
RETRY_STATUSES = (429, 502, 503, 504)

T = TypeVar("T")


def connect(hosts: str | list[str], api_key: str | None = None, *, request_timeout: float = 30.0,
            max_retries: int = 5, ca_certs: str | None = None) -> Any:
    """A client that retries 429/5xx and timeouts with backoff, across the given nodes."""
    try:
        from elasticsearch import Elasticsearch
    except ImportError as exc:  # pragma: no cover - the service extra installs it
        raise ImportError("the Elasticsearch keyword index needs `pip install 'elasticsearch>=8.13,<9'`") from exc
    tls: dict[str, Any] = {"ca_certs": ca_certs} if ca_certs else {}
    return Elasticsearch(hosts, api_key=api_key or None, request_timeout=request_timeout,
                         max_retries=max_retries, retry_on_status=RETRY_STATUSES, retry_on_timeout=True,
                         **tls)


def connect_config(es: ElasticsearchConfig) -> Any:
    """connect() with everything `storage.elasticsearch` says."""
    return connect(es.url, es.api_key(), request_timeout=es.request_timeout_s,
                   max_retries=es.max_retries, ca_certs=es.ca_certs)


def ensure_index(client: Any, index: str, mappings: dict[str, Any],
                 settings: dict[str, Any]) -> dict[str, Any] | None:
    """Create the index; or, where it exists, return its mappings for the caller to check.
    Another process creating it at the same moment counts as existing."""
    from elasticsearch import BadRequestError

    if not client.indices.exists(index=index):
        try:
            client.indices.create(index=index, mappings=mappings, settings=settings)
            return None
        except BadRequestError as exc:
            if "resource_already_exists_exception" not in str(exc):
                raise
    mapped: dict[str, Any] = client.indices.get_mapping(index=index)[index]["mappings"]
    return mapped


def guarded(what: str, role: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the client; `what` names the index in errors, `role` is the error's field."""
    from elasticsearch import ApiError, TransportError

    try:
        return fn(*args, **kwargs)
    except TransportError as exc:  # unreachable, timed out: worth a retry later
        raise StorageUnavailable(f"{what}: Elasticsearch unreachable: {exc}", role) from exc
    except ApiError as exc:
        if exc.meta.status in RETRY_STATUSES:  # still busy after the client's own retries
            raise StorageUnavailable(f"{what}: Elasticsearch busy: {exc}", role) from exc
        # 400/401/403/...: configuration or mapping, which no retry fixes
        raise ShardError(f"{what}: Elasticsearch refused the request ({exc.meta.status}): {exc};"
                         " check storage.elasticsearch (url, credentials in $ENGRAM_ES_API_KEY,"
                         " index_prefix)", role) from exc
