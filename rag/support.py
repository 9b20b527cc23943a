"""Measure the support verifier on a labelled set of (question, claim, quote, label) pairs.

The verifier is what ``rag ask`` runs on every answer sentence: hard checks on names, numbers and negation
(``rag.verify.hard_check``), then the judge's P(YES). ``evaluate_support`` scores every pair, fits the
threshold on the ``dev`` half (the lowest score whose precision on dev reaches the target, so recall is as
high as it can be there) and reports precision and recall at that threshold on the ``test`` half.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.verify import Judge, hard_check


@dataclass(frozen=True)
class SupportPair:
    id: str
    split: str
    question: str
    claim: str
    quote: str
    label: bool
    how: str
    source: str


def load_support_set(path: Path) -> list[SupportPair]:
    """The pairs of a support JSONL file; a bad line is an ``InputError`` naming the line and field."""
    if not path.is_file():
        raise InputError(f"support set {path} does not exist; build one with scripts/make_support_set.py")
    pairs: list[SupportPair] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pair = SupportPair(
                id=str(row["id"]),
                split=str(row["split"]),
                question=str(row.get("question", "")),
                claim=str(row["claim"]),
                quote=str(row["quote"]),
                label=bool(row["label"]),
                how=str(row.get("how", "")),
                source=str(row.get("source", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a support pair ({exc}); each line needs id, split, claim, "
                             "quote, label") from exc
        if pair.split not in ("dev", "test"):
            raise InputError(f"{path}:{number}: split is {pair.split!r}; use dev or test")
        pairs.append(pair)
    if not pairs:
        raise InputError(f"support set {path} has no pairs")
    return pairs


def verifier_score(judge: Judge | None, pair: SupportPair) -> tuple[float, str | None]:
    """The verifier's score for one pair (0.0 when a hard check rejects it) and the hard check's reason."""
    reason = hard_check(pair.claim, pair.quote)
    if reason is not None:
        return 0.0, reason
    if judge is None:
        return 1.0, None
    return judge.support(pair.question, pair.claim, pair.quote), None


def precision_recall(scored: list[tuple[float, bool]], threshold: float) -> dict[str, Any]:
    """Precision (of pairs called supported, the share that are) and recall at ``threshold``; None when undefined."""
    called = [label for score, label in scored if score >= threshold]
    positives = sum(1 for _, label in scored if label)
    tp = sum(called)
    return {
        "threshold": round(threshold, 4),
        "precision": round(tp / len(called), 4) if called else None,
        "recall": round(tp / positives, 4) if positives else None,
        "called": len(called),
        "tp": tp,
        "fp": len(called) - tp,
        "positives": positives,
        "pairs": len(scored),
    }


def fit_threshold(scored: list[tuple[float, bool]], target_precision: float) -> float:
    """The lowest threshold whose precision reaches ``target_precision`` (highest recall); 1.0 if none does."""
    candidates = sorted({score for score, _ in scored if score > 0.0})
    for threshold in candidates:
        precision = precision_recall(scored, threshold)["precision"]
        if precision is not None and precision >= target_precision:
            return threshold
    return 1.0


def curve(scored: list[tuple[float, bool]], steps: int = 20) -> list[dict[str, Any]]:
    return [precision_recall(scored, i / steps) for i in range(1, steps)]


def evaluate_support(
    judge: Judge | None,
    pairs: list[SupportPair],
    *,
    target_precision: float = 0.97,
    threshold: float | None = None,
    on_pair: Any = None,
) -> dict[str, Any]:
    """Score every pair, fit the threshold on dev (unless given), and report both halves, by kind of pair."""
    started = time.perf_counter()
    results: list[tuple[SupportPair, float, str | None]] = []
    for i, pair in enumerate(pairs, start=1):
        score, reason = verifier_score(judge, pair)
        results.append((pair, score, reason))
        if on_pair is not None:
            on_pair(i, len(pairs))

    def scored(split: str, how: str | None = None) -> list[tuple[float, bool]]:
        return [(sc, p.label) for p, sc, _ in results if p.split == split and how in (None, p.how)]

    fitted = threshold if threshold is not None else fit_threshold(scored("dev"), target_precision)
    report = {
        "pairs": len(results),
        "judge_mode": judge.mode if judge is not None else "hard checks only",
        "judge_model": judge.model.model if judge is not None else None,
        "target_precision": target_precision,
        "threshold": fitted,
        "threshold_fitted_on": "given" if threshold is not None else "dev",
        "dev": precision_recall(scored("dev"), fitted),
        "test": precision_recall(scored("test"), fitted),
        "test_at_0.5": precision_recall(scored("test"), 0.5),
        "by_how_test": {how: precision_recall(scored("test", how), fitted) for how in sorted({p.how for p in pairs})},
        "curve_dev": curve(scored("dev")),
        "curve_test": curve(scored("test")),
        "hard_check_rejections": sum(1 for _, _, reason in results if reason),
        "hard_check_rejected_true": sum(1 for p, _, reason in results if reason and p.label),
        "judge_calls": judge.calls if judge is not None else 0,
        "seconds": round(time.perf_counter() - started, 1),
        "items": [
            {"id": p.id, "split": p.split, "how": p.how, "source": p.source, "label": p.label,
             "score": round(sc, 4), "hard_check": reason}
            for p, sc, reason in results
        ],
    }
    return report


def support_markdown(report: dict[str, Any]) -> str:
    """A short human-readable summary of ``evaluate_support``'s report."""
    def line(name: str, m: dict[str, Any]) -> str:
        return (f"| {name} | {m['pairs']} | {m['positives']} | {m['precision']} | {m['recall']} | "
                f"{m['tp']} | {m['fp']} |")

    out = [
        "# Support verifier",
        "",
        f"Judge: {report['judge_model']} ({report['judge_mode']}); threshold {report['threshold']} "
        f"(fitted on {report['threshold_fitted_on']} for precision >= {report['target_precision']}); "
        f"{report['judge_calls']} judge calls, {report['seconds']} s.",
        "",
        "| half | pairs | supported | precision | recall | tp | fp |",
        "|---|---|---|---|---|---|---|",
        line("dev", report["dev"]),
        line("test", report["test"]),
        line("test at 0.5", report["test_at_0.5"]),
        "",
        "By kind of pair (test half, fitted threshold):",
        "",
        "| kind | pairs | supported | precision | recall | tp | fp |",
        "|---|---|---|---|---|---|---|",
        *(line(how, m) for how, m in report["by_how_test"].items()),
        "",
        f"Hard checks rejected {report['hard_check_rejections']} pairs, {report['hard_check_rejected_true']} of "
        "them labelled supported.",
        "",
        "Precision/recall curve (test):",
        "",
        "| threshold | precision | recall |",
        "|---|---|---|",
        *(f"| {p['threshold']} | {p['precision']} | {p['recall']} |" for p in report["curve_test"]),
    ]
    return "\n".join(out) + "\n"
