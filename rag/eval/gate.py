"""The regression gate of ``rag eval --check``: a run's aggregates against a committed baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.eval.datasets import DatasetError

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
