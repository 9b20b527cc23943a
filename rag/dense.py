"""FAISS inner-product indexes over unit vectors: exact when small, HNSW or IVF when large."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rag.config import IndexSettings
from rag.errors import RagError

KINDS = ("flat", "hnsw", "ivf")
# Filtered queries over at most this many allowed vectors are answered exactly from the stored vectors.
EXACT_FILTER_MAX = 20_000


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RagError("FAISS is not installed; run `pip install faiss-cpu`") from exc
    return faiss


def choose_kind(n: int, settings: IndexSettings) -> str:
    """The configured index kind, or for ``auto`` exact search up to ``exact_max`` vectors and HNSW above."""
    if settings.kind != "auto":
        return settings.kind
    return "flat" if n <= settings.exact_max else "hnsw"


def build(vectors: np.ndarray, settings: IndexSettings) -> tuple[Any, dict[str, Any]]:
    """Build the index for ``vectors``; returns it with the parameters to record in the manifest."""
    faiss = _faiss()
    n, dim = vectors.shape
    kind = choose_kind(n, settings)
    params: dict[str, Any] = {"kind": kind, "metric": "inner_product", "ntotal": n}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        params |= {"m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction}
    elif kind == "ivf":
        # FAISS wants about 39 training points per list; small corpora get fewer lists.
        nlist = settings.ivf_nlist or int(4 * math.sqrt(max(n, 1)))
        nlist = max(1, min(nlist, n // 39 or 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if n:
            index.train(vectors)
        params |= {"nlist": nlist}
    else:
        raise RagError(f"unknown index kind {kind!r}; valid: {', '.join(KINDS)}")
    if n:
        index.add(vectors)
    return index, params


def search(
    index: Any,
    kind: str,
    query: np.ndarray,
    n: int,
    settings: IndexSettings,
    allowed: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """Top ``n`` (row, score) pairs for one unit query vector, restricted to ``allowed`` rows if given."""
    faiss = _faiss()
    query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if allowed is not None:
        if not len(allowed):
            return []
        if vectors is not None and len(allowed) <= EXACT_FILTER_MAX:
            scores = np.asarray(vectors[allowed], dtype=np.float32) @ query[0]
            top = np.argsort(-scores, kind="stable")[:n]
            return [(int(allowed[i]), float(scores[i])) for i in top]
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
    else:
        selector = None
    if kind == "hnsw":
        params = faiss.SearchParametersHNSW(efSearch=max(settings.hnsw_ef_search, n))
    elif kind == "ivf":
        params = faiss.SearchParametersIVF(nprobe=settings.ivf_nprobe)
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    scores, rows = index.search(query, min(n, index.ntotal), params=params)
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
