"""FAISS inner-product indexes over unit vectors: exact when small, HNSW or IVF when large."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import IndexSettings
from rag.errors import RagError
from rag.types import INDEX_KINDS

# Filtered queries over at most this many allowed vectors are answered exactly from the stored vectors.
EXACT_FILTER_MAX = 20_000


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RagError("FAISS is not installed; run `pip install faiss-cpu`") from exc
    return faiss


def choose_kind(n: int, settings: IndexSettings) -> str:
    """The configured index kind, or for ``auto`` exact search up to ``exact_max`` vectors and IVF above.

    IVF rather than HNSW above (docs/performance.md): both answer within a millisecond or two at 1M chunks,
    but an update keeps IVF's trained centroids and only assigns vectors to lists, while HNSW rebuilds its
    graph, minutes at 1M chunks on 2 cores; IVF also needs no graph memory and filters without losing recall.
    """
    if settings.kind != "auto":
        return settings.kind
    return "flat" if n <= settings.exact_max else "ivf"


def ivf_probes(nlist: int, settings: IndexSettings) -> int:
    """The IVF lists a search visits: ``ivf_nprobe``, or about sqrt(nlist) and at least 16."""
    # A fixed count scans an ever smaller share as lists multiply (16 of 1,264 lists at 100k gave recall@10
    # 0.995 on the scale benchmark, 8 gave 0.889); sqrt gave 0.999+ at 10k and 100k (16 of 256, 36 of 1,264)
    # and visits 63 of 4,000 lists at 1M, about 16k vectors: a millisecond or two.
    return min(nlist, settings.ivf_nprobe or max(16, round(math.sqrt(nlist))))


def ivf_lists(n: int, settings: IndexSettings) -> int:
    """The number of IVF lists for ``n`` vectors: ``ivf_nlist``, or about 4 * sqrt(n), at most n / 39."""
    # FAISS wants about 39 training points per list; small corpora get fewer lists.
    nlist = settings.ivf_nlist or int(4 * math.sqrt(max(n, 1)))
    return max(1, min(nlist, n // 39 or 1))


def build(
    vectors: np.ndarray,
    settings: IndexSettings,
    previous: Any = None,
    previous_params: dict[str, Any] | None = None,
    sources: np.ndarray | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Build the index for ``vectors``; returns it with the parameters to record in the manifest.

    ``previous`` (with its manifest ``previous_params``) is the index this one replaces: an IVF index
    keeps its trained centroids while the corpus stays within half to twice the size they were trained on,
    and, given ``sources`` (each row's row in ``previous``, -1 for a new vector), its rows' list assignments.
    """
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
        index, trained_on, new_rows = _ivf(vectors, settings, previous, previous_params or {}, sources)
        params |= {"nlist": index.nlist, "trained_on": trained_on}
        if new_rows is not None:
            if len(new_rows):
                index.add_with_ids(np.ascontiguousarray(vectors[new_rows]), new_rows)  # ids are rows, as add gives
            return index, params
    else:
        raise RagError(f"unknown index kind {kind!r}; valid: {', '.join(INDEX_KINDS)}")
    if n:
        index.add(vectors)
    return index, params


def _ivf(
    vectors: np.ndarray,
    settings: IndexSettings,
    previous: Any,
    previous_params: dict[str, Any],
    sources: np.ndarray | None,
) -> tuple[Any, int, np.ndarray | None]:
    """An IVF index trained on ``vectors`` or reusing ``previous``'s centroids, with the training size and the
    rows still to add: None for all (the index is empty), else the new rows (``previous``'s lists were kept)."""
    faiss = _faiss()
    n, dim = vectors.shape
    trained_on = int(previous_params.get("trained_on", 0))
    reusable = (
        previous_params.get("kind") == "ivf"
        and previous is not None
        and previous.d == dim
        and trained_on // 2 <= n <= 2 * trained_on
        and (not settings.ivf_nlist or settings.ivf_nlist == previous.nlist)
    )
    if reusable:
        # Training is most of an IVF build (k-means: ten passes over the sample, each as costly as
        # assigning every vector); updates that leave the corpus about the same size skip it.
        centroids = faiss.downcast_index(previous.quantizer).reconstruct_n(0, previous.nlist)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(centroids)
        index = faiss.IndexIVFFlat(quantizer, dim, previous.nlist, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
        # The ids in an IVF list are rows (add numbers them so); ntotal as recorded means none was lost.
        if (
            sources is not None
            and previous.ntotal == previous_params.get("ntotal")
            and sources.max(initial=-1) < previous.ntotal
        ):
            return index, trained_on, _keep_lists(previous, index, sources)
        return index, trained_on, None
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, ivf_lists(n, settings), faiss.METRIC_INNER_PRODUCT)
    if n:
        index.train(vectors)
    return index, n, None


def _keep_lists(previous: Any, index: Any, sources: np.ndarray) -> np.ndarray:
    """Copy ``previous``'s inverted lists into the empty ``index`` (same centroids): each kept vector stays in
    its list under its new row, a vector of a removed or changed document is dropped. Returns the new rows.

    Assigning every vector again (what an update did before) costs a pass over the corpus against every
    centroid, 18.6 s at 1M chunks; this copies the lists (memory speed), and a row's list never moves while its
    document is unchanged. ``previous`` may be the memory-mapped index: it is only read.
    """
    faiss = _faiss()
    new_row = np.full(previous.ntotal, -1, dtype=np.int64)  # old row -> new row, -1: dropped
    kept = np.flatnonzero(sources >= 0)
    new_row[sources[kept]] = kept
    lists, code_size, total = previous.invlists, previous.invlists.code_size, 0
    for number in range(previous.nlist):
        size = lists.list_size(number)
        if not size:
            continue
        ids = new_row[faiss.rev_swig_ptr(lists.get_ids(number), size)]
        codes = faiss.rev_swig_ptr(lists.get_codes(number), size * code_size).reshape(size, code_size)
        keep = ids >= 0
        # Named arrays: swig_ptr holds no reference, so a temporary would be freed before FAISS copies it.
        kept_ids, kept_codes = np.ascontiguousarray(ids[keep]), np.ascontiguousarray(codes[keep])
        if len(kept_ids):
            index.invlists.add_entries(number, len(kept_ids), faiss.swig_ptr(kept_ids), faiss.swig_ptr(kept_codes))
            total += len(kept_ids)
    index.ntotal = total
    return np.flatnonzero(sources < 0)


def load(path: Path) -> Any:
    """Read a saved index memory-mapped: its vectors, graph and lists stay in the shared page cache, not copied."""
    faiss = _faiss()
    # IO_FLAG_MMAP_IFC maps flat, HNSW and IVF indexes alike (the older IO_FLAG_MMAP only IVF lists).
    return faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0))


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
        params = faiss.SearchParametersIVF(nprobe=ivf_probes(index.nlist, settings))
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    scores, rows = index.search(query, min(n, index.ntotal), params=params)
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]
