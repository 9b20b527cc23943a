"""Dense, BM25 and hybrid (reciprocal rank fusion) retrieval over a stored index."""

from __future__ import annotations

import numpy as np

from rag.backends import RowFilter, SearchBackend, open_backend
from rag.config import Settings
from rag.embedders import load_embedder
from rag.errors import InputError
from rag.store import StoredIndex
from rag.types import SEARCH_MODES, SECTIONS, Embedder, Hit


class Retriever:
    """Answers ``search`` calls against one loaded index generation."""

    def __init__(self, index: StoredIndex, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self._embedder: Embedder | None = None
        self._backend: SearchBackend | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.settings.embed)
        return self._embedder

    @property
    def backend(self) -> SearchBackend:
        """Where the dense and BM25 lists come from (``index.backend``): opened on the first search."""
        if self._backend is None:
            self._backend = open_backend(self.index, self.settings)
        return self._backend

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``, optionally only from ``doc_ids`` and ``sections``."""
        k = self.settings.retrieve.k if k is None else k
        mode = mode or self.settings.retrieve.mode
        query = validate_text(
            query,
            self.settings.retrieve.max_query_chars,
            what="query",
            setting="RAG_RETRIEVE_MAX_QUERY_CHARS",
            hint="type a question or some keywords",
        )
        if k < 1:
            raise InputError(f"k must be at least 1 (got {k})")
        if mode not in SEARCH_MODES:
            raise InputError(f"unknown search mode {mode!r}; valid modes: {', '.join(SEARCH_MODES)}")
        allowed = self._allowed_rows(doc_ids, sections)
        n = max(self.settings.retrieve.candidates, k)
        where = None if allowed is None else RowFilter(allowed, tuple(doc_ids or ()), tuple(sections or ()))
        ranked: list[tuple[int, float]]
        if mode == "dense":
            ranked = self._dense(query, n, where)
        elif mode == "bm25":
            ranked = self.backend.bm25(query, n, where)
        else:
            ranked = reciprocal_rank_fusion(
                [self._dense(query, n, where), self.backend.bm25(query, n, where)],
                self.settings.retrieve.rrf_k,
            )
        hits = []
        for rank, (row, score) in enumerate(ranked[:k], start=1):
            chunk = self.index.chunks[row]
            document = self.index.documents[chunk.doc_id]
            hits.append(Hit(chunk, score, rank, title=document.title, page=document.page_at(chunk.start)))
        return hits

    def _dense(self, query: str, n: int, where: RowFilter | None) -> list[tuple[int, float]]:
        return self.backend.dense(self.embedder.encode([query])[0], n, where)

    def check_filter(self, doc_ids: list[str] | None, sections: list[str] | None) -> None:
        """Raise the ``InputError`` a search with these filters would (an unknown document or section)."""
        self._allowed_rows(doc_ids, sections)

    def _allowed_rows(self, doc_ids: list[str] | None, sections: list[str] | None) -> np.ndarray | None:
        if not doc_ids and not sections:
            return None
        unknown = [d for d in doc_ids or [] if d not in self.index.documents]
        if unknown:
            known = ", ".join(sorted(self.index.documents)[:5])
            raise InputError(f"no document {unknown[0]!r} in the index; known doc ids include: {known}")
        bad = [s for s in sections or [] if s not in SECTIONS]
        if bad:
            raise InputError(f"unknown section {bad[0]!r}; valid sections: article, comments")
        # Each document's chunks are one range of rows and each row's section one byte (rag/tables.py): a filter
        # costs the allowed rows, never a pass over every chunk.
        if doc_ids:
            ranges = sorted({(r.start, r.stop) for r in map(self.index.documents.chunk_rows, doc_ids)})
            rows = np.concatenate([np.arange(*r, dtype=np.int64) for r in ranges])
        else:
            rows = np.arange(len(self.index.chunks), dtype=np.int64)
        if sections:
            codes = np.array([SECTIONS.index(s) for s in sections], dtype=np.uint8)
            rows = rows[np.isin(self.index.chunks.sections()[rows], codes)]
        return rows


def validate_text(text: str, max_chars: int, *, what: str, setting: str, hint: str) -> str:
    """``text`` stripped, or an error naming what is wrong with it (empty, longer than ``max_chars``, or not
    valid Unicode: a lone surrogate from a bad byte on the command line or a "\\ud800" escape in JSON)."""
    stripped = text.strip()
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = stripped[exc.start : exc.end].encode("utf-8", "backslashreplace").decode("ascii")
        raise InputError(
            f"the {what} holds invalid text at character {exc.start + 1} ({bad}, not a character); "
            "send it as valid UTF-8"
        ) from None
    if not stripped:
        raise InputError(f"the {what} is empty; {hint}")
    if len(stripped) > max_chars:
        raise InputError(
            f"the {what} is {len(stripped):,} characters, over the limit of {max_chars:,}; shorten it or raise {setting}"
        )
    return stripped


def reciprocal_rank_fusion(rankings: list[list[tuple[int, float]]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked lists: each item scores sum(1 / (k + rank)); ties keep the first list's order."""
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for list_no, ranking in enumerate(rankings):
        for rank, (row, _) in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(row, (rank, list_no))
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def merge_hits(rankings: list[list[Hit]]) -> list[Hit]:
    """Several searches' hits as one list: each chunk once, at the best rank any search gave it."""
    best: dict[str, Hit] = {}
    for hits in rankings:
        for hit in hits:
            kept = best.get(hit.chunk.chunk_id)
            if kept is None or (hit.rank, -hit.score) < (kept.rank, -kept.score):
                best[hit.chunk.chunk_id] = hit
    return sorted(best.values(), key=lambda h: (h.rank, -h.score))
