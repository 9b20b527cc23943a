"""The API of issue 13 over the real server (uvicorn, FastAPI) and the real index: answer stages on the stream,
why an answer abstained, asking within documents, documents listed, uploaded and deleted, and feedback.

The model is the fake OpenAI-compatible endpoint (tests/fake_openai.py); everything else is the real code, and
the documents tests work on a private copy of the seeds.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest
from typer.testing import CliRunner

from rag.assistant import Assistant
from rag.cli import app
from rag.errors import IndexWriteError
from rag.eval.datasets import load_dataset
from rag.store import current_generation, write_lock
from tests.conftest import SEEDS, make_settings
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer

QUESTION = "Who is the chief of Russia's Northern Fleet?"
FLEET = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
FLEET_DOC = "004_ef5f7f6cb4511981.txt"
KEY = {"Authorization": "Bearer k"}


@pytest.fixture()
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reply = FLEET
    return fake_openai


@pytest.fixture()
def seeds_server(seeds_assistant: Assistant, fake: FakeOpenAI) -> Iterator[LiveServer]:
    """The server over the shared seeds index (read only), answering with the fake model."""
    settings = make_settings(seeds_assistant.index_dir, llm__base_url=fake.base_url, llm__model="fake")
    with LiveServer(Assistant(settings), llm_slots=1) as live:
        yield live


@pytest.fixture()
def docs_server(tmp_path: Path, fake: FakeOpenAI) -> Iterator[LiveServer]:
    """A server with an API key over its own copy of the seeds and its own index, which tests may change."""
    shutil.copytree(SEEDS, tmp_path / "corpus")
    settings = make_settings(tmp_path / "index", llm__base_url=fake.base_url, llm__model="fake")
    assistant = Assistant(settings)
    assistant.build_index([str(tmp_path / "corpus")])
    with LiveServer(assistant, api_key="k", max_upload_bytes=50_000) as live:
        yield live


def sse(response: httpx.Response) -> list[Any]:
    return [
        json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]


# --- stages on the stream -------------------------------------------------------------------------------


def test_raw_sse_carries_the_stages_in_order_then_the_text(seeds_server: LiveServer) -> None:
    body = {"model": "rag", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    response = httpx.post(f"{seeds_server.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200
    events = sse(response)
    assert events[-1] == "[DONE]"
    staged = [e for e in events[:-1] if "rag_stage" in e]
    assert [e["rag_stage"]["stage"] for e in staged] == ["searching", "reading", "writing", "checking"]
    for event in staged:
        assert event["object"] == "chat.completion.chunk"
        assert event["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}]
        assert set(event["rag_stage"]) == {"stage", "passages", "elapsed"}
    elapsed = [e["rag_stage"]["elapsed"] for e in staged]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    assert staged[1]["rag_stage"]["passages"] > 0
    assert all(e["rag_stage"]["passages"] is None for e in staged if e["rag_stage"]["stage"] != "reading")
    text_at = next(i for i, e in enumerate(events) if e != "[DONE]" and e["choices"][0]["delta"].get("content"))
    assert text_at > events.index(staged[-1])
    final = events[-2]
    assert "rag_stage" not in final and final["choices"][0]["finish_reason"] == "stop"
    delta = final["choices"][0]["delta"]
    assert delta["abstained"] is False and delta["abstain_reason"] is None and delta["closest_passages"] == []


def test_the_openai_client_ignores_the_stages(seeds_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{seeds_server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Moiseyev" in text and "[1]" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    extras = [c.model_extra or {} for c in chunks]
    stages = [extra["rag_stage"]["stage"] for extra in extras if extra.get("rag_stage")]
    assert stages == ["searching", "reading", "writing", "checking"]  # kept as an extra, not an error
    whole = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    assert whole.choices[0].message.content == text
    assert "rag_stage" not in (whole.model_extra or {})  # the whole response carries no stages


# --- abstention reason, closest passages, asking within documents ---------------------------------------


def test_an_abstention_says_why_and_what_came_closest(seeds_server: LiveServer, fake: FakeOpenAI) -> None:
    fake.reply = "NOT FOUND"
    asked = httpx.post(f"{seeds_server.url}/v1/ask", json={"question": QUESTION}, timeout=60).json()
    assert asked["abstained"] and asked["abstain_reason"]["code"] == "model_declined"
    assert asked["abstain_reason"]["message"] and 1 <= len(asked["closest_passages"]) <= 3
    document = httpx.get(f"{seeds_server.url}/v1/documents/{asked['closest_passages'][0]['doc_id']}").json()
    first = asked["closest_passages"][0]
    assert document["text"][first["start"] : first["end"]] == first["text"]
    assert set(first) == {"doc_id", "title", "source", "page", "start", "end", "text"}
    client = openai.OpenAI(base_url=f"{seeds_server.url}/v1", api_key="unused", max_retries=0)
    message = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    extra = message.choices[0].message.model_extra or {}
    assert extra["abstain_reason"] == asked["abstain_reason"] and extra["closest_passages"] == asked["closest_passages"]


def test_asking_within_documents_on_ask_and_chat(seeds_server: LiveServer, fake: FakeOpenAI) -> None:
    url = seeds_server.url
    within = {"question": QUESTION, "doc_ids": [FLEET_DOC], "sections": ["comments"]}
    asked = httpx.post(f"{url}/v1/ask", json=within, timeout=60).json()
    assert not asked["abstained"] and {c["doc_id"] for c in asked["citations"]} == {FLEET_DOC}
    assert {(p["doc_id"], p["section"]) for p in asked["passages"]} == {(FLEET_DOC, "comments")}
    elsewhere = httpx.post(f"{url}/v1/ask", json={**within, "doc_ids": ["003_50cfdfd88efb925b.txt"]}, timeout=60)
    assert elsewhere.json()["abstained"] and elsewhere.json()["citations"] == []
    assert {p["doc_id"] for p in elsewhere.json()["passages"]} <= {"003_50cfdfd88efb925b.txt"}
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": QUESTION}],
        extra_body={"doc_ids": [FLEET_DOC], "sections": ["comments"]},
    )
    citations = (completion.choices[0].message.model_extra or {})["citations"]
    assert citations and {c["doc_id"] for c in citations} == {FLEET_DOC}
    requests_before = len(fake.chat_requests)
    with pytest.raises(openai.UnprocessableEntityError, match=r"no document 'nope\.txt' in the index"):
        client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], extra_body={"doc_ids": ["nope.txt"]}
        )
    unknown = httpx.post(f"{url}/v1/ask", json={"question": QUESTION, "sections": ["footer"]}, timeout=60)
    assert unknown.status_code == 422 and "unknown section 'footer'" in unknown.json()["error"]["message"]
    assert len(fake.chat_requests) == requests_before  # refused before any model call
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"


# --- documents ------------------------------------------------------------------------------------------


def test_documents_are_listed_with_their_details(docs_server: LiveServer) -> None:
    url = docs_server.url
    assert httpx.get(f"{url}/v1/documents").status_code == 401
    listed = httpx.get(f"{url}/v1/documents", headers=KEY).json()
    assert listed["object"] == "list"
    ids = [d["id"] for d in listed["data"]]
    assert ids == sorted(p.name for p in SEEDS.iterdir() if p.suffix == ".txt")
    first = listed["data"][0]
    assert set(first) == {"id", "title", "format", "pages", "size", "indexed_at", "source"}
    assert first["format"] == "txt" and first["pages"] is None
    assert first["size"] == (SEEDS / first["id"]).stat().st_size
    assert first["indexed_at"].endswith("Z") and first["title"]


def test_an_upload_is_indexed_and_answered_from_then_deleted(docs_server: LiveServer, fake: FakeOpenAI) -> None:
    url, corpus = docs_server.url, Path(docs_server.assistant.settings.index.dir).parent / "corpus"
    text = "Harbour report\n\nThe harbour master of Tromsø is Ingrid Solberg, the port authority said on Monday.\n"
    files = {"file": ("harbour.md", text.encode(), "text/markdown")}
    before = {d["id"]: d["indexed_at"] for d in httpx.get(f"{url}/v1/documents", headers=KEY).json()["data"]}
    time.sleep(1.1)  # indexed_at has whole seconds: the upload's must be later than the seeds'
    assert httpx.post(f"{url}/v1/documents", files=files).status_code == 401
    created = httpx.post(f"{url}/v1/documents", files=files, headers=KEY, timeout=120)
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "harbour.md" and created.json()["format"] == "md"
    assert (corpus / "harbour.md").read_text() == text
    assert not list(corpus.glob(".*"))  # no temporary file left behind
    # Served at once, without a restart: listed, readable, searched and cited.
    after = {d["id"]: d for d in httpx.get(f"{url}/v1/documents", headers=KEY).json()["data"]}
    assert after["harbour.md"]["size"] == len(text.encode())
    # Each document's time is when its content was indexed: the seeds keep theirs, the upload has its own.
    assert {d: after[d]["indexed_at"] for d in before} == before
    assert after["harbour.md"]["indexed_at"] > max(before.values())
    served = httpx.get(f"{url}/v1/documents/harbour.md", headers=KEY).json()["text"]
    assert served == text
    hits = httpx.post(f"{url}/v1/search", json={"query": "harbour master Tromsø"}, headers=KEY).json()["hits"]
    assert hits[0]["doc_id"] == "harbour.md"
    fake.reply = "The harbour master of Tromsø is Ingrid Solberg [1]."
    asked = httpx.post(
        f"{url}/v1/ask", json={"question": "Who is the harbour master of Tromsø?", "doc_ids": ["harbour.md"]},
        headers=KEY, timeout=60,
    ).json()  # fmt: skip
    assert not asked["abstained"] and asked["citations"][0]["doc_id"] == "harbour.md"
    again = httpx.post(f"{url}/v1/documents", files=files, headers=KEY)
    assert again.status_code == 409 and "already exists" in again.json()["error"]["message"]

    assert httpx.delete(f"{url}/v1/documents/harbour.md").status_code == 401
    deleted = httpx.delete(f"{url}/v1/documents/harbour.md", headers=KEY, timeout=120)
    assert deleted.status_code == 200 and deleted.json() == {"id": "harbour.md", "object": "document", "deleted": True}
    assert not (corpus / "harbour.md").exists() and not list(corpus.glob(".*"))
    assert httpx.get(f"{url}/v1/documents/harbour.md", headers=KEY).status_code == 404
    missing = httpx.delete(f"{url}/v1/documents/harbour.md", headers=KEY)
    assert missing.status_code == 404 and "no document 'harbour.md'" in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    ("name", "content", "status", "message"),
    [
        ("notes.exe", b"MZ", 422, "unsupported format '.exe'; supported: .docx, .htm, .html, .md, .pdf, .txt"),
        ("empty.txt", b"   \n", 422, "empty.txt: empty file: no text to index"),
        ("blob.txt", b"\x00\x01binary", 422, "blob.txt: binary file (NUL bytes), not text"),
        ("../escape.txt", b"text", 422, "is not a plain file name"),
        (".hidden.txt", b"text", 422, "starts with a dot"),
        ("big.txt", b"x" * 60_000, 413, "larger than 50,000 bytes (server.max_upload_bytes)"),
        ("000_b63fe8f3e2dac5e7.txt", b"text", 409, "already exists"),
    ],
)
def test_a_refused_upload_changes_nothing(
    docs_server: LiveServer, name: str, content: bytes, status: int, message: str
) -> None:
    url, index = docs_server.url, Path(docs_server.assistant.settings.index.dir)
    corpus = index.parent / "corpus"
    before, files_before = current_generation(index), sorted(p.name for p in corpus.iterdir())
    response = httpx.post(f"{url}/v1/documents", files={"file": (name, content)}, headers=KEY, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and "\n" not in error["message"]
    assert current_generation(index) == before and sorted(p.name for p in corpus.iterdir()) == files_before
    assert httpx.get(f"{url}/healthz").json()["documents"] == 5


def test_a_failed_index_update_leaves_the_previous_index_serving(
    docs_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, index = docs_server.url, Path(docs_server.assistant.settings.index.dir)
    corpus = index.parent / "corpus"
    before = current_generation(index)

    def full_disk(*args: object, **kwargs: object) -> None:  # the disk fills up as the generation is written
        raise IndexWriteError(
            f"cannot write the index at {index} (No space left on device); the previous index is unchanged"
        )

    monkeypatch.setattr("rag.indexer.write_index", full_disk)
    files = {"file": ("late.txt", b"A late note about the Northern Fleet.\n")}
    failed = httpx.post(f"{url}/v1/documents", files=files, headers=KEY, timeout=120)
    assert failed.status_code == 500 and "No space left" in failed.json()["error"]["message"]
    assert not (corpus / "late.txt").exists()  # the file was taken out again
    removed = httpx.delete(f"{url}/v1/documents/000_b63fe8f3e2dac5e7.txt", headers=KEY, timeout=120)
    assert removed.status_code == 500 and (corpus / "000_b63fe8f3e2dac5e7.txt").exists()  # put back
    assert current_generation(index) == before
    assert httpx.get(f"{url}/healthz").json()["documents"] == 5
    monkeypatch.undo()
    # A `rag index` holding the writer lock: a clear 503 to retry, nothing placed.
    with write_lock(index):
        busy = httpx.post(f"{url}/v1/documents", files=files, headers=KEY, timeout=60)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "another `rag index` is writing" in busy.json()["error"]["message"]
    assert not (corpus / "late.txt").exists() and current_generation(index) == before


def test_the_host_check_covers_the_document_routes(docs_server: LiveServer) -> None:
    evil = {**KEY, "Host": "evil.example"}
    assert httpx.get(f"{docs_server.url}/v1/documents", headers=evil).status_code == 400
    uploaded = httpx.post(f"{docs_server.url}/v1/documents", files={"file": ("a.txt", b"x y z.")}, headers=evil)
    assert uploaded.status_code == 400 and uploaded.json()["error"]["code"] == "invalid_host"


# --- feedback -------------------------------------------------------------------------------------------


def test_feedback_is_stored_and_becomes_reference_items(
    docs_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, index = docs_server.url, Path(docs_server.assistant.settings.index.dir)
    document = httpx.get(f"{url}/v1/documents/{FLEET_DOC}", headers=KEY).json()["text"]
    quote = "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet"
    start = document.index(quote)
    citation = {"n": 1, "doc_id": FLEET_DOC, "start": start, "end": start + len(quote), "quote": quote,
                "supported": True, "section": "comments", "page": None}  # fmt: skip
    up = {"question": QUESTION, "answer": f"{FLEET}", "citations": [citation], "rating": "up", "comment": None}
    down = {"question": "Where is the fleet based?", "answer": "In Murmansk [1].", "citations": [citation],
            "rating": "down", "comment": "wrong city"}  # fmt: skip
    assert httpx.post(f"{url}/v1/feedback", json=up).status_code == 401
    for body in (up, down):
        stored = httpx.post(f"{url}/v1/feedback", json=body, headers=KEY)
        assert stored.status_code == 201 and stored.json() == {"stored": True}
    bad = httpx.post(f"{url}/v1/feedback", json={**up, "rating": "meh"}, headers=KEY)
    assert bad.status_code == 422 and "rating" in bad.json()["error"]["message"]
    lines = (index / "feedback.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["citations"][0]["quote"] == quote
    assert json.loads(lines[1])["comment"] == "wrong city" and json.loads(lines[0])["time"].endswith("Z")

    out = tmp_path / "from-feedback.jsonl"
    result = CliRunner().invoke(app, ["eval", "--from-feedback", str(index / "feedback.jsonl"), "--write", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 ready" in result.stdout and "1 marked for review" in result.stdout
    items = [json.loads(line) for line in out.read_text().splitlines()]
    ready = next(i for i in items if "review" not in i)
    assert ready["answerable"] and ready["gold"] == [{"doc_id": FLEET_DOC, "quote": quote}]
    assert ready["answer"] == "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet."  # markers removed
    review = next(i for i in items if "review" in i)
    assert review["review"].startswith("thumbs down: wrong city")
    # `rag eval` reads the file: the ready item with its gold located in the document, the other skipped.
    dataset = load_dataset(out, index.parent / "corpus", tmp_path)
    assert [i.question for i in dataset.items] == [QUESTION]
    assert dataset.items[0].gold[0].start == start
    missing = CliRunner().invoke(app, ["eval", "--from-feedback", str(tmp_path / "none.jsonl"), "--write", str(out)])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_a_pdf_upload_is_listed_with_its_pages(docs_server: LiveServer) -> None:
    pdf = Path(__file__).parent / "data" / "office" / "fleet-review.pdf"
    files = {"file": (pdf.name, pdf.read_bytes(), "application/pdf")}
    created = httpx.post(f"{docs_server.url}/v1/documents", files=files, headers=KEY, timeout=120)
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["format"] == "pdf" and info["pages"] >= 1 and info["size"] == pdf.stat().st_size
    listed = httpx.get(f"{docs_server.url}/v1/documents", headers=KEY).json()["data"]
    assert info in listed
    shown = httpx.get(f"{docs_server.url}/v1/documents/{pdf.name}", headers=KEY).json()
    assert shown["pages"] == info["pages"] and shown["text"].strip()
