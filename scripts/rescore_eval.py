"""Re-score an eval run's items.jsonl with today's metrics (e.g. a run made before a metric existed).

    python scripts/rescore_eval.py eval-out/seeds/items.jsonl evals/seeds.jsonl [--limit N]

Prints the aggregates and the per-kind table of keyword accuracy, answered_correct, wrong_but_verified and
abstention, computed by rag.eval from the stored answers (no model is called).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.eval.datasets import load_dataset
from rag.eval.run import read_results
from rag.eval.scoring import aggregate, by_kind, correctness_scores, strip_markers

SHOWN = ("answered_correct", "keyword_accuracy_answerable", "wrong_but_verified", "abstention_precision",
         "abstention_recall", "abstention_f1", "contains_answer_answerable", "evidence_gold_recall",
         "citation_gold_precision", "premise_handled", "total_ms_p50")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="only the first N results")
    parser.add_argument("--ids-from", type=Path, default=None, help="only the ids of another items.jsonl")
    args = parser.parse_args()
    items = {i.id: i for i in load_dataset(args.dataset, None, Path(tempfile.mkdtemp())).items}
    results = list(read_results(args.items).values())
    if args.ids_from is not None:
        keep = set(read_results(args.ids_from))
        results = [r for r in results if r.id in keep]
    results = results[: args.limit] if args.limit else results
    rescored = []
    for r in results:
        if r.error is None:
            prediction = "" if r.abstained else strip_markers(r.answer)
            extra = correctness_scores(items[r.id], prediction, r.abstained, len(r.citations))
            r = replace(r, scores={**r.scores, **extra})
        rescored.append(r)
    overall = aggregate(rescored)
    print(json.dumps({k: overall.get(k) for k in ("items", *SHOWN)}, indent=1))
    print("| kind | n | answered correct | wrong but verified | abstained |")
    print("|---|---|---|---|---|")
    for kind, agg in by_kind(rescored).items():
        abstained = sum(r.abstained for r in rescored if r.kind == kind)
        print(
            f"| {kind} | {agg['items']} | {agg.get('answered_correct')} | {agg.get('wrong_but_verified')} | "
            f"{abstained} |"
        )


if __name__ == "__main__":
    main()
