"""The store suite: a cold hybrid `rag search` at 1M chunks against 50 chunks, before and after tables.sqlite.

`python benchmarks/run.py --suite store [--chunks 1000000] [--before-ref REF|""] [--repeat R] [--json] [--smoke]`

Embedding 1M real chunks takes hours here, so the large index is synthetic, built the way `rag index` builds
one but from made-up parts:

- text: chunks of 150 words drawn from a Zipf law (exponent 1.07, Mandelbrot offset 2.7) over 300,000 word
  types, the seeds' own words first (by their frequency), then made-up words; about what a 1 GB English news
  corpus holds, so BM25 has long posting lists for common words and a long tail. 20 chunks a document (joined
  by blank lines, so each chunk's text is ``document.text[start:end]``), the last 5 of every fourth document in
  the comments section;
- vectors: the scale suite's 384-d Gaussian mixture (benchmarks/scale.py);
- the dense index `index.kind = auto` picks (flat at 50, IVF at 1M with its nlist, 4,000). Its centroids are
  trained on a sample of 50 vectors a list (200k at 1M; `rag index` trains on every vector, 172 s at 1M), which
  changes neither the index's layout nor what a search reads;
- BM25 (rag/lexical.py) over the chunk texts.

Both sizes are written by this checkout's `write_index` (tables.sqlite, format 2). "Before" is the store of
``--before-ref`` (default: where this branch left main), extracted with `git archive`: the same generation with
its tables as main wrote them (documents.jsonl and chunks.jsonl, format 1; the vectors, FAISS and BM25 files
are hard links of the same files), read by that code.

For each code and size: wall seconds of a cold `rag search QUERY --mode hybrid --json` (a fresh process; the
page cache warm, as in the startup suite), one warm-up then ``--repeat`` runs (p50, min); then one more run
instrumented from inside: peak resident memory (VmHWM), the peak of its anonymous part (sampled every 2 ms),
and at exit the resident pages of the index's mapped files and of everything else. "Beyond the index files" is
the peak anonymous memory plus the resident file pages that are not the index's (the interpreter's and
libraries' code): all the memory a search holds besides the shared, droppable pages of the index.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import QUERIES, REPO
from rag.types import Chunk, Document, Section

QUERY = QUERIES[5]  # "Who is the chief of Russia's Northern Fleet?"
WORDS_PER_CHUNK = 150
CHUNKS_PER_DOCUMENT = 20
VOCABULARY = 300_000
SMALL = 50
SMOKE_CHUNKS = 2_000

# Runs in a fresh interpreter as `rag` would: argv = [index_dir, query]. Samples RssAnon every 2 ms and prints
# one JSON line of memory figures to stderr at exit (atexit runs after the command's own exit).
_MEASURED = r"""
import atexit, json, os, sys, threading, time
index_dir = os.path.realpath(sys.argv[1])
peak = {"anon": 0}
def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out
def sample():
    while True:
        peak["anon"] = max(peak["anon"], status()["RssAnon"])
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
def report():
    now = status()
    peak["anon"] = max(peak["anon"], now["RssAnon"])
    index_rss, path = 0, ""
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if parts and not parts[0].endswith(":"):
                path = parts[5] if len(parts) > 5 else ""
            elif parts and parts[0] == "Rss:" and path.startswith(index_dir):
                index_rss += int(parts[1]) * 1024
    print(json.dumps({"peak_rss": now["VmHWM"], "peak_anon": peak["anon"], "rss_file": now["RssFile"],
                      "index_files_rss": index_rss}), file=sys.stderr)
atexit.register(report)
sys.argv = ["rag", "search", sys.argv[2], "--mode", "hybrid", "--json", "--index-dir", sys.argv[1]]
from rag.cli import main
main()
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The store suite's options on the benchmark entry point."""
    parser.add_argument("--chunks", type=int, default=1_000_000, help="store: chunks of the large index")
    parser.add_argument(
        "--before-ref",
        default=None,
        help="store: git ref of the code to measure before (default: the merge base with main; '' for none)",
    )


@cache
def vocabulary(size: int, seed: int = 0) -> list[str]:
    """``size`` distinct words: the seeds' words by falling frequency, then made-up ones."""
    counts: dict[str, int] = {}
    for path in sorted((REPO / "seeds").iterdir()):
        for word in re.findall(r"[A-Za-z][a-z’']+", path.read_text(encoding="utf-8")):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(counts, key=lambda w: -counts[w])[:size]
    seen = set(words)
    rng = np.random.default_rng(seed)
    onsets = ["", "b", "br", "c", "ch", "d", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "pr", "r", "s", "st", "t"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "", "n", "r", "s", "t", "l", "nd", "st"]
    while len(words) < size:
        word = "".join(
            onsets[rng.integers(len(onsets))] + nuclei[rng.integers(len(nuclei))] + codas[rng.integers(len(codas))]
            for _ in range(int(rng.integers(2, 5)))
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def synthetic_corpus(n_chunks: int, seed: int = 0) -> tuple[list[Document], list[Chunk]]:
    """Documents of ``CHUNKS_PER_DOCUMENT`` chunks of Zipf-drawn words, and their chunks, grouped by document."""
    from rag.chunking import chunk_id

    words = np.array(vocabulary(VOCABULARY), dtype=object)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    weights = 1.0 / (ranks + 2.7) ** 1.07
    cdf = np.cumsum(weights / weights.sum())
    rng = np.random.default_rng(seed)
    documents: list[Document] = []
    chunks: list[Chunk] = []
    per_doc = min(CHUNKS_PER_DOCUMENT, n_chunks)
    for first in range(0, n_chunks, per_doc):
        count = min(per_doc, n_chunks - first)
        drawn = np.searchsorted(cdf, rng.random(count * WORDS_PER_CHUNK)).reshape(count, WORDS_PER_CHUNK)
        texts = [" ".join(words[row]) + "." for row in drawn]
        doc_id = f"{first // per_doc:07d}.txt"
        text = "\n\n".join(texts)
        start = 0
        comments_from = count - 5 if (first // per_doc) % 4 == 3 else count
        for number, piece in enumerate(texts):
            end = start + len(piece)
            section: Section = "comments" if number >= comments_from else "article"
            chunks.append(Chunk(chunk_id(doc_id, start, end, piece), doc_id, start, end, section, piece))
            start = end + 2
        sha = hashlib.sha256(text.encode()).hexdigest()
        documents.append(Document(doc_id, f"/synthetic/{doc_id}", " ".join(texts[0].split()[:6]), text, sha))
    return documents, chunks


def build(root: Path, n_chunks: int, staging: Path) -> dict[str, Any]:
    """Write a synthetic index of ``n_chunks`` at ``root`` with this checkout's code; returns what it took."""
    import faiss

    from benchmarks.scale import mixture
    from rag import dense
    from rag.config import load_settings
    from rag.indexer import _manifest
    from rag.lexical import BM25Index
    from rag.store import write_index

    settings = load_settings(config_file=None, env={})
    settings.index.dir = str(root)
    staging.mkdir(parents=True)
    took: dict[str, float] = {}
    t0 = time.perf_counter()
    # The vectors and the dense index first, saved and freed: the text and BM25 then have the memory.
    vectors = mixture(n_chunks, seed=0)
    np.save(staging / "vectors.npy", vectors)
    kind = dense.choose_kind(n_chunks, settings.index)
    if kind == "ivf":
        nlist = dense.ivf_lists(n_chunks, settings.index)
        sample = vectors[np.random.default_rng(1).choice(n_chunks, min(n_chunks, 50 * nlist), replace=False)]
        index, params = dense.build(sample, dataclasses.replace(settings.index, kind="ivf", ivf_nlist=nlist))
        index.reset()  # keeps the centroids; then every vector, numbered by row as `rag index` adds them
        index.add(vectors)
        params |= {"ntotal": n_chunks, "trained_on": n_chunks}  # as `rag index` records it, so updates keep them
    else:
        index, params = dense.build(vectors, settings.index)
    faiss.write_index(index, str(staging / "dense.faiss"))
    del vectors, index
    took["vectors_and_dense_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    documents, chunks = synthetic_corpus(n_chunks)
    took["text_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    BM25Index.build([c.text for c in chunks]).save(staging / "bm25")
    took["bm25_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    manifest = _manifest(settings, [str(root.parent / "synthetic")], documents, chunks, 384, params)
    write_index(
        root,
        manifest,
        documents,
        chunks,
        np.load(staging / "vectors.npy", mmap_mode="r"),
        dense.load(staging / "dense.faiss"),
        BM25Index.load(staging / "bm25"),
    )
    took["write_s"] = time.perf_counter() - t0
    shutil.rmtree(staging)
    return {
        "chunks": n_chunks,
        "documents": len(documents),
        "index": params,
        **{k: round(v, 1) for k, v in took.items()},
    }


def as_format_1(generation: Path, before: Path) -> float:
    """The index ``before``: ``generation`` with its tables as main wrote them (documents.jsonl, chunks.jsonl,
    format 1), its other files hard links of ``generation``'s. Returns the JSONL files' MiB."""
    from rag.store import load_index

    index = load_index(generation.parent)
    target = before / generation.name
    target.mkdir(parents=True)
    for name in ("vectors.npy", "dense.faiss"):
        os.link(generation / name, target / name)
    shutil.copytree(generation / "bm25", target / "bm25", copy_function=os.link)
    with (target / "documents.jsonl").open("w", encoding="utf-8") as fh:
        for doc in index.documents.values():
            fh.write(json.dumps(dataclasses.asdict(doc), ensure_ascii=False) + "\n")
    with (target / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in index.chunks:
            row = {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "start": c.start, "end": c.end, "section": c.section}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    files = {k: v for k, v in index.manifest["files"].items() if k != "tables.sqlite"}
    for name in ("documents.jsonl", "chunks.jsonl"):
        files[name] = {"size": (target / name).stat().st_size, "sha256": ""}  # main checks sizes at load
    manifest = {**index.manifest, "documents": dict(index.manifest["documents"]), "format": 1, "files": files}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    (before / "CURRENT").write_text(target.name + "\n", encoding="utf-8")
    return round(sum(files[name]["size"] for name in ("documents.jsonl", "chunks.jsonl")) / (1 << 20), 1)


def checkout(ref: str, folder: Path) -> str | None:
    """This repository's ``ref`` extracted into ``folder`` (`git archive`); its commit, or None without git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        folder.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit


def default_before_ref() -> str | None:
    """Where this branch left main (the store before tables.sqlite), or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip() or None


def _env(code: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_CACHE_DIR"}
    return env | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}


def cold_search(code: Path, index_dir: Path, repeat: int) -> dict[str, Any]:
    """Wall seconds of cold hybrid `rag search` runs with ``code`` on ``index_dir``, then one measured run's memory."""
    from benchmarks.startup import _rag_command

    env, mib = _env(code), 1 << 20
    command = [*_rag_command(), "search", QUERY, "--mode", "hybrid", "--json", "--index-dir", str(index_dir)]
    runs = []
    for attempt in range(repeat + 1):  # the first warms the page cache and the ONNX export
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        if attempt:
            runs.append(time.perf_counter() - started)
    hits = json.loads(done.stdout)["hits"]
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(index_dir), QUERY], env=env, capture_output=True, text=True, check=True
    )
    memory = json.loads(measured.stderr.strip().splitlines()[-1])
    other_files = memory["rss_file"] - memory["index_files_rss"]
    return {
        "seconds_p50": round(statistics.median(runs), 3),
        "seconds_min": round(min(runs), 3),
        "runs": repeat,
        "hits": len(hits),
        "top_hit": hits[0]["chunk_id"] if hits else None,
        "peak_rss_mb": round(memory["peak_rss"] / mib, 1),
        "peak_anon_mb": round(memory["peak_anon"] / mib, 1),
        "index_files_rss_mb": round(memory["index_files_rss"] / mib, 1),
        "other_files_rss_mb": round(other_files / mib, 1),
        "beyond_index_files_mb": round((memory["peak_anon"] + other_files) / mib, 1),
    }


def ivf_update(root: Path) -> dict[str, Any]:
    """Seconds of the dense part of an update of the index at ``root`` in which one document (in the middle)
    changed: keeping the previous IVF lists, against assigning every vector to the kept centroids again."""
    from rag import dense
    from rag.config import load_settings
    from rag.store import load_index

    index = load_index(root)
    settings = load_settings(config_file=None, env={}).index
    n, params = len(index.chunks), index.manifest["index"]
    changed = index.documents.chunk_rows(list(index.documents)[len(index.documents) // 2])
    # The document's rows leave, its new chunks come last (as `rag index` orders them when it is the last file).
    sources = np.concatenate([np.arange(changed.start), np.arange(changed.stop, n), np.full(len(changed), -1)])
    vectors = np.asarray(index.vectors)[np.maximum(sources, 0)]
    result: dict[str, Any] = {"chunks": n, "changed_chunks": len(changed)}
    for name, given in (("keep_lists_s", sources), ("assign_again_s", None)):
        t0 = time.perf_counter()
        built, built_params = dense.build(vectors, settings, index.faiss_index, params, sources=given)
        result[name] = round(time.perf_counter() - t0, 2)
        assert built.ntotal == n and built_params["trained_on"] == params["trained_on"]  # the centroids were kept
        del built
    return result


def _disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / (1 << 20), 1)


def suite_store(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Cold hybrid search at ``--chunks`` and at 50 chunks, after (this checkout) and before (``--before-ref``)."""
    from benchmarks.common import machine
    from rag.store import current_generation

    large = SMOKE_CHUNKS if args.smoke else args.chunks
    repeat = 1 if args.smoke else max(3, args.repeat)
    ref = default_before_ref() if args.before_ref is None else (args.before_ref or None)
    before_code = workdir / "before-code"
    commit = checkout(ref, before_code) if ref else None
    result: dict[str, Any] = {
        "suite": "store",
        "machine": machine(),
        "load_average_at_start": list(os.getloadavg()),
        "query": QUERY,
        "before_ref": commit,
        "built": {},
        "after": {},
        "before": {},
    }
    for n in (SMALL, large):
        root = workdir / f"after-{n}"
        result["built"][str(n)] = build(root, n, workdir / f"staging-{n}")
        generation = current_generation(root)
        built = result["built"][str(n)]
        built["generation_mb"] = _disk_mb(generation)
        built["tables_sqlite_mb"] = round((generation / "tables.sqlite").stat().st_size / (1 << 20), 1)
        if commit:
            built["jsonl_tables_mb_before"] = as_format_1(generation, workdir / f"before-{n}")
    for n in (SMALL, large):
        result["after"][str(n)] = cold_search(REPO, workdir / f"after-{n}", repeat)
        if commit:
            result["before"][str(n)] = cold_search(before_code, workdir / f"before-{n}", repeat)
    if result["built"][str(large)]["index"]["kind"] == "ivf":
        result["ivf_update"] = ivf_update(workdir / f"after-{large}")
    for side in ("after", "before"):
        if result[side]:
            small, big = result[side][str(SMALL)], result[side][str(large)]
            result[side]["extra_seconds"] = round(big["seconds_p50"] - small["seconds_p50"], 3)
            result[side]["extra_beyond_index_files_mb"] = round(
                big["beyond_index_files_mb"] - small["beyond_index_files_mb"], 1
            )
    result["load_average_at_end"] = list(os.getloadavg())
    return result
