"""The HTTP API (FastAPI): the routes of the Dakera memory API, one module per resource.

Every route reads `request.app.state.service` (a MemoryService) and `.control` (the key
store); `app.create_app` binds both, once per router replica.
"""
