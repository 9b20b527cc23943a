"""Domain types shared by every stage. Frozen dataclasses, no I/O."""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import numpy as np

# The allowed values of settings and API fields, declared once; the tuples are for validation messages.
Section = Literal["article", "comments", "boilerplate"]
SECTIONS: tuple[Section, ...] = get_args(Section)
SearchMode = Literal["dense", "bm25", "hybrid"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_KINDS: tuple[IndexKind, ...] = get_args(IndexKind)
IndexBackend = Literal["faiss", "milvus"]  # where the vectors and BM25 weights are searched (docs/scale-milvus.md)
INDEX_BACKENDS: tuple[IndexBackend, ...] = get_args(IndexBackend)
# torch: sentence-transformers (the reference); onnx: its ONNX export on onnxruntime, same vectors, no torch
# import at search time; onnx-int8: that export quantised to int8 (other vectors: its own index).
EmbedBackend = Literal["torch", "onnx", "onnx-int8"]
EMBED_BACKENDS: tuple[EmbedBackend, ...] = get_args(EmbedBackend)
# Where `rag index` reads, chunks and embeds: this process, or Ray Data (rag/ray_ingest.py).
IndexEngine = Literal["local", "ray"]
INDEX_ENGINES: tuple[IndexEngine, ...] = get_args(IndexEngine)
ModelVariant = Literal["1.5b", "0.5b"]
MODEL_VARIANTS: tuple[ModelVariant, ...] = get_args(ModelVariant)
# The stages an answer goes through, in order, as ``rag.answering.answer_events`` reports them.
StageName = Literal["searching", "reading", "writing", "checking"]
STAGE_NAMES: tuple[StageName, ...] = get_args(StageName)


@dataclass(frozen=True)
class Document:
    """A document as read: ``text`` is what offsets point into."""

    doc_id: str
    path: str
    title: str
    text: str
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    # For a paged format (PDF): the offset in ``text`` where each page begins, page 1 first; empty otherwise.
    pages: list[int] = field(default_factory=list)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page that holds ``offset``, or None for a format without pages."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))


@dataclass(frozen=True)
class Segment:
    """A classified span ``text[start:end]`` of a document."""

    start: int
    end: int
    section: Section


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage; ``text == document.text[start:end]``."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    section: Section
    text: str


@dataclass(frozen=True)
class Hit:
    """A chunk returned by a retriever, with its fused or raw score and 1-based rank."""

    chunk: Chunk
    score: float
    rank: int
    title: str = ""
    page: int | None = None  # the page the chunk starts on, for a paged format


@dataclass(frozen=True)
class Stage:
    """Where an answer is: reported between its text pieces so a waiting user sees progress (never decides anything).

    ``passages``: the number of passages given to the model (``reading`` only); ``elapsed``: seconds since the
    answer started.
    """

    stage: StageName
    elapsed: float
    passages: int | None = None


@dataclass(frozen=True)
class AbstainReason:
    """Why an answer abstained: a short machine code and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True)
class SearchResult:
    query: str
    mode: str
    hits: list[Hit]


@dataclass(frozen=True)
class IngestProblem:
    """A file that was skipped or read with a caveat, and why."""

    path: str
    message: str
    skipped: bool = True


@dataclass(frozen=True)
class IndexReport:
    """What ``rag index`` did."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    problems: list[IngestProblem]
    chunks_total: int
    chunks_embedded: int
    embed_seconds: float
    total_seconds: float
    index_kind: str
    written: bool

    def to_json(self) -> dict[str, object]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "problems": [{"path": p.path, "message": p.message, "skipped": p.skipped} for p in self.problems],
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "embed_seconds": round(self.embed_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "index_kind": self.index_kind,
            "written": self.written,
        }


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    dim: int
    backend: str  # the embed.backend that runs it

    @abstractmethod
    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` as an ``(len(texts), dim)`` float32 array of unit vectors."""
