"""Every error the API answers, in OpenAI's shape: ``{"error": {"message", "type", "code", "param"}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    BusyError,
    ConflictError,
    CorpusError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    IndexWriteError,
    InputError,
    LLMError,
    RagError,
)
from rag.server.queue import QueueFull

log = logging.getLogger("rag.server")


class ApiError(Exception):
    """An error answered as OpenAI does: ``{"error": {"message", "type", "code"}}`` with an HTTP status."""

    def __init__(
        self, status: int, message: str, kind: str, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code, "param": None}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(exc: RagError) -> ApiError:
    """The HTTP form of a library error: the caller's fault (4xx), the index's (503) or the model's (502)."""
    if isinstance(exc, ConflictError | CorpusError):  # a document of that name exists; no corpus folder
        return ApiError(409, str(exc), "invalid_request_error", "conflict")
    if isinstance(exc, InputError):
        return ApiError(422, str(exc), "invalid_request_error", "invalid_input")
    if isinstance(exc, IndexMissingError | IndexCorruptError | IndexMismatchError):
        return ApiError(503, str(exc), "server_error", "index_unavailable")
    if isinstance(exc, LLMError):
        return ApiError(502, str(exc), "upstream_error", "llm_failed")
    if isinstance(exc, BusyError):  # a `rag index` is writing the index
        return ApiError(503, str(exc), "server_error", "index_busy", {"Retry-After": "5"})
    if isinstance(exc, IndexWriteError):
        return ApiError(500, str(exc), "server_error", "index_write_failed")
    return ApiError(500, str(exc), "server_error", "internal_error")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses, each described in the OpenAPI schema."""
    described = {
        400: "The body is not valid JSON.",
        401: "RAG_API_KEY is set and the request has no valid `Authorization: Bearer <key>`.",
        404: "No such document.",
        409: "A document of that name exists, or the change would leave the index without documents.",
        413: "The body is larger than server.max_body_bytes (an upload: server.max_upload_bytes).",
        422: "The request is well-formed JSON but not a valid request (field, size or count limits).",
        502: "The language model failed (unreachable, timed out, rejected the request or answered garbage).",
        503: "The answer queue is full, or the index is unavailable or being written; retry after `Retry-After` "
        "seconds.",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


# --- the exception handlers: errors, all in OpenAI's shape ----------------------------------------------


async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response()


async def on_queue_full(request: Request, exc: QueueFull) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)}
    return ApiError(503, str(exc), "server_error", "queue_full", headers).response()


async def on_rag_error(request: Request, exc: RagError) -> JSONResponse:
    return api_error(exc).response()


async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        detail = "; ".join(str(p.get("ctx", {}).get("error", p.get("msg"))) for p in problems)
        return ApiError(
            400, f"the body is not valid JSON ({detail})", "invalid_request_error", "json_invalid"
        ).response()
    where = "; ".join(
        f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body') or 'body'}: {p.get('msg')}" for p in problems[:5]
    )
    return ApiError(422, f"invalid request: {where}", "invalid_request_error", "invalid_request").response()


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return ApiError(exc.status_code, str(exc.detail), "invalid_request_error", None, dict(exc.headers or {})).response()


async def on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ApiError(500, f"internal error: {type(exc).__name__}; see the server log", "server_error").response()


# Each error class and its handler; a handler takes the error of its class (hence ``Any``, not ``Exception``).
HANDLERS: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
    ApiError: on_api_error,
    QueueFull: on_queue_full,
    RagError: on_rag_error,
    RequestValidationError: on_invalid,
    StarletteHTTPException: on_http_error,
    Exception: on_crash,
}


def add_exception_handlers(app: FastAPI) -> None:
    """Answer every error as an ``ApiError``: ours, a full queue, the library's, FastAPI's and any crash."""
    for error, handler in HANDLERS.items():
        app.add_exception_handler(error, handler)
