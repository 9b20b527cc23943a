"""The evaluation harness: run a reference Q&A set through ``Assistant.ask`` and score answers and citations.

Datasets: our JSONL format (``evals/seeds.jsonl``: question, kind, answerable, answer, keywords, gold quotes)
or SQuAD v2.0 JSON, whose contexts become a corpus of its own (one document per article, paragraphs kept,
offsets preserved so each ``answer_start`` maps into the document).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag import metrics
from rag.errors import ConfigError, InputError

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
RETRIEVAL_K = (1, 3, 5, 10)


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


def _field(row: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in row:
        raise DatasetError(f"{where}: field {name!r} is missing")
    if not isinstance(row[name], kind):
        raise DatasetError(f"{where}: field {name!r} must be {kind.__name__}, got {type(row[name]).__name__}")
    return row[name]


def _load_jsonl(path: Path, text: str, corpus: Path) -> list[EvalItem]:
    items: list[EvalItem] = []
    documents: dict[str, str] = {}
    seen: set[str] = set()
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
        item_id = str(_field(row, "id", str, where))
        where = f"{where} (id {item_id})"
        if item_id in seen:
            raise DatasetError(f"{where}: duplicate id")
        seen.add(item_id)
        question = _field(row, "question", str, where)
        kind = _field(row, "kind", str, where)
        if kind not in KINDS:
            raise DatasetError(f"{where}: field 'kind' is {kind!r}; valid kinds: {', '.join(KINDS)}")
        answerable = _field(row, "answerable", bool, where)
        gold = []
        for g in _field(row, "gold", list, where):
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
            gold.append(GoldSpan(doc_id, start, start + len(quote), quote))
        if answerable and not gold:
            raise DatasetError(f"{where}: an answerable item needs at least one gold quote")
        answer = _field(row, "answer", str, where)
        if kind == "yes_no" and not (answerable and metrics.leading_yes_no(answer)):
            raise DatasetError(f"{where}: a yes_no item is answerable and its 'answer' starts with 'Yes' or 'No'")
        if kind == "false_premise" and answerable:
            raise DatasetError(f"{where}: a false_premise item has 'answerable': false (its premise is false)")
        items.append(
            EvalItem(
                id=item_id,
                question=question,
                kind=kind,
                answerable=answerable,
                answers=[answer] if answer else [],
                keywords=[str(k) for k in _field(row, "keywords", list, where)],
                gold=gold,
            )
        )
    if not items:
        raise DatasetError(f"dataset {path} has no items")
    return items


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


# --- scoring ---------------------------------------------------------------------------------------------

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
    from rag.citations import split_claims

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
        quotes = {c.n: c.quote for c in answer.citations}
        sentences = [
            (text, [quotes[n] for n in numbers if n in quotes]) for text, numbers in split_claims(answer.answer)
        ]
        alce = metrics.alce_citation_scores(sentences, entails)
        scores |= {"alce_recall": alce["recall"], "alce_precision": alce["precision"]}
    return ItemResult(
        id=item.id,
        kind=item.kind,
        question=item.question,
        answerable=item.answerable,
        answer=answer.answer,
        abstained=answer.abstained,
        citations=[c.to_json() for c in answer.citations],
        scores=scores,
        timings_ms=dict(answer.timings_ms),
        usage=dict(answer.usage),
        gold_rank=rank,
    )


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
    asked = [r for r in done if "first_token" in r.timings_ms]
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


# --- running ---------------------------------------------------------------------------------------------


def run_items(
    assistant: Any, items: list[EvalItem], entails: Entails | None, done: dict[str, ItemResult], *, ask: bool = True
) -> Iterator[ItemResult]:
    """Ask each item not already ``done`` (only retrieve, unless ``ask``); a failure is recorded and the run goes on."""
    from rag.errors import RagError

    for item in items:
        if item.id in done and done[item.id].error is None:
            yield done[item.id]
            continue
        started = time.perf_counter()
        try:
            hits = assistant.search(item.question, k=max(RETRIEVAL_K)).hits
            retrieved = [(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits]
            if ask:
                result = score_item(item, assistant.ask(item.question), retrieved, entails)
            else:
                result = _retrieval_result(assistant, item, retrieved)
        except RagError as exc:
            result = ItemResult(
                id=item.id,
                kind=item.kind,
                question=item.question,
                answerable=item.answerable,
                error=f"{type(exc).__name__}: {exc}",
                timings_ms={"total": round((time.perf_counter() - started) * 1000)},
            )
        yield result


def _retrieval_result(assistant: Any, item: EvalItem, retrieved: list[tuple[str, int, int]]) -> ItemResult:
    """Retrieval metrics of ``item``, and whether the evidence the model would see holds the gold (no model call)."""
    from rag.answering import gather_evidence

    gold = [(g.doc_id, g.start, g.end) for g in item.gold]
    if not item.answerable:
        return ItemResult(item.id, item.kind, item.question, item.answerable)
    _, jobs = gather_evidence(assistant.settings, assistant.retriever, item.question)
    shown = [(p.doc_id, p.start, p.end) for _, passages in jobs for p in passages]
    found = metrics.gold_rank(shown, gold) is not None
    return ItemResult(
        item.id,
        item.kind,
        item.question,
        item.answerable,
        scores={"evidence_gold_recall": 1.0 if found else 0.0},
        gold_rank=metrics.gold_rank(retrieved, gold),
    )


def read_results(path: Path) -> dict[str, ItemResult]:
    """Results of an earlier (possibly interrupted) run, for --resume."""
    results: dict[str, ItemResult] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                    results[row["id"]] = ItemResult(**row)
                except (json.JSONDecodeError, TypeError, KeyError):
                    continue  # a line cut off by the interruption: that item is asked again
    return results


def append_result(path: Path, result: ItemResult) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")


def check_gate(aggregates: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """The metrics that fell below baseline minus tolerance; each message names metric, value and bound."""
    tolerances = baseline.get("tolerance", {})
    failures = []
    for name, reference in baseline["metrics"].items():
        tolerance = float(tolerances.get(name, tolerances.get("default", 0.05)))
        value = aggregates.get(name)
        if value is None:
            failures.append(f"{name}: missing from this run (baseline {reference})")
        elif name.endswith(("_ms_p50", "_ms_p95", "_tokens_p50", "_tokens_p95")):
            if value > reference * (1 + tolerance):  # cost: lower is better
                failures.append(f"{name}: {value} is above {reference} by more than {tolerance:.0%}")
        elif name in LOWER_IS_BETTER:
            if value > reference + tolerance:
                failures.append(f"{name}: {value} is above the baseline {reference} by more than {tolerance}")
        elif value < reference - tolerance:
            failures.append(f"{name}: {value} is below the baseline {reference} by more than {tolerance}")
    return failures


# What the regression gate watches. Latency may double (machines differ); a quality metric may fall by
# one item's worth of the questions behind it, so that one answer flipping on a small CI subset passes.
GATE_METRICS = (
    "retrieval_recall@5",
    "evidence_gold_recall",
    "keyword_accuracy_answerable",
    "abstention_precision",
    "abstention_recall",
    "citation_gold_precision",
    "alce_recall",
    "wrong_but_verified",
    "total_ms_p50",
)
LOWER_IS_BETTER = frozenset({"wrong_but_verified"})  # the share of questions given a wrong, cited answer


def baseline_from(aggregates: dict[str, Any]) -> dict[str, Any]:
    """A baseline for ``check_gate`` from a run's aggregates: the metrics it measured, and their tolerances."""
    answerable = int(aggregates.get("answerable", 0))
    unanswerable = int(aggregates.get("abstention_tp", 0)) + int(aggregates.get("abstention_fn", 0))
    abstained = int(aggregates.get("abstention_tp", 0)) + int(aggregates.get("abstention_fp", 0))
    answered = answerable - int(aggregates.get("abstention_fp", 0))
    behind = {"abstention_recall": unanswerable, "abstention_precision": abstained}
    behind |= {"citation_gold_precision": answered, "alce_recall": answered}
    behind["wrong_but_verified"] = int(aggregates.get("items", 0)) - int(aggregates.get("failed", 0))
    metrics_now: dict[str, float] = {}
    tolerance: dict[str, float] = {"total_ms_p50": 1.0}
    for name in GATE_METRICS:
        if aggregates.get(name) is None:
            continue
        metrics_now[name] = aggregates[name]
        if name != "total_ms_p50":
            tolerance[name] = round(max(0.05, 1 / max(1, behind.get(name, answerable)) + 0.01), 3)
    return {"metrics": metrics_now, "tolerance": tolerance}


def load_baseline(path: Path) -> dict[str, Any]:
    """A committed baseline: {"metrics": {name: value}, "tolerance": {"default": t, name: t}}."""
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(
            f"baseline {path} does not exist; write one from a good run with `rag eval ... --write-baseline {path}`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"baseline {path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(baseline, dict) or not isinstance(baseline.get("metrics"), dict):
        raise DatasetError(f"baseline {path}: needs a 'metrics' object of metric name -> value")
    return baseline


def evaluate(
    settings: Any,
    dataset_path: Path,
    out_dir: Path,
    *,
    corpus: Path | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    resume: bool = False,
    judge: bool = True,
    retrieval_only: bool = False,
    on_item: Callable[[ItemResult, int, int], None] | None = None,
) -> tuple[dict[str, Any], list[ItemResult]]:
    """Index the dataset's corpus in ``out_dir/index``, ask every selected question, score, and write the report."""
    from rag.store import write_lock

    with write_lock(out_dir, "rag eval"):  # two runs into one folder would interleave their answers
        return _evaluate(
            settings, dataset_path, out_dir, corpus, limit, sample, seed, resume, judge, retrieval_only, on_item
        )


def _evaluate(
    settings: Any,
    dataset_path: Path,
    out_dir: Path,
    corpus: Path | None,
    limit: int | None,
    sample: int | None,
    seed: int,
    resume: bool,
    judge: bool,
    retrieval_only: bool,
    on_item: Callable[[ItemResult, int, int], None] | None,
) -> tuple[dict[str, Any], list[ItemResult]]:
    from rag.assistant import Assistant
    from rag.eval_report import write_report
    from rag.indexer import chunker_fingerprint, settings_hash
    from rag.llm import ChatModel
    from rag.prompts import load_prompt

    started = time.perf_counter()
    judge_settings = _judge_settings(settings)  # a wrong judge setting fails before any indexing
    dataset = load_dataset(dataset_path, corpus, out_dir)
    items = dataset.select(limit, sample, seed)
    if not items:
        raise DatasetError(f"no items selected from {dataset_path} (limit {limit}, sample {sample})")
    settings.index.dir = str(out_dir / "index")
    assistant = Assistant(settings)
    assistant.build_index([str(dataset.corpus)])
    items_path = out_dir / "items.jsonl"
    done = read_results(items_path) if resume else {}
    if not resume:
        items_path.unlink(missing_ok=True)
    entails: Entails | None = None
    judge_llm = assistant.model
    if judge and not retrieval_only:
        if judge_settings is not None:
            judge_llm = ChatModel(judge_settings)
        entails = judge_entails(judge_llm.judge)
    results: list[ItemResult] = []
    for result in run_items(assistant, items, entails, done, ask=not retrieval_only):
        if result.id not in done or done[result.id].error is not None:
            append_result(items_path, result)
        results.append(result)
        if on_item is not None:
            on_item(result, len(results), len(items))
    aggregates = aggregate(results)
    embedder = assistant.index.manifest["embedder"]["name"]
    report = {
        "dataset": {
            "name": dataset.name,
            "path": str(dataset_path),
            "sha256": dataset.sha256,
            "corpus": str(dataset.corpus),
        },
        "selection": {"limit": limit, "sample": sample, "seed": seed, "items": len(items)},
        "fingerprint": {
            "settings_hash": settings_hash(embedder, chunker_fingerprint(settings)),
            "model": assistant.model.model or "(not called)",
            "prompt": {"name": "answer", "sha256": load_prompt("answer").sha256},
            "judge": None
            if entails is None
            else {
                "base_url": (judge_settings or settings).llm.base_url or "(the bundled local model)",
                "model": judge_llm.model or "(not called)",
            },
            "settings": {  # api_key, judge_api_key: secrets stay out of the report
                section: {k: v for k, v in values.items() if not k.endswith("api_key")}
                for section, values in asdict(settings).items()
            },
        },
        "aggregates": aggregates,
        "by_kind": by_kind(results),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_report(out_dir, report, results)
    return report, results


def _judge_settings(settings: Any) -> Any:
    """A copy of ``settings`` whose ``llm`` is the ALCE judge of ``eval.judge_*``; None: the answering model judges."""
    judge = settings.eval
    if not judge.judge_base_url:
        if judge.judge_model:
            raise ConfigError(
                f"eval.judge_model is {judge.judge_model!r} but eval.judge_base_url is empty: set "
                "RAG_EVAL_JUDGE_BASE_URL to the endpoint that serves it, or unset RAG_EVAL_JUDGE_MODEL"
            )
        return None
    if not judge.judge_model:
        raise ConfigError(
            f"eval.judge_base_url is {judge.judge_base_url!r} but no judge model is named: set "
            "RAG_EVAL_JUDGE_MODEL (or judge_model in the [eval] section of rag.toml)"
        )
    copied = copy.deepcopy(settings)
    copied.llm.base_url, copied.llm.model = judge.judge_base_url, judge.judge_model
    copied.llm.api_key = judge.judge_api_key  # never the answering endpoint's key: another server
    return copied
