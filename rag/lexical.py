"""BM25 over chunk texts (bm25s), with English stemming and stop words."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


def _bm25s() -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import and logs every build
    return bm25s


@cache
def _stemmer() -> Any:
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # stemming is an optional refinement; BM25 works without it
        return None


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed tokens of each text."""
    result = _bm25s().tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return [list(tokens) for tokens in result]


class BM25Index:
    """A bm25s retriever with the scoring helpers the hybrid retriever needs."""

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever

    @classmethod
    def build(cls, texts: list[str]) -> BM25Index:
        retriever = _bm25s().BM25()
        retriever.index(tokenize(texts), show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        return cls(_bm25s().BM25.load(str(folder), mmap=True, show_progress=False))

    def top(self, query: str, n: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``n`` (row, score) pairs with a positive score, restricted to ``allowed`` rows if given."""
        vocab = self.retriever.vocab_dict
        tokens = [t for t in tokenize([query])[0] if t in vocab]
        if not tokens:
            return []
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
        if allowed is not None:
            masked = np.full_like(scores, 0.0)
            masked[allowed] = scores[allowed]
            scores = masked
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
