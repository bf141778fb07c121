"""Engram's one typed configuration tree, validated from the Serve YAML `args`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.config import EmbedderConfig, RerankerConfig
from models.entities import EntityConfig
from shards.config import EmbeddedStorageConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    max_content_bytes: int = Field(100_000, ge=1)  # UTF-8 bytes of one memory's content
    # One request body: read no further than this (a full batch of 1,000 memories at the
    # content and metadata limits is ~170 MB of JSON).
    max_body_bytes: int = Field(200_000_000, ge=1_000)
    max_top_k: int = Field(100, ge=1)
    max_batch_items: int = Field(1000, ge=1)
    max_metadata_fields: int = Field(100, ge=1)
    max_metadata_bytes: int = Field(65_536, ge=2)  # a memory's metadata as UTF-8 JSON
    max_namespace_bytes: int = Field(4096, ge=1)
    max_tags: int = Field(100, ge=1)
    max_tag_bytes: int = Field(4096, ge=1)
    max_query_bytes: int = Field(10_000, ge=1)
    max_page: int = Field(1000, ge=1)


class SessionsConfig(_Strict):
    idle_timeout_seconds: float = Field(14_400, ge=0)  # 0: sessions never time out
    max_idle_timeout_seconds: float = Field(2_592_000, ge=0)
    sweep_seconds: float = Field(10.0, gt=0)


class RankingConfig(_Strict):
    # Tuned on LoCoMo dev (docs/benchmarks.md): min-max over channel scores beats RRF by ~0.1 R@10 there,
    # because rank-only fusion lets a weak dense channel's noise reach the top. Dakera's
    # server default is min-max too.
    fusion: Literal["rrf", "minmax"] = "minmax"
    rrf_k: int = Field(60, ge=1)
    # LoCoMo dev R@10 0.787 at 0.4, 0.789 at 0.5 (with sentence vectors); kept at 0.4, since
    # at 0.5 the support-bot scenario (tests/service/test_graph.py) loses its graph-found
    # refund from the top 5 to near-duplicate distractors that the dense channel likes.
    vector_weight: float = Field(0.4, ge=0, le=1)
    graph_weight: float = Field(0.2, ge=0)  # the entity-graph channel's share in fusion
    session_weight: float = Field(0.3, ge=0)  # turns next to the best hits, in their session
    time_match_weight: float = Field(0.1, ge=0)  # boost when a query's time covers the event
    # Relevance × (1 - this) for a memory that ends by asking a question (ranking.fuse).
    # LoCoMo dev in process: 0 → R@10 0.787, multi-hop 0.497; 0.3 → 0.794, 0.513; 0.4 →
    # 0.797, 0.516 but a lower R@1 and MRR.
    question_penalty: float = Field(0.3, ge=0, le=1)
    neighborhood_mode: Literal["inline", "separate", "off"] = "inline"  # Dakera's default
    neighborhood_before: int = Field(1, ge=0, le=10)
    neighborhood_after: int = Field(1, ge=0, le=10)
    candidates: int = Field(50, ge=1)  # per channel, before fusion
    relevance_weight: float = Field(0.7, ge=0)
    importance_weight: float = Field(0.2, ge=0)
    recency_weight: float = Field(0.1, ge=0)
    access_boost: float = Field(0.02, ge=0)  # per log2(1 + accesses), capped in ranking
    recency_half_life_days: float = Field(30.0, gt=0)
    # Importance fades by memory type: working memory is short-lived, semantic facts last.
    half_life_days: dict[str, float] = Field(default_factory=lambda: {
        "working": 1.0, "episodic": 30.0, "procedural": 180.0, "semantic": 365.0,
    })


class RouterConfig(_Strict):
    # Where a recall's query is embedded. auto: in the Router when the Embedder runs on CPU
    # (the same cost there and one handle hop less; on the 2-core default, recall p50 35 -> 32
    # ms at 1 client, 51 -> 60 recalls/s at 8), on the Embedder when it has a GPU or runs
    # vLLM. router: always in the Router (each replica loads its own copy of the model).
    # embedder: always on the Embedder.
    query_embedding: Literal["auto", "router", "embedder"] = "auto"
    # Recalls' access counts reach the shards in one call per shard this often, not one call
    # per recall (serve/access_counts.py): a count shows this much later.
    access_flush_seconds: float = Field(0.5, gt=0, le=60)
    # Recall reads that wait behind one in flight to the same shard go together in one
    # handle call, at most this many (serve/clients.py); 1 sends each on its own. On the
    # 2-core default (2k memories) 8 clients' recalls took a quarter fewer shard calls, 32
    # clients' three quarters fewer: each saves ~2.5 ms of CPU in the Router and the Shard.
    shard_read_batch: int = Field(16, ge=1, le=256)
    # Load shedding (serve/admission.py), per Router replica: requests at work at once; past
    # them up to max_waiting wait at most max_wait_s for a slot, and the rest are answered
    # 503 with Retry-After at once. Serve's max_ongoing_requests for the Router must be at
    # least max_in_flight + max_waiting, or requests queue in front of the gate, out of its
    # sight. On the 2-core default, 3x capacity offered (docs/benchmarks.md, "Overload"):
    # accepted p99 546 ms against 386 ms at capacity; with no gate 13.8 s. The price: 85
    # requests/s at capacity instead of 117. A Router waits on the Embedder and the shards
    # for most of a request, so where they have more cores, raise max_in_flight with them.
    max_in_flight: int = Field(6, ge=1, le=10_000)
    max_waiting: int = Field(12, ge=0, le=100_000)
    max_wait_s: float = Field(0.1, ge=0, le=60)


class AuthConfig(_Strict):
    root_key_env: str = "ENGRAM_ROOT_API_KEY"


class WebhooksConfig(_Strict):
    """Webhook delivery (serve/webhooks/). Destinations: any host that resolves to public
    addresses; loopback, private and link-local ones only with allow_private_networks (a
    subscription must not make Engram a way into the network it runs in). allowed_hosts,
    when set, is the only hosts a subscription may name."""
    enabled: bool = True  # the dispatcher runs (events are written to the outbox either way)
    poll_seconds: float = Field(1.0, gt=0, le=60)
    batch: int = Field(200, ge=1, le=10_000)  # events taken, and deliveries sent, per round
    concurrency: int = Field(8, ge=1, le=256)  # deliveries in flight at once
    timeout_seconds: float = Field(10.0, gt=0, le=120)  # per attempt
    retry_base_seconds: float = Field(5.0, gt=0, le=3600)  # first retry; doubles each time
    retry_max_seconds: float = Field(3600.0, gt=0, le=86_400)
    max_attempts: int = Field(15, ge=1, le=100)  # ~ a day with the defaults, then failed
    keep_finished_seconds: float = Field(7 * 86_400, ge=0)  # delivered/failed, for the listing
    max_per_key: int = Field(25, ge=1, le=10_000)  # subscriptions one key may hold
    allowed_hosts: list[str] | None = None
    allow_private_networks: bool = False


class EngramConfig(_Strict):
    shard_count: int = Field(2, ge=1, le=4096)
    storage: EmbeddedStorageConfig = Field(default_factory=EmbeddedStorageConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    reranker: RerankerConfig = Field(default_factory=RerankerConfig)
    entities: EntityConfig = Field(default_factory=EntityConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    ranking: RankingConfig = Field(default_factory=RankingConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)

    @property
    def data_dir(self) -> Path:
        return self.storage.data_dir

    @classmethod
    def from_args(cls, args: dict[str, Any] | None) -> EngramConfig:
        return cls.model_validate(args or {})
