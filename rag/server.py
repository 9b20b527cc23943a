"""The HTTP API behind `rag serve`: an OpenAI-compatible chat endpoint whose answers carry verified citations.

Thin routes over one shared ``Assistant``. Answers go through ``LLMQueue``: a local model computes one answer at
a time, so requests wait their turn in a bounded first-come-first-served queue (503 with ``Retry-After`` when it
is full) and a client that goes away gives its place back. Search and documents need no model and run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.answering import Answer, Turn, validate_question
from rag.assistant import Assistant
from rag.config import ServerSettings
from rag.errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    InputError,
    LLMError,
    RagError,
)
from rag.types import SearchMode

log = logging.getLogger("rag.server")

MODEL_ID = "rag"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# --- errors ------------------------------------------------------------------------------------------


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
    if isinstance(exc, InputError):
        return ApiError(422, str(exc), "invalid_request_error", "invalid_input")
    if isinstance(exc, IndexMissingError | IndexCorruptError | IndexMismatchError):
        return ApiError(503, str(exc), "server_error", "index_unavailable")
    if isinstance(exc, LLMError):
        return ApiError(502, str(exc), "upstream_error", "llm_failed")
    return ApiError(500, str(exc), "server_error", "internal_error")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The body is not valid JSON.",
        401: "RAG_API_KEY is set and the request has no valid `Authorization: Bearer <key>`.",
        404: "No such document.",
        413: "The body is larger than server.max_body_bytes.",
        422: "The request is well-formed JSON but not a valid request (field, size or count limits).",
        502: "The language model failed (unreachable, timed out, rejected the request or answered garbage).",
        503: "The answer queue is full or the index is unavailable; retry after `Retry-After` seconds.",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}


# --- the queue in front of the language model --------------------------------------------------------


class QueueFull(Exception):
    """No slot and no room to wait (or waited too long)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMQueue:
    """At most ``slots`` answers at once; up to ``max_queue`` more wait, first come first served.

    Lives on the event loop: ``acquire`` is awaited there, ``release`` is called there (threads use
    ``loop.call_soon_threadsafe``). A released slot goes straight to the longest waiter, so nobody barges in.
    """

    def __init__(self, slots: int, max_queue: int, timeout: float) -> None:
        self.slots, self.max_queue, self.timeout = slots, max_queue, timeout
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seconds_per_answer = 5.0  # running mean of recent answers, for Retry-After

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> int:
        """Seconds until a new request would likely get a slot."""
        return max(1, math.ceil(self._seconds_per_answer * (self.queued + 1) / self.slots))

    async def acquire(self, gone: Callable[[], Awaitable[bool]]) -> bool:
        """Wait for a slot; False when the client went away while waiting. Raises ``QueueFull``."""
        if self.active < self.slots and not self.queued:
            self.active += 1
            return True
        if self.queued >= self.max_queue:
            raise QueueFull(
                f"the answer queue is full ({self.active} answering, {self.queued} waiting, "
                f"server.max_queue = {self.max_queue}); retry later",
                self.retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        deadline = time.monotonic() + self.timeout
        acquired = False
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), timeout=min(0.5, self.timeout))
                if waiter.done():
                    acquired = True  # release() handed its slot over: already counted in ``active``
                    return True
                if await gone():
                    return False
                if time.monotonic() > deadline:
                    raise QueueFull(
                        f"waited {self.timeout:g} s (server.queue_timeout) for an answer slot; retry later",
                        self.retry_after(),
                    )
        finally:
            if not acquired:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self.release()  # handed a slot just as it gave up waiting: pass it on
                else:
                    waiter.cancel()

    def release(self, seconds: float | None = None) -> None:
        """Give a slot back (to the longest waiter, if any); ``seconds``: how long the answer took."""
        if seconds is not None:
            self._seconds_per_answer = 0.8 * self._seconds_per_answer + 0.2 * seconds
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1

    def to_json(self) -> dict[str, int]:
        return {"active": self.active, "queued": self.queued, "slots": self.slots, "max_queue": self.max_queue}


# --- one answer, computed in a worker thread --------------------------------------------------------


_END = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class AnswerRun:
    """One answer holding a model slot: computed in a thread, its events handed to the event loop.

    ``start`` waits for a slot (so a full queue is a 503 before any response starts); ``events`` yields the
    verified pieces and then the ``Answer``, and stops the work when the client disconnects.
    """

    def __init__(self, assistant: Assistant, queue: LLMQueue, request: Request, question: str, history: list[Turn]):
        self.assistant, self.queue, self.request = assistant, queue, request
        self.question, self.history = question, history
        self.cancel = threading.Event()
        self._events: asyncio.Queue[object] = asyncio.Queue()

    async def start(self) -> bool:
        """Take a slot and start the work; False when the client went away while waiting."""
        if not await self.queue.acquire(self.request.is_disconnected):
            return False
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def hand_over(callback: Callable[..., object], *args: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
                loop.call_soon_threadsafe(callback, *args)

        def work() -> None:
            try:
                for event in self.assistant.ask_stream(self.question, self.history, cancel=self.cancel):
                    hand_over(self._events.put_nowait, event)
            except BaseException as exc:  # raised again on the loop, where the route turns it into a response
                hand_over(self._events.put_nowait, _Failure(exc))
            finally:
                hand_over(self.queue.release, time.monotonic() - started)
                hand_over(self._events.put_nowait, _END)

        threading.Thread(target=work, name="rag-answer", daemon=True).start()
        return True

    async def events(self) -> AsyncIterator[str | Answer]:
        """The verified answer pieces, then the ``Answer``; ends early (without one) if the client disconnects."""
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self._events.get(), timeout=0.5)
                except TimeoutError:
                    if await self.request.is_disconnected():
                        return
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                assert isinstance(item, str | Answer)
                yield item
        finally:
            self.cancel.set()  # a client gone mid-answer: the worker stops at the next token, freeing its slot


# --- request and response shapes (the OpenAPI schema) -------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """An OpenAI Chat Completions request. Sampling options (temperature, max_tokens, ...) are accepted and
    ignored: answers follow the server's settings, so that their citations can be verified."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class CitationOut(BaseModel):
    n: int
    doc_id: str
    start: int = Field(description="Character offset into the document text (GET /v1/documents/{doc_id}).")
    end: int
    quote: str = Field(description="Exactly text[start:end].")
    supported: bool
    section: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[CitationOut]
    abstained: bool
    standalone_question: str


class CompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChunkDelta(BaseModel):
    """The first chunk has ``role``, the middle ones ``content``, the last one the answer's citations."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    citations: list[CitationOut] | None = None
    abstained: bool | None = None
    standalone_question: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


# Each event of a streamed answer: a chunk, an error (after the response started), or the final [DONE].
SSE_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                *(
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": f"#/components/schemas/{name}"},
                    }
                    for name in ("ChatCompletionChunk", "ErrorResponse")
                ),
            ]
        }
    },
}


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class HitOut(BaseModel):
    rank: int
    score: float
    doc_id: str
    chunk_id: str
    section: str
    start: int
    end: int
    text: str


class SearchRequest(BaseModel):
    query: str
    k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode | None = None
    doc_ids: list[str] | None = None
    sections: list[str] | None = None


class SearchResponse(BaseModel):
    query: str
    mode: str
    hits: list[HitOut]


class TurnIn(BaseModel):
    question: str
    answer: str


class AskRequest(BaseModel):
    question: str
    history: list[TurnIn] = Field(default_factory=list, description="Earlier turns, oldest first.")


class PromptRef(BaseModel):
    name: str
    sha256: str


class AskResponse(BaseModel):
    question: str
    answer: str
    abstained: bool
    citations: list[CitationOut]
    passages: list[HitOut]
    model: str
    prompt: PromptRef
    timings_ms: dict[str, int]
    usage: dict[str, int]
    standalone_question: str
    unsupported: list[str]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    text: str = Field(description="The text that citation offsets point into.")
    length: int


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    auth: bool
    model: str
    documents: int = 0
    chunks: int = 0
    llm: dict[str, int]
    error: str | None = None


# --- the application ----------------------------------------------------------------------------------


def _sse(payload: object) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _usage(answer: Answer) -> dict[str, int]:
    prompt, completion = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _answer_fields(answer: Answer) -> dict[str, Any]:
    """What an assistant message carries beyond its text."""
    return {
        "citations": [c.to_json() for c in answer.citations],
        "abstained": answer.abstained,
        "standalone_question": answer.standalone_question,
    }


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while reading a chunked body."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
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


def _conversation(messages: list[ChatMessage], settings: ServerSettings) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the earlier user/assistant exchanges as turns."""
    if len(messages) > settings.max_messages:
        raise ApiError(
            422,
            f"{len(messages)} messages is more than server.max_messages ({settings.max_messages}); "
            "send only the recent part of the conversation",
            "invalid_request_error",
            "too_many_messages",
        )
    chat = [m for m in messages if m.role in ("user", "assistant")]
    if not chat or chat[-1].role != "user":
        raise ApiError(
            422,
            "the last user/assistant message must be the user's question (role 'user')",
            "invalid_request_error",
            "no_question",
        )
    history: list[Turn] = []
    asked: str | None = None
    for message in chat[:-1]:
        if message.role == "user":
            asked = message.text()
        elif asked is not None:
            history.append(Turn(question=asked, answer=message.text()))
            asked = None
    return chat[-1].text(), history


def create_app(assistant: Assistant, settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application over one shared assistant; ``settings`` default to ``assistant.settings.server``."""
    from fastapi.concurrency import run_in_threadpool
    from starlette.middleware.cors import CORSMiddleware

    settings = settings or assistant.settings.server
    slots = settings.llm_slots or (4 if assistant.settings.llm.base_url else 1)
    queue = LLMQueue(slots, settings.max_queue, settings.queue_timeout)
    started = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_warm_up, assistant)
        yield

    app = FastAPI(
        title="rag",
        version="0.1.0",
        summary="Answers about a folder of documents, every sentence backed by a quoted span you can check.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: this server works offline
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    bearer = HTTPBearer(auto_error=False, description="The server's RAG_API_KEY, when it has one.")

    def require_key(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if not settings.api_key:
            return
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), settings.api_key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send `Authorization: Bearer <key>` with the key the server was started "
                "with (RAG_API_KEY)",
                "invalid_request_error",
                "invalid_api_key",
                {"WWW-Authenticate": "Bearer"},
            )

    api = [Depends(require_key)]

    # -- errors, all in OpenAI's shape --

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(QueueFull)
    async def on_queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return ApiError(503, str(exc), "server_error", "queue_full", headers).response()

    @app.exception_handler(RagError)
    async def on_rag_error(request: Request, exc: RagError) -> JSONResponse:
        return api_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            detail = "; ".join(str(p.get("ctx", {}).get("error", p.get("msg"))) for p in problems)
            return ApiError(
                400, f"the body is not valid JSON ({detail})", "invalid_request_error", "json_invalid"
            ).response()
        where = "; ".join(
            f"{'.'.join(str(x) for x in p.get('loc', ()) if x != 'body') or 'body'}: {p.get('msg')}"
            for p in problems[:5]
        )
        return ApiError(422, f"invalid request: {where}", "invalid_request_error", "invalid_request").response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(
            exc.status_code, str(exc.detail), "invalid_request_error", None, dict(exc.headers or {})
        ).response()

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiError(500, f"internal error: {type(exc).__name__}; see the server log", "server_error").response()

    # -- answers --

    async def start_answer(request: Request, question: str, history: list[Turn]) -> AnswerRun | None:
        validate_question(question, assistant.settings)  # 422 now: once streaming starts, errors are events
        await run_in_threadpool(lambda: assistant.retriever)  # a missing or damaged index: 503 before anything starts
        run = AnswerRun(assistant, queue, request, question, history)
        return run if await run.start() else None

    async def final_answer(run: AnswerRun) -> Answer | None:
        async for event in run.events():
            if isinstance(event, Answer):
                return event
        return None

    def client_gone() -> JSONResponse:
        return JSONResponse({"error": {"message": "client closed the request", "type": "client_gone"}}, 499)

    @app.post(
        "/v1/chat/completions",
        dependencies=api,
        response_model=ChatCompletion,
        responses={
            200: {
                "description": "A chat completion; with `stream: true`, server-sent `chat.completion.chunk` events "
                "whose last chunk before `[DONE]` carries `delta.citations` and `finish_reason: stop`.",
                "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            },
            **_errors(400, 401, 413, 422, 502, 503),
        },
        tags=["openai"],
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """Answer the last user message, the earlier ones as context; the message carries verified citations."""
        question, history = _conversation(body.messages, settings)
        run = await start_answer(request, question, history)
        if run is None:
            return client_gone()
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not body.stream:
            answer = await final_answer(run)
            if answer is None:
                return client_gone()
            return {
                "id": completion_id,
                "created": created,
                "model": MODEL_ID,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.answer, **_answer_fields(answer)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(answer),
            }
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL_ID,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if usage is not None:
                payload["usage"] = usage
            return _sse(payload)

        async def stream() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            try:
                async for event in run.events():
                    if isinstance(event, Answer):
                        usage = _usage(event) if include_usage else None
                        yield chunk(_answer_fields(event), "stop", usage)
                    else:
                        yield chunk({"content": event})
            except RagError as exc:
                yield _sse(api_error(exc).body())
            except Exception as exc:  # the response has started: report in the stream, keep serving
                log.exception("answer failed mid-stream")
                yield _sse(ApiError(500, f"internal error: {type(exc).__name__}", "server_error").body())
            yield "data: [DONE]\n\n"

        return ClosingStreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/ask", dependencies=api, response_model=AskResponse, responses=_errors(400, 401, 413, 422, 502, 503))
    async def ask(body: AskRequest, request: Request) -> Any:
        """The same JSON as `rag ask --json`."""
        history = [Turn(question=t.question, answer=t.answer) for t in body.history]
        run = await start_answer(request, body.question, history)
        answer = await final_answer(run) if run is not None else None
        return client_gone() if answer is None else answer.to_json()

    # -- search, documents, models --

    @app.post("/v1/search", dependencies=api, response_model=SearchResponse, responses=_errors(400, 401, 413, 422, 503))
    def search(body: SearchRequest) -> Any:
        """The same JSON as `rag search --json`."""
        return assistant.search(
            body.query, k=body.k, mode=body.mode, doc_ids=body.doc_ids, sections=body.sections
        ).to_json()

    @app.get(
        "/v1/documents/{doc_id:path}", dependencies=api, response_model=DocumentOut, responses=_errors(401, 404, 503)
    )
    def document(doc_id: str) -> Any:
        """A document's text as indexed: citation offsets point into it. Only indexed documents can be read."""
        try:
            doc = assistant.document(doc_id)
        except InputError as exc:
            raise ApiError(404, str(exc), "invalid_request_error", "document_not_found") from exc
        return {"doc_id": doc.doc_id, "title": doc.title, "text": doc.text, "length": len(doc.text)}

    @app.get("/v1/models", dependencies=api, response_model=ModelList, responses=_errors(401), tags=["openai"])
    def models() -> Any:
        """The one model this server offers: answers from the indexed documents."""
        return {"data": [{"id": MODEL_ID, "created": started, "owned_by": "rag"}]}

    # -- open routes: health and the chat page --

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz() -> Any:
        """Whether the index is loaded, whether API keys are required, and the answer queue."""
        health: dict[str, Any] = {"auth": bool(settings.api_key), "model": MODEL_ID, "llm": queue.to_json()}
        try:
            index = assistant.index
        except RagError as exc:
            return JSONResponse(Health(status="unavailable", error=str(exc), **health).model_dump(), 503)
        return {"status": "ok", "documents": len(index.documents), "chunks": len(index.chunks), **health}

    html = resources.files("rag.web").joinpath("chat.html").read_text(encoding="utf-8")  # read once, served often

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=PAGE_HEADERS)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's schema plus the streamed chunk's, which no route returns as JSON."""
        if app.openapi_schema is None:
            schema = default_openapi()
            chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
            schema["components"]["schemas"].update({**chunk.pop("$defs", {}), "ChatCompletionChunk": chunk})
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app


# The page may load nothing from elsewhere: everything it needs is inline, and it talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator however streaming ends: a client gone mid-stream stops the answer at once."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


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

    uvicorn.run(create_app(assistant), host=host, port=port, log_level="info", proxy_headers=False)
