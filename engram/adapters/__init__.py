"""Engram under the frameworks agents are built with, over Engram's own client:
`engram.adapters.langchain` (a retriever and a chat-message history; extra `langchain`) and
`engram.adapters.llamaindex` (a retriever; extra `llamaindex`). Each imports its framework
only when it is itself imported."""
