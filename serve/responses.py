"""What the routes answer, for the OpenAPI: each success body's shape, and the one error body.

The routes build their answers as dicts (serve/render.py) in Dakera's wire shapes; these
models only describe them. Fields listed are always present with these types; answers may
carry more (Dakera's SDK reads what it knows and ignores the rest), so every model allows
extra fields. tests/service/test_fuzz.py checks every answer against these descriptions.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

Number = int | float


class Described(BaseModel):
    """An answer: the fields listed are always there; more may be (extra allowed)."""
    model_config = ConfigDict(extra="allow")


class ErrorBody(Described):
    """Every 4xx and 5xx: the message, Dakera's code, and the request field at fault."""
    error: str
    code: str
    field: str | None = None
    details: str | None = None
    resource: str | None = None


class MemoryOut(Described):
    id: str
    agent_id: str
    namespace: str
    content: str
    memory_type: str
    importance: Number
    tags: list[str]
    session_id: str | None
    metadata: dict[str, Any]
    created_at: int | None
    updated_at: int | None
    event_time: Number
    last_accessed_at: int | None
    access_count: int
    expires_at: int | None


class ScoredMemoryOut(MemoryOut):
    score: Number
    score_breakdown: dict[str, Any]


class StoreOut(Described):
    memory: MemoryOut
    embedding_time_ms: int


class StoredOut(Described):
    id: str
    content: str
    agent_id: str
    tags: list[str]
    importance: Number
    created_at: int | None
    session_id: str | None


class BatchStoreOut(Described):
    stored: list[StoredOut]
    stored_count: int
    total_embedding_time_ms: int
    ended_sessions: list[str]


class RecallOut(Described):
    memories: list[ScoredMemoryOut]
    total_found: int


class MemoriesPage(Described):
    memories: list[MemoryOut]
    total: int


class ForgetOut(Described):
    deleted_count: int


class SessionOut(Described):
    id: str
    session_id: str
    agent_id: str
    namespace: str
    started_at: int | None
    ended_at: int | None
    ended_reason: str | None
    summary: str | None
    metadata: dict[str, Any]
    memory_count: int
    last_activity_at: int | None
    idle_timeout_secs: int
    active: bool


class SessionWrapped(Described):
    session: SessionOut


class AgentOut(Described):
    agent_id: str
    memory_count: int
    session_count: int
    active_sessions: int


class LimitsOut(Described):
    requests_per_second: Number | None
    burst: int | None
    memories_per_namespace: int | None
    stored_bytes: int | None


class KeyOut(Described):
    key_id: str
    name: str
    scope: str
    namespaces: list[str] | None
    created_at: int
    expires_at: int | None
    active: bool
    limits: LimitsOut


class KeyCreatedOut(KeyOut):
    key: str


class KeysOut(Described):
    keys: list[KeyOut]
    total: int


class NamespacesOut(Described):
    namespaces: list[str]


class Done(Described):
    success: bool


class SessionMemoriesOut(SessionWrapped):
    memories: list[MemoryOut]


class HealthOut(Described):
    status: str
    version: str


class LiveOut(Described):
    alive: bool
    version: str
    uptime_seconds: int


class TrafficPointOut(Described):
    """One second of the whole service's answers (serve/traffic.py)."""

    t: int
    requests: int
    ok: int
    client_error: int
    shed: int
    server_error: int
    p50_ms: Number | None
    p95_ms: Number | None
    p99_ms: Number | None


class TrafficTotalsOut(Described):
    requests: int
    ok: int
    client_error: int
    shed: int
    server_error: int
    requests_per_second: Number
    p50_ms: Number | None
    p95_ms: Number | None
    p99_ms: Number | None


class TrafficOut(Described):
    window_seconds: int
    now: int
    replicas_reporting: int
    totals: TrafficTotalsOut
    series: list[TrafficPointOut]


class ReadyOut(Described):
    """200 once every shard answers; 503 (with Retry-After) while one starts."""
    ready: bool
    version: str


class ModelOut(Described):
    name: str
    active: bool
    dimension: int


class CapabilitiesOut(Described):
    capabilities_version: int
    server_version: str
    api_versions: list[str]
    default_model: str
    models: list[ModelOut]
    auth: dict[str, Any]
    limits: dict[str, Any]


class WhoamiOut(Described):
    key_id: str
    name: str
    scope: str
    namespaces: list[str] | None
    unrestricted: bool
    expires_at: int | None


class AgentCreatedOut(Described):
    """201 when the agent is new, 200 when it existed."""
    agent_id: str
    namespace: str
    created: bool
    dimension: int
    model: str


class AgentStatsOut(Described):
    agent_id: str
    total_memories: int
    memories_by_type: dict[str, int]
    total_sessions: int
    active_sessions: int
    avg_importance: Number | None
    oldest_memory_at: int | None
    newest_memory_at: int | None


class GraphNodeOut(Described):
    id: str
    content: str
    depth: int


class GraphEdgeOut(Described):
    source: str
    target: str
    similarity: Number
    relationship: str


class KnowledgeGraphOut(Described):
    nodes: list[GraphNodeOut]
    edges: list[GraphEdgeOut]


class MemoryGraphNodeOut(Described):
    memory_id: str
    depth: int
    edges: list[dict[str, Any]]


class MemoryGraphOut(Described):
    root_id: str
    depth: int
    node_count: int
    nodes: list[MemoryGraphNodeOut]
    edges: list[dict[str, Any]]


class EntityOut(Described):
    entity_type: str
    value: str
    key: str
    score: Number


class MemoryEntitiesOut(Described):
    memory_id: str
    agent_id: str
    entities: list[EntityOut]
    count: int


class ExtractOut(Described):
    entities: list[EntityOut]
    provider: str


class NamespaceDeletedOut(Described):
    deleted: bool
    namespace: str
    deleted_memories: int


class ExportHeadOut(Described):
    """The namespace's head (sessions, entities, idempotency keys), tagged JSON
    (serve/routes/transfer.py to_json): engram import sends it back as it came."""
    head: Any


class ExportPageOut(Described):
    rows: Any  # exported memories, tagged JSON
    next: int | None  # the cursor of the next page; null: the last page


class ImportStepOut(Described):
    namespace: str


class ImportedOut(Described):
    imported: int


class ImportFinishedOut(ImportStepOut):
    memories: int


class ImportAbortedOut(ImportStepOut):
    dropped: int


def answers(model: Any, status: int = 200, *more: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: its success body (at each status it answers with success)."""
    return {code: {"model": model, "description": "Success"} for code in (status, *more)}


# Every route but the probes may answer these; added to each operation by
# serve/routes/app.py (one place, not 40 decorators).
ERROR_STATUSES = {
    400: "Bad input: `field` names it",
    401: "No key, or an unknown or expired one",
    403: "The key's scope or grants do not reach this",
    404: "Not found, or outside the key's grants",
    409: "A conflict the caller can resolve (an id naming another memory, a namespace moving)",
    413: "The body, or a field, is over its size limit",
    429: "A limit of the key: Retry-After says when to try again",
    503: "Overloaded or restarting: Retry-After says when to try again",
}

# /metrics and /v1/ops/metrics: Prometheus's text format.
PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}}
