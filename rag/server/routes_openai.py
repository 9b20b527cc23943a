"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any OpenAI client works against them; the assistant message carries verified ``citations`` beside its text.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from rag.answering import Turn
from rag.config import ServerSettings
from rag.server.errors import ApiError, error_responses
from rag.server.middleware import KEY_REQUIRED
from rag.server.schemas import MODEL_ID, SSE_EVENT_SCHEMA, ChatCompletion, ChatCompletionRequest, ChatMessage, ModelList
from rag.server.state import State
from rag.server.streaming import Completion, client_gone, final_answer

router = APIRouter(tags=["openai"], dependencies=KEY_REQUIRED)


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
    for n, message in enumerate(messages, start=1):
        try:
            message.text().encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800" in the JSON): not text
            raise ApiError(
                422,
                f"message {n} holds invalid text at character {exc.start + 1} (a lone surrogate, not a "
                "character); send valid UTF-8",
                "invalid_request_error",
                "invalid_input",
            ) from None
    history: list[Turn] = []
    asked: str | None = None
    for message in chat[:-1]:
        if message.role == "user":
            asked = message.text()
        elif asked is not None:
            history.append(Turn(question=asked, answer=message.text()))
            asked = None
    return chat[-1].text(), history


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "A chat completion; with `stream: true`, server-sent `chat.completion.chunk` events "
            "whose last chunk before `[DONE]` carries `delta.citations` and `finish_reason: stop`.",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **error_responses(400, 401, 413, 422, 502, 503),
    },
)
async def chat_completions(body: ChatCompletionRequest, request: Request, state: State) -> Any:
    """Answer the last user message, the earlier ones as context; the message carries verified citations."""
    completion = Completion()  # now: stages count their elapsed time from the request's arrival
    question, history = _conversation(body.messages, state.settings)
    run = await state.start_answer(request, question, history, body.doc_ids, body.sections)
    if run is None:
        return client_gone()
    if not body.stream:
        answer = await final_answer(run)
        return client_gone() if answer is None else completion.whole(answer)
    return completion.streamed(run, include_usage=bool(body.stream_options and body.stream_options.include_usage))


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401))
def models(state: State) -> Any:
    """The one model this server offers: answers from the indexed documents."""
    return {"data": [{"id": MODEL_ID, "created": state.started, "owned_by": "rag"}]}
