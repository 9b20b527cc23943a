"""Where a generation's vectors and BM25 weights are searched: its own files (FAISS + bm25s) or Milvus.

The retriever asks a ``SearchBackend`` for two ranked lists of rows (dense and BM25) and fuses them itself, so
the fusion, the filters' checks and the chunk tables are the same whichever backend answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rag.types import Chunk, IngestProblem

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.lexical import BM25Index
    from rag.store import StoredIndex


@dataclass(frozen=True)
class RowFilter:
    """The rows a filtered search may return, and the filter that chose them (what Milvus filters by)."""

    rows: np.ndarray
    doc_ids: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()


class SearchBackend(Protocol):
    """Ranked (row, score) lists over one generation's chunks; rows index ``StoredIndex.chunks``."""

    def dense(self, vector: np.ndarray, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """The ``n`` rows nearest ``vector`` (inner product), best first."""
        ...

    def bm25(self, query: str, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """The ``n`` rows of highest positive BM25 score for ``query``, best first."""
        ...


def open_backend(index: StoredIndex, settings: Settings) -> SearchBackend:
    """The backend ``index.backend`` names, over the loaded generation ``index``."""
    if settings.index.backend == "milvus":
        from rag.backends.milvus import MilvusBackend

        return MilvusBackend(index, settings)
    from rag.backends.local import LocalBackend

    return LocalBackend(index, settings)


def check_backend(settings: Settings) -> None:
    """Before an index run does any work: fail if the configured Milvus cannot be written."""
    if settings.index.backend == "milvus":
        from rag.backends.milvus import check_reachable

        check_reachable(settings)


def backend_up_to_date(manifest: dict[str, Any], settings: Settings) -> bool:
    """Whether the generation has what ``index.backend`` searches (with Milvus: its collection, where the
    settings say); if not, `rag index` writes a new generation even when no document changed."""
    if settings.index.backend != "milvus":
        return True
    from rag.backends.milvus import up_to_date

    return up_to_date(manifest, settings)


@contextlib.contextmanager
def published(
    settings: Settings,
    root: Path,
    chunks: list[Chunk],
    vectors: np.ndarray,
    bm25: BM25Index,
    manifest: dict[str, Any],
    previous: dict[str, Any] | None,
    problems: list[IngestProblem],
) -> Iterator[None]:
    """Around writing the local generation: with ``index.backend = milvus``, first its collection (named in
    ``manifest``), then, once the block has switched CURRENT, the alias; if the block fails, the collection
    is dropped and the alias stays on the previous one. With FAISS, nothing."""
    if settings.index.backend != "milvus":
        yield
        return
    from rag.backends.milvus import publish

    publication = publish(settings, root, chunks, vectors, bm25, previous)
    manifest["milvus"] = publication.record
    try:
        yield
    except BaseException:
        publication.abort()
        raise
    publication.commit()
    problems.extend(IngestProblem(str(root), p, skipped=False) for p in publication.problems)
