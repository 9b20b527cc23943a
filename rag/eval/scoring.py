"""Score an evaluation run: each answer against its item (``score_item``), then the dataset (``aggregate``).

``ItemResult`` is what one question measured; it is what items.jsonl stores and what the report lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rag import metrics
from rag.eval.datasets import EvalItem
from rag.schemas import CitationOut, dump

RETRIEVAL_K = (1, 3, 5, 10)
Entails = metrics.Entails
# A judge's verdict at or above this probability counts as "supported" (a bool verdict is 0.0 or 1.0).
SUPPORTED_AT = 0.5


def judge_entails(judge: Callable[[str, str], bool | float]) -> Entails:
    """ALCE's ``entails(premise, hypothesis)`` over ``judge(claim, evidence)`` returning a bool or a probability."""

    def entails(premise: str, hypothesis: str) -> bool:
        return float(judge(hypothesis, premise)) >= SUPPORTED_AT

    return entails


@dataclass
class ItemResult:
    """Everything measured for one question; ``error`` set when the question failed."""

    id: str
    kind: str
    question: str
    answerable: bool
    answer: str = ""
    abstained: bool = False
    citations: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    timings_ms: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    gold_rank: int | None = None
    error: str | None = None


def strip_markers(text: str) -> str:
    return re.sub(r"\s*\[\d+\]", "", text)


def correctness_scores(item: EvalItem, prediction: str, abstained: bool, citations: int) -> dict[str, float | None]:
    """Was the answer right, and was a wrong one shown as verified? ``prediction``: markers stripped, "" if abstained.

    Answerable items: ``keyword_accuracy`` (None without keywords); on a ``yes_no`` item ``yes_no_correct``
    too, which keyword accuracy then also requires; ``answered_correct`` is keyword accuracy where there are
    keywords (or a yes/no), else ``contains_answer`` where there is a reference answer, else None; an
    abstention scores 0. A ``false_premise`` item: ``premise_handled`` is 1.0 when the answer abstains or
    corrects the premise (``metrics.corrects_premise``), else 0.0. ``wrong_but_verified``: None when
    abstained; else 1.0 for a wrong answer (answerable: ``answered_correct`` is 0; false premise: not
    handled; other unanswerable: any answer) and 0.0 for a right one (None where correctness is unmeasured).
    """
    scores: dict[str, float | None] = {}
    wrong: float | None
    if item.answerable:
        keywords = metrics.keyword_accuracy(prediction, item.keywords)
        if item.kind == "yes_no":
            scores["yes_no_correct"] = yes_no = metrics.yes_no_correct(prediction, item.answers[0])
            keywords = yes_no if keywords is None else keywords * yes_no
        correct = keywords
        if correct is None and item.answers:
            correct = metrics.contains_answer(prediction, item.answers)
        scores |= {"keyword_accuracy": keywords, "answered_correct": correct}
        wrong = None if correct is None else 1.0 - correct
    elif item.kind == "false_premise":
        handled = abstained or metrics.corrects_premise(prediction, citations)
        scores["premise_handled"] = float(handled)
        wrong = float(not handled)
    else:
        wrong = 1.0
    scores["wrong_but_verified"] = None if abstained else wrong
    return scores


def score_item(
    item: EvalItem, answer: Any, retrieved: list[tuple[str, int, int]], entails: Entails | None
) -> ItemResult:
    """Score one ``Answer`` against ``item``; ``retrieved`` is the ranked (doc_id, start, end) of a search."""
    gold = [(g.doc_id, g.start, g.end) for g in item.gold]
    prediction = "" if answer.abstained else strip_markers(answer.answer)
    scores: dict[str, float | None] = {
        "exact_match": metrics.exact_match(prediction, item.answers),
        "f1": metrics.token_f1(prediction, item.answers),
        "contains_answer": metrics.contains_answer(prediction, item.answers),
    }
    scores |= correctness_scores(item, prediction, answer.abstained, len(answer.citations))
    rank = metrics.gold_rank(retrieved, gold) if item.answerable else None
    cited = [(c.doc_id, c.start, c.end) for c in answer.citations]
    if item.answerable:  # did the evidence the model saw hold the gold support?
        shown = [(p.doc_id, p.start, p.end) for p in answer.passages]
        scores["evidence_gold_recall"] = 1.0 if metrics.gold_rank(shown, gold) is not None else 0.0
    if item.answerable and not answer.abstained:
        precision, recall = metrics.citation_overlap(cited, gold)
        scores |= {"citation_gold_precision": precision, "citation_gold_recall": recall}
    if entails is not None and not answer.abstained:
        scores |= _alce_scores(answer, entails)
    return ItemResult(
        id=item.id,
        kind=item.kind,
        question=item.question,
        answerable=item.answerable,
        answer=answer.answer,
        abstained=answer.abstained,
        citations=[dump(CitationOut.of(c)) for c in answer.citations],
        scores=scores,
        timings_ms=dict(answer.timings_ms),
        usage=dict(answer.usage),
        gold_rank=rank,
    )


def _alce_scores(answer: Any, entails: Entails) -> dict[str, float | None]:
    """ALCE citation recall and precision of an answer's sentences, each judged against the quotes it cites."""
    from rag.citations import split_claims

    quotes = {c.n: c.quote for c in answer.citations}
    sentences = [(text, [quotes[n] for n in numbers if n in quotes]) for text, numbers in split_claims(answer.answer)]
    alce = metrics.alce_citation_scores(sentences, entails)
    return {"alce_recall": alce["recall"], "alce_precision": alce["precision"]}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def aggregate(results: list[ItemResult]) -> dict[str, Any]:
    """Dataset-level metrics from per-item results (failed items count as failures, not as zeros).

    Each metric is the mean of the items' values that are not None, and None when there are none.
    ``wrong_but_verified`` is the share of all asked questions given a wrong answer shown as verified: an
    abstention counts as 0 there. In the abstention scores, an answer that corrects a false premise
    (``premise_handled``) counts as declining the question, like an abstention.
    """
    done = [r for r in results if r.error is None]
    answerable = [r for r in done if r.answerable]
    answered = [r for r in answerable if not r.abstained]
    ranks = [r.gold_rank for r in answerable]
    out: dict[str, Any] = {"items": len(results), "failed": len(results) - len(done), "answerable": len(answerable)}
    for k in RETRIEVAL_K:
        out[f"retrieval_recall@{k}"] = round(metrics.recall_at_k(ranks, k), 4)
    out["retrieval_mrr"] = round(metrics.mean_reciprocal_rank(ranks), 4)
    asked_any = [r for r in done if r.scores]  # empty in a --retrieval-only run
    out["evidence_gold_recall"] = _mean([r.scores.get("evidence_gold_recall") for r in answerable])
    for name in ("keyword_accuracy", "exact_match", "f1", "contains_answer"):
        out[f"{name}_answerable"] = _mean([r.scores.get(name) for r in answerable])
    out["exact_match"] = _mean([r.scores.get("exact_match") for r in done])
    out["f1"] = _mean([r.scores.get("f1") for r in done])
    for name in ("answered_correct", "yes_no_correct", "premise_handled"):
        out[name] = _mean([r.scores.get(name) for r in done])
    out["wrong_but_verified"] = _mean([0.0 if r.abstained else r.scores.get("wrong_but_verified") for r in asked_any])
    if asked_any:
        declined = [r.abstained or r.scores.get("premise_handled") == 1.0 for r in asked_any]
        abst = metrics.abstention_scores(declined, [not r.answerable for r in asked_any])
        out |= {f"abstention_{k}": v for k, v in abst.items()}
    for name in ("citation_gold_precision", "citation_gold_recall", "alce_recall", "alce_precision"):
        out[name] = _mean([r.scores.get(name) for r in answered])
    out |= _cost_percentiles(done)
    return out


def _cost_percentiles(done: list[ItemResult]) -> dict[str, float]:
    """p50 and p95 of latency and tokens over the questions that did not fail (tokens: those sent to the model)."""
    asked = [r for r in done if "first_token" in r.timings_ms]
    out: dict[str, float] = {}
    for name, values in (
        ("first_token_ms", [float(r.timings_ms["first_token"]) for r in asked]),
        ("total_ms", [float(r.timings_ms["total"]) for r in done if "total" in r.timings_ms]),
        ("prompt_tokens", [float(r.usage["prompt_tokens"]) for r in asked if "prompt_tokens" in r.usage]),
        ("completion_tokens", [float(r.usage["completion_tokens"]) for r in asked if "completion_tokens" in r.usage]),
    ):
        if values:
            summary = metrics.summary(values)
            out[f"{name}_p50"] = round(summary["p50"], 1)
            out[f"{name}_p95"] = round(summary["p95"], 1)
    return out


def by_kind(results: list[ItemResult]) -> dict[str, dict[str, Any]]:
    """The aggregates per question kind."""
    kinds = sorted({r.kind for r in results})
    return {kind: aggregate([r for r in results if r.kind == kind]) for kind in kinds}
