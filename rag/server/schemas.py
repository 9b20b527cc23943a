"""The request and response shapes of the API: Pydantic models, which FastAPI turns into the OpenAPI schema.

The shapes of results (hits, citations, answers, documents) are ``rag.schemas``', shared with `rag ... --json`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from rag.schemas import AbstainReasonOut, CitationOut, ClosestPassageOut
from rag.types import SearchMode, StageName

MODEL_ID = "rag"


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


# Asking within some documents or sections: the same fields as /v1/search has.
DOC_IDS = Field(default=None, description="Only these documents (doc ids) are searched and cited.")
SECTIONS = Field(default=None, description="Only these sections (article, comments) are searched and cited.")


class ChatCompletionRequest(BaseModel):
    """An OpenAI Chat Completions request. Sampling options (temperature, max_tokens, ...) are accepted and
    ignored: answers follow the server's settings, so that their citations can be verified. ``doc_ids`` and
    ``sections`` are this server's own (an OpenAI client sends them with ``extra_body``)."""

    model_config = ConfigDict(extra="allow")
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    doc_ids: list[str] | None = DOC_IDS
    sections: list[str] | None = SECTIONS


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[CitationOut]
    abstained: bool
    standalone_question: str
    abstain_reason: AbstainReasonOut | None
    closest_passages: list[ClosestPassageOut]


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
    abstain_reason: AbstainReasonOut | None = None
    closest_passages: list[ClosestPassageOut] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None
    logprobs: None = None


class RagStage(BaseModel):
    """The stage an answer has reached, sent on a chunk of its own (with an empty ``delta``) as it does."""

    stage: StageName
    passages: int | None = Field(description="With `reading`: the number of passages given to the model.")
    elapsed: float = Field(description="Seconds since the request arrived.")


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    rag_stage: RagStage | None = None


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


class SearchRequest(BaseModel):
    query: str
    k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode | None = None
    doc_ids: list[str] | None = None
    sections: list[str] | None = None


class TurnIn(BaseModel):
    question: str
    answer: str


class AskRequest(BaseModel):
    question: str
    history: list[TurnIn] = Field(default_factory=list, description="Earlier turns, oldest first.")
    doc_ids: list[str] | None = DOC_IDS
    sections: list[str] | None = SECTIONS


class FeedbackCitation(BaseModel):
    """A citation as the answer carried it (`CitationOut`); only ``doc_id`` and ``quote`` are needed."""

    model_config = ConfigDict(extra="allow")
    n: int | None = None
    doc_id: str = Field(min_length=1, max_length=1000)
    start: int | None = None
    end: int | None = None
    quote: str = Field(max_length=10_000)
    supported: bool | None = None
    section: str | None = None
    page: int | None = None


class FeedbackRequest(BaseModel):
    """A reader's rating of an answer: the question, the answer and its citations as shown."""

    question: str = Field(min_length=1, max_length=10_000)
    answer: str = Field(max_length=100_000)
    citations: list[FeedbackCitation] = Field(default_factory=list, max_length=100)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=10_000)


class FeedbackStored(BaseModel):
    stored: Literal[True] = True


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


def add_chunk_schema(app: FastAPI) -> None:
    """Serve FastAPI's schema plus the streamed chunk's, which no route returns as JSON."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default_openapi()
            chunk = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
            schema["components"]["schemas"].update({**chunk.pop("$defs", {}), "ChatCompletionChunk": chunk})
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
