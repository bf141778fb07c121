"""The framework adapters (engram/adapters/) against the running service: LangChain's
retriever and chat-message history, LlamaIndex's retriever. The extras install here (the
test extra pulls them), so nothing is skipped."""
from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from llama_index.core.schema import QueryBundle

from engram import AsyncEngram, Engram
from engram.adapters import langchain as lc
from engram.adapters import llamaindex as li
from tests.builders import Engram as Service

FACTS = ["Jane prefers email over phone calls", "Jane's order #4471 shipped on Monday",
         "Omar asked for a refund of the blue kettle"]


def filled(service: Service, ns: str) -> tuple[Engram, str]:
    key = service.create_key("write", [ns])
    client = Engram(service.url, api_key=key)
    client.memory.store_batch(ns, FACTS)
    return client, key


def test_the_langchain_retriever_gives_documents_with_their_scores(engram: Service, ns: str) -> None:
    client, key = filled(engram, ns)
    retriever = lc.EngramRetriever(client=client, namespace=ns, top_k=2)
    docs = retriever.invoke("how should I contact Jane")
    assert docs[0].page_content == FACTS[0] and len(docs) == 2
    assert docs[0].metadata["score"] >= docs[1].metadata["score"]
    assert "relevance" in docs[0].metadata["score_breakdown"] and docs[0].metadata["channels"]

    async def asynchronously() -> list[str]:
        async with AsyncEngram(engram.url, api_key=key) as aclient:
            async_retriever = lc.EngramRetriever(client=client, async_client=aclient, namespace=ns,
                                                 top_k=1, filters={"min_importance": 0.0})
            return [d.page_content for d in await async_retriever.ainvoke("refund kettle")]

    assert asyncio.run(asynchronously()) == [FACTS[2]]
    client.close()


def test_the_langchain_history_keeps_a_conversation_as_a_session(engram: Service, ns: str) -> None:
    client, _ = filled(engram, ns)
    history = lc.EngramChatMessageHistory(client=client, namespace=ns)
    turns = [SystemMessage("You are a travel assistant"), HumanMessage("I moved to Lisbon in May"),
             AIMessage("Noted: Lisbon since May.")]
    history.add_messages(turns[:2])
    history.add_message(turns[2])
    assert [(m.type, m.content) for m in history.messages] == [(m.type, m.content) for m in turns]
    # The same conversation, opened again by its session id (a new process would do this)
    again = lc.EngramChatMessageHistory(client=client, namespace=ns, session_id=history.session_id)
    assert [m.content for m in again.messages] == [m.content for m in turns]
    # and its turns are memories: recall finds them
    hits = client.memory.recall("when did the user move to Lisbon", ns, top_k=2)["results"]
    assert {h["content"] for h in hits} == {"I moved to Lisbon in May", "Noted: Lisbon since May."}
    assert {h["session_id"] for h in hits} == {history.session_id}
    history.clear()
    assert again.messages == []
    assert len(client.memory.recall("Jane", ns, top_k=10)["results"]) == len(FACTS)  # the rest stays
    client.close()


def test_the_llamaindex_retriever_gives_scored_nodes(engram: Service, ns: str) -> None:
    client, key = filled(engram, ns)
    retriever = li.EngramRetriever(client, namespace=ns, top_k=2)
    nodes = retriever.retrieve("what happened to Jane's order")
    assert nodes[0].node.get_content() == FACTS[1] and len(nodes) == 2
    assert nodes[0].score is not None and nodes[1].score is not None and nodes[0].score >= nodes[1].score
    assert nodes[0].node.node_id.startswith("mem_") and "relevance" in nodes[0].node.metadata["score_breakdown"]

    async def asynchronously() -> str:
        async with AsyncEngram(engram.url, api_key=key) as aclient:
            found = await li.EngramRetriever(client, ns, top_k=1, async_client=aclient).aretrieve(
                QueryBundle("kettle refund"))
            return found[0].node.get_content()

    assert asyncio.run(asynchronously()) == FACTS[2]
    client.close()
