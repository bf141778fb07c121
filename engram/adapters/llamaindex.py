"""LlamaIndex: `EngramRetriever`, recall as scored nodes. Needs `pip install 'engram[llamaindex]'`.

    retriever = EngramRetriever(Engram(url, api_key=key), namespace="support-bot", top_k=5)
    retriever.retrieve("how does Jane like to be contacted")   # [NodeWithScore(node=TextNode(…), score=…)]
    RetrieverQueryEngine.from_args(retriever, llm=…)            # or any engine that takes a retriever
"""
from __future__ import annotations

from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from engram.async_client import AsyncEngram
from engram.client import Engram

RESULT_FIELDS = ("score_breakdown", "channels", "importance", "tags", "session_id", "memory_type",
                 "event_time", "namespace")


def as_node(result: dict[str, Any]) -> NodeWithScore:
    metadata = {k: result.get(k) for k in RESULT_FIELDS}
    metadata.update(result.get("metadata") or {})
    node = TextNode(id_=result["id"], text=result["content"], metadata=metadata,
                    # the breakdown is for the application, not for the prompt
                    excluded_llm_metadata_keys=["score_breakdown", "channels"])
    return NodeWithScore(node=node, score=result.get("score"))


class EngramRetriever(BaseRetriever):
    """Recall from one namespace, best first; `filters` as the recall route names them."""

    def __init__(self, client: Engram, namespace: str, top_k: int = 5,
                 filters: dict[str, Any] | None = None, async_client: AsyncEngram | None = None,
                 **kwargs: Any) -> None:
        self.client, self.namespace, self.top_k = client, namespace, top_k
        self.filters = dict(filters or {})
        self.async_client = async_client
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        answer = self.client.memory.recall(query_bundle.query_str, self.namespace, self.top_k, **self.filters)
        return [as_node(r) for r in answer["results"]]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.async_client is None:
            return self._retrieve(query_bundle)
        answer = await self.async_client.memory.recall(query_bundle.query_str, self.namespace,
                                                       self.top_k, **self.filters)
        return [as_node(r) for r in answer["results"]]
