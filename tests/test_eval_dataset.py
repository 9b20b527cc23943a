"""The hand-made evaluation set evals/seeds.jsonl: schema, coverage, and gold quotes checked against the seeds."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from rag.clean import classify
from rag.eval import datasets
from rag.metrics import leading_yes_no
from rag.types import Segment

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO / "evals" / "seeds.jsonl"
SEEDS = REPO / "seeds"

MIN_PER_KIND = {
    "fact": 6,
    "number": 6,
    "who": 6,
    "paraphrase": 6,
    "multi_doc": 4,
    "comments": 6,
    "yes_no": 0,  # allowed; scored by its leading yes/no
    "unanswerable": 1,
    "false_premise": 3,
}
KINDS = frozenset(MIN_PER_KIND)
UNANSWERABLE_KINDS = frozenset({"unanswerable", "false_premise"})
MIN_ITEMS = 40
MIN_NOT_ANSWERABLE = 6
QUOTE_CHARS = (20, 250)
FIELDS: dict[str, type] = {
    "id": str,
    "kind": str,
    "question": str,
    "answerable": bool,
    "answer": str,
    "keywords": list,
    "gold": list,
}


def _load() -> list[dict[str, Any]]:
    items = []
    for n, line in enumerate(DATASET.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            item = json.loads(line)
            assert isinstance(item, dict), f"line {n} is not a JSON object"
            items.append(item)
    return items


ITEMS = _load()
ANSWERABLE = [item for item in ITEMS if item.get("answerable") is True]


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [str(item.get("id")) for item in items]


@cache
def _doc(doc_id: str) -> str:
    path = SEEDS / doc_id
    assert path.is_file(), f"unknown document {doc_id!r}"
    return path.read_text(encoding="utf-8")


@cache
def _segments(doc_id: str) -> tuple[Segment, ...]:
    return tuple(classify(_doc(doc_id)))


def _section_at(doc_id: str, offset: int) -> str:
    (segment,) = [s for s in _segments(doc_id) if s.start <= offset < s.end]
    return segment.section


def _alternatives(keyword: str) -> list[str]:
    return [alt.strip().casefold() for alt in keyword.split("|") if alt.strip()]


def test_these_kinds_are_the_loaders_kinds() -> None:
    assert set(datasets.KINDS) - {"squad"} == KINDS  # "squad": what the loader gives SQuAD v2.0 questions


def test_dataset_size_and_unique_ids() -> None:
    assert len(ITEMS) >= MIN_ITEMS, f"only {len(ITEMS)} items"
    duplicates = [i for i, n in Counter(_ids(ITEMS)).items() if n > 1]
    assert not duplicates, f"duplicate ids: {duplicates}"


@pytest.mark.parametrize("item", ITEMS, ids=_ids(ITEMS))
def test_fields_and_types(item: dict[str, Any]) -> None:
    for name, expected in FIELDS.items():
        assert name in item, f"{item.get('id')}: missing field {name!r}"
        assert isinstance(item[name], expected), f"{item['id']}: {name!r} should be {expected.__name__}"
    assert item["id"].strip() and item["question"].strip(), f"{item['id']}: empty id or question"
    assert item["kind"] in KINDS, f"{item['id']}: invalid kind {item['kind']!r}"
    assert all(isinstance(k, str) and k.strip() for k in item["keywords"]), f"{item['id']}: bad keyword"
    for gold in item["gold"]:
        assert isinstance(gold, dict), f"{item['id']}: gold entries must be objects"
        assert isinstance(gold.get("doc_id"), str), f"{item['id']}: gold doc_id must be a string"
        assert isinstance(gold.get("quote"), str), f"{item['id']}: gold quote must be a string"


def test_kind_minimums() -> None:
    counts = Counter(item["kind"] for item in ITEMS)
    short = {kind: counts[kind] for kind, least in MIN_PER_KIND.items() if counts[kind] < least}
    assert not short, f"kinds below their minimum: {short} (minimums {MIN_PER_KIND})"
    not_answerable = [item for item in ITEMS if item["answerable"] is False]
    assert len(not_answerable) >= MIN_NOT_ANSWERABLE, f"only {len(not_answerable)} unanswerable items"
    assert counts["false_premise"] >= 3


@pytest.mark.parametrize("item", ITEMS, ids=_ids(ITEMS))
def test_answerability_matches_kind(item: dict[str, Any]) -> None:
    if item["kind"] in UNANSWERABLE_KINDS:
        assert item["answerable"] is False, f"{item['id']}: {item['kind']} items are not answerable"
        assert item["answer"] == "", f"{item['id']}: unanswerable items have an empty answer"
        assert item["keywords"] == [], f"{item['id']}: unanswerable items have no keywords"
        assert item["gold"] == [], f"{item['id']}: unanswerable items have no gold"
    else:
        assert item["answerable"] is True, f"{item['id']}: {item['kind']} items are answerable"
        assert item["answer"].strip(), f"{item['id']}: missing reference answer"
        assert item["gold"], f"{item['id']}: answerable item without gold"
        if item["kind"] == "yes_no":  # the yes/no is the check; keywords may add what the answer must say
            assert leading_yes_no(item["answer"]), f"{item['id']}: a yes_no answer starts with Yes or No"
            assert len(item["keywords"]) <= 3, f"{item['id']}: at most 3 keywords"
        else:
            assert 1 <= len(item["keywords"]) <= 3, f"{item['id']}: needs 1-3 keywords"


@pytest.mark.parametrize("item", ANSWERABLE, ids=_ids(ANSWERABLE))
def test_gold_quotes_are_exact_substrings(item: dict[str, Any]) -> None:
    for gold in item["gold"]:
        text = _doc(gold["doc_id"])
        quote = gold["quote"]
        assert quote in text, f"{item['id']}: quote not found verbatim in {gold['doc_id']}: {quote!r}"
        low, high = QUOTE_CHARS
        assert low <= len(quote) <= high, f"{item['id']}: quote length {len(quote)} outside {QUOTE_CHARS}"


@pytest.mark.parametrize("item", ANSWERABLE, ids=_ids(ANSWERABLE))
def test_keywords_occur_in_gold_and_answer(item: dict[str, Any]) -> None:
    quotes = " ".join(gold["quote"] for gold in item["gold"]).casefold()
    answer = item["answer"].casefold()
    for keyword in item["keywords"]:
        alternatives = _alternatives(keyword)
        assert alternatives, f"{item['id']}: empty keyword {keyword!r}"
        assert any(alt in quotes for alt in alternatives), f"{item['id']}: keyword {keyword!r} not in its gold quotes"
        assert any(alt in answer for alt in alternatives), f"{item['id']}: keyword {keyword!r} not in its answer"


@pytest.mark.parametrize("item", ANSWERABLE, ids=_ids(ANSWERABLE))
def test_gold_sections(item: dict[str, Any]) -> None:
    for gold in item["gold"]:
        offset = _doc(gold["doc_id"]).find(gold["quote"])
        assert offset >= 0, f"{item['id']}: quote not found in {gold['doc_id']}: {gold['quote']!r}"
        section = _section_at(gold["doc_id"], offset)
        if item["kind"] == "comments":
            assert section == "comments", f"{item['id']}: quote lies in {section!r}, not comments: {gold['quote']!r}"
        else:
            assert section != "boilerplate", f"{item['id']}: quote lies in boilerplate: {gold['quote']!r}"


def test_multi_doc_items_span_two_documents() -> None:
    for item in ITEMS:
        if item["kind"] == "multi_doc":
            docs = {gold["doc_id"] for gold in item["gold"]}
            assert len(docs) >= 2, f"{item['id']}: multi_doc gold comes from {sorted(docs)} only"


def test_answerable_items_cover_every_document() -> None:
    covered = {gold["doc_id"] for item in ANSWERABLE for gold in item["gold"]}
    seeds = {path.name for path in SEEDS.glob("*.txt")}
    assert len(seeds) == 5
    assert seeds <= covered, f"documents without answerable items: {sorted(seeds - covered)}"
