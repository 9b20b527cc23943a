"""Build or update the index: read, classify, chunk, embed only what changed, and write atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag import dense
from rag.backends import backend_up_to_date, check_backend, published
from rag.chunking import chunk_document
from rag.clean import classify
from rag.config import Settings
from rag.embedders import load_embedder, resolve_model, same_vectors
from rag.errors import CorpusError, IndexCorruptError, IndexMismatchError, IndexMissingError, InputError
from rag.files import package_versions
from rag.ingest import read_corpus
from rag.language import corpus_language_warning
from rag.lexical import BM25Index
from rag.store import FORMAT_VERSION, StoredIndex, load_index, recorded_corpus, write_index, write_lock
from rag.types import Chunk, Document, IndexReport, IngestProblem

if TYPE_CHECKING:
    from rag.ray_ingest import RayIngested

log = logging.getLogger(__name__)

# Told how far a run is: (stage, done, total or None). Stages: "read" (files), "load" (the embedder),
# "embed" (chunks), "write" (the index).
IndexProgress = Callable[[str, int, int | None], None]

# Bump when cleaning or chunking rules change: chunks from an older pipeline are not reused.
# 2: sentences follow headings, list items, table rows and hard wraps. 3: HTML without its chrome (nav, header,
# footer, aside, link menus) and with inline elements kept in their line; link-only lines are boilerplate.
# 4: a scraped page without a headline line is titled by its URL and date. Re-reading is needed: an unchanged
# file's Document is otherwise reused as it was read.
PIPELINE_VERSION = 4


def chunker_fingerprint(settings: Settings) -> dict[str, Any]:
    """What decides how documents are cut into chunks."""
    return {**asdict(settings.chunk), "pipeline": PIPELINE_VERSION}


def settings_hash(embedder: str, chunker: dict[str, Any]) -> str:
    """A short hash of the settings an index was built with."""
    payload = json.dumps({"embedder": embedder, "chunker": chunker}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_compatible(manifest: dict[str, Any], settings: Settings) -> None:
    """Fail, naming the fix, when the index was built with another embedder or chunker."""
    embedder, _ = resolve_model(settings.embed.model)
    built_with = manifest.get("embedder", {}).get("name")
    if built_with != embedder:
        raise IndexMismatchError(
            f"the index was built with embedder {built_with!r} but the settings ask for {embedder!r}; "
            "run `rag index --rebuild` to rebuild it with the current settings, or set RAG_EMBED_MODEL back"
        )
    built_on = manifest.get("embedder", {}).get("backend", "torch")  # indexes from before backends: torch
    if not same_vectors(built_on, settings.embed.backend):
        raise IndexMismatchError(
            f"the index was built with embed.backend {built_on!r}, whose vectors differ from those of "
            f"{settings.embed.backend!r}; run `rag index --rebuild` to rebuild it, or set RAG_EMBED_BACKEND={built_on}"
        )
    wanted = chunker_fingerprint(settings)
    recorded = manifest.get("chunker", {})
    built_by, now = recorded.get("pipeline"), wanted["pipeline"]
    if built_by != now and {k: v for k, v in recorded.items() if k != "pipeline"} == {
        k: v for k, v in wanted.items() if k != "pipeline"
    }:
        raise IndexMismatchError(
            f"the index was built by an earlier version of rag, which read documents differently (pipeline "
            f"{built_by} -> {now}); run `rag index --rebuild` once to read and embed them again"
        )
    if recorded != wanted:
        diff = ", ".join(f"{k}: {recorded.get(k)!r} -> {v!r}" for k, v in wanted.items() if recorded.get(k) != v)
        raise IndexMismatchError(
            f"the index was built with other chunking settings ({diff}); "
            "run `rag index --rebuild` to rebuild it, or restore the settings it was built with"
        )


def _manifest(
    settings: Settings,
    corpus_paths: list[str],
    documents: list[Document],
    chunks: list[Chunk],
    dim: int,
    index_params: dict[str, Any],
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a generation records: how it was built (embedder, chunker, index, versions) and from which files.

    Each document's ``indexed_at`` is when its current content was first indexed: carried over from the
    ``previous`` manifest's record while its sha256 is unchanged."""
    embedder_name, _ = resolve_model(settings.embed.model)
    chunker = chunker_fingerprint(settings)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    before = (previous or {}).get("documents", {})
    per_doc = Counter(c.doc_id for c in chunks)

    def indexed_at(d: Document) -> str:
        old = before.get(d.doc_id, {})
        return str(old.get("indexed_at") or now) if old.get("sha256") == d.sha256 else now

    return {
        "created_at": now,
        "settings_hash": settings_hash(embedder_name, chunker),
        "embedder": {"name": embedder_name, "dim": dim, "backend": settings.embed.backend},
        "chunker": chunker,
        "index": index_params,
        "corpus": {"paths": corpus_paths},
        "documents": {
            d.doc_id: {
                "sha256": d.sha256,
                "path": d.path,
                "title": d.title,
                "chunks": per_doc[d.doc_id],
                "size": _size(d.path),
                "indexed_at": indexed_at(d),
            }
            for d in documents
        },
        "versions": _versions(),
    }


def _size(path: str) -> int | None:
    """The file's size in bytes as indexed; None when it is gone already."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


def _versions() -> dict[str, str]:
    packages = ("rag", "faiss-cpu", "sentence-transformers", "torch", "onnxruntime", "bm25s", "numpy")
    return {"python": platform.python_version(), **package_versions(*packages)}


def _previous_index(root: Path, rebuild: bool, problems: list[IngestProblem]) -> StoredIndex | None:
    """The live generation to update, or None: none yet, ``rebuild``, or damaged (said in ``problems``). Every
    file is checked against the sha256 written with it before anything of it is reused."""
    if rebuild:
        return None
    try:
        old = load_index(root)
        if (damage := old.damage()) is not None:
            raise IndexCorruptError(f"the index at {root} is damaged ({damage})")
        return old
    except IndexMissingError:
        return None
    except IndexCorruptError as exc:
        problems.append(IngestProblem(str(root), f"{exc}; rebuilding from scratch", skipped=False))
        return None


def _absolute(paths: list[str]) -> list[str]:
    return [str(Path(p).expanduser().resolve()) for p in paths]


def _recorded(root: Path, old: StoredIndex | None) -> dict[str, list[str]] | None:
    """The folders and documents of the index as last built: its manifest, or, when that cannot be read (a
    damaged index, ``--rebuild``), the copy in ``corpus.json``; None for a new index."""
    if old is not None:
        return {"paths": _absolute(old.manifest["corpus"]["paths"]), "documents": sorted(old.documents)}
    recorded = recorded_corpus(root)
    return None if recorded is None else {"paths": _absolute(recorded["paths"]), "documents": recorded["documents"]}


def _refuse_replacing(recorded: dict[str, list[str]], corpus_paths: list[str], new_ids: set[str]) -> None:
    """Fail, naming the count, when a run over other folders than the recorded ones would remove documents."""
    if set(corpus_paths) == set(recorded["paths"]):
        return  # the same folders: files deleted from them are removed from the index, as always
    lost = sorted(set(recorded["documents"]) - new_ids)
    if not lost:
        return  # only adds folders (or reads the same files from elsewhere)
    examples = ", ".join(lost[:3]) + (", ..." if len(lost) > 3 else "")
    raise InputError(
        f"the index was built from {', '.join(recorded['paths'])}; indexing {', '.join(corpus_paths)} instead "
        f"would remove {len(lost)} of its {len(recorded['documents'])} documents ({examples}). Add --replace to "
        "replace them, or run `rag index` without a path to update the folders it was built from"
    )


def build_index(
    settings: Settings,
    paths: list[str] | None = None,
    *,
    rebuild: bool = False,
    replace: bool = False,
    progress: IndexProgress | None = None,
) -> IndexReport:
    """Index the corpus at ``paths`` (default: the folders the index was built from, else ``corpus.paths``).

    Those folders are recorded (absolute) in the manifest and in ``corpus.json`` beside the generations, so a
    rebuild, and an update of a damaged index, reads them again. A run over other folders that would remove
    documents the index holds is refused unless ``replace``. ``progress`` is told how far the run is.
    """
    started = time.perf_counter()
    root = Path(settings.index.dir)
    problems: list[IngestProblem] = []
    with write_lock(root):
        check_backend(settings)
        old = _previous_index(root, rebuild, problems)
        if old is not None:
            check_compatible(old.manifest, settings)
        recorded = _recorded(root, old)
        corpus_paths = _absolute(paths or (recorded["paths"] if recorded else settings.corpus.paths))
        known = old.documents if old else None
        ray_run: RayIngested | None = None
        if settings.index.engine == "ray":  # read, chunk and embed the new and changed files on Ray Data
            from rag.ray_ingest import read_chunk_embed

            def admit(ids: set[str]) -> None:  # refused before the cluster does the work, not after
                if recorded is not None and not replace:
                    _refuse_replacing(recorded, corpus_paths, ids)

            ray_run = read_chunk_embed(corpus_paths, settings, known, progress, admit)
            corpus = ray_run.corpus
        else:
            on_file = (lambda done, total: progress("read", done, total)) if progress else None
            corpus = read_corpus(corpus_paths, settings.ingest, known=known, on_file=on_file)
        problems.extend(corpus.problems)
        language = corpus_language_warning(corpus.documents, resolve_model(settings.embed.model)[0])
        if language is not None:
            problems.append(IngestProblem(", ".join(corpus_paths), language, skipped=False))
        if not corpus.documents:
            reasons = "; ".join(f"{p.path}: {p.message}" for p in corpus.problems)
            raise CorpusError(f"none of the files under {', '.join(corpus_paths)} could be indexed ({reasons})")
        old_docs = old.documents if old else {}
        new_ids = {d.doc_id for d in corpus.documents}
        if recorded is not None and not replace:
            _refuse_replacing(recorded, corpus_paths, new_ids)
        added = [d.doc_id for d in corpus.documents if d.doc_id not in old_docs]
        # Changed: other bytes, or read anew (a PDF indexed before its pages were recorded).
        kept = {d.doc_id for d in corpus.documents if d.doc_id in old_docs and old_docs[d.doc_id] == d}
        changed = [d.doc_id for d in corpus.documents if d.doc_id in old_docs and d.doc_id not in kept]
        removed = sorted(set(old_docs) - new_ids)
        unchanged = [d.doc_id for d in corpus.documents if d.doc_id in kept]
        same_kind = old is not None and old.manifest["index"]["kind"] == dense.choose_kind(
            len(old.chunks), settings.index
        )
        same_format = old is not None and old.manifest.get("format") == FORMAT_VERSION  # else rewrite it as today's
        current = old is not None and same_kind and same_format and backend_up_to_date(old.manifest, settings)
        if old is not None and current and not (added or changed or removed):
            return IndexReport(
                added=[], changed=[], removed=[], unchanged=unchanged, problems=problems,
                chunks_total=len(old.chunks), chunks_embedded=0, embed_seconds=0.0,
                total_seconds=time.perf_counter() - started, index_kind=old.manifest["index"]["kind"], written=False,
            )  # fmt: skip
        chunks, vectors, sources, embed_seconds, embedded = _chunks_and_vectors(
            settings, corpus.documents, old, set(unchanged), progress, ray_run
        )
        if not chunks:
            raise CorpusError(
                f"the documents under {', '.join(corpus_paths)} hold no article or comment text "
                "(everything was classified as boilerplate)"
            )
        trained = old if old is not None and old.manifest["index"]["kind"] == "ivf" else None
        faiss_index, index_params = dense.build(
            vectors,
            settings.index,
            previous=trained.faiss_index if trained else None,
            previous_params=trained.manifest["index"] if trained else None,
            sources=sources,
        )
        kind = index_params["kind"]
        if progress:
            progress("write", 0, None)
        bm25 = BM25Index.build([c.text for c in chunks])
        manifest = _manifest(
            settings,
            corpus_paths,
            corpus.documents,
            chunks,
            int(vectors.shape[1]),
            index_params,
            old.manifest if old is not None else None,
        )
        previous = old.manifest if old is not None else None
        with published(settings, root, chunks, vectors, bm25, manifest, previous, problems):
            write_index(root, manifest, corpus.documents, chunks, vectors, faiss_index, bm25)
    return IndexReport(
        added=added, changed=changed, removed=removed, unchanged=unchanged, problems=problems,
        chunks_total=len(chunks), chunks_embedded=embedded, embed_seconds=embed_seconds,
        total_seconds=time.perf_counter() - started, index_kind=kind, written=True,
    )  # fmt: skip


def _chunks_and_vectors(
    settings: Settings,
    documents: list[Document],
    old: StoredIndex | None,
    unchanged: set[str],
    progress: IndexProgress | None,
    ray_run: RayIngested | None = None,
) -> tuple[list[Chunk], np.ndarray, np.ndarray, float, int]:
    """All chunks in document order with their vectors, and for each the row it had in ``old`` (-1: new, -2: new
    and embedded on Ray); only chunks of new or changed documents are embedded (here, or already on Ray:
    ``ray_run``)."""
    chunks: list[Chunk] = []
    sources: list[int] = []  # row in the old vectors, -1 for "embed this", -2 for "embedded on Ray"
    ray_vectors: list[np.ndarray] = []
    for doc in documents:
        if doc.doc_id in unchanged and old is not None:
            old_rows = old.documents.chunk_rows(doc.doc_id)  # a document's chunks are one range of rows
            chunks.extend(old.chunks[old_rows.start : old_rows.stop])
            sources.extend(old_rows)
        elif ray_run is not None and doc.doc_id in ray_run.fresh:
            new, new_vectors = ray_run.fresh[doc.doc_id]
            chunks.extend(new)
            sources.extend([-2] * len(new))
            ray_vectors.append(new_vectors)
        else:
            new = chunk_document(doc, classify(doc.text), settings.chunk)
            chunks.extend(new)
            sources.extend([-1] * len(new))
    to_embed = [i for i, s in enumerate(sources) if s == -1]
    on_ray = [i for i, s in enumerate(sources) if s == -2]
    embed_seconds = ray_run.seconds if ray_run is not None else 0.0
    dim = int(old.manifest["embedder"]["dim"]) if old is not None else 0
    if on_ray:
        dim = int(ray_vectors[0].shape[1])
    new_vectors = np.zeros((0, dim), dtype=np.float32)
    if to_embed:
        if progress:
            progress("load", 0, None)
        embedder = load_embedder(settings.embed)
        t0 = time.perf_counter()
        # Longest first, one batch per call: the batches the embedder forms itself in one call over every text
        # (it sorts by length too), so the vectors and the speed are the same, and progress is told per batch.
        longest_first = sorted(range(len(to_embed)), key=lambda n: -len(chunks[to_embed[n]].text))
        new_vectors = np.zeros((len(to_embed), embedder.dim), dtype=np.float32)
        step = settings.embed.batch_size
        for first in range(0, len(longest_first), step):
            if progress:
                progress("embed", first, len(to_embed))
            rows = longest_first[first : first + step]
            new_vectors[rows] = embedder.encode([chunks[to_embed[n]].text for n in rows], batch_size=step)
        if progress:
            progress("embed", len(to_embed), len(to_embed))
        embed_seconds += time.perf_counter() - t0
        dim = embedder.dim
    vectors = np.zeros((len(chunks), dim), dtype=np.float32)
    if to_embed:
        vectors[to_embed] = new_vectors
    if on_ray:
        vectors[on_ray] = np.concatenate(ray_vectors)
    reused = [i for i, s in enumerate(sources) if s >= 0]
    if reused and old is not None:
        vectors[reused] = np.asarray(old.vectors)[[sources[i] for i in reused]]
    return chunks, vectors, np.array(sources, dtype=np.int64), embed_seconds, len(to_embed) + len(on_ray)
