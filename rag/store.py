"""The saved index: one directory of generations, switched atomically.

Layout of ``index/``::

    CURRENT                 name of the live generation (replaced atomically)
    corpus.json             the corpus folders (absolute) and documents of the live generation: a copy of the
                            manifest's that survives a damaged generation, so a rebuild reads the same folders
    gen-<time_ns>/          manifest.json, tables.sqlite (documents, chunks, each document's manifest record),
                            vectors.npy, dense.faiss, bm25/
    .lock                   held while a writer runs

A writer builds a new generation beside the live one and only then points CURRENT at it,
so a run that fails part-way leaves the previous index intact and loadable.

Formats: 2 (now) keeps the documents and chunks in ``tables.sqlite`` (rag/tables.py), opened rather than read,
so loading costs the same at 50 chunks and at 1M. 1 kept them in ``documents.jsonl`` and ``chunks.jsonl``, read
whole at every load; it is still read (as slowly as before), so that the next `rag index` rewrites it as format
2 reusing its vectors instead of embedding the corpus again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError, IndexMissingError, IndexWriteError
from rag.files import atomic_folder, file_lock, write_json_atomic, write_text_atomic
from rag.lexical import BM25Index
from rag.tables import TABLES_FILE, ChunkTable, DocumentTable, RecordTable, Tables, TextTable, write_tables
from rag.types import Chunk, Document

FORMAT_VERSION = 2
CORPUS_FILE = "corpus.json"
_TABLE_FILES = {1: ("documents.jsonl", "chunks.jsonl"), 2: (TABLES_FILE,)}
_SHARED_FILES = ("vectors.npy", "dense.faiss", "bm25")


@dataclass
class StoredIndex:
    """A loaded index generation. Documents and chunks are read by row or doc_id when asked for; vectors, FAISS
    and BM25 load on first use, memory-mapped, not copied."""

    root: Path
    path: Path
    manifest: dict[str, Any]
    documents: DocumentTable
    chunks: ChunkTable
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def texts(self) -> TextTable:
        """Each document's text by doc_id (answering looks quotes up in it)."""
        return TextTable(self.documents)

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
    """Open the live generation: its manifest is read, its tables opened (not read), their counts checked."""
    path = current_generation(root)
    if not (path / "manifest.json").exists():
        raise _damaged(root, f"missing manifest.json in {path.name}")
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(root, f"manifest.json cannot be read: {type(exc).__name__}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise _damaged(root, "manifest.json is not an object")
    version = manifest.get("format")
    if version not in _TABLE_FILES:
        raise _damaged(root, f"format {version!r}, this version reads {', '.join(map(str, _TABLE_FILES))}")
    missing = [name for name in (*_TABLE_FILES[version], *_SHARED_FILES) if not (path / name).exists()]
    if missing:
        raise _damaged(root, f"missing {', '.join(missing)} in {path.name}")
    if (wrong := _wrong_size(path, manifest.get("files", {}))) is not None:
        raise _damaged(root, wrong)

    def damaged(why: str) -> IndexCorruptError:
        return _damaged(root, why)

    tables = Tables.open(path / TABLES_FILE, damaged) if version == 2 else _read_format_1(path, damaged)
    documents = DocumentTable(tables)
    if version == 2:  # each document's record is kept in the tables, not in manifest.json
        manifest["documents"] = RecordTable(tables, documents)
    counts = manifest.get("counts", {})
    if (counts.get("documents"), counts.get("chunks")) != (tables.documents, tables.chunks):
        raise _damaged(
            root,
            f"manifest counts {counts} but the tables hold {tables.documents} documents and {tables.chunks} chunks",
        )
    return StoredIndex(
        root=root, path=path, manifest=manifest, documents=documents, chunks=ChunkTable(tables, documents)
    )


def _read_format_1(path: Path, damaged: Callable[[str], IndexCorruptError]) -> Tables:
    """The JSONL tables of a format-1 generation, read whole into the in-memory tables format 2 opens."""
    documents: dict[str, Document] = {}
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
        raise damaged(f"{name} cannot be read: {type(exc).__name__}: {exc}") from exc
    return Tables.in_memory(list(documents.values()), chunks, damaged)


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
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    faiss_index: Any,
    bm25: BM25Index,
) -> Path:
    """Write a new generation and make it live atomically; keeps one previous generation."""
    import faiss

    stamp = time.time_ns()  # sortable and unique per run, even within one second
    final = root / f"gen-{stamp}"
    with _writing(root), atomic_folder(final) as tmp:
        # The documents' records go with their rows: in manifest.json they cost every load a parse of all of them.
        write_tables(tmp / TABLES_FILE, documents, chunks, manifest.get("documents", {}))
        np.save(tmp / "vectors.npy", vectors)
        faiss.write_index(faiss_index, str(tmp / "dense.faiss"))
        bm25.save(tmp / "bm25")
        manifest = {
            **{key: value for key, value in manifest.items() if key != "documents"},
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
