"""What stands in front of the routes: the body size limit, the API key and CORS."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.config import ServerSettings
from rag.server.errors import ApiError
from rag.server.state import State


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> JSONResponse:
        return ApiError(
            413,
            f"the request body is larger than {self.max_bytes:,} bytes (server.max_body_bytes); send less",
            "invalid_request_error",
            "request_too_large",
        ).response()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large()(scope, receive, send)
            return
        if length is None:  # a chunked body: read it here, up to the limit, then hand it on
            body = b""
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                body += message.get("body", b"")
                if len(body) > self.max_bytes:
                    await self._too_large()(scope, receive, send)
                    return
                if not message.get("more_body", False):
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)  # the server holds the body to its Content-Length


def add_middleware(app: FastAPI, settings: ServerSettings) -> None:
    """The body size limit, and CORS for the browser origins the settings allow (none by default)."""
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )


bearer = HTTPBearer(auto_error=False, description="The server's RAG_API_KEY, when it has one.")


def require_key(state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """With an API key set (RAG_API_KEY), a request must carry it as ``Authorization: Bearer <key>``."""
    api_key = state.settings.api_key
    if not api_key:
        return
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), api_key.encode()):
        raise ApiError(
            401,
            "missing or wrong API key: send `Authorization: Bearer <key>` with the key the server was started "
            "with (RAG_API_KEY)",
            "invalid_request_error",
            "invalid_api_key",
            {"WWW-Authenticate": "Bearer"},
        )


# The routes that need the key (every /v1 route) list this in their ``dependencies``.
KEY_REQUIRED = [Depends(require_key)]
