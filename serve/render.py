"""JSON shapes of the Dakera memory API answers (integer Unix seconds for timestamps)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from serve.ranking import Scored
from shards.control.base import ApiKey
from shards.types import Memory, Session


# Dakera's wire names for the embedding models it knows; any other model keeps its own name.
_DAKERA_MODELS = {
    "all-MiniLM-L6-v2": "minilm", "bge-large-en-v1.5": "bge-large", "bge-small-en-v1.5": "bge-small",
    "e5-small-v2": "e5-small", "bge-m3": "bge-m3", "modernbert-embed-base": "modernbert-embed-base",
    "gte-modernbert-base": "gte-modernbert-base",
}


def model_name(model: str) -> str:
    """The name capabilities and agents report for a configured model (a hub id or a path)."""
    return _DAKERA_MODELS.get(model.rstrip("/").rsplit("/", 1)[-1], model)


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def memory_json(m: Memory, preview_chars: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "agent_id": m.namespace,
        "namespace": m.namespace,
        "content": m.content,
        "memory_type": m.memory_type,
        "importance": m.importance,
        "tags": list(m.tags),
        "session_id": m.session_id,
        "metadata": m.metadata,
        "created_at": _ts(m.created_at),
        "updated_at": _ts(m.updated_at),
        "event_time": int(m.event_time) if float(m.event_time).is_integer() else m.event_time,
        "last_accessed_at": _ts(m.last_accessed_at),
        "access_count": m.access_count,
        "expires_at": _ts(m.expires_at),
    }
    if preview_chars is not None:
        out["content_len"] = len(m.content)
        out["content_truncated"] = len(m.content) > preview_chars
        out["content"] = m.content[:preview_chars]
    return out


def scored_json(s: Scored) -> dict[str, Any]:
    """A flat recall result: the memory, its final score, its parts and its channels."""
    c = s.candidate
    out = memory_json(c.memory)
    out.update({
        "score": round(s.final, 6),
        "rank_score": round(s.final, 6),
        "weighted_score": round(s.final, 6),
        "vector_score": c.scores.get("vector"),
        "text_score": c.scores.get("bm25"),
        "channels": s.channels,
        "retrieval": None,
        "score_breakdown": {
            "relevance": round(s.relevance, 6),
            "importance": round(s.importance_part, 6),
            "decay": round(s.decay, 6),
            "recency": round(s.recency, 6),
            "access": round(s.access, 6),
            "time_match": round(s.time_match, 6),
            "ranks": dict(c.ranks),
            "channel_scores": dict(c.scores),
            "final": round(s.final, 6),
        },
    })
    return out


def session_json(s: Session, default_idle: float) -> dict[str, Any]:
    idle = s.idle_timeout if s.idle_timeout is not None else default_idle
    out: dict[str, Any] = {
        "id": s.id,
        "session_id": s.id,
        "agent_id": s.namespace,
        "namespace": s.namespace,
        "started_at": _ts(s.started_at),
        "ended_at": _ts(s.ended_at),
        "ended_reason": s.ended_reason,
        "summary": s.summary,
        "metadata": s.metadata,
        "memory_count": s.memory_count,
        "last_activity_at": _ts(s.last_active_at),
        "idle_timeout_secs": int(idle),
        "active": s.active,
    }
    if s.ended_reason == "idle":
        out["idle_since"] = _ts(s.last_active_at)
    return out


def idle_deadline(s: Session, default_idle: float) -> int | None:
    idle = s.idle_timeout if s.idle_timeout is not None else default_idle
    if not s.active or idle <= 0:
        return None
    return int(s.last_active_at + idle)


def key_json(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "name": k.name,
        "scope": k.scope,
        "namespaces": None if k.namespaces is None else list(k.namespaces),
        "created_at": int(k.created_at),
        "expires_at": _ts(k.expires_at),
        "active": True,
        "grants_version": 1,
        "inert_namespaces": [],
        "limits": asdict(k.limits),  # each null: no limit
    }
