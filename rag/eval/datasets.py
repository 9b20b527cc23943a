"""Evaluation datasets: our JSONL format or SQuAD v2.0 JSON, loaded into ``EvalItem`` s with gold spans.

Datasets: our JSONL format (``evals/seeds.jsonl``: question, kind, answerable, answer, keywords, gold quotes)
or SQuAD v2.0 JSON, whose contexts become a corpus of its own (one document per article, paragraphs kept,
offsets preserved so each ``answer_start`` maps into the document).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import metrics
from rag.errors import InputError

KINDS = (
    "fact",
    "number",
    "who",
    "paraphrase",
    "multi_doc",
    "comments",
    "yes_no",  # answerable; the reference answer starts with "Yes" or "No" (scored by metrics.yes_no_correct)
    "unanswerable",
    "false_premise",  # not answerable: the question assumes something false (scored by premise_handled)
    "squad",
)


class DatasetError(InputError):
    """A dataset file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class GoldSpan:
    """Gold support: ``quote == document.text[start:end]``."""

    doc_id: str
    start: int
    end: int
    quote: str


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    kind: str
    answerable: bool
    answers: list[str]  # reference answers (SQuAD keeps several)
    keywords: list[str]
    gold: list[GoldSpan]


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    sha256: str
    items: list[EvalItem]
    corpus: Path  # the folder of documents the questions are about

    def select(self, limit: int | None = None, sample: int | None = None, seed: int = 0) -> list[EvalItem]:
        """The first ``limit`` items, or a seeded random ``sample`` of them (stable across runs)."""
        items = self.items
        if sample is not None:
            items = sorted(random.Random(seed).sample(items, min(sample, len(items))), key=self.items.index)
        return items[:limit] if limit is not None else items


def load_dataset(path: Path, corpus: Path | None, workdir: Path) -> Dataset:
    """Load ``path`` (JSONL of ours, or SQuAD v2.0 JSON written out as a corpus under ``workdir``)."""
    if not path.exists():
        raise DatasetError(f"dataset {path} does not exist; pass a .jsonl of ours or a SQuAD v2.0 .json file")
    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        raise DatasetError(f"dataset {path} is empty; it needs at least one question")
    stripped = text.lstrip()
    if path.suffix == ".json" or (stripped.startswith("{") and '"data"' in stripped[:2000] and "\n{" not in stripped):
        items, corpus_dir = _load_squad(path, text, workdir / "corpus")
        return Dataset(name=path.stem, path=path, sha256=sha, items=items, corpus=corpus_dir)
    corpus_dir = corpus or _default_corpus(path)
    return Dataset(name=path.stem, path=path, sha256=sha, items=_load_jsonl(path, text, corpus_dir), corpus=corpus_dir)


def _default_corpus(path: Path) -> Path:
    """evals/NAME.jsonl is about seeds/ unless told otherwise."""
    return path.resolve().parent.parent / "seeds"


# --- our JSONL -----------------------------------------------------------------------------------------------


def _field(row: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in row:
        raise DatasetError(f"{where}: field {name!r} is missing")
    if not isinstance(row[name], kind):
        raise DatasetError(f"{where}: field {name!r} must be {kind.__name__}, got {type(row[name]).__name__}")
    return row[name]


def _load_jsonl(path: Path, text: str, corpus: Path) -> list[EvalItem]:
    items: list[EvalItem] = []
    documents: dict[str, str] = {}  # doc_id -> text, each document read once
    seen: set[str] = set()
    in_review = 0  # items from feedback awaiting a person (a "review" field): not scored until it is removed
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: each line must be a JSON object")
        if row.get("review"):
            in_review += 1
            continue
        item_id = str(_field(row, "id", str, where))
        where = f"{where} (id {item_id})"
        if item_id in seen:
            raise DatasetError(f"{where}: duplicate id")
        seen.add(item_id)
        items.append(_jsonl_item(row, item_id, where, corpus, documents))
    if not items:
        waiting = f" ({in_review} await review: edit them and delete their 'review' field)" if in_review else ""
        raise DatasetError(f"dataset {path} has no items{waiting}")
    return items


def _jsonl_item(row: dict[str, Any], item_id: str, where: str, corpus: Path, documents: dict[str, str]) -> EvalItem:
    """One line of our JSONL, its fields checked; ``documents`` caches the corpus files its gold quotes are in."""
    question = _field(row, "question", str, where)
    kind = _field(row, "kind", str, where)
    if kind not in KINDS:
        raise DatasetError(f"{where}: field 'kind' is {kind!r}; valid kinds: {', '.join(KINDS)}")
    answerable = _field(row, "answerable", bool, where)
    gold = [_gold_span(g, where, corpus, documents) for g in _field(row, "gold", list, where)]
    if answerable and not gold:
        raise DatasetError(f"{where}: an answerable item needs at least one gold quote")
    answer = _field(row, "answer", str, where)
    if kind == "yes_no" and not (answerable and metrics.leading_yes_no(answer)):
        raise DatasetError(f"{where}: a yes_no item is answerable and its 'answer' starts with 'Yes' or 'No'")
    if kind == "false_premise" and answerable:
        raise DatasetError(f"{where}: a false_premise item has 'answerable': false (its premise is false)")
    return EvalItem(
        id=item_id,
        question=question,
        kind=kind,
        answerable=answerable,
        answers=[answer] if answer else [],
        keywords=[str(k) for k in _field(row, "keywords", list, where)],
        gold=gold,
    )


def _gold_span(g: Any, where: str, corpus: Path, documents: dict[str, str]) -> GoldSpan:
    """A gold entry ``{"doc_id", "quote"}`` located in its document (the quote must be copied exactly)."""
    if not isinstance(g, dict) or not isinstance(g.get("doc_id"), str) or not isinstance(g.get("quote"), str):
        raise DatasetError(f"{where}: each gold entry needs string fields 'doc_id' and 'quote'")
    doc_id, quote = g["doc_id"], g["quote"]
    if doc_id not in documents:
        doc_path = corpus / doc_id
        if not doc_path.is_file():
            raise DatasetError(f"{where}: gold doc_id {doc_id!r} is not a file under {corpus}")
        documents[doc_id] = doc_path.read_text(encoding="utf-8")
    start = documents[doc_id].find(quote)
    if start < 0 or not quote:
        raise DatasetError(f"{where}: gold quote {quote[:60]!r} is not in {doc_id}; copy it exactly")
    return GoldSpan(doc_id, start, start + len(quote), quote)


# --- SQuAD v2.0 ----------------------------------------------------------------------------------------------


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:60] or "article"


def _load_squad(path: Path, text: str, corpus: Path) -> tuple[list[EvalItem], Path]:
    """SQuAD v2.0: each article becomes ``corpus/NNN_Title.txt``, its paragraphs separated by blank lines."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path}: not SQuAD v2.0: the top level needs a 'data' list of articles")
    corpus.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    for a_no, article in enumerate(data["data"]):
        where = f"{path}: data[{a_no}]"
        title = article.get("title") if isinstance(article, dict) else None
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(title, str) or not isinstance(paragraphs, list):
            raise DatasetError(f"{where}: an article needs 'title' (string) and 'paragraphs' (list)")
        doc_id = f"{a_no:03d}_{_slug(title)}.txt"
        parts: list[str] = []
        offset = 0
        for p_no, paragraph in enumerate(paragraphs):
            pwhere = f"{where}.paragraphs[{p_no}]"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str):
                raise DatasetError(f"{pwhere}: field 'context' (string) is missing")
            for q_no, qa in enumerate(paragraph.get("qas", [])):
                items.append(_squad_item(qa, f"{pwhere}.qas[{q_no}]", doc_id, context, offset))
            parts.append(context)
            offset += len(context) + 2  # the blank line between paragraphs
        target = corpus / doc_id
        content = "\n\n".join(parts) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
    if not items:
        raise DatasetError(f"{path}: no questions (qas) in any paragraph")
    return items, corpus


def _squad_item(qa: Any, where: str, doc_id: str, context: str, offset: int) -> EvalItem:
    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or "id" not in qa:
        raise DatasetError(f"{where}: a question needs 'id' and 'question'")
    impossible = bool(qa.get("is_impossible", False))
    gold: list[GoldSpan] = []
    answers: list[str] = []
    for a_no, answer in enumerate(qa.get("answers", [])):
        text, start = answer.get("text"), answer.get("answer_start")
        if not isinstance(text, str) or not isinstance(start, int):
            raise DatasetError(f"{where}.answers[{a_no}]: needs 'text' (string) and 'answer_start' (integer)")
        if context[start : start + len(text)] != text:
            raise DatasetError(f"{where}.answers[{a_no}]: answer_start {start} does not point at {text!r}")
        span = GoldSpan(doc_id, offset + start, offset + start + len(text), text)
        if span not in gold:
            gold.append(span)
        if text not in answers:
            answers.append(text)
    if not impossible and not gold:
        raise DatasetError(f"{where}: an answerable question needs at least one answer")
    return EvalItem(
        id=str(qa["id"]),
        question=qa["question"],
        kind="unanswerable" if impossible else "squad",
        answerable=not impossible,
        answers=answers,
        keywords=[],
        gold=gold,
    )
