"""MemoryService's knowledge graph: a memory's graph (Dakera's two shapes), its entities, extraction."""
from __future__ import annotations

import time
from typing import Any

from serve.auth import Principal
from serve.errors import not_found
from serve.service_base import ServiceBase
from shards.types import Scope


class GraphMethods(ServiceBase):
    """The knowledge graph of shared entities, and entity extraction on its own."""

    # -- knowledge graph ----------------------------------------------------------------
    async def _graph_of(self, principal: Principal, memory_id: str, depth: int,
                        min_weight: float, namespace: str | None) -> Any:
        if namespace is not None:
            principal.require(namespace, "read")
            found = [await self.shard(namespace).memory_graph(
                memory_id, Scope.of(namespace), depth, 50, min_weight)]
        else:
            principal.require_level("read")
            found = await self._across(principal.scope, lambda s: s.memory_graph(
                memory_id, principal.scope, depth, 50, min_weight))
        graphs = [g for g in found if g is not None]
        if not graphs:
            raise not_found("memory", memory_id)
        return graphs[0]

    async def knowledge_graph(self, principal: Principal, namespace: str, memory_id: str,
                              depth: int, min_similarity: float) -> dict[str, Any]:
        """Dakera's KnowledgeGraphResponse: nodes, edges (source/target/similarity), clusters."""
        nodes, edges = await self._graph_of(principal, memory_id, depth, min_similarity, namespace)
        return {
            "nodes": [{"id": n.memory.id, "content": n.memory.content,
                       "memory_type": n.memory.memory_type, "importance": n.memory.importance,
                       "metadata": n.memory.metadata, "depth": n.depth} for n in nodes],
            "edges": [{"source": e.source, "target": e.target, "similarity": round(e.weight, 6),
                       "relationship": "shares_entity", "shared_entities": list(e.shared)}
                      for e in edges],
            "clusters": None,
        }

    async def memory_graph(self, principal: Principal, memory_id: str, depth: int) -> dict[str, Any]:
        """Dakera's MemoryGraph: root_id, nodes with their outgoing edges, edges."""
        nodes, edges = await self._graph_of(principal, memory_id, depth, 0.0, None)
        created = {n.memory.id: int(n.memory.created_at) for n in nodes}
        edge_json = [{"from_id": e.source, "to_id": e.target, "edge_type": "shares_entity",
                      "weight": round(e.weight, 6), "created_at": max(created[e.source], created[e.target]),
                      "shared_entities": list(e.shared)} for e in edges]
        return {
            "root_id": memory_id, "depth": depth, "node_count": len(nodes),
            "nodes": [{"memory_id": n.memory.id, "content_preview": n.memory.content[:200],
                       "importance": n.memory.importance, "depth": n.depth,
                       "edges": [e for e in edge_json if e["from_id"] == n.memory.id]} for n in nodes],
            "edges": edge_json,
        }

    async def memory_entities(self, principal: Principal, memory_id: str) -> dict[str, Any]:
        principal.require_level("read")
        found = [f for f in await self._across(
            principal.scope, lambda s: s.memory_entities(memory_id, principal.scope)) if f]
        if not found:
            raise not_found("memory", memory_id)
        memory, entities = found[0]
        return {"memory_id": memory.id, "agent_id": memory.namespace,
                "entities": [{"entity_type": e.type, "value": e.value, "key": e.key,
                              "score": e.score} for e in entities],
                "count": len(entities)}

    def extract(self, text: str) -> dict[str, Any]:
        self.check_content(text, "text")
        t0 = time.perf_counter()
        found = self.extractor.extract(text)
        return {"entities": [{"entity_type": e.type, "value": e.value, "key": e.key,
                              "score": e.score, "start": e.start, "end": e.end} for e in found],
                "provider": self.cfg.entities.kind, "model": self.cfg.entities.model,
                "duration_ms": round((time.perf_counter() - t0) * 1000, 3)}
