"""Adding a file to the corpus folder an index was built from, or removing one, then updating the index.

The HTTP API's ``POST``/``DELETE /v1/documents`` run these through ``Assistant``. A file is checked by the same
reader as `rag index` before it is placed (so a file `rag index` would skip is refused with its message, and
nothing changes), placed atomically under the index's writer lock, and indexed by the same incremental update
as `rag index`. When the update fails the file is taken out again (or put back) and the previous generation,
which was never replaced, keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import ConflictError, CorpusError, InputError
from rag.files import atomic_file
from rag.ingest import read_corpus
from rag.store import StoredIndex, write_lock
from rag.types import Document


@dataclass(frozen=True)
class DocumentInfo:
    """An indexed document as listed: ``size`` in bytes of its file, ``indexed_at`` an ISO 8601 UTC time."""

    id: str
    title: str
    format: str
    pages: int | None
    size: int | None
    indexed_at: str
    source: str


def source_of(document: Document) -> str:
    """Where a document came from, for people: the URL its page gave, else its doc_id."""
    return document.metadata.get("url") or document.doc_id


def document_info(index: StoredIndex, document: Document) -> DocumentInfo:
    """The listing of ``document``: size and time from the manifest's record when it has them, else the file's
    size on disk and the time the serving generation was written."""
    record: dict[str, Any] = index.manifest.get("documents", {}).get(document.doc_id, {})
    size = record.get("size")
    if size is None:
        with contextlib.suppress(OSError):
            size = Path(document.path).stat().st_size
    return DocumentInfo(
        id=document.doc_id,
        title=document.title,
        format=Path(document.doc_id).suffix.lower().lstrip("."),
        pages=len(document.pages) or None,
        size=size,
        indexed_at=str(record.get("indexed_at") or index.manifest.get("created_at", "")),
        source=source_of(document),
    )


def upload_folder(index: StoredIndex) -> Path:
    """The corpus folder new files go to: the first folder the index was built from."""
    folders = [Path(p) for p in index.manifest.get("corpus", {}).get("paths", []) if Path(p).is_dir()]
    if not folders:
        raise CorpusError(
            f"the index at {index.root} was built from files, not a folder, so there is no folder to add files to; "
            "index a folder (`rag index FOLDER`)"
        )
    return folders[0]


def checked_name(name: str, settings: Settings) -> str:
    """``name`` as a file name in the corpus folder, or an ``InputError``: a bare name of a supported format."""
    bare = name.strip()
    if not bare or bare != Path(bare).name or bare in (".", "..") or "\\" in bare:
        raise InputError(f"the file name {name!r} is not a plain file name; send the file's name without a folder")
    try:
        size = len(bare.encode("utf-8"))
    except UnicodeEncodeError:
        size = -1
    if size < 0 or size > 255 or any(ord(c) < 32 or ord(c) == 127 for c in bare):
        raise InputError(
            f"the file name {name[:80]!r} is not a usable file name (control characters, invalid text or "
            "over 255 bytes); rename the file"
        )
    if bare.startswith("."):
        raise InputError(f"the file name {name!r} starts with a dot: `rag index` skips hidden files; rename it")
    extensions = sorted({e.lower() for e in settings.ingest.extensions})
    if Path(bare).suffix.lower() not in extensions:
        raise InputError(
            f"{bare}: unsupported format {Path(bare).suffix or '(no extension)'!r}; supported: {', '.join(extensions)}"
        )
    return bare


def check_readable(name: str, data: bytes, settings: Settings) -> None:
    """Read ``data`` as `rag index` would read a file called ``name``; a reason it would skip it is an error."""
    if len(data) > settings.ingest.max_bytes:
        raise InputError(
            f"{name}: {len(data):,} bytes is over ingest.max_bytes ({settings.ingest.max_bytes:,}); "
            "split the file or raise RAG_INGEST_MAX_BYTES"
        )
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        corpus = read_corpus([str(path)], settings.ingest)
    skipped = [p for p in corpus.problems if p.skipped]
    if skipped or not corpus.documents:
        reason = skipped[0].message if skipped else "nothing could be read"
        raise InputError(f"{name}: {reason}")


def add_file(settings: Settings, index: StoredIndex, name: str, data: bytes, update: Callable[[], object]) -> str:
    """Place ``data`` as ``name`` in the corpus folder and run ``update`` (the index update); the new doc_id.

    The file is written atomically while the index's writer lock is held (a running `rag index` makes this fail
    at once); when ``update`` fails the file is removed again and the error raised.
    """
    name = checked_name(name, settings)
    folder = upload_folder(index)
    doc_id = name  # a bare name at the top of the folder: its doc_id is the name
    if doc_id in index.documents or (folder / name).exists():
        raise ConflictError(
            f"a document named {doc_id!r} already exists in {folder}; delete it first (DELETE /v1/documents/"
            f"{doc_id}) or rename the file"
        )
    check_readable(name, data, settings)
    target = folder / name
    with write_lock(index.root), atomic_file(target) as out:
        out.write(data)
    try:
        update()
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return doc_id


def remove_file(settings: Settings, index: StoredIndex, doc_id: str, update: Callable[[], object]) -> None:
    """Take ``doc_id``'s file out of the corpus folder and run ``update``; the file is put back if that fails."""
    document = index.documents[doc_id]
    if len(index.documents) == 1:
        raise ConflictError(f"{doc_id!r} is the index's only document; an index needs one, so it cannot be removed")
    path = Path(document.path)
    folders = [Path(p) for p in index.manifest.get("corpus", {}).get("paths", [])]
    if not any(path.resolve().is_relative_to(f.resolve()) for f in folders if f.is_dir()):
        raise ConflictError(
            f"{doc_id!r} was indexed from {path}, which is not inside a corpus folder of the index; "
            "remove the file by hand and run `rag index`"
        )
    with _set_aside(index.root, path):
        update()


@contextlib.contextmanager
def _set_aside(root: Path, path: Path) -> Iterator[None]:
    """While the block runs the file has a hidden name (`rag index` skips it); deleted if the block succeeds,
    renamed back if it fails."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.removed")
    with write_lock(root):
        if not path.exists():
            raise CorpusError(
                f"the file of {path.name!r} ({path}) is gone already; run `rag index` to update the index"
            )
        os.replace(path, aside)
    try:
        yield
    except BaseException:
        os.replace(aside, path)
        raise
    aside.unlink(missing_ok=True)
