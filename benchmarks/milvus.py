"""The milvus suite: the index on Milvus Lite against FAISS at 100k chunks, through the product's own backends.

`python benchmarks/run.py --suite milvus [--milvus-size 100000] [--queries 200] [--json]`

One synthetic generation of ``--milvus-size`` chunks (100 per document, 150 words each drawn from the seeds'
words at their frequencies; every fifth document's chunks are comments) with the scale suite's 384-d mixture
vectors (benchmarks/scale.py: no million real embeddings ship with the project). It is written the way
`rag index` writes one with ``index.backend = milvus``: the local generation (FAISS of the automatic kind, IVF
at 100k, and bm25s) and its Milvus Lite collection (publish), then searched through ``LocalBackend`` and
``MilvusBackend``: the dense half with held-out mixture queries, single queries at the retriever's candidate
count, p50/p95 and recall@10 against exact search (a hit counts when its exact score reaches the tenth best);
the BM25 half with the benchmark questions and three-word queries from the vocabulary, p50/p95 and whether the
top 10 equal bm25s's. Milvus is measured with the same index kind as FAISS (IVF_FLAT, same nlist and nprobe)
and with FLAT (exact). Also: the time to write the collection and to open it cold (a server's first query
after a version switch), and this process's resident memory growth for each.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import QUERIES, REPO, machine
from benchmarks.scale import exact_top10, memory, mixture
from rag import dense
from rag.backends import SearchBackend
from rag.backends.local import LocalBackend
from rag.config import Settings, load_settings
from rag.lexical import BM25Index
from rag.metrics import percentile
from rag.store import load_index, write_index
from rag.types import Chunk, Document

CHUNKS_PER_DOC = 100
WORDS_PER_CHUNK = 150
SMOKE_SIZE = 2000
SMOKE_QUERIES = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The milvus suite's options on the benchmark entry point (it shares --queries with the scale suite)."""
    parser.add_argument("--milvus-size", type=int, default=100_000, help="milvus: synthetic chunks")


def synthetic_corpus(n: int) -> tuple[list[Document], list[Chunk]]:
    """``n`` chunks of seeds words in documents of ``CHUNKS_PER_DOC``; offsets point into each document's text."""
    words = re.findall(r"[A-Za-z’']+", " ".join(p.read_text(encoding="utf-8") for p in (REPO / "seeds").iterdir()))
    rng = random.Random(0)
    documents, chunks = [], []
    for d in range(0, n, CHUNKS_PER_DOC):
        doc_id = f"synthetic/{d // CHUNKS_PER_DOC:06d}.txt"
        section = "comments" if (d // CHUNKS_PER_DOC) % 5 == 4 else "article"
        texts = [" ".join(rng.choices(words, k=WORDS_PER_CHUNK)) for _ in range(min(CHUNKS_PER_DOC, n - d))]
        text = "\n".join(texts)
        start = 0
        for i, piece in enumerate(texts):
            chunks.append(Chunk(f"{doc_id}#{i}", doc_id, start, start + len(piece), section, piece))  # type: ignore[arg-type]
            start += len(piece) + 1
        documents.append(Document(doc_id, doc_id, doc_id, text, sha256=f"{d:064x}"))
    return documents, chunks


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def dense_figures(
    search: Callable[[np.ndarray, int], list[tuple[int, float]]],
    vectors: np.ndarray,
    queries: np.ndarray,
    tenth: np.ndarray,
    n: int,
) -> dict[str, float]:
    """p50/p95 of single dense searches of depth ``n`` and recall@10 against exact search."""
    for query in queries[:5]:  # warm
        search(query, n)
    times, found = [], 0
    for query, bar in zip(queries, tenth, strict=True):
        ranked, seconds = _timed(search, query, n)
        times.append(seconds * 1000)
        rows = np.array([row for row, _ in ranked[:10]], dtype=np.int64)
        found += int(np.sum(vectors[rows] @ query >= bar - 1e-5))
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "recall_at_10": round(found / (10 * len(queries)), 4),
    }


def bm25_figures(backend: SearchBackend, reference: LocalBackend, texts: list[str], n: int) -> dict[str, Any]:
    """p50/p95 of single BM25 searches of depth ``n``, and recall@10 against bm25s: a hit counts when its bm25s
    score reaches bm25s's tenth best (synthetic text ties often; bm25s orders ties arbitrarily)."""
    backend.bm25(texts[0], n, None)
    times = []
    for _ in range(3):
        for text in texts:
            _, seconds = _timed(backend.bm25, text, n, None)
            times.append(seconds * 1000)
    found = wanted = 0
    for text in texts:
        truth = reference.bm25(text, n, None)
        scores = dict(truth)
        bar = truth[min(9, len(truth) - 1)][1] if truth else 0.0
        found += sum(scores.get(row, 0.0) >= bar - 1e-4 for row, _ in backend.bm25(text, n, None)[:10])
        wanted += min(10, len(truth))
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "recall_at_10_vs_bm25s": round(found / max(wanted, 1), 4),
    }


def _publish(settings: Settings, root: Path, chunks: list[Chunk], vectors: np.ndarray, bm25: BM25Index) -> Any:
    from rag.backends.milvus import publish

    before = memory()["rss"]
    publication, seconds = _timed(publish, settings, root, chunks, vectors, bm25, None)
    return publication, {"write_seconds": round(seconds, 1), "write_rss_mb": round((memory()["rss"] - before) / 2**20)}


def _open(index: Any, settings: Settings) -> tuple[Any, dict[str, Any]]:
    from rag.backends.milvus import MilvusBackend, release_lite

    release_lite(str(index.root.resolve() / "milvus" / f"{index.manifest['milvus']['collection']}.db"))
    before = memory()["rss"]
    backend, seconds = _timed(MilvusBackend, index, settings)  # a reader's first open: start, load the segments
    return backend, {"open_seconds": round(seconds, 2), "open_rss_mb": round((memory()["rss"] - before) / 2**20)}


def suite_milvus(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Milvus Lite against FAISS at ``--milvus-size`` chunks (see the module docstring)."""
    import faiss
    import milvus_lite
    import pymilvus

    n = SMOKE_SIZE if args.smoke else args.milvus_size
    n_queries = SMOKE_QUERIES if args.smoke else args.queries
    settings = load_settings(env={})
    settings.index.dir = str(workdir / "milvus-index")
    settings.index.backend = "milvus"
    root = Path(settings.index.dir)
    candidates = max(settings.retrieve.candidates, settings.retrieve.k)

    documents, chunks = synthetic_corpus(n)
    vectors = mixture(n, seed=0)
    queries = mixture(n_queries, seed=1)
    tenth = exact_top10(vectors, queries)
    (faiss_index, params), faiss_seconds = _timed(dense.build, vectors, settings.index)
    bm25, bm25_seconds = _timed(BM25Index.build, [c.text for c in chunks])

    publication, written = _publish(settings, root, chunks, vectors, bm25)
    manifest = {"corpus": {"paths": ["synthetic"]}, "index": params, "milvus": publication.record}
    write_index(root, manifest, documents, chunks, vectors, faiss_index, bm25)
    publication.commit()
    del faiss_index
    index = load_index(root)
    local = LocalBackend(index, settings)
    ivf, opened = _open(index, settings)

    flat_settings = dataclasses.replace(settings, index=dataclasses.replace(settings.index, kind="flat"))
    flat_publication, flat_written = _publish(flat_settings, root, chunks, vectors, bm25)
    flat_publication.close()
    flat_index = dataclasses.replace(index, manifest={**index.manifest, "milvus": flat_publication.record})
    flat, flat_opened = _open(flat_index, settings)

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)

    vocab = sorted(bm25.retriever.vocab_dict)
    rng = random.Random(1)
    texts = [*QUERIES, *(" ".join(rng.choices(vocab, k=3)) for _ in range(42))]
    kind = params["kind"]
    truth = (vectors, queries, tenth, candidates)
    rows = {
        "faiss_flat_exact": dense_figures(lambda q, k: dense.search(exact, "flat", q, k, settings.index), *truth),
        f"faiss_{kind}_auto": dense_figures(lambda q, k: local.dense(q, k, None), *truth),
        f"milvus_lite_{kind}_auto": dense_figures(lambda q, k: ivf.dense(q, k, None), *truth),
        "milvus_lite_flat": dense_figures(lambda q, k: flat.dense(q, k, None), *truth),
    }
    return {
        "suite": "milvus",
        "machine": machine(),
        "versions": {
            "pymilvus": pymilvus.__version__,
            "milvus_lite": milvus_lite.__version__,
            "faiss": faiss.__version__,
        },
        "chunks": n,
        "queries": {"dense": n_queries, "bm25": len(texts)},
        "candidates": candidates,
        "faiss": {"kind": kind, "params": params, "build_seconds": round(faiss_seconds, 1)},
        "bm25s_build_seconds": round(bm25_seconds, 1),
        "milvus_lite": {
            "auto": {**written, **opened, "search": publication.record["search"]},
            "flat": {**flat_written, **flat_opened},
        },
        "dense": rows,
        "bm25": {
            "bm25s": bm25_figures(local, local, texts, candidates),
            "milvus_lite": bm25_figures(ivf, local, texts, candidates),
        },
    }
