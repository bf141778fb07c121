"""What a client asks first: what this server offers, and who its key is."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from serve import render
from serve.responses import CapabilitiesOut, WhoamiOut, answers
from serve.routes.errors import EngramRoute
from serve.routes.health import VERSION
from serve.routes.keys import MAX_GRANT_BYTES, MAX_GRANTS
from serve.routes.plumbing import principal, service

router = APIRouter(route_class=EngramRoute)


@router.get("/v1/capabilities", responses=answers(CapabilitiesOut))
async def capabilities(request: Request) -> dict[str, Any]:
    cfg = service(request).cfg
    model = render.model_name(cfg.embedder.model)
    aliases = [] if model == cfg.embedder.model else [cfg.embedder.model]
    return {
        "capabilities_version": 2, "server_version": f"engram-{VERSION}",
        "api_versions": ["v1"], "default_model": model,
        "models": [{"name": model, "aliases": aliases, "active": True,
                    "dimension": await service(request).dimension(), "modality": "text"}],
        "index_kinds": ["hnsw", "fulltext"], "distance_metrics": ["cosine"],
        "search_mode": "hybrid", "fulltext_language": "en",
        "auth": {"prefix_patterns": True, "sessions_by_agent": True, "key_update": True,
                 "max_grants": MAX_GRANTS, "max_grant_len": MAX_GRANT_BYTES},
        "naming": {"agent_namespace_prefix": "_dakera_agent_",
                   "agent_id_max_bytes": cfg.limits.max_namespace_bytes,
                   "namespace_max_bytes": cfg.limits.max_namespace_bytes},
        "sessions": {"idle_timeout_secs": int(cfg.sessions.idle_timeout_seconds),
                     "max_idle_timeout_secs": int(cfg.sessions.max_idle_timeout_seconds),
                     "touch": True, "ended_reason": True},
        "limits": {"max_content_bytes": cfg.limits.max_content_bytes,
                   "max_top_k": cfg.limits.max_top_k, "max_batch_items": cfg.limits.max_batch_items},
        "shards": cfg.shard_count,
    }


@router.get("/v1/auth/whoami", responses=answers(WhoamiOut))
async def whoami(request: Request) -> dict[str, Any]:
    p = await principal(request)
    return {"key_id": p.key.key_id, "name": p.key.name, "scope": p.key.scope,
            "namespaces": None if p.key.namespaces is None else list(p.key.namespaces),
            "unrestricted": p.scope.everything, "expires_at": render._ts(p.key.expires_at),
            "grants_version": 1, "inert_namespaces": [], "auth_enabled": True}
