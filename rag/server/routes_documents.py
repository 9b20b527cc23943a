"""The documents of the index through the API: list them, upload a file into the corpus, delete one.

An upload or a deletion changes the corpus folder the index was built from and updates the index the way
`rag index` does (``rag/corpus.py``); the server then serves the new generation. A failure changes nothing: the
previous index keeps serving. Reading a document's text is ``GET /v1/documents/{doc_id}`` (routes_rag.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from rag.errors import InputError
from rag.schemas import DocumentDeleted, DocumentInfoOut, DocumentList, dump
from rag.server.errors import ApiError, error_responses
from rag.server.middleware import KEY_REQUIRED, upload_too_large
from rag.server.state import State

router = APIRouter(tags=["documents"], dependencies=KEY_REQUIRED)


@router.get("/v1/documents", response_model=DocumentList, responses=error_responses(401, 503))
def list_documents(state: State) -> Any:
    """The indexed documents, by id."""
    return dump(DocumentList(data=[DocumentInfoOut.of(d) for d in state.assistant.documents()]))


@router.post(
    "/v1/documents",
    status_code=201,
    response_model=DocumentInfoOut,
    responses=error_responses(400, 401, 409, 413, 422, 503),
)
def upload_document(
    file: Annotated[UploadFile, File(description="The file; its name becomes the doc_id.")], state: State
) -> Any:
    """Add a file to the corpus folder and index it (a format `rag index` reads, within the size limits)."""
    limit = state.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise upload_too_large(limit)
    return dump(DocumentInfoOut.of(state.assistant.add_document(file.filename or "", data)))


@router.delete(
    "/v1/documents/{doc_id:path}", response_model=DocumentDeleted, responses=error_responses(401, 404, 409, 503)
)
def delete_document(doc_id: str, state: State) -> Any:
    """Remove a document's file from the corpus folder and the document from the index."""
    try:
        state.assistant.document(doc_id)
    except InputError as exc:
        raise ApiError(404, str(exc), "invalid_request_error", "document_not_found") from exc
    state.assistant.remove_document(doc_id)
    return dump(DocumentDeleted(id=doc_id))
