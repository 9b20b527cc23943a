"""The default backend: the generation's own FAISS index and bm25s matrix, memory-mapped."""

from __future__ import annotations

import numpy as np

from rag import dense
from rag.backends import RowFilter
from rag.config import Settings
from rag.store import StoredIndex


class LocalBackend:
    """Searches the files of one loaded generation (``index.backend = faiss``)."""

    def __init__(self, index: StoredIndex, settings: Settings) -> None:
        self.index = index
        self.settings = settings

    def dense(self, vector: np.ndarray, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """FAISS over the generation's vectors; a filter over few rows is answered exactly from the vectors."""
        return dense.search(
            self.index.faiss_index,
            self.index.manifest["index"]["kind"],
            vector,
            n,
            self.settings.index,
            allowed=None if where is None else where.rows,
            vectors=self.index.vectors,
        )

    def bm25(self, query: str, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        """bm25s over the generation's chunk texts."""
        return self.index.bm25.top(query, n, None if where is None else where.rows)
