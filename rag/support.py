"""Measure the support verifier on a labelled set of (question, claim, quote, label) pairs.

The verifier is what ``rag ask`` runs on every answer sentence (``rag.verify.support_score``): hard checks on
names, numbers and negation, then the judge's P(YES) calibrated with two features. ``evaluate_support``
scores every pair, fits the calibration and the threshold on the ``dev`` half (the lowest score whose
precision on dev reaches the target, so recall is as high as it can be there) and reports precision and
recall at that threshold on the ``test`` half.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import InputError
from rag.llm.judge import Judge
from rag.verify import (
    CALIBRATION,
    Calibration,
    hard_check,
    lacks_asked_kind,
    logit,
    names_reordered,
    question_coverage,
)


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
            raise InputError(
                f"{path}:{number}: not a support pair ({exc}); each line needs id, split, claim, quote, label"
            ) from exc
        if pair.split not in ("dev", "test"):
            raise InputError(f"{path}:{number}: split is {pair.split!r}; use dev or test")
        pairs.append(pair)
    if not pairs:
        raise InputError(f"support set {path} has no pairs")
    return pairs


@dataclass(frozen=True)
class Judged:
    """One pair as the verifier sees it: the hard check's verdict, the judge's P(YES) and the features."""

    pair: SupportPair
    hard_check: str | None
    p_yes: float | None  # None: rejected by a hard check, the judge was not asked
    reordered: bool
    asked: float  # the share of the question's words the quote uses

    def score(self, calibration: Calibration) -> float:
        if self.p_yes is None:
            return 0.0
        return calibration.score(self.p_yes, self.reordered, self.asked)


def judge_pair(judge: Judge, pair: SupportPair) -> Judged:
    """Run the verifier's steps on one pair: the hard checks, then (if they pass) the judge."""
    reason = hard_check(pair.claim, pair.quote, pair.question) or lacks_asked_kind(pair.question, pair.claim)
    p_yes = None if reason is not None else judge.support(pair.question, pair.claim, pair.quote)
    return Judged(
        pair,
        reason,
        p_yes,
        names_reordered(pair.claim, pair.quote),
        question_coverage(pair.question, pair.quote),
    )


def fit_calibration(judged: list[Judged], iterations: int = 50) -> Calibration:
    """Logistic regression of the label on (logit P(YES), reordered, asked), by Newton's method, L2 0.1."""
    rows = [j for j in judged if j.p_yes is not None]
    if len({j.pair.label for j in rows}) < 2:
        return CALIBRATION
    features = np.array([[1.0, logit(j.p_yes or 0.0), float(j.reordered), j.asked] for j in rows], dtype=np.float64)
    labels = np.array([float(j.pair.label) for j in rows])
    weights = np.zeros(features.shape[1])
    ridge = 0.1 * np.eye(features.shape[1])
    ridge[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-features @ weights))
        gradient = features.T @ (p - labels) + ridge @ weights
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + ridge
        weights -= np.linalg.solve(hessian, gradient)
    bias, judge, reordered, asked = (round(float(w), 3) for w in weights)
    return Calibration(bias=bias, judge=judge, reordered=reordered, asked=asked)


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
    judge: Judge,
    pairs: list[SupportPair],
    *,
    target_precision: float = 0.97,
    threshold: float | None = None,
    calibration: Calibration | None = None,
    on_pair: Any = None,
) -> dict[str, Any]:
    """Score every pair, fit the calibration and threshold on dev (unless given), and report both halves."""
    started = time.perf_counter()
    judged: list[Judged] = []
    for i, pair in enumerate(pairs, start=1):
        judged.append(judge_pair(judge, pair))
        if on_pair is not None:
            on_pair(i, len(pairs))
    dev = [j for j in judged if j.pair.split == "dev"]
    fitted_calibration = calibration or fit_calibration(dev)

    def scored(split: str, how: str | None = None, raw: bool = False) -> list[tuple[float, bool]]:
        return [
            ((j.p_yes or 0.0) if raw else j.score(fitted_calibration), j.pair.label)
            for j in judged
            if j.pair.split == split and how in (None, j.pair.how)
        ]

    fitted = threshold if threshold is not None else fit_threshold(scored("dev"), target_precision)
    raw_threshold = fit_threshold(scored("dev", raw=True), target_precision)
    report = {
        "pairs": len(judged),
        "judge_mode": judge.mode,
        "judge_model": judge.model.model,
        "target_precision": target_precision,
        "calibration": asdict(fitted_calibration),
        "calibration_fitted_on": "given" if calibration is not None else "dev",
        "threshold": fitted,
        "threshold_fitted_on": "given" if threshold is not None else "dev",
        "dev": precision_recall(scored("dev"), fitted),
        "test": precision_recall(scored("test"), fitted),
        "test_raw_judge": precision_recall(scored("test", raw=True), raw_threshold),
        "by_how_test": {how: precision_recall(scored("test", how), fitted) for how in sorted({p.how for p in pairs})},
        "curve_dev": curve(scored("dev")),
        "curve_test": curve(scored("test")),
        "hard_check_rejections": sum(1 for j in judged if j.hard_check),
        "hard_check_rejected_true": sum(1 for j in judged if j.hard_check and j.pair.label),
        "judge_calls": judge.calls,
        "seconds": round(time.perf_counter() - started, 1),
        "items": [
            {
                "id": j.pair.id, "split": j.pair.split, "how": j.pair.how, "source": j.pair.source,
                "label": j.pair.label, "p_yes": None if j.p_yes is None else round(j.p_yes, 4),
                "score": round(j.score(fitted_calibration), 4), "hard_check": j.hard_check,
                "reordered": j.reordered, "asked": round(j.asked, 4),
            }
            for j in judged
        ],
    }  # fmt: skip
    return report


def support_markdown(report: dict[str, Any]) -> str:
    """A short human-readable summary of ``evaluate_support``'s report."""

    def line(name: str, m: dict[str, Any]) -> str:
        return (
            f"| {name} | {m['pairs']} | {m['positives']} | {m['precision']} | {m['recall']} | {m['tp']} | {m['fp']} |"
        )

    out = [
        "# Support verifier",
        "",
        f"Judge: {report['judge_model']} ({report['judge_mode']}); threshold {report['threshold']} "
        f"(fitted on {report['threshold_fitted_on']} for precision >= {report['target_precision']}); "
        f"{report['judge_calls']} judge calls, {report['seconds']} s.",
        "",
        f"Calibration ({report['calibration_fitted_on']}): {report['calibration']}.",
        "",
        "| half | pairs | supported | precision | recall | tp | fp |",
        "|---|---|---|---|---|---|---|",
        line("dev", report["dev"]),
        line("test", report["test"]),
        line("test, raw P(YES), threshold fitted on dev", report["test_raw_judge"]),
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
