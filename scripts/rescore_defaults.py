"""Score an eval run made with ``answer.extract_retry`` on as if it had run with the defaults (it off, and the
negation check of ``rag.verify.negation_unanswered`` on). No model is called.

    python scripts/rescore_defaults.py eval-out/seeds/items.jsonl [ID,ID,...]

Both differences only turn answers into abstentions: at temperature 0 the second attempt runs only after
nothing was verified, so a question it answered abstains with it off; an answer whose every quote lacks the
negation its question asks about abstains. Prints, as run and as with the defaults: answered correctly
(``answered_correct``), wrong but verified, abstention precision / recall / F1, and total p50 without the
second attempt's time. Optional IDs restrict the items (e.g. the questions two runs share).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.verify import negation_unanswered

Row = dict[str, Any]


def with_defaults(row: Row) -> Row:
    retried = bool(row["timings_ms"].get("retried"))
    quotes = [c["quote"] for c in row["citations"]]
    negated = bool(quotes) and all(negation_unanswered(row["question"], q) for q in quotes)
    if row["abstained"] or not (retried or negated):
        return row
    scores = {
        k: (0.0 if k in ("keyword_accuracy", "contains_answer", "answered_correct") else None) for k in row["scores"]
    }
    scores["evidence_gold_recall"] = row["scores"].get("evidence_gold_recall")  # the evidence does not change
    return {**row, "abstained": True, "citations": [], "scores": scores}


def summary(rows: list[Row]) -> str:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    right = sum(not r["abstained"] and r["scores"].get("answered_correct") == 1 for r in answerable)
    wrong = sum(r["scores"].get("wrong_but_verified") == 1 for r in rows)
    true_abstain = sum(r["abstained"] for r in unanswerable)
    false_abstain = sum(r["abstained"] for r in answerable)
    precision = true_abstain / (true_abstain + false_abstain) if true_abstain + false_abstain else 0.0
    recall = true_abstain / len(unanswerable) if unanswerable else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = statistics.median(r["timings_ms"].get("total", 0) - r["timings_ms"].get("retry", 0) for r in rows)
    return (
        f"items {len(rows)}  answered correctly {right}/{len(answerable)} = {right / max(1, len(answerable)):.3f}  "
        f"wrong but verified {wrong} = {wrong / len(rows):.3f}  abstention P/R/F1 {precision:.3f}/{recall:.3f}/"
        f"{f1:.3f}  total p50 {total / 1000:.1f} s"
    )


def main() -> None:
    rows = [json.loads(line) for line in Path(sys.argv[1]).read_text(encoding="utf-8").splitlines() if line]
    if len(sys.argv) > 2:
        wanted = set(sys.argv[2].split(","))
        rows = [r for r in rows if r["id"] in wanted]
    print("as run:       ", summary(rows))
    print("with defaults:", summary([with_defaults(r) for r in rows]))


if __name__ == "__main__":
    main()
