"""Evaluation of the assistant on a reference Q&A set (``rag eval``).

- ``datasets``: our JSONL sets and SQuAD v2.0, loaded as items with gold spans.
- ``scoring``: each answer scored against its item, and the dataset-level aggregates.
- ``run``: ``evaluate``, the harness that indexes, asks, records (resumable) and reports.
- ``gate``: the regression gate of ``--check`` and the baselines of ``--write-baseline``.
- ``report``: report.json, report.md and the plots.

The support verifier's own measurement (``rag eval --support``) is ``rag.support``.
"""

from rag.eval.gate import baseline_from, check_gate, load_baseline
from rag.eval.report import HEADLINE
from rag.eval.run import EvalOptions, evaluate

__all__ = ["HEADLINE", "EvalOptions", "baseline_from", "check_gate", "evaluate", "load_baseline"]
