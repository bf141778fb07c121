"""Engram over the Model Context Protocol: `build_server` (the tools), `run_stdio` (`engram mcp`).

Needs the `mcp` extra (`pip install 'engram[mcp]'`); the rest of the client does not."""
from engram.mcp.server import INSTRUCTIONS, build_server
from engram.mcp.stdio import run_stdio

__all__ = ["INSTRUCTIONS", "build_server", "run_stdio"]
