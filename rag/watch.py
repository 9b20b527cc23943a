"""Notice when the files of a corpus change, for `rag index --watch`: polling, no dependency.

Each poll stats the indexable files under the corpus folders (name, size, modification time); a change is
reported once the folders have been quiet for ``quiet`` seconds, so an editor's save (write, rename, touch) or
a copy of many files gives one re-index, not one per file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

Snapshot = dict[str, tuple[int, int]]  # path -> (size, mtime_ns)

POLL_SECONDS = 0.5
QUIET_SECONDS = 1.5


def snapshot(paths: list[str], extensions: list[str]) -> Snapshot:
    """Size and modification time of every file with one of ``extensions`` under ``paths``, hidden ones aside
    (as ``rag.ingest.discover`` skips them). A path that is gone gives no entries."""
    wanted = {e.lower() for e in extensions}
    found: Snapshot = {}
    for raw in paths:
        root = Path(raw)
        if root.is_file():
            _add(found, root)
            continue
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in wanted:
                    _add(found, Path(folder) / name)
    return found


def _add(found: Snapshot, path: Path) -> None:
    try:
        stat = path.stat()
    except OSError:  # removed between the listing and the stat, or a broken link: not there
        return
    found[str(path)] = (stat.st_size, stat.st_mtime_ns)


def changes(
    paths: list[str],
    extensions: list[str],
    *,
    poll: float = POLL_SECONDS,
    quiet: float = QUIET_SECONDS,
) -> Iterator[Snapshot]:
    """Yield the corpus's snapshot each time its files have changed and then stayed unchanged for ``quiet``
    seconds. The first snapshot is the state when watching begins; it is not yielded."""
    seen = snapshot(paths, extensions)
    while True:
        time.sleep(poll)
        current = snapshot(paths, extensions)
        if current == seen:
            continue
        settled_at = time.monotonic()
        while time.monotonic() - settled_at < quiet:
            time.sleep(poll)
            latest = snapshot(paths, extensions)
            if latest != current:
                current, settled_at = latest, time.monotonic()
        seen = current
        yield current
