"""The application: one shared ``Assistant`` behind the middleware, the error handlers, the two routers and MCP."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.routing import Route

from rag import mcp_server
from rag.assistant import Assistant
from rag.config import ServerSettings
from rag.errors import RagError
from rag.server import routes_documents, routes_openai, routes_rag
from rag.server.errors import add_exception_handlers
from rag.server.middleware import add_middleware
from rag.server.schemas import add_chunk_schema
from rag.server.state import AppState

log = logging.getLogger("rag.server")


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await run_in_threadpool(_warm_up, app.state.rag.assistant)
    async with app.state.mcp.running():  # the MCP sessions live inside the app's lifespan
        yield


def create_app(assistant: Assistant, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application over one shared assistant; ``settings`` default to ``assistant.settings.server``."""
    settings = settings or assistant.settings.server
    app = FastAPI(
        title="rag",
        version="0.1.0",
        summary="Answers about a folder of documents, every sentence backed by a quoted span you can check.",
        lifespan=_lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: this server works offline
        redoc_url=None,
    )
    app.state.rag = AppState.build(assistant, settings)
    app.state.mcp = mcp_server.HttpEndpoint(app.state.rag)  # MCP over streamable HTTP, same key (docs/mcp.md)
    app.router.routes.append(Route("/mcp", app.state.mcp, include_in_schema=False))
    add_middleware(app, settings)
    add_exception_handlers(app)
    app.include_router(routes_openai.router)
    app.include_router(routes_rag.router)
    app.include_router(routes_documents.router)
    add_chunk_schema(app)
    return app


def _warm_up(assistant: Assistant) -> None:
    """Load the index, the embedder and the model's client before the first request, so it is not slow."""
    try:
        assistant.search("warm up", k=1)
    except RagError as exc:
        log.warning("index not ready: %s", exc)
    try:
        assistant.model.warm_up()  # starts the bundled model's server when that is the model
    except RagError as exc:
        log.warning("language model not ready (answers will fail until it is): %s", exc)


def serve(assistant: Assistant, host: str, port: int) -> None:
    """Run the server until interrupted."""
    import uvicorn

    settings = dataclasses.replace(assistant.settings.server, host=host)  # the Host check knows the bound address
    uvicorn.run(create_app(assistant, settings), host=host, port=port, log_level="info", proxy_headers=False)
