"""Readers' thumbs up and down on answers: stored one JSON line each, and turned into reference items for `rag eval`.

``POST /v1/feedback`` appends to ``feedback.jsonl`` in the index folder (``server.feedback_file``), one line per
rating, under a lock so that concurrent requests never interleave. `rag eval --from-feedback FILE --write OUT`
writes the items of our evals JSONL format (rag/eval/datasets.py): a thumbs-up answer becomes an answerable item
whose gold evidence is the quotes it cited; a thumbs-down one is written with a ``review`` field saying why,
which `rag eval` skips until a person has written its answer and gold quotes (or marked it unanswerable) and
removed the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Literal

from rag.config import ServerSettings
from rag.errors import InputError
from rag.files import file_lock

Rating = Literal["up", "down"]
_MARKERS = re.compile(r"\s*\[\d+(?:\s*[,;]\s*\d+)*\]")


def feedback_path(server: ServerSettings, index_dir: str) -> Path:
    """The feedback file: the serving settings' ``feedback_file``, or feedback.jsonl in the index folder."""
    return Path(server.feedback_file or Path(index_dir) / "feedback.jsonl")


def append_feedback(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line, flushed to disk, while holding ``path``'s lock."""
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}, ensure_ascii=False)
    with file_lock(path.with_name(f".{path.name}.lock")), path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InputError(f"feedback file {path} does not exist; the server writes it at feedback.jsonl in its index")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict) or row.get("rating") not in ("up", "down") or not row.get("question"):
            raise InputError(f"{path}:{number}: a feedback line needs 'question' and 'rating' ('up' or 'down')")
        rows.append((number, row))
    return rows


def feedback_items(path: Path) -> list[dict[str, Any]]:
    """The reference items of the feedback file ``path``, in the evals JSONL format (one per question, the last
    rating of a question winning)."""
    latest: dict[str, dict[str, Any]] = {}
    for _, row in _records(path):
        latest[" ".join(str(row["question"]).split()).lower()] = row  # a question rated twice: the last rating
    items = []
    for row in latest.values():
        question = str(row["question"]).strip()
        answer = _MARKERS.sub("", str(row.get("answer") or "")).strip()
        gold = [
            {"doc_id": str(c["doc_id"]), "quote": str(c["quote"])}
            for c in row.get("citations") or []
            if isinstance(c, dict) and c.get("doc_id") and c.get("quote")
        ]
        item: dict[str, Any] = {
            "id": "fb-" + hashlib.sha256(question.encode()).hexdigest()[:10],
            "kind": "fact",
            "question": question,
            "answerable": True,
            "answer": answer,
            "keywords": [],
            "gold": gold,
        }
        if row["rating"] == "down" or not gold:
            why = "thumbs down" if row["rating"] == "down" else "thumbs up without citations"
            comment = f": {row['comment']}" if row.get("comment") else ""
            item["review"] = (
                f"{why}{comment}. Write the right answer and its gold quotes (or set answerable to false), "
                "then delete this field"
            )
        items.append(item)
    return items


def write_feedback_items(source: Path, target: Path) -> tuple[int, int]:
    """Write ``source``'s items to ``target`` (JSONL); the counts of ready and to-review items."""
    items = feedback_items(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    review = sum("review" in i for i in items)
    return len(items) - review, review
