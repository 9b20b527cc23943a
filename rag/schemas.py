"""The JSON shapes of results, written once: `rag ... --json`, the HTTP API and `/openapi.json` all use these.

Each model is built from its domain object (``HitOut.of(hit)``, ``AskResponse.of(answer)``, ...), so a field is
named and rounded in one place. docs/contracts.md describes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from rag.answering import Answer, ClosestPassage
    from rag.citations import Citation
    from rag.corpus import DocumentInfo
    from rag.evidence import Passage
    from rag.types import AbstainReason, Document, Hit, SearchResult


class HitOut(BaseModel):
    rank: int
    score: float = Field(description="The search mode's own score (fusion for hybrid): for ordering only.")
    doc_id: str
    chunk_id: str
    section: str
    start: int
    end: int
    text: str = Field(description="Exactly the document's text[start:end].")
    page: int | None = Field(description="The 1-based page the text starts on (PDF); null for formats without pages.")

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        c = hit.chunk
        return cls(
            rank=hit.rank,
            score=round(float(hit.score), 6),
            doc_id=c.doc_id,
            chunk_id=c.chunk_id,
            section=c.section,
            start=c.start,
            end=c.end,
            text=c.text,
            page=hit.page,
        )

    @classmethod
    def of_passage(cls, passage: Passage) -> HitOut:
        """A passage the model saw: its number, the score of the hit it came from, its own span."""
        return cls(
            rank=passage.n,
            score=round(float(passage.hit.score), 6),
            doc_id=passage.doc_id,
            chunk_id=passage.hit.chunk.chunk_id,
            section=passage.section,
            start=passage.start,
            end=passage.end,
            text=passage.text,
            page=passage.page,
        )


class SearchResponse(BaseModel):
    query: str
    mode: str
    hits: list[HitOut]

    @classmethod
    def of(cls, result: SearchResult) -> SearchResponse:
        return cls(query=result.query, mode=result.mode, hits=[HitOut.of(h) for h in result.hits])


class CitationOut(BaseModel):
    n: int
    doc_id: str
    start: int = Field(description="Character offset into the document text (GET /v1/documents/{doc_id}).")
    end: int
    quote: str = Field(description="Exactly text[start:end].")
    supported: bool
    section: str
    page: int | None = Field(description="The 1-based page the quote starts on (PDF); null for formats without pages.")

    @classmethod
    def of(cls, citation: Citation) -> CitationOut:
        return cls.model_validate(citation, from_attributes=True)  # the same fields as ``Citation``


class AbstainReasonOut(BaseModel):
    code: str = Field(description="no_passages, premise_not_found, model_declined or unsupported.")
    message: str = Field(description="The reason in words, for people.")

    @classmethod
    def of(cls, reason: AbstainReason | None) -> AbstainReasonOut | None:
        return None if reason is None else cls(code=reason.code, message=reason.message)


class ClosestPassageOut(BaseModel):
    doc_id: str
    title: str
    source: str = Field(description="The document's URL when it gave one, else its doc_id.")
    page: int | None = Field(description="The 1-based page the text starts on (PDF); null for formats without pages.")
    start: int
    end: int
    text: str = Field(description="Exactly the document's text[start:end].")

    @classmethod
    def of(cls, passage: ClosestPassage) -> ClosestPassageOut:
        return cls.model_validate(passage, from_attributes=True)


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
    abstain_reason: AbstainReasonOut | None = Field(description="Why the answer abstained; null when it answered.")
    closest_passages: list[ClosestPassageOut] = Field(
        description="On abstention, up to 3 passages that came closest to answering; empty when answered."
    )

    @classmethod
    def of(cls, answer: Answer) -> AskResponse:
        return cls(
            question=answer.question,
            answer=answer.answer,
            abstained=answer.abstained,
            citations=[CitationOut.of(c) for c in answer.citations],
            passages=[HitOut.of_passage(p) for p in answer.passages],
            model=answer.model,
            prompt=PromptRef(name=answer.prompt.name, sha256=answer.prompt.sha256),
            timings_ms=answer.timings_ms,
            usage=answer.usage,
            standalone_question=answer.standalone_question,
            unsupported=answer.unsupported,
            abstain_reason=AbstainReasonOut.of(answer.abstain_reason),
            closest_passages=[ClosestPassageOut.of(p) for p in answer.closest_passages],
        )


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    metadata: dict[str, str] = Field(description="What the page gave: date, url, site (when found).")
    start: int
    end: int
    length: int = Field(description="Characters in the whole document text.")
    pages: int | None = Field(description="Pages of a paged format (PDF); null otherwise.")
    text: str = Field(description="The text[start:end] that citation offsets point into (the whole text by default).")

    @classmethod
    def of(cls, doc: Document, start: int = 0, end: int | None = None) -> DocumentOut:
        end = len(doc.text) if end is None else end
        return cls(
            doc_id=doc.doc_id,
            title=doc.title,
            metadata=dict(doc.metadata),
            start=start,
            end=end,
            length=len(doc.text),
            pages=len(doc.pages) or None,
            text=doc.text[start:end],
        )


class DocumentInfoOut(BaseModel):
    """An indexed document as `GET /v1/documents` lists it."""

    id: str = Field(description="The doc_id: the path relative to the corpus folder.")
    title: str
    format: str = Field(description="The file's extension without the dot: txt, md, html, pdf, docx.")
    pages: int | None = Field(description="Pages of a paged format (PDF); null otherwise.")
    size: int | None = Field(description="Bytes of the file; null when the file is gone.")
    indexed_at: str = Field(description="When its current content was first indexed (ISO 8601, UTC).")
    source: str = Field(description="The document's URL when it gave one, else its doc_id.")

    @classmethod
    def of(cls, info: DocumentInfo) -> DocumentInfoOut:
        return cls.model_validate(info, from_attributes=True)


class DocumentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[DocumentInfoOut]


class DocumentDeleted(BaseModel):
    id: str
    object: Literal["document"] = "document"
    deleted: Literal[True] = True


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of ``model``, fields in their declared order."""
    return model.model_dump(mode="json")
