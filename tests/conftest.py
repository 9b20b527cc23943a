"""Shared fixtures: the real seeds, the real bundled embedder and real FAISS, state in tmp_path."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.answering import Answer
from rag.assistant import Assistant
from rag.config import Settings, load_settings
from tests.fake_openai import FakeOpenAI

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


def make_settings(index_dir: Path, **overrides: object) -> Settings:
    """Settings from defaults only (no rag.toml, no RAG_* of the caller's shell), index in ``index_dir``."""
    settings = load_settings(config_file=None, env={})
    settings.index.dir = str(index_dir)
    for dotted, value in overrides.items():
        section, name = dotted.split("__")
        setattr(getattr(settings, section), name, value)
    return settings.validate()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """A private copy of the seeds that a test may change."""
    target = tmp_path / "corpus"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture()
def assistant_factory(tmp_path: Path) -> Callable[..., Assistant]:
    """Assistants over an index in tmp_path, with setting overrides such as ``chunk__size=600``."""

    def make(index_dir: Path | None = None, **overrides: object) -> Assistant:
        return Assistant(make_settings(index_dir or tmp_path / "index", **overrides))

    return make


@pytest.fixture(scope="session")
def seeds_assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """One index of the seeds, built once per test session."""
    assistant = Assistant(make_settings(tmp_path_factory.mktemp("seeds-index")))
    assistant.build_index([str(SEEDS)])
    return assistant


@pytest.fixture()
def fake_openai() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible endpoint on loopback whose replies a test sets (``reply``, ``reply_for``, ...)."""
    with FakeOpenAI() as server:
        yield server


def check_citations(assistant: Assistant, answer: Answer) -> None:
    """The citation contract: every marker has a citation, numbered 1..n by first use; every citation is
    supported and quotes its document at its exact offsets, a sentence rather than a heading or table row."""
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)}
    assert markers == {c.n for c in answer.citations}
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    for citation in answer.citations:
        assert citation.supported and citation.quote.strip()
        assert assistant.document(citation.doc_id).text[citation.start : citation.end] == citation.quote
        assert not citation.quote.lstrip().startswith(("#", "|", "- ")), citation.quote  # structure, not a quote


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: starts the real bundled llama server (seconds, a model in memory)")
