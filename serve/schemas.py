"""Request bodies of the Dakera memory API, as the `dakera` SDK sends them.

Unknown fields are ignored (newer SDKs send more); known fields are typed, and a wrong
type or range is a 400 that names the field.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

MemoryType = Literal["episodic", "semantic", "procedural", "working"]
Number = int | float
MAX_UNIX = 9_999_999_999  # 2286-11-20: Dakera's upper bound for event_time


def parse_time(value: Any, field: str) -> float | None:
    """Unix seconds (int/float) or an RFC 3339 string → Unix seconds; None stays None."""
    from serve.errors import bad_request

    if value is None:
        return None
    if isinstance(value, bool):
        raise bad_request(field, "expected Unix seconds or an RFC 3339 timestamp")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise bad_request(field, "out of range (1970 to 2286)") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise bad_request(field, f"not an RFC 3339 timestamp: {value[:64]!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            seconds = parsed.timestamp()
    else:
        raise bad_request(field, "expected Unix seconds or an RFC 3339 timestamp")
    if not 0 <= seconds <= MAX_UNIX:
        raise bad_request(field, "out of range (1970 to 2286)")
    return seconds


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Owned(_Body):
    """A body that names its agent (namespace)."""

    agent_id: StrictStr | None = None
    namespace: StrictStr | None = None


class StoreBody(Owned):
    content: StrictStr
    id: StrictStr | None = None
    memory_type: MemoryType = "episodic"
    importance: float = Field(0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] | None = None
    session_id: StrictStr | None = None
    tags: list[StrictStr] | None = None
    ttl_seconds: int | None = Field(None, ge=1, le=100 * 365 * 86_400)
    expires_at: Number | StrictStr | None = None  # Unix seconds or RFC 3339, as event_time
    event_time: Number | StrictStr | None = None


class BatchStoreBody(Owned):
    memories: list[StoreBody] = Field(..., min_length=1)


class RecallBody(Owned):
    query: StrictStr
    top_k: int = 5
    # Engram extension: "now" for relative time in the query ("yesterday", "last week").
    reference_time: Number | StrictStr | None = None
    memory_type: MemoryType | None = None
    min_importance: float | None = Field(None, ge=0.0, le=1.0)
    since: Number | StrictStr | None = None
    until: Number | StrictStr | None = None
    routing: Literal["auto", "vector", "bm25", "hybrid", "graph"] | None = None
    rerank: StrictBool | None = None
    rerank_candidates: int | None = Field(None, ge=1)
    fusion: Literal["rrf", "minmax"] | None = None
    vector_weight: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[StrictStr] | None = None
    session_id: StrictStr | None = None
    neighborhood: StrictBool | None = None
    neighborhood_mode: Literal["inline", "separate", "off"] | None = None
    include_associated: StrictBool | None = None
    associated_memories_cap: int | None = Field(None, ge=0, le=10)
    associated_memories_depth: int | None = Field(None, ge=1, le=3)
    associated_memories_min_weight: float | None = Field(None, ge=0.0)
    iterations: int | None = Field(None, ge=1, le=3)
    include_summaries: StrictBool | None = None


class SearchBody(Owned):
    query: StrictStr
    top_k: int = 10
    memory_type: MemoryType | None = None
    min_importance: float | None = Field(None, ge=0.0, le=1.0)
    routing: Literal["auto", "vector", "bm25", "hybrid", "graph"] | None = None
    rerank: StrictBool | None = None
    tags: list[StrictStr] | None = None
    session_id: StrictStr | None = None


class ForgetBody(Owned):
    memory_ids: list[StrictStr] = Field(..., min_length=1, max_length=1000)


class UpdateBody(_Body):
    content: StrictStr | None = None
    metadata: dict[str, Any] | None = None
    memory_type: MemoryType | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[StrictStr] | None = None
    event_time: Number | StrictStr | None = None


class ImportanceBody(Owned):
    importance: float = Field(..., ge=0.0, le=1.0)


class BatchFilter(_Body):
    tags: list[StrictStr] | None = None
    min_importance: float | None = Field(None, ge=0.0, le=1.0)
    max_importance: float | None = Field(None, ge=0.0, le=1.0)
    created_after: Number | None = None
    created_before: Number | None = None
    memory_type: MemoryType | None = None
    session_id: StrictStr | None = None

    def is_empty(self) -> bool:
        # `tags: []` names no tag: the filter would match everything (the SDK sends it as is).
        return all(v is None or v == [] for v in self.model_dump().values())


class BatchRecallBody(Owned):
    filter: BatchFilter = Field(default_factory=lambda: BatchFilter())
    limit: int = Field(100, ge=1)
    min_importance: float | None = Field(None, ge=0.0, le=1.0)


class BatchForgetBody(Owned):
    filter: BatchFilter = Field(default_factory=lambda: BatchFilter())


class SessionStartBody(Owned):
    metadata: dict[str, Any] | None = None
    idle_timeout_secs: int | None = Field(None, ge=0)


class SessionEndBody(_Body):
    summary: StrictStr | None = None
    auto_summarize: StrictBool | None = None


class AgentCreateBody(_Body):
    agent_id: StrictStr
    metadata: dict[str, Any] | None = None


class KeyLimitsBody(BaseModel):
    """A key's limits (shards.control.base.KeyLimits); an absent or null field: no limit."""
    model_config = ConfigDict(extra="forbid")

    requests_per_second: Number | None = Field(None, gt=0, le=1_000_000)
    burst: int | None = Field(None, ge=1, le=1_000_000)  # default: one second of the rate
    memories_per_namespace: int | None = Field(None, ge=0, le=10**12)
    stored_bytes: int | None = Field(None, ge=0, le=10**15)  # content bytes, all its namespaces


class KeyCreateBody(BaseModel):
    # Dakera answers unknown fields on this route with an error; so do we (a typo in a
    # grant field must not silently mint an unrestricted key).
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(..., min_length=1, max_length=256)
    scope: Literal["read", "write", "admin", "super_admin"] = "read"
    namespaces: list[StrictStr] | None = None
    expires_in_days: int | None = Field(None, ge=1, le=36_500)
    limits: KeyLimitsBody | None = None  # Engram's own: Dakera has none on a key


class KeyUpdateBody(BaseModel):
    """PATCH /admin/keys/{id}: only the fields sent change (Dakera sends name and
    namespaces; namespaces null grants every namespace). limits replaces the key's limits
    whole; null removes them."""
    model_config = ConfigDict(extra="forbid")

    name: StrictStr | None = Field(None, min_length=1, max_length=256)
    namespaces: list[StrictStr] | None = None
    limits: KeyLimitsBody | None = None


class KnowledgeGraphBody(Owned):
    memory_id: StrictStr = Field(..., min_length=1)
    depth: int = Field(2, ge=1, le=3)
    min_similarity: float = Field(0.0, ge=0.0, le=1.0)


class ExtractBody(_Body):
    text: StrictStr
    namespace: StrictStr | None = None
    provider: StrictStr | None = None
    model: StrictStr | None = None


# engram import's steps (serve/routes/transfer.py): what `engram export` wrote, sent back.
class ImportHeadBody(BaseModel):
    head: Any  # an export's head, tagged JSON, as export/head answered it


class ImportRowsBody(BaseModel):
    rows: list[Any]  # exported memories, tagged JSON, as export/memories answered them


class ImportFinishBody(BaseModel):
    memories: int = Field(..., ge=0)  # how many memories the export held
