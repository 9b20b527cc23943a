"""How an answer leaves the server: a chat completion, whole or as server-sent events, and an answer's end.

Once a streamed response has started its status is sent, so a failure after that is reported as an error
event in the stream (then ``[DONE]``), never as an HTTP error.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Send

from rag.answering import Answer
from rag.errors import RagError
from rag.schemas import AbstainReasonOut, CitationOut, ClosestPassageOut, dump
from rag.server.errors import ApiError, api_error
from rag.server.queue import AnswerRun
from rag.server.schemas import MODEL_ID
from rag.types import Stage

log = logging.getLogger("rag.server")


def _sse(payload: object) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _usage(answer: Answer) -> dict[str, int]:
    prompt, completion = answer.usage.get("prompt_tokens", 0), answer.usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _answer_fields(answer: Answer) -> dict[str, Any]:
    """What an assistant message carries beyond its text."""
    return {
        "citations": [dump(CitationOut.of(c)) for c in answer.citations],
        "abstained": answer.abstained,
        "standalone_question": answer.standalone_question,
        "abstain_reason": _dumped(AbstainReasonOut.of(answer.abstain_reason)),
        "closest_passages": [dump(ClosestPassageOut.of(p)) for p in answer.closest_passages],
    }


def _dumped(model: AbstainReasonOut | None) -> dict[str, Any] | None:
    return None if model is None else dump(model)


async def final_answer(run: AnswerRun) -> Answer | None:
    """The ``Answer`` at the end of a run; None when the client went away before it."""
    async for event in run.events():
        if isinstance(event, Answer):
            return event
    return None


def client_gone() -> JSONResponse:
    return JSONResponse({"error": {"message": "client closed the request", "type": "client_gone"}}, 499)


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator however streaming ends: a client gone mid-stream stops the answer at once."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class Completion:
    """One chat completion (its id and creation time), written whole or as ``chat.completion.chunk`` events.

    Made when the request arrives: a stage's ``elapsed`` counts from then, the wait for a model slot included.
    """

    def __init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.started = time.perf_counter()

    def whole(self, answer: Answer) -> dict[str, Any]:
        """The ``chat.completion`` of a finished answer."""
        return {
            "id": self.id,
            "created": self.created,
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

    def chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        usage: dict[str, int] | None = None,
        stage: Stage | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL_ID,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            payload["usage"] = usage
        if stage is not None:  # an extra top-level field: OpenAI clients ignore it, the chat page shows it
            elapsed = round(time.perf_counter() - self.started, 3)
            payload["rag_stage"] = {"stage": stage.stage, "passages": stage.passages, "elapsed": elapsed}
        return _sse(payload)

    async def chunks(self, run: AnswerRun, include_usage: bool) -> AsyncIterator[str]:
        """The role, the verified pieces and the stages (an empty delta with ``rag_stage``), the citations with
        ``finish_reason: stop``, then ``[DONE]``."""
        yield self.chunk({"role": "assistant", "content": ""})
        try:
            async for event in run.events():
                if isinstance(event, Answer):
                    usage = _usage(event) if include_usage else None
                    yield self.chunk(_answer_fields(event), "stop", usage)
                elif isinstance(event, Stage):
                    yield self.chunk({}, stage=event)
                else:
                    yield self.chunk({"content": event})
        except RagError as exc:
            yield _sse(api_error(exc).body())
        except Exception as exc:  # the response has started: report in the stream, keep serving
            log.exception("answer failed mid-stream")
            yield _sse(ApiError(500, f"internal error: {type(exc).__name__}", "server_error").body())
        yield "data: [DONE]\n\n"

    def streamed(self, run: AnswerRun, include_usage: bool) -> ClosingStreamingResponse:
        return ClosingStreamingResponse(
            self.chunks(run, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
