"""A small fake OpenAI-compatible server for the error paths and the logic around the language model.

It serves ``POST /v1/chat/completions`` (streamed as server-sent events or not) and ``GET /v1/models`` on
127.0.0.1, answers as each test configures it (a fixed reply, an HTTP error, garbage, nothing, slowly, or
failing the first few requests), and records every request so a test can count attempts and read prompts.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Messages = list[dict[str, Any]]

# OpenAI-style error bodies, so the client raises the same exception class as against the real API.
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "bad_request", "The request is malformed."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached."),
    500: ("server_error", "internal_error", "The server had an error while processing your request."),
    503: ("server_error", "overloaded", "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; ``body`` is None when it was not JSON."""

    method: str
    path: str
    body: dict[str, Any] | None
    authorization: str | None

    @property
    def messages(self) -> Messages:
        return list((self.body or {}).get("messages", []))

    def text(self) -> str:
        """Every message's content, joined: what a test searches for a prompt's words."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


class FakeOpenAI:
    """A fake OpenAI-compatible endpoint; change the public attributes between requests to change its behaviour.

    ``reply``: the answer text; ``reply_for(messages)``: the answer text per prompt (wins over ``reply``);
    ``status``: answer every chat request with this HTTP error; ``fail_first``: answer the next N chat
    requests with HTTP 500, then normally; ``garbage``: HTTP 200 with ``garbage_body`` instead of a completion
    (by default not JSON; sent as one SSE event when streaming); ``empty``: the content is "";
    ``delay``: seconds to wait before answering; ``stall``: seconds a stream stops for after its first word.
    ``judge_score``: the P(YES) the entailment judge's requests (recognised by the judge prompt's system
    message) get, with YES/NO ``top_logprobs`` when asked: a number, or a function of the request's messages;
    None answers them like any other request.
    ``logprobs_error``: requests that ask for logprobs get llama-cpp-python's HTTP 500 for a model loaded
    without logits_all, so the judge must fall back to reading the word.
    """

    def __init__(
        self,
        reply: str = "",
        *,
        reply_for: Callable[[Messages], str] | None = None,
        status: int | None = None,
        fail_first: int = 0,
        garbage: bool = False,
        garbage_body: bytes = b"<html><body>502 Bad Gateway</body></html>",
        garbage_content_type: str = "application/json",
        empty: bool = False,
        delay: float = 0.0,
        stall: float = 0.0,
        model: str = "fake",
        judge_score: float | Callable[[Messages], float] | None = 0.9,
        logprobs_error: bool = False,
    ) -> None:
        self.reply = reply
        self.reply_for = reply_for
        self.status = status
        self.fail_first = fail_first
        self.garbage = garbage
        self.garbage_body = garbage_body
        self.garbage_content_type = garbage_content_type
        self.empty = empty
        self.delay = delay
        self.stall = stall
        self.model = model
        self.judge_score = judge_score
        self.logprobs_error = logprobs_error
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a request still waiting out its ``delay`` is cut short."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The URL to configure as ``llm.base_url`` (ends in ``/v1``)."""
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # --- what the tests read ------------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests, oldest first (every attempt, retries included)."""
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/chat/completions"]

    # --- what the handler asks ----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_failure(self) -> int | None:
        """The HTTP error status this request gets, if any (consuming one of ``fail_first``)."""
        with self._lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                return 500
        return self.status

    def _wait(self) -> None:
        if self.delay > 0:
            self._stopping.wait(self.delay)

    def _text_for(self, messages: Messages) -> str:
        if self.empty:
            return ""
        return self.reply_for(messages) if self.reply_for is not None else self.reply


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeOpenAI/1.0"

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``fake.requests`` instead."""

    def do_GET(self) -> None:
        self.fake._record(RecordedRequest("GET", self.path, None, self.headers.get("Authorization")))
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.fake.model, "object": "model", "created": 0, "owned_by": "fake"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route GET {self.path}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        fake = self.fake
        fake._record(RecordedRequest("POST", self.path, body, self.headers.get("Authorization")))
        if self.path != "/v1/chat/completions":
            self._error(404, f"no route POST {self.path}")
            return
        if not isinstance(body, dict):
            self._error(400, "the request body is not a JSON object")
            return
        fake._wait()
        try:
            if (status := fake._take_failure()) is not None:
                self._error(status)
            elif fake.logprobs_error and body.get("logprobs"):
                self._error(500, "logprobs is not supported for models created with logits_all=False")
            elif body.get("stream"):
                self._stream(body)
            elif fake.garbage:
                self._send(200, fake.garbage_content_type, fake.garbage_body)
            else:
                self._json(200, self._completion(body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer

    # --- responses ----------------------------------------------------------------------------------------

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        score = self.fake.judge_score
        if score is not None and is_judge_request(body["messages"]):
            return _judge_completion(body, score(body["messages"]) if callable(score) else score)
        text = self.fake._text_for(body["messages"])
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"},
            ],
            "usage": _usage(body["messages"], text),
        }

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.fake.garbage:
            self.wfile.write(b"data: " + self.fake.garbage_body + b"\n\ndata: [DONE]\n\n")
            return
        text = self.fake._text_for(body["messages"])
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body.get("model")}

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            self._event({**base, "choices": [choice]})

        chunk({"role": "assistant", "content": ""})
        for n, piece in enumerate(_pieces(text)):
            chunk({"content": piece})
            if n == 0 and self.fake.stall > 0:
                self.wfile.flush()
                self.fake._stopping.wait(self.fake.stall)  # a server that hangs mid-answer
        chunk({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": _usage(body["messages"], text)})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def _error(self, status: int, message: str | None = None) -> None:
        kind, code, default = ERRORS.get(status, ("server_error", "error", f"HTTP {status}"))
        self._json(status, {"error": {"message": message or default, "type": kind, "param": None, "code": code}})

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(data).encode())

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def is_judge_request(messages: Messages) -> bool:
    """Whether a chat request is the entailment judge's: its system message is the judge prompt's."""
    from rag.prompts import load_prompt

    system = load_prompt("judge").system.strip()
    return bool(messages) and messages[0].get("role") == "system" and messages[0].get("content") == system


def _judge_completion(body: dict[str, Any], score: float) -> dict[str, Any]:
    word = "YES" if score >= 0.5 else "NO"
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": word}, "finish_reason": "length"}
    if body.get("logprobs"):
        alternatives = [
            {"token": "YES", "logprob": math.log(max(score, 1e-9)), "bytes": None},
            {"token": "NO", "logprob": math.log(max(1 - score, 1e-9)), "bytes": None},
        ]
        chosen = alternatives[0] if word == "YES" else alternatives[1]
        choice["logprobs"] = {"content": [{**chosen, "top_logprobs": alternatives}]}
    return {
        "id": "chatcmpl-fake-judge",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", ""),
        "choices": [choice],
        "usage": _usage(body["messages"], word),
    }


def _pieces(text: str, size: int = 7) -> list[str]:
    """The reply in small deltas, so sentences arrive split mid-word as from a real model."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _usage(messages: Messages, text: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
