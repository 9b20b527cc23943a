"""The saved index: one directory of generations, switched atomically.

Layout of ``index/``::

    CURRENT                 name of the live generation (replaced atomically)
    corpus.json             the corpus folders (absolute) and documents of the live generation: a copy of the
                            manifest's that survives a damaged generation, so a rebuild reads the same folders
    gen-<time_ns>/          manifest.json, documents.jsonl, chunks.jsonl, vectors.npy, dense.faiss, bm25/
    .lock                   held while a writer runs

A writer builds a new generation beside the live one and only then points CURRENT at it,
so a run that fails part-way leaves the previous index intact and loadable.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError, IndexMissingError, IndexWriteError
from rag.files import atomic_folder, file_lock, write_json_atomic, write_text_atomic
from rag.lexical import BM25Index
from rag.types import Chunk, Document

FORMAT_VERSION = 1
CORPUS_FILE = "corpus.json"
_FILES = ("manifest.json", "documents.jsonl", "chunks.jsonl", "vectors.npy", "dense.faiss", "bm25")


@dataclass
class StoredIndex:
    """A loaded index generation. Vectors, FAISS and BM25 load on first use, memory-mapped, not copied."""

    root: Path
    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]
    chunks: list[Chunk]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def texts(self) -> dict[str, str]:
        """Each document's text by doc_id (built once: answering looks quotes up in it on every question)."""
        if "texts" not in self._cache:
            self._cache["texts"] = {doc_id: doc.text for doc_id, doc in self.documents.items()}
        return self._cache["texts"]

    @property
    def vectors(self) -> np.ndarray:
        if "vectors" not in self._cache:
            self._cache["vectors"] = self._load("vectors.npy", lambda path: np.load(path, mmap_mode="r"))
        return self._cache["vectors"]

    @property
    def faiss_index(self) -> Any:
        if "faiss" not in self._cache:
            from rag import dense

            self._cache["faiss"] = self._load("dense.faiss", dense.load)
        return self._cache["faiss"]

    @property
    def bm25(self) -> BM25Index:
        if "bm25" not in self._cache:
            self._cache["bm25"] = self._load("bm25", BM25Index.load)
        return self._cache["bm25"]

    def _load(self, name: str, load: Callable[[Path], Any]) -> Any:
        """``load(path / name)``; whatever a damaged file makes the reader raise becomes the damage and its fix."""
        try:
            return load(self.path / name)
        except Exception as exc:  # faiss raises RuntimeError, numpy ValueError, bm25s JSON and key errors
            # Name the file that differs from what was written (bm25/ is a folder of several), else the error.
            why = self.damage() or f"{name} cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
            raise _damaged(self.root, why) from exc

    def damage(self) -> str | None:
        """What is wrong with this generation's files against the sizes and sha256 its manifest records (reads
        every file: `rag index` checks this before it reuses anything), or None."""
        records = self.manifest.get("files", {})
        if (wrong := _wrong_size(self.path, records)) is not None:
            return wrong
        for name, record in records.items():
            try:
                if _sha256(self.path / name) != record["sha256"]:
                    return f"{name} does not hold what was written (sha256 differs)"
            except OSError as exc:
                return f"{name}: {exc.strerror or exc}"
        return None


def _damaged(root: Path, why: str) -> IndexCorruptError:
    return IndexCorruptError(f"the index at {root} is damaged ({why}); run `rag index --rebuild` to rebuild it")


def current_generation(root: Path) -> Path:
    """The live generation directory, or an error naming the fix."""
    pointer = root / "CURRENT"
    if not pointer.exists():
        if root.exists() and any(root.glob("gen-*")):
            raise _damaged(root, "CURRENT is missing")
        raise IndexMissingError(f"no index at {root}; build one with `rag index` (e.g. `rag index seeds/`)")
    name = pointer.read_text(encoding="utf-8").strip()
    path = root / name
    if not name.startswith("gen-") or not path.is_dir():
        raise _damaged(root, f"CURRENT names {name!r}, which does not exist")
    return path


def load_index(root: Path) -> StoredIndex:
    """Load the live generation's manifest, documents and chunks, checking that they agree."""
    path = current_generation(root)
    missing = [name for name in _FILES if not (path / name).exists()]
    if missing:
        raise _damaged(root, f"missing {', '.join(missing)} in {path.name}")
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(root, f"manifest.json cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise _damaged(root, "manifest.json is not an object")
    if (wrong := _wrong_size(path, manifest.get("files", {}))) is not None:
        raise _damaged(root, wrong)
    documents = {}
    chunks = []
    try:
        name = "documents.jsonl"
        for line in _read_lines(path / name):
            row = json.loads(line)
            documents[row["doc_id"]] = Document(**row)
        name = "chunks.jsonl"
        for line in _read_lines(path / name):
            row = json.loads(line)
            text = documents[row["doc_id"]].text[row["start"] : row["end"]]
            chunks.append(Chunk(text=text, **row))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(root, f"{name} cannot be read: {type(exc).__name__}: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise _damaged(root, f"format {manifest.get('format')!r}, this version reads {FORMAT_VERSION}")
    if manifest.get("counts", {}).get("chunks") != len(chunks):
        raise _damaged(root, f"manifest counts {manifest.get('counts')} but chunks.jsonl has {len(chunks)} rows")
    return StoredIndex(root=root, path=path, manifest=manifest, documents=documents, chunks=chunks)


def recorded_corpus(root: Path) -> dict[str, list[str]] | None:
    """The corpus folders and document ids the index was last built from (``corpus.json``), or None."""
    try:
        record = json.loads((root / CORPUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), list) for k in ("paths", "documents")):
        return None
    return {"paths": [str(p) for p in record["paths"]], "documents": [str(d) for d in record["documents"]]}


def _file_records(folder: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        records[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return records


def _wrong_size(folder: Path, records: dict[str, dict[str, Any]]) -> str | None:
    """A cheap check at every load: each recorded file is there with the size it was written with."""
    for name, record in records.items():
        try:
            size = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != record.get("size"):
            return f"{name} is {size:,} bytes, {record.get('size', 0):,} were written"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line


def write_lock(root: Path, writer: str = "rag index") -> contextlib.AbstractContextManager[None]:
    """Hold the folder's writer lock; a second writer fails at once with a clear message, and a folder that
    cannot be written (read-only, a full disk) fails before any work with the fix."""
    with _writing(root):
        root.mkdir(parents=True, exist_ok=True)
        (root / ".lock").touch(exist_ok=True)
    busy = f"another `{writer}` is writing {root}; wait for it to finish or use another folder"
    return file_lock(root / ".lock", busy=busy)


def write_index(
    root: Path,
    manifest: dict[str, Any],
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    faiss_index: Any,
    bm25: BM25Index,
) -> Path:
    """Write a new generation and make it live atomically; keeps one previous generation."""
    import faiss

    stamp = time.time_ns()  # sortable and unique per run, even within one second
    final = root / f"gen-{stamp}"
    with _writing(root), atomic_folder(final) as tmp:
        with (tmp / "documents.jsonl").open("w", encoding="utf-8") as fh:
            for doc in documents:
                fh.write(json.dumps(asdict(doc), ensure_ascii=False) + "\n")
        with (tmp / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for c in chunks:
                row = {
                    "chunk_id": c.chunk_id,
                    "doc_id": c.doc_id,
                    "start": c.start,
                    "end": c.end,
                    "section": c.section,
                }
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", vectors)
        faiss.write_index(faiss_index, str(tmp / "dense.faiss"))
        bm25.save(tmp / "bm25")
        manifest = {
            **manifest,
            "format": FORMAT_VERSION,
            "counts": {"documents": len(documents), "chunks": len(chunks)},
            "files": _file_records(tmp),  # checked on every load (sizes) and by `rag index` (sha256)
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    with _writing(root):
        recorded = {"paths": manifest["corpus"]["paths"], "documents": sorted(d.doc_id for d in documents)}
        write_json_atomic(root / CORPUS_FILE, recorded)  # before CURRENT: a rebuild after a crash reads these paths
        write_text_atomic(root / "CURRENT", final.name + "\n")
    _prune(root, keep={final.name, *_previous(root, final.name)})
    return final


@contextlib.contextmanager
def _writing(root: Path) -> Iterator[None]:
    """A failed write into the index folder (a full disk, a read-only folder) as ``IndexWriteError``: the
    problem, the fix, and that the previous index is unchanged."""
    try:
        yield
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc).strip().splitlines()[-1][:200]
        full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
        fix = (
            "free some disk space, or set RAG_INDEX_DIR to a folder on another disk"
            if full
            else f"make {root} writable, or set RAG_INDEX_DIR to a folder you can write to"
        )
        raise IndexWriteError(
            f"cannot write the index at {root} ({reason}); the previous index is unchanged. {fix}"
        ) from exc


def _previous(root: Path, live: str) -> list[str]:
    gens = sorted(p.name for p in root.glob("gen-*") if p.name != live)
    return gens[-1:]


def _prune(root: Path, keep: set[str]) -> None:
    for path in [*root.glob("gen-*"), *root.glob(".gen-*.tmp")]:  # .tmp: left by a killed writer
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
