"""Engram's Ray Serve application: HTTP API, router, deployment wrappers, app builder."""
