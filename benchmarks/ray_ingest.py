"""Ingestion throughput of `rag index --engine ray` (2 encoder actors on a local Ray instance) against
`--engine local` on the same synthetic corpus, in one run; with the single-process raw encode of the same chunk
texts for reference.

On a 2-core machine the two actors share the cores the local path uses alone (onnxruntime already uses both), so
this measures Ray's overhead (start-up, actors loading the model, moving rows), not scale-out: docs/scale.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine, write_synthetic_corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray-documents", type=int, default=600, help="ray suite: synthetic documents (default 600, ~1,500 chunks)"
    )
    parser.add_argument("--ray-workers", type=int, default=2, help="ray suite: encoder actors (default 2)")


def suite_ray(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """`rag index --rebuild` per engine, runs interleaved; Ray's local instance started once (its start-up
    reported apart), then each Ray run starts its actors and loads the model in them, as a job on a cluster does."""
    from rag.assistant import Assistant
    from rag.config import load_settings
    from rag.embedders import load_embedder
    from rag.ray_ingest import ray_session

    documents = 20 if args.smoke else args.ray_documents
    corpus = write_synthetic_corpus(workdir / "corpus", documents, paragraphs=3)
    load_before = os.getloadavg()
    assistants = {}
    for engine in ("local", "ray"):
        settings = load_settings(env={})
        settings.index.dir = str(workdir / f"index-{engine}")
        settings.index.engine = engine  # type: ignore[assignment]
        settings.index.ray_workers = args.ray_workers
        assistants[engine] = Assistant(settings)
    embedder = load_embedder(assistants["local"].settings.embed)  # loaded once: the local side measures encoding
    embedder.encode(["warm up"])
    times: dict[str, list[float]] = {"local": [], "ray": [], "encode": []}
    t0 = time.perf_counter()
    with ray_session(assistants["ray"].settings.index):
        ray_start = time.perf_counter() - t0
        for _ in range(args.repeat):
            for engine in ("local", "ray"):
                report = assistants[engine].build_index([str(corpus)], rebuild=True)
                times[engine].append(report.total_seconds)
            texts = [c.text for c in assistants["local"].index.chunks]
            t0 = time.perf_counter()
            embedder.encode(texts, batch_size=assistants["local"].settings.embed.batch_size)
            times["encode"].append(time.perf_counter() - t0)
    local, on_ray = assistants["local"].index, assistants["ray"].index
    chunks = len(local.chunks)
    difference = float(np.abs(np.asarray(local.vectors) - np.asarray(on_ray.vectors)).max())
    rates = {k: chunks / statistics.median(v) for k, v in times.items()}
    return {
        "suite": "ray",
        "machine": machine(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "documents": len(local.documents),
        "chunks": chunks,
        "repeat": args.repeat,
        "ray_workers": args.ray_workers,
        "local_seconds_p50": round(statistics.median(times["local"]), 2),
        "local_chunks_per_s": round(rates["local"], 1),
        "ray_seconds_p50": round(statistics.median(times["ray"]), 2),
        "ray_chunks_per_s": round(rates["ray"], 1),
        "ray_instance_start_seconds": round(ray_start, 2),
        # Below 1: Ray is slower on the same cores; its overhead as a share of the local run is 1/ratio - 1.
        "ratio_ray_to_local": round(rates["ray"] / rates["local"], 3),
        "raw_encode_chunks_per_s": round(rates["encode"], 1),
        "same_chunks": [(c.chunk_id, c.start, c.end) for c in local.chunks]
        == [(c.chunk_id, c.start, c.end) for c in on_ray.chunks],
        "max_abs_vector_difference": difference,
        "runs_seconds": {k: [round(t, 2) for t in v] for k, v in times.items()},
    }
