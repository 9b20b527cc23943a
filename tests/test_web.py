"""The chat page (rag/web/chat.html) in a real browser: Debian's chromium driven by Playwright.

The fast tests serve the page from a made-up origin whose API answers are stubbed in the browser (error paths,
offsets, escaping); the ``llm`` tests run the real server over the seeds index and the bundled model.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Error,
    Locator,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)

from rag.assistant import Assistant
from tests.conftest import make_settings
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
# Playwright cannot download its own browsers here; Debian's chromium is launched with a fresh profile per module.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parent.parent
TIMEOUT_MS = 10_000
CHAT_HTML = files("rag.web").joinpath("chat.html").read_text(encoding="utf-8")
SCREENSHOTS = REPO / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


def _screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A screenshot into docs/screenshots/ when RAG_SCREENSHOT=1 (to refresh the committed ones), else tmp_path."""
    path = SCREENSHOTS / name if os.environ.get("RAG_SCREENSHOT") == "1" else tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """One chromium per module; each test opens its own page (its own sessionStorage)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@dataclass
class ChatPage:
    """A page on the chat UI with everything it logged and requested."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")

    def on_request(self, request: Request) -> None:
        self.requests.append(request)

    def ask(self, question: str) -> None:
        self.page.get_by_test_id("question").fill(question)
        self.page.get_by_test_id("send").click()

    def answer(self, index: int = -1) -> Locator:
        return self.page.get_by_test_id("message-assistant").nth(index)

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies the page sent to /v1/chat/completions, in order."""
        return [
            json.loads(request.post_data or "{}")
            for request in self.requests
            if request.method == "POST" and request.url.endswith("/v1/chat/completions")
        ]


@pytest.fixture()
def open_chat(browser: BrowserContext) -> Iterator[Callable[..., ChatPage]]:
    """Open the chat page at a base URL, optionally with in-browser stubs; collect console errors and requests."""
    pages: list[Page] = []

    def open_(
        base_url: str,
        stub: Callable[[Route], None] | None = None,
        *,
        viewport: dict[str, int] | None = None,
        clock: bool = False,
        init_script: str | None = None,
    ) -> ChatPage:
        page = browser.new_page()
        pages.append(page)
        chat = ChatPage(page, base_url)
        page.on("console", chat.on_console)
        page.on("pageerror", chat.on_page_error)
        page.on("request", chat.on_request)
        if viewport is not None:
            page.set_viewport_size(viewport)  # type: ignore[arg-type]
        if clock:
            page.clock.install(time=0)  # timers move only when the test says so
        if init_script is not None:
            page.add_init_script(init_script)
        if stub is not None:
            page.route(f"{base_url}/**", stub)
        page.goto(f"{base_url}/")
        return chat

    yield open_
    for page in pages:
        # The profile is shared by the module: a kept conversation must not leak into the next test.
        if not page.is_closed():
            page.evaluate("localStorage.clear()")
        page.close()


# --- the page's logic, against a stubbed API -------------------------------------------------------------

FAKE_ORIGIN = "http://rag.test"
# An emoji before the cited span: code-point offsets (Python) and UTF-16 indices (JS) differ from there on.
FAKE_TEXT = "Intro 🚢🚢 line.\nAdm. <b>Moiseyev</b> 😀 heads the fleet.\nMore text after the quote."
FAKE_QUOTE = "Adm. <b>Moiseyev</b> 😀 heads the fleet."
FAKE_START = FAKE_TEXT.index(FAKE_QUOTE)  # a Python (code point) offset
FAKE_DOC: dict[str, Any] = {
    "doc_id": "news/a b.txt",
    "title": "Fleet <i>news</i>",
    "text": FAKE_TEXT,
    "length": len(FAKE_TEXT),
}
FAKE_CITATION = {
    "n": 1,
    "doc_id": "news/a b.txt",
    "start": FAKE_START,
    "end": FAKE_START + len(FAKE_QUOTE),
    "quote": FAKE_QUOTE,
    "supported": True,
    "section": "comments",
}


def _chunk(delta: dict[str, object], finish_reason: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "rag",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _sse(*events: dict[str, object]) -> str:
    return "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"


ANSWER_STREAM = _sse(
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Moiseyev <img src=x onerror=alert(1)> heads it [1]."}),
    _chunk({"content": " Not a citation [7]."}),
    _chunk(
        {"citations": [FAKE_CITATION], "abstained": False, "standalone_question": "Who heads Russia's fleet?"}, "stop"
    ),
)


def _document_path(doc_id: str) -> str:
    return "/v1/documents/" + "/".join(urllib.parse.quote(part, safe="") for part in doc_id.split("/"))


def _listed(doc: dict[str, Any], format_: str) -> dict[str, Any]:
    """A document as GET /v1/documents lists it."""
    return {
        "id": doc["doc_id"],
        "title": doc["title"],
        "format": format_,
        "pages": doc.get("pages"),
        "size": len(doc["text"].encode()),
        "indexed_at": "2026-12-01T10:00:00Z",
        "source": doc["doc_id"],
    }


@dataclass
class FakeApi:
    """The server's answers to the page: the page itself, /healthz, documents, chat completions, feedback.

    Served inside the browser (``__call__`` is a Playwright route handler) or over HTTP by StreamingServer.
    """

    chat: list[tuple[int, dict[str, str], str]]  # responses to successive chat requests: status, headers, body
    auth: bool = False
    documents: dict[str, dict[str, Any]] = field(default_factory=lambda: {FAKE_DOC["doc_id"]: FAKE_DOC})
    listing: tuple[int, dict[str, Any]] | None = None  # GET /v1/documents; by default the documents above
    feedback: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # default: 201 {"stored": true}
    uploads: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # POST /v1/documents
    posted: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)  # path, headers, body (over HTTP)

    def respond(self, method: str, path: str) -> tuple[int, dict[str, str], str, str]:
        """Status, headers, content type and body for a request other than a streamed chat completion."""
        by_path = {_document_path(doc_id): doc for doc_id, doc in self.documents.items()}
        if path == "/":
            return 200, {}, "text/html; charset=utf-8", CHAT_HTML
        if path == "/healthz":
            health = {"status": "ok", "auth": self.auth, "model": "rag", "documents": 1, "chunks": 3}
            return 200, {}, "application/json", json.dumps(health)
        if path == "/v1/documents" and method == "GET":
            formats = {".md": "markdown", ".pdf": "pdf"}
            listing = self.listing or (
                200,
                {
                    "object": "list",
                    "data": [_listed(d, formats.get(Path(i).suffix, "text")) for i, d in self.documents.items()],
                },
            )
            return listing[0], {}, "application/json", json.dumps(listing[1])
        if path == "/v1/documents" and method == "POST" and self.uploads:
            status, created = self.uploads.pop(0)
            return status, {}, "application/json", json.dumps(created)
        if path in by_path and method == "GET":
            return 200, {}, "application/json", json.dumps(by_path[path])
        if path == "/v1/feedback" and method == "POST":
            status, reply = self.feedback.pop(0) if self.feedback else (201, {"stored": True})
            return status, {}, "application/json", json.dumps(reply)
        if path == "/v1/chat/completions" and self.chat:
            status, headers, body = self.chat.pop(0)
            return status, headers, "text/event-stream" if status == 200 else "application/json", body
        missing = {"error": {"message": f"no stub for {method} {path}", "type": "not_found"}}
        return 404, {}, "application/json", json.dumps(missing)

    def __call__(self, route: Route) -> None:
        path = route.request.url.removeprefix(FAKE_ORIGIN)
        status, headers, content_type, body = self.respond(route.request.method, path)
        route.fulfill(status=status, headers=headers, content_type=content_type, body=body)


class StreamingServer:
    """The fake API over real HTTP, whose chat completion streams each event when the test sends it.

    In-browser stubs deliver a body at once; the waiting state needs an answer that is still being written.
    """

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.events: queue.Queue[dict[str, Any] | str | None] = queue.Queue()
        events, respond, posted = self.events, api.respond, api.posted

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._reply("GET")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posted.append((self.path, dict(self.headers), body))
                if self.path != "/v1/chat/completions":
                    self._reply("POST")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                while (event := events.get(timeout=60)) is not None:
                    data = event if isinstance(event, str) else json.dumps(event)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()
                    if event == "[DONE]":
                        break

            def _reply(self, method: str) -> None:
                status, headers, content_type, body = respond(method, self.path)
                data = body.encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": content_type}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def send(self, *events: dict[str, Any] | str) -> None:
        """Stream these events to the answer being asked (a string is sent as is, e.g. "[DONE]")."""
        for event in events:
            self.events.put(event)

    def __enter__(self) -> StreamingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.events.put(None)  # ends a stream still open
        self.httpd.shutdown()
        self.httpd.server_close()


def test_answer_markers_sources_and_highlight_with_astral_characters(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)]))
    page = chat.page
    expect(page.locator("#status")).to_have_text("1 document · 3 passages")
    expect(page.get_by_test_id("api-key")).to_be_hidden()
    chat.ask("Who heads the fleet?")

    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    # Untrusted text stays text: the markup in the answer, quote, title and document is shown, never parsed.
    expect(answer.locator(".answer-text")).to_have_text(
        "Moiseyev <img src=x onerror=alert(1)> heads it 1. Not a citation [7]."
    )
    assert page.locator("img, b, i").count() == 0
    markers = answer.get_by_test_id("citation-marker")
    expect(markers).to_have_count(1)  # [7] names no citation: it stays text
    expect(markers).to_have_attribute("data-n", "1")
    source = answer.get_by_test_id("source")
    expect(source).to_have_count(1)
    expect(source).to_contain_text("Fleet <i>news</i>")  # the title replaces the doc_id once the document loads
    expect(source).to_contain_text("reader comment")
    expect(source).to_contain_text(FAKE_QUOTE)
    expect(answer).to_contain_text("Searched for: Who heads Russia's fleet?")

    markers.first.click()
    panel = page.get_by_test_id("doc-panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("doc-title")).to_have_text("Fleet <i>news</i>")
    expect(page.get_by_test_id("doc-highlight")).to_have_text(FAKE_QUOTE, use_inner_text=False)
    assert page.locator("#doc-text").text_content() == FAKE_TEXT
    expect(page.locator("#doc-notice")).to_be_hidden()
    page.get_by_test_id("doc-close").click()
    expect(panel).to_be_hidden()
    source.locator("button").click()  # a source opens the same span
    expect(page.get_by_test_id("doc-highlight")).to_have_text(FAKE_QUOTE)
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert chat.errors == []


def test_a_quote_that_starts_with_quotation_marks_is_not_marked_twice(open_chat: Callable[..., ChatPage]) -> None:
    text = "Intro.\n“Talks were constructive,” the ministry said. Later, more."
    quote = "“Talks were constructive,” the ministry said."
    doc = {"doc_id": "talks.txt", "title": "Talks", "text": text, "length": len(text)}
    citation = {**FAKE_CITATION, "doc_id": "talks.txt", "start": 7, "end": 7 + len(quote), "quote": quote}
    assert text[7 : 7 + len(quote)] == quote
    stream = _sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "The ministry called the talks constructive [1]."}),
        _chunk({"citations": [citation], "abstained": False}, "stop"),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)], documents={"talks.txt": doc}))
    chat.ask("How were the talks?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".source-quote")).to_have_text(f"{quote}”")  # its own opening mark, a closing one added
    answer.get_by_test_id("citation-marker").first.hover()
    expect(chat.page.locator("#preview-quote")).to_have_text(f"{quote}”")
    assert chat.errors == []


def test_a_pdf_source_shows_its_page(open_chat: Callable[..., ChatPage]) -> None:
    cited = {**FAKE_CITATION, "section": "article", "page": 12}
    stream = _sse(
        _chunk({"content": "Moiseyev heads it [1]."}),
        _chunk({"citations": [cited], "abstained": False, "standalone_question": "Who heads it?"}, "stop"),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)]))
    chat.ask("Who heads it?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.get_by_test_id("source-page")).to_have_text("p. 12")
    answer.get_by_test_id("citation-marker").first.click()
    expect(chat.page.locator("#doc-meta")).to_contain_text("news/a b.txt · page 12 · source 1")
    assert chat.errors == []


def test_abstention_is_marked_and_not_styled_as_an_answer(open_chat: Callable[..., ChatPage]) -> None:
    abstained = _sse(
        _chunk({"content": "The documents do not answer this question."}),
        _chunk(
            {"citations": [], "abstained": True, "standalone_question": "What is the capital of Australia?"}, "stop"
        ),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, abstained)]))
    chat.ask("What is the capital of Australia?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "abstained")
    expect(answer).to_contain_text("No answer in the documents")
    expect(answer).to_contain_text("The documents do not answer this question.")
    expect(answer.get_by_test_id("source")).to_have_count(0)
    assert answer.evaluate("node => getComputedStyle(node).borderStyle") == "dashed"
    assert chat.errors == []


def test_errors_are_shown_inline_with_the_servers_message(open_chat: Callable[..., ChatPage]) -> None:
    busy = json.dumps({"error": {"message": "All 1 model slots are busy.", "type": "server_busy", "code": 503}})
    mid_stream = _sse(
        _chunk({"content": "A first verified sentence."}),
        {"error": {"message": "The language model stopped responding.", "type": "llm_error"}},
    )
    truncated = f"data: {json.dumps(_chunk({'content': 'Half'}))}\n\n"  # no final chunk, no [DONE]
    api = FakeApi(chat=[(503, {"Retry-After": "7"}, busy), (200, {}, mid_stream), (200, {}, truncated)])
    chat = open_chat(FAKE_ORIGIN, api)
    page = chat.page

    chat.ask("First?")
    expect(chat.answer(0)).to_have_attribute("data-state", "error")
    expect(chat.answer(0)).to_contain_text("busy, retry in 7 s")
    expect(chat.answer(0)).to_contain_text("All 1 model slots are busy.")
    expect(page.get_by_test_id("send")).to_be_enabled()

    chat.ask("Second?")
    expect(chat.answer(1)).to_have_attribute("data-state", "error")
    expect(chat.answer(1)).to_contain_text("A first verified sentence.")
    expect(chat.answer(1)).to_contain_text("The language model stopped responding.")

    chat.ask("Third?")
    expect(chat.answer(2)).to_have_attribute("data-state", "error")
    expect(chat.answer(2)).to_contain_text("ended before it was complete")
    # Failed turns are not history: each request carried only its own question.
    assert [len(body["messages"]) for body in chat.chat_bodies()] == [1, 1, 1]
    # The browser logs the 503 itself; nothing else may go wrong.
    assert [e for e in chat.errors if "status of 503" not in e] == []


def test_history_is_sent_and_new_chat_clears_it(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)] * 3))
    page = chat.page
    chat.ask("Who heads the fleet?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")
    page.get_by_test_id("question").fill("And since when?")
    page.get_by_test_id("question").press("Enter")
    expect(chat.answer(1)).to_have_attribute("data-state", "done")
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("message-assistant")).to_have_count(0)
    chat.ask("Who heads the fleet?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")

    answer_text = "Moiseyev <img src=x onerror=alert(1)> heads it [1]. Not a citation [7]."
    first, second, after_new_chat = chat.chat_bodies()
    assert first == {"model": "rag", "stream": True, "messages": [{"role": "user", "content": "Who heads the fleet?"}]}
    assert second["messages"] == [
        {"role": "user", "content": "Who heads the fleet?"},
        {"role": "assistant", "content": answer_text},
        {"role": "user", "content": "And since when?"},
    ]
    assert after_new_chat["messages"] == [{"role": "user", "content": "Who heads the fleet?"}]
    assert chat.errors == []


def test_shift_enter_adds_a_line_instead_of_sending(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[]))
    box = chat.page.get_by_test_id("question")
    box.fill("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    expect(box).to_have_value("line one\nline two")
    expect(chat.page.get_by_test_id("message-user")).to_have_count(0)


def _stage(stage: str, passages: int | None, elapsed: float) -> dict[str, Any]:
    """A stage event as the server streams it: an empty chunk with a top-level rag_stage."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "rag",
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}],
        "rag_stage": {"stage": stage, "passages": passages, "elapsed": elapsed},
    }


FINAL_DELTA = {"citations": [FAKE_CITATION], "abstained": False, "standalone_question": "Who heads the fleet?"}


def test_the_waiting_state_shows_the_stage_and_the_seconds(open_chat: Callable[..., ChatPage], tmp_path: Path) -> None:
    with StreamingServer(FakeApi(chat=[])) as server:
        chat = open_chat(server.url, clock=True)
        page = chat.page
        chat.ask("Who heads the fleet?")
        answer = chat.answer()
        progress = answer.get_by_test_id("progress")
        expect(progress).to_have_text("Searching the documents… 0 s")
        page.clock.run_for(2_000)
        # No stage event yet (an older server never sends one): the first stage and the time keep showing.
        expect(progress).to_have_text("Searching the documents… 2 s")
        server.send(_chunk({"role": "assistant", "content": ""}), _stage("searching", None, 0.1))
        server.send(_stage("reading", 6, 1.9))
        expect(progress).to_have_text("Reading 6 passages… 2 s")
        page.clock.run_for(1_000)
        expect(progress).to_have_text("Reading 6 passages… 3 s")
        expect(answer).to_have_attribute("aria-busy", "true")
        _screenshot(page, "waiting.png", tmp_path)

        server.send(_stage("writing", 6, 3.2))
        expect(progress).to_have_text("Writing the answer… 3 s")
        server.send(_stage("reading", 1, 3.3))
        expect(progress).to_have_text("Reading 1 passage… 3 s")  # singular
        server.send(_stage("checking", None, 4.0), _chunk({"content": "Moiseyev heads it [1]."}))
        expect(progress).to_have_text("Checking citations… 3 s")
        expect(answer.locator(".answer-text")).to_have_text("Moiseyev heads it [1].")  # text streams in meanwhile
        page.clock.run_for(2_000)
        expect(progress).to_have_text("Checking citations… 5 s")
        server.send(_stage("unheard-of", None, 5.0))  # a stage this page does not know keeps the last one
        page.clock.run_for(1_000)
        expect(progress).to_have_text("Checking citations… 6 s")

        server.send(_chunk(FINAL_DELTA, "stop"), "[DONE]")
        expect(answer).to_have_attribute("data-state", "done")
        expect(progress).to_have_count(0)
        expect(answer.get_by_test_id("citation-marker")).to_have_count(1)
        page.clock.run_for(3_000)  # the timer stopped with the answer
        expect(answer.get_by_test_id("progress")).to_have_count(0)
        assert chat.errors == []


def test_without_stage_events_the_answer_still_finishes(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)]))
    chat.ask("Who heads the fleet?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.get_by_test_id("progress")).to_have_count(0)
    expect(answer.get_by_test_id("citation-marker")).to_have_count(1)
    assert chat.errors == []


PDF_DOC: dict[str, Any] = {
    "doc_id": "reports/annual.pdf",
    "title": "Annual report",
    "text": "Page one text.\fThe fleet was renamed in 2024 after a long debate.\fPage three.",
    "length": 72,
    "pages": 3,
}
REFUSAL_REASON = {"code": "no_support", "message": "No passage says what the capital of Australia is."}
CLOSEST_PASSAGES = [
    {
        "doc_id": "news/a b.txt",
        "title": "Fleet <i>news</i>",
        "source": "news/a b.txt",
        "page": None,
        "start": FAKE_START,
        "end": FAKE_START + len(FAKE_QUOTE),
        "text": FAKE_QUOTE,
    },
    {
        "doc_id": "reports/annual.pdf",
        "title": "Annual report",
        "source": "reports/annual.pdf",
        "page": 2,
        "start": 15,
        "end": 65,
        "text": PDF_DOC["text"][15:65],
    },
]


def _refusal_stream(*, beside_choices: bool = False) -> str:
    """An abstention with its reason and closest passages, in the final delta (or beside `choices`)."""
    extra: dict[str, object] = {
        "abstain_reason": REFUSAL_REASON,
        "closest_passages": CLOSEST_PASSAGES,
        "abstained": True,
    }
    final: dict[str, object] = {"citations": [], "standalone_question": "What is the capital of Australia?"}
    last = _chunk(final if beside_choices else {**final, **extra}, "stop")
    if beside_choices:
        last.update(extra)
    return _sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "The documents do not answer this question."}),
        last,
    )


@pytest.mark.parametrize("beside_choices", [False, True], ids=["in-delta", "beside-choices"])
def test_a_refusal_shows_its_reason_and_the_closest_passages(
    open_chat: Callable[..., ChatPage], tmp_path: Path, beside_choices: bool
) -> None:
    api = FakeApi(
        chat=[(200, {}, _refusal_stream(beside_choices=beside_choices))],
        documents={FAKE_DOC["doc_id"]: FAKE_DOC, PDF_DOC["doc_id"]: PDF_DOC},
    )
    chat = open_chat(FAKE_ORIGIN, api)
    page = chat.page
    chat.ask("What is the capital of Australia?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "abstained")
    expect(answer).to_contain_text("No answer in the documents")
    expect(answer.get_by_test_id("abstain-reason")).to_have_text(REFUSAL_REASON["message"])
    passages = answer.get_by_test_id("closest-passage")
    expect(passages).to_have_count(2)
    expect(passages.nth(0)).to_contain_text("Fleet <i>news</i>")
    expect(passages.nth(0).get_by_test_id("source-file")).to_have_text("news/a b.txt")
    expect(passages.nth(0)).to_contain_text(FAKE_QUOTE)
    expect(passages.nth(1)).to_contain_text("Annual report")
    expect(passages.nth(1).get_by_test_id("source-file")).to_have_text("reports/annual.pdf · p. 2")
    expect(passages.nth(1).get_by_test_id("source-page")).to_have_text("p. 2")
    expect(answer.get_by_test_id("citation-marker")).to_have_count(0)

    passages.nth(1).locator("button").click()
    expect(page.get_by_test_id("doc-title")).to_have_text("Annual report")
    expect(page.get_by_test_id("doc-highlight")).to_have_text(PDF_DOC["text"][15:65])
    expect(page.locator("#doc-meta")).to_have_text("reports/annual.pdf · page 2 · passage 2")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("doc-panel")).to_be_hidden()
    expect(passages.nth(1).locator("button")).to_be_focused()  # back where the keyboard was
    passages.nth(0).locator("button").press("Enter")
    expect(page.get_by_test_id("doc-highlight")).to_have_text(FAKE_QUOTE)
    expect(page.locator("#doc-meta")).to_have_text("news/a b.txt · paragraph 2 · passage 1")
    expect(page.locator("#doc-notice")).to_be_hidden()
    assert chat.errors == []


def test_a_refusal_without_passages_shows_only_the_refusal(open_chat: Callable[..., ChatPage]) -> None:
    stream = _sse(
        _chunk({"content": "The documents do not answer this question."}),
        _chunk({"citations": [], "abstained": True, "abstain_reason": None, "closest_passages": []}, "stop"),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)]))
    chat.ask("What is the capital of Australia?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "abstained")
    expect(answer.get_by_test_id("abstain-reason")).to_have_count(0)
    expect(answer.get_by_test_id("closest-passage")).to_have_count(0)
    expect(answer).not_to_contain_text("Closest passages")
    assert chat.errors == []


def test_a_marker_previews_its_quote_on_hover_and_on_keyboard_focus(
    open_chat: Callable[..., ChatPage], tmp_path: Path
) -> None:
    cited = {**FAKE_CITATION, "page": 12}
    stream = _sse(
        _chunk({"content": "Moiseyev <b>heads</b> it [1]."}),
        _chunk({"citations": [cited], "abstained": False, "standalone_question": "Who heads it?"}, "stop"),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)]))
    page = chat.page
    chat.ask("Who heads it?")
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    source = answer.get_by_test_id("source")
    expect(source).to_contain_text("Fleet <i>news</i>")
    expect(source.get_by_test_id("source-file")).to_have_text("news/a b.txt · p. 12")  # the file name and page

    preview = page.get_by_test_id("cite-preview")
    marker = answer.get_by_test_id("citation-marker")
    expect(preview).to_be_hidden()
    marker.hover()
    expect(preview).to_be_visible()
    expect(preview).to_contain_text(FAKE_QUOTE)  # as text: the markup in the quote is not parsed
    expect(preview).to_contain_text("Source 1 · Fleet <i>news</i>")
    expect(preview).to_contain_text("news/a b.txt · p. 12")
    assert page.locator("#cite-preview b, #cite-preview i").count() == 0
    expect(marker).to_have_attribute("aria-describedby", "cite-preview")
    card, button = preview.bounding_box(), marker.bounding_box()
    assert card is not None and button is not None
    assert card["y"] + card["height"] <= button["y"] or card["y"] >= button["y"] + button["height"]  # not over it
    assert card["x"] >= 0 and card["x"] + card["width"] <= 1280
    preview.hover()  # the pointer can move onto the preview to read it
    page.wait_for_timeout(400)
    expect(preview).to_be_visible()
    page.mouse.move(5, 790)
    expect(preview).to_be_hidden()

    # Keyboard: Tab to the marker shows the preview, Escape dismisses it without closing anything else.
    page.get_by_test_id("question").focus()
    marker.focus()
    expect(preview).to_be_visible()
    page.keyboard.press("Escape")
    expect(preview).to_be_hidden()
    expect(marker).to_be_focused()
    expect(marker).not_to_have_attribute("aria-describedby", "cite-preview")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("doc-panel")).to_be_visible()
    expect(preview).to_be_hidden()
    expect(page.locator("#doc-meta")).to_have_text("news/a b.txt · page 12 · source 1 · reader comment")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("doc-panel")).to_be_hidden()
    expect(marker).to_be_focused()
    assert chat.errors == []


def test_the_panel_names_the_paragraph_of_a_span(open_chat: Callable[..., ChatPage]) -> None:
    text = "First paragraph,\nstill the first.\n\n  \nSecond paragraph.\n\nThird: the cited sentence is here."
    quote = "the cited sentence is here."
    doc = {"doc_id": "notes.txt", "title": "Notes", "text": text, "length": len(text)}
    cited = {**FAKE_CITATION, "doc_id": "notes.txt", "start": text.index(quote), "end": len(text), "quote": quote}
    stream = _sse(_chunk({"content": "Here [1]."}), _chunk({"citations": [cited], "abstained": False}, "stop"))
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)], documents={"notes.txt": doc}))
    chat.ask("Where?")
    chat.answer().get_by_test_id("citation-marker").click()
    meta = chat.page.locator("#doc-meta")
    expect(meta).to_have_text("notes.txt · paragraph 3 · source 1 · reader comment")
    expect(meta).to_have_attribute("title", f"characters {text.index(quote)}–{len(text)}")  # the offsets stay at hand
    assert chat.errors == []


# A Markdown document: blocks of each kind, inline markup, and raw HTML that must stay text.
MD_TEXT = """# Staff handbook

Welcome to **Acme**. Read the *whole* page, see [the wiki](https://wiki.example/acme).

## Leave policy

- Full-time staff get **25 days** of paid leave a year.
- Part-time staff get leave *pro rata*:
  - 3 days a week: 15 days
  - 4 days a week: 20 days

1. Ask your manager.
2. Record it in `hr-tool`.

| Role | Days | Notes |
|------|-----:|-------|
| Full-time | 25 | **plus** public holidays |
| Part-time | 15 | pro rata |

> Leave does not carry over past March.

<script>alert("x")</script> <img src=x onerror=alert(1)> <b>not bold</b>

```
rag ask "How many days?" <i>
```

Setext title
============
Last line, wrapped
1984. stays in the paragraph.
"""
MD_QUOTE = "25 days** of paid leave a year.\n- Part-time staff get leave *pro rata*"
MD_TABLE_QUOTE = "Full-time | 25 | **plus"
MD_DOC: dict[str, Any] = {
    "doc_id": "handbook/leave.md",
    "title": "Staff handbook",
    "text": MD_TEXT,
    "length": len(MD_TEXT),
}


def _md_citation(n: int, quote: str) -> dict[str, Any]:
    start = MD_TEXT.index(quote)
    return {
        "n": n,
        "doc_id": "handbook/leave.md",
        "start": start,
        "end": start + len(quote),
        "quote": quote,
        "supported": True,
        "section": "article",
        "page": None,
    }


def test_a_markdown_document_is_rendered_and_the_span_still_highlighted_exactly(
    open_chat: Callable[..., ChatPage], tmp_path: Path
) -> None:
    citations = [_md_citation(1, MD_QUOTE), _md_citation(2, MD_TABLE_QUOTE)]
    stream = _sse(
        _chunk({"content": "Full-time staff get 25 days [1], part-time 15 [2]."}),
        _chunk({"citations": citations, "abstained": False}, "stop"),
    )
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)], documents={"handbook/leave.md": MD_DOC}))
    page = chat.page
    chat.ask("How many days of leave?")
    chat.answer().get_by_test_id("citation-marker").first.click()
    doc = page.locator("#doc-text")
    highlight = page.get_by_test_id("doc-highlight")
    expect(highlight.first).to_be_visible()

    # Rendered: headings, paragraphs with inline markup, nested lists, a numbered list, a table, a quote, code.
    expect(doc).to_have_class(re.compile(r"\bmd\b"))
    expect(doc.locator("h3")).to_have_text(["Staff handbook", "Setext title"], use_inner_text=True)
    expect(doc.locator("h4")).to_have_text("Leave policy", use_inner_text=True)
    expect(doc.locator("strong")).to_have_text(["Acme", "25 days", "plus"], use_inner_text=True)
    expect(doc.locator("em")).to_have_text(["whole", "pro rata"], use_inner_text=True)
    expect(doc.locator(".md-link")).to_have_text("the wiki", use_inner_text=True)
    expect(doc.locator(".md-link")).to_have_attribute("title", "https://wiki.example/acme")
    expect(doc.locator("ul > li")).to_have_count(4)
    expect(doc.locator("ul ul > li")).to_have_text(
        ["3 days a week: 15 days", "4 days a week: 20 days"], use_inner_text=True
    )
    expect(doc.locator("ol > li")).to_have_text(["Ask your manager.", "Record it in hr-tool."], use_inner_text=True)
    expect(doc.locator("th")).to_have_text(["Role", "Days", "Notes"], use_inner_text=True)
    expect(doc.locator("tbody tr:visible")).to_have_count(2)
    expect(doc.locator("tbody tr:visible").first.locator("td")).to_have_text(
        ["Full-time", "25", "plus public holidays"], use_inner_text=True
    )
    expect(doc.locator("blockquote")).to_have_text("Leave does not carry over past March.", use_inner_text=True)
    expect(doc.locator("pre code")).to_contain_text('rag ask "How many days?" <i>')
    expect(doc.locator("p").last).to_have_text("Last line, wrapped 1984. stays in the paragraph.", use_inner_text=True)
    # No markup from the document is ever parsed: the tags are shown as the text they are.
    assert page.locator("#doc-text script, #doc-text img, #doc-text b, #doc-text i, #doc-text a").count() == 0
    visible = doc.inner_text()
    assert '<script>alert("x")</script> <img src=x onerror=alert(1)> <b>not bold</b>' in visible
    assert "# Staff" not in visible and "**" not in visible and "|---" not in visible and "====" not in visible
    # Every character is still there, in order: the offsets of the text select the same characters.
    assert doc.text_content() == MD_TEXT

    # The span crosses a bold run and two list items: several marks, together exactly text[start:end].
    assert highlight.count() > 1
    assert "".join(highlight.all_text_contents()) == MD_QUOTE
    # What the reader sees highlighted is the content; the syntax inside the span is marked but hidden.
    shown = [m.text_content() for m in highlight.all() if m.is_visible()]
    hidden = [m.text_content() for m in highlight.all() if not m.is_visible()]
    assert shown == ["25 days", " of paid leave a year.", "Part-time staff get leave ", "pro rata"]
    assert hidden == ["**", "\n", "- ", "*", "*"]  # the line break ends the item: collapsed, not shown
    expect(highlight.first).to_be_in_viewport()
    expect(page.locator("#doc-notice")).to_be_hidden()
    expect(page.locator("#doc-meta")).to_have_text("handbook/leave.md · paragraph 4 · source 1")
    _screenshot(page, "markdown-panel.png", tmp_path)

    # A span across table cells.
    chat.answer().get_by_test_id("citation-marker").nth(1).click()
    expect(page.locator("#doc-meta")).to_have_text(re.compile("source 2$"))
    assert "".join(highlight.all_text_contents()) == MD_TABLE_QUOTE
    shown = [m.text_content() for m in highlight.all() if m.is_visible() and (m.text_content() or "").strip()]
    assert shown == ["Full-time ", " 25 ", "plus"]  # three cells; the pipes and ** are marked but hidden
    assert doc.locator("tr > mark, tbody > mark, table > mark").count() == 0  # marks stay inside cells
    assert chat.errors == []


# Odd input: unclosed markers, stray pipes and fences, HTML, astral characters, CRLF, tabs, no final newline.
ODD_MARKDOWN = (
    "**bold *both** _x_ snake_case_name `code ``x`` |a|b|\n|-|\n| only | one\r\n"
    "- item\n\n\n  continued\n\t- tab item\n10) ten\n> quote\n>\n```js\n<script>x</script>\n"
    '~~~\n# ## #\n#hashtag\n![alt](x.png) [a](b "t") 😀 [x](\n***\n___\nend'
)


def test_the_markdown_renderer_keeps_every_character_in_order(open_chat: Callable[..., ChatPage]) -> None:
    """On the repository's own Markdown and on odd input: textContent == text, and any span highlights exactly."""
    texts = [path.read_text(encoding="utf-8") for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]]
    texts.append(ODD_MARKDOWN)
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[]))
    checked = chat.page.evaluate(
        """(texts) => texts.map((text) => {
            const box = document.createElement("div");
            box.append(renderMarkdown(text));
            const same = box.textContent === text;
            const allowed = /^(H[3-6]|P|UL|OL|LI|BLOCKQUOTE|PRE|CODE|TABLE|THEAD|TBODY|TR|TH|TD|STRONG|EM|DEL|SPAN|DIV)$/;
            const tags = [...box.querySelectorAll("*")].map((n) => n.tagName).filter((t) => !allowed.test(t));
            const misses = [];
            for (let k = 1; k <= 40; k += 1) {  // spans at spread-out offsets, lengths 1 to ~400
                const from = Math.floor((text.length * k) / 41);
                const to = Math.min(text.length, from + ((k * 37) % 400) + 1);
                const copy = box.cloneNode(true);
                const got = highlightRange(copy, from, to).map((m) => m.textContent).join("");
                if (got !== text.slice(from, to) || copy.textContent !== text) misses.push([from, to]);
            }
            return { same, tags, misses, blocks: box.children.length };
        })""",
        texts,
    )
    for text, result in zip(texts, checked, strict=True):
        assert result["same"], text[:80]
        assert result["tags"] == [], text[:80]
        assert result["misses"] == [], text[:80]
        assert result["blocks"] > 3  # rendered into blocks, not one lump
    assert chat.errors == []


def test_a_plain_text_document_is_not_rendered_as_markdown(open_chat: Callable[..., ChatPage]) -> None:
    text = "# not a heading in a .txt file\n**kept as typed**"
    doc = {"doc_id": "notes.txt", "title": "Notes", "text": text, "length": len(text)}
    cited = {**FAKE_CITATION, "doc_id": "notes.txt", "start": 0, "end": 6, "quote": "# not "}
    stream = _sse(_chunk({"content": "See [1]."}), _chunk({"citations": [cited], "abstained": False}, "stop"))
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, stream)], documents={"notes.txt": doc}))
    chat.ask("What?")
    chat.answer().get_by_test_id("citation-marker").click()
    expect(chat.page.get_by_test_id("doc-highlight")).to_have_text("# not ")
    expect(chat.page.locator("#doc-text")).not_to_have_class(re.compile(r"\bmd\b"))
    assert chat.page.locator("#doc-text").inner_text() == text
    assert chat.errors == []


ANSWER_TEXT = "Moiseyev <img src=x onerror=alert(1)> heads it [1]. Not a citation [7]."


def test_the_conversation_survives_a_reload_and_new_chat_clears_it(open_chat: Callable[..., ChatPage]) -> None:
    api = FakeApi(
        chat=[(200, {}, ANSWER_STREAM), (200, {}, _refusal_stream())],
        documents={FAKE_DOC["doc_id"]: FAKE_DOC, PDF_DOC["doc_id"]: PDF_DOC},
    )
    chat = open_chat(FAKE_ORIGIN, api)
    page = chat.page
    chat.ask("Who heads the fleet?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")
    chat.ask("What is the capital of Australia?")
    expect(chat.answer(1)).to_have_attribute("data-state", "abstained")

    page.reload()
    expect(page.get_by_test_id("message-user")).to_have_text(
        ["Who heads the fleet?", "What is the capital of Australia?"]
    )
    answer = chat.answer(0)
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator(".answer-text")).to_have_text(
        "Moiseyev <img src=x onerror=alert(1)> heads it 1. Not a citation [7]."
    )
    assert page.locator("img, b, i").count() == 0  # restored text is still text
    expect(answer.get_by_test_id("source")).to_contain_text("Fleet <i>news</i>")
    expect(chat.answer(1)).to_have_attribute("data-state", "abstained")
    expect(chat.answer(1).get_by_test_id("closest-passage")).to_have_count(2)
    answer.get_by_test_id("citation-marker").click()  # restored markers still open their span
    expect(page.get_by_test_id("doc-highlight")).to_have_text(FAKE_QUOTE)
    page.keyboard.press("Escape")

    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("message-assistant")).to_have_count(0)
    assert page.evaluate("localStorage.getItem('rag.conversation')") is None
    page.reload()
    expect(page.locator("#empty")).to_be_visible()
    expect(page.get_by_test_id("message-user")).to_have_count(0)
    assert chat.errors == []


def test_restored_turns_are_sent_as_the_conversation(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)] * 2))
    chat.ask("Who heads the fleet?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")
    chat.page.reload()
    chat.ask("And since when?")
    expect(chat.answer(1)).to_have_attribute("data-state", "done")
    assert chat.chat_bodies()[-1]["messages"] == [
        {"role": "user", "content": "Who heads the fleet?"},
        {"role": "assistant", "content": ANSWER_TEXT},
        {"role": "user", "content": "And since when?"},
    ]
    assert chat.errors == []


COPIED = f"""{ANSWER_TEXT}

Sources:
[1] Fleet <i>news</i> (news/a b.txt)
    “{FAKE_QUOTE}”"""

# Records what the page copies through the old path (a selected textarea and the copy command).
RECORD_COPY_EVENT = """
document.addEventListener("copy", (event) => {
  const t = event.target;
  window.__copied = t.value.slice(t.selectionStart, t.selectionEnd);
}, true);
"""
# A clipboard for the test to read: the page's origin is plain http, which has no navigator.clipboard.
FAKE_CLIPBOARD = (
    """
Object.defineProperty(navigator, "clipboard", {
  value: { writeText: async (text) => { window.__clipboard = text; } },
});
"""
    + RECORD_COPY_EVENT
)


@pytest.mark.parametrize("clipboard", [True, False], ids=["clipboard-api", "copy-command"])
def test_an_answer_is_copied_with_its_sources(open_chat: Callable[..., ChatPage], clipboard: bool) -> None:
    script = FAKE_CLIPBOARD if clipboard else RECORD_COPY_EVENT
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)]), init_script=script)
    page = chat.page
    chat.ask("Who heads the fleet?")
    answer = chat.answer()
    expect(answer.get_by_test_id("source")).to_contain_text("Fleet <i>news</i>")
    answer.get_by_test_id("copy").click()
    expect(answer.get_by_test_id("action-status")).to_have_text("Copied with sources.")
    if clipboard:
        assert page.evaluate("window.__clipboard") == COPIED
        assert page.evaluate("window.__copied") is None  # the old path was not needed
    else:
        assert page.evaluate("navigator.clipboard") is None
        assert page.evaluate("window.__copied") == COPIED
        expect(answer.get_by_test_id("copy")).to_be_focused()  # focus goes back where it was
        assert page.locator("textarea").count() == 1  # the helper textarea is gone
    assert chat.errors == []


def test_feedback_is_posted_and_its_outcome_shown(open_chat: Callable[..., ChatPage]) -> None:
    failure = {"error": {"message": "Feedback file is read-only.", "type": "server_error"}}
    api = FakeApi(chat=[(200, {}, ANSWER_STREAM)], feedback=[(201, {"stored": True}), (500, failure)])
    chat = open_chat(FAKE_ORIGIN, api)
    page = chat.page
    chat.ask("Who heads the fleet?")
    answer = chat.answer()
    up, down = answer.get_by_test_id("feedback-up"), answer.get_by_test_id("feedback-down")
    status = answer.get_by_test_id("action-status")
    expect(up).to_have_attribute("aria-pressed", "false")

    with page.expect_request(lambda r: r.url.endswith("/v1/feedback")) as sent:
        up.click()
    assert json.loads(sent.value.post_data or "{}") == {
        "question": "Who heads the fleet?",
        "answer": ANSWER_TEXT,
        "citations": [FAKE_CITATION],
        "rating": "up",
        "comment": None,
    }
    assert sent.value.headers["content-type"] == "application/json"
    expect(status).to_have_text("Feedback recorded, thank you.")
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_have_attribute("aria-pressed", "false")

    with page.expect_request(lambda r: r.url.endswith("/v1/feedback")) as sent:
        down.click()
    assert json.loads(sent.value.post_data or "{}")["rating"] == "down"
    expect(status).to_have_text("Feedback not recorded: Feedback file is read-only.")
    expect(up).to_have_attribute("aria-pressed", "true")  # the recorded rating stays shown
    expect(down).to_be_enabled()
    assert [e for e in chat.errors if "status of 500" not in e] == []


def _two_documents() -> FakeApi:
    return FakeApi(
        chat=[(200, {}, ANSWER_STREAM)] * 3,
        documents={FAKE_DOC["doc_id"]: FAKE_DOC, "handbook/leave.md": MD_DOC, PDF_DOC["doc_id"]: PDF_DOC},
    )


def test_a_question_can_be_asked_within_one_document_and_section(open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(FAKE_ORIGIN, _two_documents())
    page = chat.page
    filters = page.get_by_test_id("filters")
    expect(filters).to_be_visible()
    options = page.get_by_test_id("filter-doc").locator("option")
    expect(options).to_have_text(
        [
            "all documents",
            "Annual report — reports/annual.pdf",
            "Fleet <i>news</i> — news/a b.txt",
            "Staff handbook — handbook/leave.md",
        ]
    )
    page.get_by_test_id("filter-doc").select_option("handbook/leave.md")
    page.get_by_test_id("filter-section").select_option("comments")
    chat.ask("How many days?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("filter-note")).to_have_text("Asked in: Staff handbook · reader comments")

    page.get_by_test_id("filter-section").select_option("")
    chat.ask("And part-time?")
    expect(chat.answer(1)).to_have_attribute("data-state", "done")
    page.get_by_test_id("filter-doc").select_option("")
    chat.ask("Anything else?")
    expect(chat.answer(2)).to_have_attribute("data-state", "done")

    within, doc_only, everywhere = chat.chat_bodies()
    assert within["doc_ids"] == ["handbook/leave.md"] and within["sections"] == ["comments"]
    assert doc_only["doc_ids"] == ["handbook/leave.md"] and "sections" not in doc_only
    assert "doc_ids" not in everywhere and "sections" not in everywhere
    assert everywhere == {"model": "rag", "stream": True, "messages": everywhere["messages"]}
    assert chat.errors == []


@pytest.mark.parametrize("status", [404, 500])
def test_the_filter_is_hidden_when_the_document_list_fails(open_chat: Callable[..., ChatPage], status: int) -> None:
    listing = (status, {"error": {"message": "no such route", "type": "not_found"}})
    chat = open_chat(FAKE_ORIGIN, FakeApi(chat=[(200, {}, ANSWER_STREAM)], listing=listing))
    page = chat.page
    with page.expect_response(lambda r: r.url.endswith("/v1/documents")):
        pass
    expect(page.get_by_test_id("filters")).to_be_hidden()
    chat.ask("Who heads the fleet?")
    expect(chat.answer()).to_have_attribute("data-state", "done")
    (body,) = chat.chat_bodies()
    assert "doc_ids" not in body and "sections" not in body
    expect(page.get_by_test_id("api-key")).to_be_hidden()  # a failed list does not ask for a key
    assert [e for e in chat.errors if f"status of {status}" not in e] == []


def test_on_a_phone_the_hint_is_hidden_and_stop_takes_the_place_of_send(
    open_chat: Callable[..., ChatPage], tmp_path: Path
) -> None:
    with StreamingServer(_two_documents()) as server:
        chat = open_chat(server.url, viewport=PHONE)
        page = chat.page
        box, send, stop = page.get_by_test_id("question"), page.get_by_test_id("send"), page.get_by_test_id("stop")
        expect(page.locator("#composer-hint")).to_be_hidden()
        expect(send).to_be_visible()
        expect(stop).to_be_hidden()
        idle = box.bounding_box()
        assert idle is not None and idle["width"] >= 0.7 * PHONE["width"]

        chat.ask("Who heads the fleet?")
        server.send(_chunk({"content": ANSWER_TEXT}), _chunk(FINAL_DELTA, "stop"), "[DONE]")
        expect(chat.answer(0)).to_have_attribute("data-state", "done")

        chat.ask("Since when?")
        expect(stop).to_be_visible()
        expect(stop).to_be_enabled()
        expect(send).to_be_hidden()
        busy = box.bounding_box()
        assert busy is not None and busy["width"] >= idle["width"] - 4  # Stop does not squeeze the question box
        composer = page.locator("#composer").bounding_box()
        assert composer is not None and composer["x"] + composer["width"] <= PHONE["width"]
        server.send(_stage("reading", 4, 1.0))
        expect(chat.answer(1).get_by_test_id("progress")).to_contain_text("Reading 4 passages…")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing sideways
        _screenshot(page, "phone.png", tmp_path)
        stop.click()
        expect(chat.answer(1)).to_have_attribute("data-reason", "aborted")
        expect(send).to_be_visible()
        expect(stop).to_be_hidden()
        assert chat.errors == []


def test_a_document_can_be_uploaded(open_chat: Callable[..., ChatPage], tmp_path: Path) -> None:
    too_big = {"error": {"message": "big.pdf is 30 MB; the limit is 20 MB.", "type": "invalid_request_error"}}
    api = FakeApi(chat=[], uploads=[(201, _listed(MD_DOC, "markdown")), (413, too_big)])
    # Over real HTTP: the browser hands routes a multipart body without the file's bytes.
    with StreamingServer(api) as server:
        chat = open_chat(server.url)
        page = chat.page
        expect(page.get_by_test_id("filters")).to_be_visible()
        upload = tmp_path / "leave.md"
        upload.write_text(MD_TEXT, encoding="utf-8")
        page.get_by_test_id("upload-file").set_input_files(str(upload))
        expect(page.get_by_test_id("upload-status")).to_have_text("Added Staff handbook.")
        path, headers, body = api.posted[0]
        assert path == "/v1/documents"
        assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
        assert b'name="file"; filename="leave.md"' in body and MD_TEXT.encode() in body
        # The list is read again after an upload (once at start, once after).
        assert [r.url for r in chat.requests if r.method == "GET"].count(f"{server.url}/v1/documents") == 2

        (tmp_path / "big.pdf").write_bytes(b"%PDF-1.4 not really")
        page.get_by_test_id("upload-file").set_input_files(str(tmp_path / "big.pdf"))
        expect(page.get_by_test_id("upload-status")).to_have_text(f"Not added: {too_big['error']['message']}")
        expect(page.get_by_test_id("upload")).to_be_enabled()
        assert [e for e in chat.errors if "status of 413" not in e] == []


# --- the real server, the seeds index and the bundled model ------------------------------------------------

LLM_TIMEOUT_MS = 240_000  # an answer from the bundled model on 2 cores, with the model loading the first time


@pytest.fixture(scope="module")
def server(seeds_assistant: Assistant) -> Iterator[LiveServer]:
    with LiveServer(seeds_assistant) as live:
        yield live


def _get_json(url: str, key: str = "") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@dataclass
class StreamedAnswer:
    """An answer as the server streamed it: the text of its content deltas and the delta of its final chunk."""

    text: str
    final: dict[str, Any]

    @classmethod
    def parse(cls, stream: str) -> StreamedAnswer:
        events = [line.removeprefix("data: ") for line in stream.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]", stream[-500:]
        choices = [json.loads(event)["choices"][0] for event in events[:-1]]
        assert choices[-1]["finish_reason"] == "stop", stream[-500:]
        return cls("".join(c["delta"].get("content", "") for c in choices), choices[-1]["delta"])


def _ask_and_capture(chat: ChatPage, question: str) -> StreamedAnswer:
    """Ask in the page, wait until the answer is finished, return the answer as the server sent it."""
    with chat.page.expect_response(lambda r: r.url == f"{chat.base_url}/v1/chat/completions") as info:
        chat.ask(question)
    expect(chat.answer()).not_to_have_attribute("data-state", "streaming", timeout=LLM_TIMEOUT_MS)
    return StreamedAnswer.parse(info.value.text())


@pytest.mark.llm
def test_a_cited_answer_opens_its_quote_in_the_document(
    server: LiveServer, open_chat: Callable[..., ChatPage], tmp_path: Path
) -> None:
    chat = open_chat(server.url)
    page = chat.page
    expect(page.locator("#status")).to_contain_text("documents")
    streamed = _ask_and_capture(chat, "Who is the chief of Russia's Northern Fleet?")

    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "done")
    assert "Moiseyev" in (answer.locator(".answer-text").text_content() or "")
    citations = {c["n"]: c for c in streamed.final["citations"]}
    markers = answer.get_by_test_id("citation-marker")
    assert markers.count() >= 1
    assert {int(m.get_attribute("data-n") or 0) for m in markers.all()} <= set(citations)
    expect(answer.get_by_test_id("source")).to_have_count(len(citations))

    marker = markers.first
    citation = citations[int(marker.get_attribute("data-n") or 0)]
    marker.click()
    expect(page.get_by_test_id("doc-panel")).to_be_visible()
    highlight = page.get_by_test_id("doc-highlight")
    expect(highlight.first).to_be_in_viewport()
    # One mark per text node the span crosses (several in a rendered Markdown document): together, the quote.
    assert "".join(highlight.all_text_contents()) == citation["quote"]
    # The same span, read from the server independently of the page.
    doc_path = "/".join(urllib.parse.quote(part, safe="") for part in citation["doc_id"].split("/"))
    status, doc = _get_json(f"{server.url}/v1/documents/{doc_path}")
    assert status == 200
    assert doc["text"][citation["start"] : citation["end"]] == citation["quote"]
    expect(page.get_by_test_id("doc-title")).to_have_text(doc["title"] or citation["doc_id"])

    screenshot = (
        REPO / "docs" / "screenshots" / "chat.png" if os.environ.get("RAG_SCREENSHOT") == "1" else tmp_path / "chat.png"
    )
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000

    page.get_by_test_id("doc-close").click()
    expect(page.get_by_test_id("doc-panel")).to_be_hidden()
    assert chat.errors == []
    elsewhere = [r.url for r in chat.requests if not r.url.startswith(f"{server.url}/")]
    assert elsewhere == []


@pytest.mark.llm
def test_a_follow_up_sends_the_conversation(server: LiveServer, open_chat: Callable[..., ChatPage]) -> None:
    chat = open_chat(server.url)
    first = _ask_and_capture(chat, "Who is the chief of Russia's Northern Fleet?")
    expect(chat.answer(0)).to_have_attribute("data-state", "done")
    _ask_and_capture(chat, "Which fleet does he command?")
    expect(chat.answer(1)).to_have_attribute("data-state", re.compile("^(done|abstained)$"))

    first_body, second_body = chat.chat_bodies()
    assert first_body["messages"] == [{"role": "user", "content": "Who is the chief of Russia's Northern Fleet?"}]
    # The earlier answer goes back as the text that streamed in, with its [n] markers.
    assert second_body["messages"] == [
        {"role": "user", "content": "Who is the chief of Russia's Northern Fleet?"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "Which fleet does he command?"},
    ]
    assert chat.errors == []


@pytest.mark.llm
def test_an_unanswerable_question_is_shown_as_an_abstention(
    server: LiveServer, open_chat: Callable[..., ChatPage]
) -> None:
    chat = open_chat(server.url)
    streamed = _ask_and_capture(chat, "What is the capital of Australia?")
    assert streamed.final["abstained"] is True
    answer = chat.answer()
    expect(answer).to_have_attribute("data-state", "abstained")
    expect(answer).to_contain_text("No answer in the documents")
    expect(answer.get_by_test_id("citation-marker")).to_have_count(0)
    assert chat.errors == []


@pytest.mark.llm
def test_with_an_api_key_the_page_asks_for_it(seeds_assistant: Assistant, open_chat: Callable[..., ChatPage]) -> None:
    with LiveServer(seeds_assistant, api_key="right-key") as locked:
        status, refused = _get_json(f"{locked.url}/v1/models", key="wrong-key")
        assert status == 401
        chat = open_chat(locked.url)
        page = chat.page
        key = page.get_by_test_id("api-key")
        expect(key).to_be_visible()
        expect(key).to_be_focused()

        key.fill("wrong-key")
        chat.ask("Who is the chief of Russia's Northern Fleet?")
        expect(chat.answer()).to_have_attribute("data-state", "error")
        expect(chat.answer()).to_contain_text(refused["error"]["message"])
        expect(key).to_have_attribute("aria-invalid", "true")  # asked for again

        key.fill("right-key")
        with page.expect_response(lambda r: r.url == f"{locked.url}/v1/chat/completions") as info:
            chat.ask("Who is the chief of Russia's Northern Fleet?")
        assert info.value.status == 200
        assert json.loads(info.value.request.post_data or "{}")["messages"] == [
            {"role": "user", "content": "Who is the chief of Russia's Northern Fleet?"}
        ]  # the failed turn is not history
        assert info.value.request.headers["authorization"] == "Bearer right-key"
        page.get_by_test_id("stop").click()
        expect(chat.answer()).to_have_attribute("data-state", "error")
        expect(chat.answer()).to_have_attribute("data-reason", "aborted")
        expect(page.get_by_test_id("send")).to_be_enabled()
        # The server gives the model back when the page stops listening.
        deadline = time.monotonic() + 60
        while _get_json(f"{locked.url}/healthz")[1]["llm"]["active"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _get_json(f"{locked.url}/healthz")[1]["llm"]["active"] == 0

        page.reload()  # the key is kept for the tab's session
        expect(page.get_by_test_id("api-key")).to_have_value("right-key")
        assert [e for e in chat.errors if "status of 401" not in e] == []


# --- the page against the real server (the new routes), the model faked at the HTTP level -------------------

FLEET_DOC = "004_ef5f7f6cb4511981.txt"
FLEET_QUESTION = "Who is the chief of Russia's Northern Fleet?"


def test_the_page_with_the_real_server_filters_previews_rates_and_refuses(
    seeds_assistant: Assistant, fake_openai: FakeOpenAI, open_chat: Callable[..., ChatPage], tmp_path: Path
) -> None:
    """The stubs of the tests above, checked against the real routes: the document list fills the filter, an
    answer within one document cites only it, its marker previews the quote, a thumbs up lands in the feedback
    file, and the same question within another document is refused with that document's closest passages."""
    fake_openai.reply = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
    settings = make_settings(seeds_assistant.index_dir, llm__base_url=fake_openai.base_url, llm__model="fake")
    feedback = tmp_path / "feedback.jsonl"
    with LiveServer(Assistant(settings), feedback_file=str(feedback)) as live:
        chat = open_chat(live.url)
        page = chat.page
        expect(page.get_by_test_id("filters")).to_be_visible()
        options = page.get_by_test_id("filter-doc").locator("option")
        expect(options).to_have_count(1 + len(seeds_assistant.index.documents))
        fleet = seeds_assistant.document(FLEET_DOC)
        page.get_by_test_id("filter-doc").select_option(FLEET_DOC)

        streamed = _ask_and_capture(chat, FLEET_QUESTION)
        answer = chat.answer()
        expect(answer).to_have_attribute("data-state", "done")
        assert "Moiseyev" in (answer.locator(".answer-text").text_content() or "")
        assert streamed.final["citations"] and {c["doc_id"] for c in streamed.final["citations"]} == {FLEET_DOC}
        assert chat.chat_bodies()[-1]["doc_ids"] == [FLEET_DOC]
        quote = streamed.final["citations"][0]["quote"]

        marker = answer.get_by_test_id("citation-marker").first
        marker.hover()
        preview = page.get_by_test_id("cite-preview")
        expect(preview).to_be_visible()
        expect(preview).to_contain_text(fleet.title)
        expect(preview).to_contain_text(quote[:40])
        _screenshot(page, "hover-preview.png", tmp_path)  # the real seeds, as a reader sees them

        answer.get_by_test_id("feedback-up").click()
        expect(answer.get_by_test_id("action-status")).to_have_text("Feedback recorded, thank you.")
        stored = [json.loads(line) for line in feedback.read_text(encoding="utf-8").splitlines()]
        assert len(stored) == 1 and stored[0]["rating"] == "up" and stored[0]["question"] == FLEET_QUESTION
        assert [c["quote"] for c in stored[0]["citations"]] == [c["quote"] for c in streamed.final["citations"]]

        other = "000_b63fe8f3e2dac5e7.txt"
        page.get_by_test_id("new-chat").click()  # a first question again: no rewrite of a follow-up
        page.get_by_test_id("filter-doc").select_option(other)
        chat.ask(FLEET_QUESTION)
        refused = chat.answer()
        expect(refused).to_have_attribute("data-state", "abstained", timeout=30_000)
        expect(refused.get_by_test_id("abstain-reason")).not_to_be_empty()
        passages = refused.get_by_test_id("closest-passage")
        expect(passages.first).to_be_visible()
        for card in passages.all():
            expect(card.get_by_test_id("source-file")).to_contain_text(other)
        refused.scroll_into_view_if_needed()
        _screenshot(page, "refusal.png", tmp_path)
        passages.first.locator("button").click()
        expect(page.get_by_test_id("doc-title")).to_have_text(seeds_assistant.document(other).title)
        assert chat.errors == []
