"""The Model Context Protocol front end: tools ``search``, ``ask`` and ``show``, and the indexed documents as
resources, served over stdio (`rag mcp`) or as streamable HTTP at ``/mcp`` under `rag serve`.

Thin over ``Assistant`` like the CLI and the HTTP API: the results are the shapes of ``rag/schemas.py``, widened
by the fields an agent needs without a second call (a hit's and a citation's document title, a span's context).
A library error becomes a tool error whose text is the product's one-line message, never a traceback.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import quote

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations
from mcp_types import Resource as ResourceInfo
from pydantic import BaseModel, Field

from rag import __version__
from rag.answering import Answer
from rag.errors import InputError, RagError
from rag.schemas import AbstainReasonOut, CitationOut, ClosestPassageOut, DocumentOut, HitOut, SearchResponse
from rag.types import Hit, Section

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from rag.assistant import Assistant
    from rag.config import ServerSettings
    from rag.server.state import AppState

DOCUMENT_URI = "rag://documents/{+doc_id}"  # "+": a doc id in a subfolder keeps its "/"
CONTEXT_CHARS = 300  # text `show` gives on each side of a span by default: about two sentences

INSTRUCTIONS = (
    "Answers questions about a folder of documents. `ask` answers with citations whose quotes were checked "
    "against the documents (cite them as [n]); when `abstained` is true the documents do not answer. `search` "
    "finds passages, `show` reads a span with its context; every document is a resource rag://documents/<doc_id>."
)

T = TypeVar("T")

# A context manager held around each answer: under `rag serve`, a slot of the model's queue.
AnswerSlot = Callable[[], AbstractAsyncContextManager[None]]


# --- the results: the shapes of rag/schemas.py, with a document title -----------------------------------


class SearchHit(HitOut):
    title: str = Field(description="The document's title.")

    @classmethod
    def of_hit(cls, hit: Hit) -> SearchHit:
        return cls(**HitOut.of(hit).model_dump(), title=hit.title)


class SearchResults(SearchResponse):
    hits: list[SearchHit]  # type: ignore[assignment]  # each hit with its title


class TitledCitation(CitationOut):
    title: str = Field(description="The cited document's title.")


class CitedAnswer(BaseModel):
    question: str
    answer: str = Field(description="The verified answer; each [n] marker is the citation numbered n.")
    abstained: bool = Field(description="True when the documents do not answer the question.")
    citations: list[TitledCitation] = Field(
        description="Each marker's quote: exactly the document's text[start:end] (read it with `show`)."
    )
    abstain_reason: AbstainReasonOut | None = Field(description="Why it abstained; null when it answered.")
    closest_passages: list[ClosestPassageOut] = Field(
        description="On abstention, up to 3 passages that came closest to answering; empty when answered."
    )


class Span(DocumentOut):
    page: int | None = Field(description="The 1-based page the span starts on (PDF); null for formats without pages.")
    before: str = Field(description="Up to `context` characters of the text just before the span.")
    after: str = Field(description="Up to `context` characters of the text just after the span.")


# --- the server ---------------------------------------------------------------------------------------


def document_uri(doc_id: str) -> str:
    """The resource URI of a document: its doc id percent-encoded, "/" kept."""
    return DOCUMENT_URI.replace("{+doc_id}", quote(doc_id, safe="/"))


async def _in_thread(call: Callable[[], T]) -> T:
    """``call()`` in a worker thread (the index and the model block); a library error as a tool error.

    A cancelled request does not wait for the thread: a search ends on its own, an answer at the model's next
    token (``ask`` sets its cancel event)."""
    try:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    except RagError as exc:
        raise ToolError(str(exc)) from None


@contextlib.asynccontextmanager
async def _no_slot() -> AsyncIterator[None]:
    yield


def _final_answer(events: Iterable[object]) -> Answer | None:
    """The ``Answer`` that ends ``ask_stream`` (after the text and any other events); None when it was cancelled
    first."""
    answer = None
    for event in events:
        if isinstance(event, Answer):
            answer = event
    return answer


class RagMCP(MCPServer):
    """An MCP server over one assistant. ``answer_slot`` is held around each answer (the HTTP server's queue)."""

    def __init__(self, assistant: Assistant, answer_slot: AnswerSlot = _no_slot) -> None:
        super().__init__(
            "rag",
            title="rag: cited answers from your documents",
            instructions=INSTRUCTIONS,
            version=__version__,
            log_level="WARNING",
        )
        self.assistant, self.answer_slot = assistant, answer_slot
        read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
        for tool in (self.search, self.ask, self.show):  # the docstring, dedented, is the tool's description
            self.add_tool(tool, description=inspect.getdoc(tool), annotations=read_only)
        self.resource(DOCUMENT_URI, name="document", mime_type="text/plain")(self.read_document)

    async def search(
        self,
        query: Annotated[str, Field(description="What to look for: a question or some keywords.")],
        k: Annotated[int, Field(ge=1, le=100, description="How many passages.")] = 5,
        doc_ids: Annotated[list[str] | None, Field(description="Only these documents (doc ids).")] = None,
        sections: Annotated[
            list[Section] | None, Field(description="Only these parts of pages: article, comments.")
        ] = None,
    ) -> SearchResults:
        """Search the documents (meaning and keywords): ranked passages, each with its document and offsets."""
        search = partial(
            self.assistant.search, query, k, doc_ids=doc_ids, sections=list(sections) if sections else None
        )
        result = await _in_thread(search)
        return SearchResults(query=result.query, mode=result.mode, hits=[SearchHit.of_hit(h) for h in result.hits])

    async def ask(
        self,
        question: Annotated[str, Field(description="A question about the documents.")],
        doc_ids: Annotated[list[str] | None, Field(description="Only from these documents (doc ids).")] = None,
        sections: Annotated[
            list[Section] | None, Field(description="Only from these parts of pages: article, comments.")
        ] = None,
    ) -> CitedAnswer:
        """Answer a question from the documents only. Every sentence is checked against a quoted span; a
        question the documents do not answer is an abstention (abstained: true, with the reason and the closest
        passages), not a guess."""
        cancel = threading.Event()
        only: list[str] | None = [str(s) for s in sections] if sections else None
        try:
            async with self.answer_slot():
                answer = await _in_thread(partial(self._answer, question, cancel, doc_ids, only))
        finally:
            cancel.set()  # a client that cancelled: the model stops at its next token
        return answer

    def _answer(
        self, question: str, cancel: threading.Event, doc_ids: list[str] | None, sections: list[str] | None
    ) -> CitedAnswer:
        answer = _final_answer(self.assistant.ask_stream(question, cancel=cancel, doc_ids=doc_ids, sections=sections))
        if answer is None:
            raise ToolError("the answer was cancelled")
        citations = [
            TitledCitation(**CitationOut.of(c).model_dump(), title=self.assistant.document(c.doc_id).title)
            for c in answer.citations
        ]
        return CitedAnswer(
            question=answer.question,
            answer=answer.answer,
            abstained=answer.abstained,
            citations=citations,
            abstain_reason=AbstainReasonOut.of(answer.abstain_reason),
            closest_passages=[ClosestPassageOut.of(p) for p in answer.closest_passages],
        )

    async def show(
        self,
        doc_id: Annotated[str, Field(description="A doc id, as search and ask give it.")],
        start: Annotated[int | None, Field(description="First character (default 0).")] = None,
        end: Annotated[int | None, Field(description="End character, exclusive (default: the end).")] = None,
        context: Annotated[
            int, Field(ge=0, le=5000, description="Characters of context on each side.")
        ] = CONTEXT_CHARS,
    ) -> Span:
        """A document's text as indexed, or the span [start, end) of it (a citation's, a hit's) with the text
        around it. Offsets are characters of the text that quotes are checked against."""
        doc, s, e = await _in_thread(partial(self.assistant.span, doc_id, start, end))
        before, after = doc.text[max(0, s - context) : s], doc.text[e : e + context]
        return Span(**DocumentOut.of(doc, s, e).model_dump(), page=doc.page_at(s), before=before, after=after)

    def read_document(self, doc_id: str) -> str:
        """A document's text as indexed: what citation offsets point into (the SDK reads it in a worker thread)."""
        try:
            return self.assistant.document(doc_id).text
        except InputError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except RagError as exc:
            raise ResourceError(str(exc)) from None

    async def list_resources(self) -> list[ResourceInfo]:
        """Every indexed document, read as ``rag://documents/<doc_id>`` (the live index: re-read each time)."""
        try:
            documents = await anyio.to_thread.run_sync(lambda: self.assistant.index.documents)
        except RagError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None
        return [
            ResourceInfo(
                uri=document_uri(doc.doc_id),
                name=doc.doc_id,
                title=doc.title,
                mime_type="text/plain",
                size=len(doc.text.encode("utf-8")),
            )
            for doc in sorted(documents.values(), key=lambda d: d.doc_id)
        ]


def serve_stdio(assistant: Assistant) -> None:
    """Serve MCP on stdin/stdout until the client closes them (the SDK sends stray output to stderr)."""
    RagMCP(assistant).run("stdio")


# --- streamable HTTP under `rag serve` ------------------------------------------------------------------


class HttpEndpoint:
    """``/mcp`` of the HTTP server: the SDK's streamable HTTP transport behind the server's API key.

    The app's middleware (the Host allow-list, the body limit) is in front of it as of every route; the SDK's own
    Host/Origin check is given the same names, so the two agree. Answers take a slot of the server's queue.
    """

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.server = RagMCP(state.assistant, answer_slot=self._queue_slot)
        self._transport: ASGIApp | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's session manager, run inside the app's lifespan (a new one each time: a manager runs once)."""
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        settings = self.state.settings
        self.server.streamable_http_app(  # makes the session manager
            transport_security=transport_security(settings), max_request_body_size=settings.max_body_bytes
        )
        manager = self.server.session_manager
        async with manager.run():
            self._transport = StreamableHTTPASGIApp(manager)
            try:
                yield
            finally:
                self._transport = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Imported here, as in the methods below: `rag mcp` (stdio) does not load the HTTP server.
        from starlette.requests import Request

        from rag.server.errors import ApiError
        from rag.server.middleware import bearer, require_key

        try:
            require_key(self.state, await bearer(Request(scope)))
            if self._transport is None:
                raise ApiError(
                    503, "the MCP endpoint is not running: the server is starting or stopping", "server_error"
                )
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        await self._transport(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _queue_slot(self) -> AsyncIterator[None]:
        from rag.server.queue import QueueFull

        async def never_gone() -> bool:
            return False  # a cancelled MCP request cancels the wait itself

        queue = self.state.queue
        try:
            await queue.acquire(never_gone)
        except QueueFull as exc:
            raise ToolError(str(exc)) from None
        started = time.monotonic()
        try:
            yield
        finally:
            queue.release(time.monotonic() - started)


def transport_security(settings: ServerSettings) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding check, given the Host names ``HostCheck`` allows (and Origins on them or in
    server.cors_origins); off when any host is allowed, as ours is."""
    from rag.server.middleware import allowed_hosts

    hosts = allowed_hosts(settings)
    if hosts is None:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [f"[{h}]" if ":" in h else h for h in hosts]  # an IPv6 address is bracketed in a Host header
    origins = [f"{scheme}://{n}{port}" for n in names for scheme in ("http", "https") for port in ("", ":*")]
    return TransportSecuritySettings(
        allowed_hosts=[p for n in names for p in (n, f"{n}:*")], allowed_origins=[*settings.cors_origins, *origins]
    )
