"""The one facade that the CLI, the HTTP server and the eval harness call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from rag.answering import Answer, Turn, answer_events
from rag.config import Settings, load_settings
from rag.corpus import DocumentInfo, add_file, document_info, remove_file
from rag.errors import InputError
from rag.indexer import IndexProgress, build_index, check_compatible
from rag.llm import ChatModel, LanguageModel
from rag.retrieve import Retriever
from rag.store import StoredIndex, current_generation, load_index
from rag.types import Document, IndexReport, SearchResult, Stage


class Assistant:
    """Index a corpus, search it, answer questions about it with verified citations, and show its documents."""

    def __init__(self, settings: Settings | None = None, model: LanguageModel | None = None) -> None:
        self.settings = settings or load_settings()
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()  # one loader at a time when the HTTP server's threads share the assistant
        self._writing = threading.Lock()  # one corpus change (add, remove) at a time from this process
        self.model = model or ChatModel(self.settings)

    @property
    def index_dir(self) -> Path:
        return Path(self.settings.index.dir)

    def build_index(
        self,
        paths: list[str] | None = None,
        *,
        rebuild: bool = False,
        replace: bool = False,
        progress: IndexProgress | None = None,
    ) -> IndexReport:
        """Index ``paths`` (or the folders the index was built from); only changed documents are embedded.
        Other folders than the recorded ones may remove indexed documents only with ``replace``."""
        report = build_index(self.settings, paths, rebuild=rebuild, replace=replace, progress=progress)
        self._retriever = None
        return report

    @property
    def retriever(self) -> Retriever:
        """The retriever over the live index, reloaded when ``rag index`` has written a new generation."""
        live = current_generation(self.index_dir)
        with self._lock:
            if self._retriever is None or self._retriever.index.path != live:
                index = load_index(self.index_dir)
                check_compatible(index.manifest, self.settings)
                self._retriever = Retriever(index, self.settings)
            return self._retriever

    @property
    def index(self) -> StoredIndex:
        return self.retriever.index

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ) -> SearchResult:
        """Ranked passages for ``query``."""
        mode = mode or self.settings.retrieve.mode
        hits = self.retriever.search(query, k=k, mode=mode, doc_ids=doc_ids, sections=sections)
        return SearchResult(query=query.strip(), mode=mode, hits=hits)

    def document(self, doc_id: str) -> Document:
        """A document as the index stores it (the text offsets point into)."""
        documents = self.index.documents
        if doc_id not in documents:
            close = [d for d in sorted(documents) if doc_id.lower() in d.lower()][:5] or sorted(documents)[:5]
            raise InputError(f"no document {doc_id!r} in the index; known doc ids include: {', '.join(close)}")
        return documents[doc_id]

    def documents(self) -> list[DocumentInfo]:
        """The indexed documents, by doc_id."""
        index = self.index
        return [document_info(index, index.documents[d]) for d in sorted(index.documents)]

    def add_document(self, name: str, data: bytes) -> DocumentInfo:
        """Add the file ``name`` with content ``data`` to the corpus folder and index it (as `rag index` would);
        on any failure nothing is added and the previous index stays live."""
        with self._writing:
            doc_id = add_file(self.settings, self.index, name, data, self.build_index)
            index = self.index
            return document_info(index, index.documents[doc_id])

    def remove_document(self, doc_id: str) -> None:
        """Remove ``doc_id``'s file from the corpus folder and from the index; on failure the file is put back."""
        with self._writing:
            self.document(doc_id)  # an unknown doc id: the usual error
            remove_file(self.settings, self.index, doc_id, self.build_index)

    def span(self, doc_id: str, start: int | None = None, end: int | None = None) -> tuple[Document, int, int]:
        """A document and a checked ``[start, end)`` range of its text (whole text by default)."""
        doc = self.document(doc_id)
        start = 0 if start is None else start
        end = len(doc.text) if end is None else end
        if not 0 <= start < end <= len(doc.text):
            raise InputError(
                f"span [{start}, {end}) is outside {doc_id!r}, whose text has {len(doc.text):,} characters; "
                "use 0 <= start < end <= length"
            )
        return doc, start, end

    def ask(
        self,
        question: str,
        history: list[Turn] | None = None,
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ) -> Answer:
        """Answer ``question`` (a follow-up when ``history`` is given) with verified citations, only from
        ``doc_ids`` and ``sections`` when given."""
        events = answer_events(
            self.settings,
            self.retriever,
            self.model,
            question,
            history,
            stream=False,
            doc_ids=doc_ids,
            sections=sections,
        )
        for event in events:
            if isinstance(event, Answer):
                return event
        raise AssertionError("answer_events ends with an Answer")

    def ask_stream(
        self,
        question: str,
        history: list[Turn] | None = None,
        cancel: threading.Event | None = None,
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ) -> Iterator[str | Stage | Answer]:
        """The verified answer text piece by piece as the model writes it and the stages it reaches (``Stage``),
        then the ``Answer``.

        Setting ``cancel`` stops it early (no ``Answer`` then): a chat client that went away.
        """
        return answer_events(
            self.settings,
            self.retriever,
            self.model,
            question,
            history,
            stream=True,
            cancel=cancel,
            doc_ids=doc_ids,
            sections=sections,
        )
