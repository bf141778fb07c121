"""LangChain: `EngramRetriever` (recall as Documents) and `EngramChatMessageHistory`
(a conversation kept as a session's memories). Needs `pip install 'engram[langchain]'`.

    retriever = EngramRetriever(client=Engram(url, api_key=key), namespace="support-bot", top_k=5)
    retriever.invoke("how does Jane like to be contacted")   # [Document(page_content=…, metadata={score, …})]

    history = EngramChatMessageHistory(client=Engram(url, api_key=key), namespace="user-42")
    history.add_messages([HumanMessage("I moved to Lisbon"), AIMessage("Noted!")])
    history.session_id   # the Engram session the turns live in: recall finds them across sessions
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, messages_from_dict, message_to_dict
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from engram.async_client import AsyncEngram
from engram.client import Engram

# What a Document's metadata carries from a recall result, beside the content.
RESULT_FIELDS = ("id", "score", "score_breakdown", "channels", "importance", "tags", "session_id",
                 "memory_type", "event_time", "metadata")


def as_document(result: dict[str, Any]) -> Document:
    return Document(page_content=result["content"], id=result["id"],
                    metadata={k: result.get(k) for k in RESULT_FIELDS})


class EngramRetriever(BaseRetriever):
    """Recall from one namespace, best first; `filters` as the recall route names them
    (tags, session_id, min_importance, since, until, memory_type, fusion, ...). Give
    `async_client` as well for `ainvoke` without a thread."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Engram
    namespace: str
    top_k: int = 5
    filters: dict[str, Any] = {}
    async_client: AsyncEngram | None = None

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        answer = self.client.memory.recall(query, self.namespace, self.top_k, **self.filters)
        return [as_document(r) for r in answer["results"]]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        answer = await self.async_client.memory.recall(query, self.namespace, self.top_k, **self.filters)
        return [as_document(r) for r in answer["results"]]


class EngramChatMessageHistory(BaseChatMessageHistory):
    """A conversation as one Engram session: each message is a memory of the session (its
    role and LangChain's own encoding of it in the memory's metadata), so the turns are
    recalled like any memory, and neighbouring turns come with a strong hit. Without a
    `session_id` a new session is started on first use. `clear()` forgets the turns."""

    PAGE = 500  # the session listing's largest page

    def __init__(self, client: Engram, namespace: str, session_id: str | None = None,
                 importance: float | None = None) -> None:
        self.client, self.namespace, self.importance = client, namespace, importance
        self._session_id = session_id

    @property
    def session_id(self) -> str:
        if self._session_id is None:
            self._session_id = str(self.client.sessions.start(self.namespace, {"source": "langchain"})["id"])
        return self._session_id

    def _turns(self) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []
        while True:  # oldest first
            page = self.client.sessions.memories(self.session_id, limit=self.PAGE, offset=len(turns))
            turns += page
            if len(page) < self.PAGE:
                return turns

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        encoded = [t["metadata"]["langchain_message"] for t in self._turns()
                   if isinstance(t.get("metadata"), dict) and "langchain_message" in t["metadata"]]
        return messages_from_dict(encoded)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        if not messages:
            return
        items = [{"content": m.text if isinstance(m.text, str) else str(m.content),
                  "session_id": self.session_id, "importance": self.importance,
                  "metadata": {"role": m.type, "langchain_message": message_to_dict(m)}}
                 for m in messages]
        self.client.memory.store_batch(self.namespace, items)

    def clear(self) -> None:
        ids = [t["id"] for t in self._turns()]
        for start in range(0, len(ids), 100):
            self.client.memory.forget(ids[start:start + 100], self.namespace)
