"""What stands in front of the routes: the Host check, the body size limit, the API key and CORS."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.config import ServerSettings
from rag.server.errors import ApiError
from rag.server.state import State

UPLOAD_PATH = "/v1/documents"  # POST: a file upload, limited by server.max_upload_bytes instead
MULTIPART_SLACK = 65_536  # the multipart framing around an uploaded file


def upload_too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413,
        f"the file is larger than {max_bytes:,} bytes (server.max_upload_bytes); split it, or raise "
        "RAG_SERVER_MAX_UPLOAD_BYTES",
        "invalid_request_error",
        "file_too_large",
    )


class BodyLimit:
    """Read each request body whole before the routes see it: over ``max_bytes`` (by Content-Length or while
    reading a chunked body) is 413, and a body not complete within ``seconds`` (a client that sends less than its
    Content-Length and waits) is 408, so no connection is held open by a slow or lying client. An upload
    (``POST /v1/documents``) may be up to ``max_upload`` bytes plus its multipart framing."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float = 30.0, max_upload: int = 0) -> None:
        self.app, self.max_bytes, self.seconds, self.max_upload = app, max_bytes, seconds, max_upload

    def _too_large(self, upload: bool) -> JSONResponse:
        if upload:
            return upload_too_large(self.max_upload).response()
        return ApiError(
            413,
            f"the request body is larger than {self.max_bytes:,} bytes (server.max_body_bytes); send less",
            "invalid_request_error",
            "request_too_large",
        ).response()

    def _too_slow(self) -> JSONResponse:
        return ApiError(
            408,
            f"the request body did not arrive within {self.seconds:g} s (server.body_timeout); send the whole body "
            "its Content-Length announces",
            "invalid_request_error",
            "request_timeout",
        ).response()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH
        limit = self.max_upload + MULTIPART_SLACK if upload else self.max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._too_large(upload)(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(self._read(receive, limit), self.seconds)
        except TimeoutError:
            await self._too_slow()(scope, receive, send)
            return
        if body is None:
            return  # the client went away
        if len(body) > limit:
            await self._too_large(upload)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later: the disconnect a streaming answer listens for
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, limit: int) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > limit or not message.get("more_body", False):
                return b"".join(parts)  # joined once: an upload of megabytes is not copied chunk by chunk


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(settings: ServerSettings) -> list[str] | None:
    """The Host names a request may name, or None for any (``server.allowed_hosts``; loopback names by default
    when the server is bound to loopback)."""
    if "*" in settings.allowed_hosts:
        return None
    if settings.allowed_hosts:
        return [h.lower() for h in settings.allowed_hosts]
    return list(LOOPBACK_NAMES) if is_loopback(settings.host) else None


class HostCheck:
    """Refuse a request whose Host header names another host than the allowed ones (DNS rebinding: a web page
    whose name resolves to 127.0.0.1 would otherwise read the documents through the visitor's browser)."""

    def __init__(self, app: ASGIApp, hosts: list[str]) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        name = header.rsplit(":", 1)[0] if not header.endswith("]") else header  # drop the port
        if name.strip("[]") in self.hosts:
            await self.app(scope, receive, send)
            return
        await ApiError(
            400,
            f"the Host header {header!r} is not one this server answers to ({', '.join(self.hosts)}); use one of "
            "those, or list the name in server.allowed_hosts (RAG_SERVER_ALLOWED_HOSTS)",
            "invalid_request_error",
            "invalid_host",
        ).response()(scope, receive, send)


def add_middleware(app: FastAPI, settings: ServerSettings) -> None:
    """The Host check, the body size limit, and CORS for the browser origins the settings allow (none by
    default)."""
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        seconds=settings.body_timeout,
        max_upload=settings.max_upload_bytes,
    )
    if (hosts := allowed_hosts(settings)) is not None:
        app.add_middleware(HostCheck, hosts=hosts)  # added last: runs first
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
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
