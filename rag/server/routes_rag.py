"""The routes of this assistant's own API: ask, search, a document's text, feedback, and the open ones (health,
the chat page). Listing, uploading and deleting documents: routes_documents.py.

``/v1/ask`` and ``/v1/search`` answer the same JSON as ``rag ask --json`` and ``rag search --json``. Search and
documents need no model and run at once; answers wait for a slot of the queue.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from rag.answering import Turn
from rag.errors import InputError, RagError
from rag.feedback import append_feedback, feedback_path
from rag.schemas import AskResponse, DocumentOut, SearchResponse, dump
from rag.server.errors import ApiError, error_responses
from rag.server.middleware import KEY_REQUIRED
from rag.server.schemas import MODEL_ID, AskRequest, FeedbackRequest, FeedbackStored, Health, SearchRequest
from rag.server.state import State
from rag.server.streaming import client_gone, final_answer

router = APIRouter()

# The page may load nothing from elsewhere: everything it needs is inline, and it talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.post(
    "/v1/ask",
    dependencies=KEY_REQUIRED,
    response_model=AskResponse,
    responses=error_responses(400, 401, 413, 422, 502, 503),
)
async def ask(body: AskRequest, request: Request, state: State) -> Any:
    """The same JSON as `rag ask --json`."""
    history = [Turn(question=t.question, answer=t.answer) for t in body.history]
    run = await state.start_answer(request, body.question, history, body.doc_ids, body.sections)
    answer = await final_answer(run) if run is not None else None
    return client_gone() if answer is None else dump(AskResponse.of(answer))


@router.post(
    "/v1/search",
    dependencies=KEY_REQUIRED,
    response_model=SearchResponse,
    responses=error_responses(400, 401, 413, 422, 503),
)
def search(body: SearchRequest, state: State) -> Any:
    """The same JSON as `rag search --json`."""
    result = state.assistant.search(body.query, k=body.k, mode=body.mode, doc_ids=body.doc_ids, sections=body.sections)
    return dump(SearchResponse.of(result))


@router.get(
    "/v1/documents/{doc_id:path}",
    dependencies=KEY_REQUIRED,
    response_model=DocumentOut,
    responses=error_responses(401, 404, 503),
)
def document(doc_id: str, state: State) -> Any:
    """A document's text as indexed: citation offsets point into it. Only indexed documents can be read."""
    try:
        doc = state.assistant.document(doc_id)
    except InputError as exc:
        raise ApiError(404, str(exc), "invalid_request_error", "document_not_found") from exc
    return dump(DocumentOut.of(doc))


@router.post(
    "/v1/feedback",
    dependencies=KEY_REQUIRED,
    status_code=201,
    response_model=FeedbackStored,
    responses=error_responses(400, 401, 413, 422),
)
async def feedback(body: FeedbackRequest, state: State) -> Any:
    """Store a reader's rating of an answer (one JSON line in the feedback file; `rag eval --from-feedback`)."""
    path = feedback_path(state.settings, state.assistant.settings.index.dir)  # the settings served with
    await run_in_threadpool(append_feedback, path, body.model_dump(mode="json"))
    return dump(FeedbackStored())


# -- open routes: health and the chat page --


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(state: State) -> Any:
    """Whether the index is loaded, whether API keys are required, and the answer queue."""
    health: dict[str, Any] = {"auth": bool(state.settings.api_key), "model": MODEL_ID, "llm": state.queue.to_json()}
    try:
        index = state.assistant.index
    except RagError as exc:
        return JSONResponse(Health(status="unavailable", error=str(exc), **health).model_dump(), 503)
    return {"status": "ok", "documents": len(index.documents), "chunks": len(index.chunks), **health}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page(state: State) -> HTMLResponse:
    return HTMLResponse(state.page, headers=PAGE_HEADERS)
