"""File safety in one place: atomic file and folder writes, locks between processes, the cache folder, versions.

Every write that a reader may meet half done goes through a temporary name in the same folder, is flushed
to disk, and is renamed into place (``os.replace`` is atomic on one filesystem): a reader sees the old
content or the new, never a torn one, and a killed writer leaves only a ``.tmp`` that the next one removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from rag.errors import BusyError


def cache_dir() -> Path:
    """The folder of joined models, ONNX exports, server state and logs: ``$RAG_CACHE_DIR`` or ~/.cache/rag/models."""
    path = Path(os.environ.get("RAG_CACHE_DIR") or Path.home() / ".cache" / "rag" / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(path: Path, *, busy: str | None = None) -> Iterator[None]:
    """An exclusive lock between processes on ``path``, held while the block runs.

    It waits for the holder to finish, unless ``busy`` is given: then a held lock fails at once with
    ``BusyError(busy)`` (a second `rag index` into one folder).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy is not None else 0))
        except BlockingIOError as exc:
            raise BusyError(busy or f"{path} is locked") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_file(target: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Write ``target`` through a temporary file that replaces it only when the block ends without an error."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_file(target) as out:
        out.write(text.encode("utf-8"))


def write_json_atomic(target: Path, data: dict[str, Any]) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False))


@contextlib.contextmanager
def atomic_folder(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """A temporary folder to fill; when the block ends without an error its files are flushed to disk and it is
    renamed to ``target`` (an existing ``target`` is removed first when ``replace``: hold a lock then).
    Temporary folders a killed writer left for ``target`` are removed first."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        fsync_tree(tmp)
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())


def package_versions(*packages: str) -> dict[str, str]:
    """The installed version of each package, "unknown" for one that is not installed."""
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found
