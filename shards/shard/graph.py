"""A shard's knowledge graph: memories linked by the entities they share."""
from __future__ import annotations

import math
from collections.abc import Sequence

from shards.shard.placement import ShardBase
from shards.types import EntityRef, GraphEdge, GraphNode, Hit, Memory, RecallFilter, Scope


class GraphMixin(ShardBase):
    """The knowledge graph: the graph channel of recall and traversals from a memory."""

    def _max_doc_freq(self, namespace_size: int) -> int:
        return max(self.hub_min, int(namespace_size * self.hub_fraction))

    @staticmethod
    def entity_weight(doc_freq: int, namespace_size: int) -> float:
        """Rarer entities weigh more (an IDF): one shared order number says more than a city."""
        return math.log(1.0 + namespace_size / (1.0 + max(doc_freq, 1)))

    def _graph_hits(self, namespace: str, query_entities: Sequence[str], seeds: dict[int, float],
                    limit: int) -> list[Hit]:
        size = self.records.namespace_size(namespace)
        if size == 0:
            return []
        max_df = self._max_doc_freq(size)
        scores: dict[int, float] = {}
        matched = {e: kd for e, kd in self.records.match_entities(namespace, query_entities).items()
                   if kd[1] <= max_df}
        for key, ent_id in self.records.memories_of_entities(list(matched)):
            scores[key] = scores.get(key, 0.0) + self.entity_weight(matched[ent_id][1], size)
        if scores:  # memories naming the query's entities are seeds too, as strong as the best hit
            top = max(scores.values())
            for key, score in sorted(scores.items(), key=lambda kv: -kv[1])[:self.graph_seeds]:
                seeds[key] = max(seeds.get(key, 0.0), score / top)
        for src, dst, _, _, df in self.records.entity_links(list(seeds), max_df):
            # A seed spreads its weight over the memories sharing the entity (as in personalised
            # PageRank): an order number shared by two memories links them far more than a
            # name shared by twenty. One hop away counts half: a neighbour is evidence, not a match.
            share = self.entity_weight(df, size) / max(df - 1, 1)
            scores[dst] = scores.get(dst, 0.0) + 0.5 * seeds[src] * share
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [Hit(key=k, score=v) for k, v in ranked]

    def _session_hits(self, seeds: dict[int, float]) -> list[Hit]:
        """Turns near the strong hits in their session, half as strong as the hit at distance
        1 and fading by `session_decay` per turn beyond (an answer is often a few turns on)."""
        scores: dict[int, float] = {}
        window = self.session_window
        sides = self.records.session_side_keys(list(seeds), window, window)
        for key, strength in seeds.items():
            earlier, later = sides.get(key, ([], []))
            for distance, neighbor in [*enumerate(reversed(earlier), 1), *enumerate(later, 1)]:
                score = 0.5 * strength * self.session_decay ** (distance - 1)
                scores[neighbor] = max(scores.get(neighbor, 0.0), score)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Hit(key=k, score=v) for k, v in ranked]

    def traverse(self, namespace: str, root_keys: Sequence[int], depth: int, max_nodes: int,
                 min_weight: float = 0.0) -> tuple[dict[int, tuple[int, float]], list[tuple[int, int, float, tuple[str, ...]]]]:
        """Breadth-first over shared-entity links: key → (depth, weight) and the edges walked.

        Edge weight is 1 − e^(−Σ rarity of the shared entities), in [0, 1).
        """
        size = self.records.namespace_size(namespace)
        max_df = self._max_doc_freq(size)
        nodes: dict[int, tuple[int, float]] = {k: (0, 1.0) for k in root_keys}
        edges: list[tuple[int, int, float, tuple[str, ...]]] = []
        frontier = list(root_keys)
        for level in range(1, depth + 1):
            if not frontier or len(nodes) >= max_nodes:
                break
            links: dict[tuple[int, int], tuple[float, list[str]]] = {}
            for src, dst, _, ent_key, df in self.records.entity_links(frontier, max_df):
                weight, shared = links.get((src, dst), (0.0, []))
                links[(src, dst)] = (weight + self.entity_weight(df, size), shared + [ent_key])
            nxt: list[int] = []
            for (src, dst), (raw, shared) in sorted(links.items(), key=lambda kv: -kv[1][0]):
                weight = 1.0 - math.exp(-raw)
                if weight < min_weight:
                    continue
                if dst not in nodes:
                    if len(nodes) >= max_nodes:
                        continue
                    nodes[dst] = (level, weight * nodes[src][1])
                    nxt.append(dst)
                if nodes[dst][0] >= nodes[src][0]:  # edges outward or across a level, once
                    edges.append((src, dst, weight, tuple(sorted(set(shared)))))
            frontier = nxt
        return nodes, edges

    def memory_graph(self, memory_id: str, scope: Scope, depth: int, max_nodes: int = 50,
                     min_weight: float = 0.0) -> tuple[list[GraphNode], list[GraphEdge]] | None:
        """The neighbourhood of one memory in its namespace's graph (None: not in scope)."""
        self._check_scope(scope)
        found = self.records.find(memory_id, scope)
        if found is None or not self._visible(found[1].namespace):
            return None
        root_key, root = found
        nodes, edges = self.traverse(root.namespace, [root_key], depth, max_nodes, min_weight)
        memories = self.records.by_keys(root.namespace, nodes)
        graph_nodes = [GraphNode(memory=memories[k], depth=d, weight=w)
                       for k, (d, w) in sorted(nodes.items(), key=lambda kv: (kv[1][0], -kv[1][1]))
                       if k in memories]
        graph_edges = [GraphEdge(source=memories[a].id, target=memories[b].id, weight=w, shared=sh)
                       for a, b, w, sh in edges if a in memories and b in memories]
        return graph_nodes, graph_edges

    def associated(self, namespace: str, memory_ids: Sequence[str], depth: int, cap: int,
                   min_weight: float, flt: RecallFilter) -> list[GraphNode]:
        """Memories linked to these (recalled) ones, nearest and strongest first."""
        self._check(namespace, write=False)
        scope = Scope.of(namespace)
        roots = [f[0] for mid in memory_ids if (f := self.records.find(mid, scope)) is not None]
        nodes, _ = self.traverse(namespace, roots, depth, len(roots) + cap * 4, min_weight)
        memories = self.records.by_keys(namespace, [k for k in nodes if k not in roots])
        ordered = sorted((k for k in memories if flt.admits(memories[k])),
                         key=lambda k: (nodes[k][0], -nodes[k][1]))
        return [GraphNode(memory=memories[k], depth=nodes[k][0], weight=nodes[k][1])
                for k in ordered[:cap]]

    def memory_entities(self, memory_id: str, scope: Scope) -> tuple[Memory, list[EntityRef]] | None:
        self._check_scope(scope)
        found = self.records.find(memory_id, scope)
        if found is None or not self._visible(found[1].namespace):
            return None
        return found[1], self.records.entities_of(found[0])
