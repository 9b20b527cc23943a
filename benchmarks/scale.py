"""The scale suite: Flat, HNSW and IVF at 10k-1M chunks, built and searched through rag/dense.py.

`python benchmarks/run.py --suite scale [--sizes 10000,100000,1000000] [--kinds flat,hnsw,ivf] [--queries 200] [--bm25] [--json]`

No corpus of a million chunks ships with the project, so the vectors are synthetic: 384-d unit vectors
from a mixture of 64 overlapping Gaussians in a 32-d latent space, projected into 384-d with a little
isotropic jitter. Like sentence embeddings, the data is clustered without clean gaps and has a local
intrinsic dimension (MLE, k=20) of about 15-20 at 10k-100k points; MiniLM on the seeds' sentences gives
about 20. Uniform random vectors would make every approximate index look worse than on real text;
well-separated clusters (tried first) made IVF look perfect at 100k. Queries are held-out draws from the
same mixture.

For each size and kind, with the product's parameters (IndexSettings defaults, `index.kind` forced):
build seconds; for IVF, an update that keeps the trained centroids; index bytes on disk; resident memory
growth while building and its peak; load time and memory of the memory-mapped load the product does;
p50/p95 of single-query search (batch 1, the retriever's candidate count, FAISS's default threads);
recall@10 against exact search. At the largest size, recall and latency for a sweep of HNSW efSearch and
IVF nprobe. Unless --smoke, also the query encoding time (configured embedder), which a user's search adds to the index part.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rag import dense
from rag.config import IndexSettings, load_settings
from rag.types import INDEX_KINDS

DIM = 384
LATENT_DIM = 32  # the data lies near a 32-d subspace: local intrinsic dimension about 15-20, as for text embeddings
COMPONENTS = 64  # overlapping Gaussian clusters in that subspace
NOISE = 0.03  # per-coordinate sd of the isotropic jitter in all 384 dimensions (the signal's is about 1.25)
SMOKE_SIZES = [2000]
SMOKE_QUERIES = 50
# Searched at the largest size; HNSW searches at least `candidates` deep whatever efSearch says.
SWEEP = {
    "hnsw": ("hnsw_ef_search", [50, 64, 96, 128, 192, 256, 384]),
    "ivf": ("ivf_nprobe", [1, 2, 4, 8, 16, 32, 64, 128, 256]),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scale suite's options on the benchmark entry point."""
    parser.add_argument("--sizes", default="10000,100000,1000000", help="scale: corpus sizes in chunks")
    parser.add_argument("--kinds", default="flat,hnsw,ivf", help="scale: index kinds to measure")
    parser.add_argument("--queries", type=int, default=200, help="scale: held-out queries per size")
    parser.add_argument("--bm25", action="store_true", help="scale: also BM25 over synthetic text at each size")
    parser.add_argument(
        "--faiss-threads",
        type=int,
        default=0,
        help="scale: FAISS OpenMP threads (default 0: FAISS's own, as the product)",
    )


def mixture(n: int, seed: int, block: int = 65_536) -> np.ndarray:
    """``n`` unit vectors from the fixed mixture; ``seed`` picks the draws, not the mixture."""
    shape = np.random.default_rng(20240601)
    projection = (shape.standard_normal((LATENT_DIM, DIM)) / np.sqrt(LATENT_DIM)).astype(np.float32)
    centres = shape.standard_normal((COMPONENTS, LATENT_DIM)).astype(np.float32)
    spreads = shape.uniform(0.5, 1.0, size=(COMPONENTS, LATENT_DIM)).astype(np.float32)  # per component and axis
    draws = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, block):  # in blocks: the temporaries stay small next to a 1.5 GB result
        m = min(block, n - start)
        component = draws.integers(COMPONENTS, size=m)
        latent = centres[component] + spreads[component] * draws.standard_normal((m, LATENT_DIM), dtype=np.float32)
        jitter = NOISE * draws.standard_normal((m, DIM), dtype=np.float32)
        out[start : start + m] = _unit(latent @ projection + jitter)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def memory() -> dict[str, int]:
    """This process's resident memory in bytes: ``rss``, its anonymous part ``anon`` and the ``peak`` since reset."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "VmHWM": "peak"}
    result = dict.fromkeys(fields.values(), 0)
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in fields:
                result[fields[key]] = int(value.split()[0]) * 1024
    return result


def reset_peak() -> None:
    """Start a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM)."""
    gc.collect()
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then covers the whole run
        Path("/proc/self/clear_refs").write_text("5")


def exact_top10(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query's tenth-best exact score: the bar an approximate hit must reach to count as a true top-10."""
    import faiss

    scores, _ = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    return scores[:, 9]


def run_queries(
    index: Any,
    kind: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    tenth: np.ndarray,
    settings: IndexSettings,
    candidates: int,
) -> dict[str, float]:
    """p50/p95 of one-at-a-time searches as the retriever makes them, and recall@10 against exact search."""
    for query in queries[:5]:  # warm: first touches of mapped pages, caches
        dense.search(index, kind, query, candidates, settings)
    times, found = [], 0
    for query, bar in zip(queries, tenth, strict=True):
        t0 = time.perf_counter()
        ranked = dense.search(index, kind, query, candidates, settings)
        times.append((time.perf_counter() - t0) * 1000)
        rows = np.array([row for row, _ in ranked[:10]], dtype=np.int64)
        # A hit counts when its true score reaches the exact tenth best: ties at the boundary are not misses.
        found += int(np.sum(vectors[rows] @ query >= bar - 1e-5))
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "recall_at_10": round(found / (10 * len(queries)), 4),
    }


def measure(
    kind: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    tenth: np.ndarray,
    base: IndexSettings,
    candidates: int,
    workdir: Path,
) -> tuple[dict[str, Any], Any]:
    """Build, save, load (memory-mapped) and search one index; returns the figures and the loaded index."""
    import faiss

    settings = dataclasses.replace(base, kind=kind)
    n = len(vectors)
    reset_peak()
    before = memory()
    t0 = time.perf_counter()
    index, params = dense.build(vectors, settings)
    build_seconds = time.perf_counter() - t0
    built = memory()
    update_seconds = build_seconds  # flat and HNSW are rebuilt from the stored vectors on every update
    if kind == "ivf":
        t0 = time.perf_counter()
        dense.build(vectors, settings, previous=index, previous_params=params)
        update_seconds = time.perf_counter() - t0
    path = workdir / f"{kind}-{n}.faiss"
    faiss.write_index(index, str(path))
    del index
    gc.collect()
    before_load = memory()
    t0 = time.perf_counter()
    loaded = dense.load(path)
    load_ms = (time.perf_counter() - t0) * 1000
    after_load = memory()
    index_bytes = path.stat().st_size
    path.unlink()  # the mapping stays valid; the disk space returns when the index is dropped
    figures = run_queries(loaded, kind, vectors, queries, tenth, settings, candidates)
    search: dict[str, int] = {}
    if kind == "hnsw":
        search = {"ef_search": max(settings.hnsw_ef_search, candidates)}
    elif kind == "ivf":
        search = {"nprobe": dense.ivf_probes(loaded.nlist, settings)}
    searched = memory()
    mib = 1 << 20
    return {
        "size": n,
        "kind": kind,
        "params": params,
        "search_params": search,
        "build_seconds": round(build_seconds, 3),
        "update_seconds": round(update_seconds, 3),
        "index_mb": round(index_bytes / mib, 1),
        "build_rss_mb": round((built["rss"] - before["rss"]) / mib, 1),
        "build_peak_mb": round((built["peak"] - before["rss"]) / mib, 1),
        "load_ms": round(load_ms, 2),
        "load_heap_mb": round((after_load["anon"] - before_load["anon"]) / mib, 1),
        "search_rss_mb": round((searched["rss"] - before_load["rss"]) / mib, 1),
        **figures,
    }, loaded


def sweep(
    loaded: dict[str, Any],
    vectors: np.ndarray,
    queries: np.ndarray,
    tenth: np.ndarray,
    base: IndexSettings,
    candidates: int,
) -> dict[str, Any]:
    """Recall and latency at the largest size for each searched value of HNSW efSearch and IVF nprobe."""
    result: dict[str, Any] = {"size": len(vectors)}
    for kind, index in loaded.items():
        name, values = SWEEP[kind]
        if kind == "ivf":
            values = [v for v in values if v <= index.nlist]
        result[kind] = [
            {
                name: value,
                **run_queries(
                    index,
                    kind,
                    vectors,
                    queries,
                    tenth,
                    dataclasses.replace(base, kind=kind, **{name: value}),
                    candidates,
                ),
            }
            for value in values
        ]
    return result


def query_encoding() -> dict[str, Any]:
    """p50 of encoding one question with the configured embedder, as each search does before the index part."""
    from benchmarks.common import QUERIES
    from rag.embedders import load_embedder

    embedder = load_embedder(load_settings(env={}).embed)
    embedder.encode(["warm up"])
    times = []
    for _ in range(5):
        for query in QUERIES:
            t0 = time.perf_counter()
            embedder.encode([query])
            times.append((time.perf_counter() - t0) * 1000)
    return {"embedder": type(embedder).__name__, "p50_ms": round(float(np.percentile(times, 50)), 2)}


def bm25_latency(n: int) -> dict[str, Any]:
    """BM25 (the lexical half of hybrid search) over ``n`` synthetic chunks of 150 words drawn from the seeds'
    own words at their frequencies: build time and per-query p50/p95 over the benchmark questions."""
    import random
    import re

    from benchmarks.common import QUERIES, REPO
    from rag.lexical import BM25Index

    words = re.findall(r"[A-Za-z’']+", " ".join(p.read_text(encoding="utf-8") for p in (REPO / "seeds").iterdir()))
    rng = random.Random(0)
    texts = [" ".join(rng.choices(words, k=150)) for _ in range(n)]
    t0 = time.perf_counter()
    index = BM25Index.build(texts)
    build = time.perf_counter() - t0
    del texts
    index.top(QUERIES[0], 50)
    times = []
    for _ in range(5):
        for query in QUERIES:
            t1 = time.perf_counter()
            index.top(query, 50)
            times.append((time.perf_counter() - t1) * 1000)
    return {
        "size": n,
        "build_seconds": round(build, 2),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
    }


def sizes_of(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def _each_size(sizes: list[int], queries: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    held_out = mixture(queries, seed=1)
    for n in sizes:
        vectors = mixture(n, seed=0)
        yield n, vectors, held_out, exact_top10(vectors, held_out)


def suite_scale(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Build time, memory, latency and recall@10 of each index kind at each size (see the module docstring)."""
    import faiss

    from benchmarks.common import machine

    sizes = SMOKE_SIZES if args.smoke else sorted(sizes_of(args.sizes))
    if not sizes:
        raise SystemExit("--sizes: give at least one corpus size, e.g. --sizes 10000,100000")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in INDEX_KINDS]
    if unknown:
        raise SystemExit(f"--kinds: unknown index kind {unknown[0]!r}; valid: {', '.join(INDEX_KINDS)}")
    if args.faiss_threads:
        faiss.omp_set_num_threads(args.faiss_threads)
    settings = load_settings(env={})
    base, candidates = settings.index, max(settings.retrieve.candidates, settings.retrieve.k)
    n_queries = SMOKE_QUERIES if args.smoke else args.queries
    results: list[dict[str, Any]] = []
    largest: dict[str, Any] = {}
    tradeoff: dict[str, Any] = {}
    for n, vectors, queries, tenth in _each_size(sizes, n_queries):
        for kind in kinds:
            row, loaded = measure(kind, vectors, queries, tenth, base, candidates, workdir)
            results.append(row)
            if n == sizes[-1] and kind in SWEEP:
                largest[kind] = loaded
            del loaded
        if n == sizes[-1]:
            tradeoff = sweep(largest, vectors, queries, tenth, base, candidates)
    encode = None if args.smoke else query_encoding()
    lexical = [bm25_latency(n) for n in sizes] if args.smoke or args.bm25 else []
    return {
        "suite": "scale",
        "machine": machine(),
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
        "data": {
            "source": "gaussian-mixture",
            "dim": DIM,
            "latent_dim": LATENT_DIM,
            "components": COMPONENTS,
            "noise": NOISE,
            "queries": n_queries,
        },
        "candidates": candidates,
        "index_settings": dataclasses.asdict(base),
        "auto_kind": {str(n): dense.choose_kind(n, base) for n in sizes},
        "query_encode": encode,
        "results": results,
        "sweep": tradeoff,
        "bm25": lexical,
        "note": "p50/p95 are the index part of a search; a user's search adds query_encode.p50_ms "
        "(and, in hybrid mode, the bm25 p50_ms)",
    }
