"""Build evals/support.jsonl: labelled (question, claim, quote) pairs for measuring the support verifier.

Labels come by construction, not from a model's judgement:
- ``answer`` (true): the question and its gold answer, rewritten by the bundled model into one declarative
  sentence; kept only when the sentence contains the gold answer. The quote is the gold sentence.
- ``distractor`` (false): the same rewrite with another answer of the same document and type in place of the
  gold one (a plausible wrong answer in the right frame); kept only when it names the distractor, not the gold.
- ``swap_number``, ``swap_name``, ``swap_roles`` (false): a true claim with one number or name replaced by
  another from the same document, or two names of the quote exchanged.
- ``negation`` (false): a true claim with "not" added to its verb.
- ``verbatim`` (true): the gold sentence itself, or its clause holding the answer.
- ``other_sentence`` (false): another sentence of the same document, one without the gold answer, as its own
  quote: it is the document's words, but it does not answer the question (the extractive fallback's case).
- ``swap_premise`` (false): a true rewrite with one name of its question, and of its claim, replaced by another
  name of the document: a false premise taken up (SQuAD 2.0's way of making unanswerable questions).
Every pair is assigned to ``dev`` or ``test`` by a hash of its question, so both halves hold different questions.

    python scripts/make_support_set.py --out evals/support.jsonl --squad 130 --seed 7
    python scripts/make_support_set.py --out evals/support.jsonl --add-other-sentences --seed 7
    python scripts/make_support_set.py --out evals/support.jsonl --add-premise-swaps --seed 7
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.chunking import sentence_spans  # noqa: E402
from rag.config import load_settings  # noqa: E402

REWRITE = (
    "Rewrite the question and its answer as one short, complete declarative sentence that states the answer. "
    "Use the answer exactly as given. Reply with the sentence only.\n\nQuestion: {question}\nAnswer: {answer}"
)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,.]*\d(?![\w])|(?<![\w.])\d(?![\w.])")
_NAME = re.compile(r"(?<![\w.])[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_STARTERS = frozenset("The A An In On At This That It He She They We His Her Their Its According However".split())
_AUX = re.compile(r"\b(is|was|are|were|has|had|have|will|can|could|would|should|did|does|do)\b")


def split_of(question: str) -> str:
    return "dev" if int(hashlib.sha256(question.encode()).hexdigest(), 16) % 2 == 0 else "test"


def sentence_with(text: str, start: int, end: int) -> str:
    """The sentence (or two) of ``text`` that holds ``text[start:end]``."""
    spans = sentence_spans(text)
    inside = [(s, e) for s, e in spans if s < end and start < e]
    if not inside:
        return text[start:end]
    return " ".join(text[inside[0][0] : inside[-1][1]].split())


def kind_of(answer: str) -> str:
    if re.search(r"\d", answer):
        return "number"
    if answer[:1].isupper():
        return "name"
    return "other"


def names_in(text: str) -> list[str]:
    return [m.group(0) for m in _NAME.finditer(text) if m.group(0) not in _STARTERS]


class Rewriter:
    def __init__(self) -> None:
        from rag.llm import ChatModel

        self.model = ChatModel(load_settings(config_file=None, env={}))

    def __call__(self, question: str, answer: str) -> str:
        text = self.model.complete([{"role": "user", "content": REWRITE.format(question=question, answer=answer)}], 60)
        return " ".join(text.strip().strip('"').split())


def contains(text: str, answer: str) -> bool:
    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w]+", " ", s.lower()).split())

    return f" {norm(answer)} " in f" {norm(text)} "


def variants(rng: random.Random, claim: str, quote: str, doc_text: str, answer: str) -> list[tuple[str, str]]:
    """Rule-made false claims from a true one: a number or name swapped, two names exchanged, a negation added."""
    out: list[tuple[str, str]] = []
    numbers = _NUMBER.findall(claim)
    if numbers:
        n = rng.choice(numbers)
        others = [x for x in dict.fromkeys(_NUMBER.findall(doc_text)) if x != n and x not in claim]
        if others:
            out.append(("swap_number", claim.replace(n, rng.choice(others), 1)))
    names = [x for x in dict.fromkeys(names_in(claim)) if len(x) > 2]
    doc_names = [x for x in dict.fromkeys(names_in(doc_text)) if len(x) > 2 and x not in claim and x not in quote]
    if names and doc_names:
        n = rng.choice(names)
        out.append(("swap_name", re.sub(rf"\b{re.escape(n)}\b", rng.choice(doc_names), claim, count=1)))
    both = [x for x in names if x in quote]
    if len(both) >= 2:
        a, b = both[0], both[1]
        if a not in b and b not in a:
            swapped = claim.replace(a, "\0").replace(b, a).replace("\0", b)
            if swapped != claim:
                out.append(("swap_roles", swapped))
    match = _AUX.search(claim)
    if match and "not" not in claim.split() and "n't" not in claim:
        out.append(("negation", claim[: match.end()] + " not" + claim[match.end() :]))
    return out


def _documents() -> dict[str, str]:
    """The seeds and the SQuAD articles by name: where each pair's quote comes from."""
    texts = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "seeds").iterdir()}
    squad = json.loads(Path(REPO.parent / "shared" / "data" / "squad-v2-dev-part1.json").read_text())
    for article in squad["data"]:
        texts[article["title"]] = "\n\n".join(p["context"] for p in article["paragraphs"])
    return texts


def _document_of(quote: str, texts: dict[str, str]) -> str | None:
    return next((t for t in texts.values() if quote[:60] in " ".join(t.split())), None)


def _append_derived(path: Path, how: str, derive: Callable[[dict[str, Any], str], dict[str, Any] | None]) -> None:
    """Replace the ``how`` pairs of ``path`` with ``derive(row, document)`` of each true rewrite (None: none)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    rows = [r for r in rows if r["how"] != how]
    texts = _documents()
    added = []
    for row in rows:
        if row["how"] != "answer" or (doc := _document_of(row["quote"], texts)) is None:
            continue
        if (pair := derive(row, doc)) is not None:
            added.append({**row, **pair, "id": row["id"].replace("-answer", f"-{how}"), "label": False, "how": how})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows + added), encoding="utf-8")
    print(f"{len(added)} {how} pairs added -> {path} ({len(rows) + len(added)} pairs)")


def add_premise_swaps(path: Path, rng: random.Random) -> None:
    """Append, for each true rewrite, the same pair with one name of the question and the claim replaced.

    SQuAD 2.0 makes its unanswerable questions so: a name of an answerable question swapped for another of the
    document ("What Frank led Norman forces?"). A claim that takes the false premise up ("The Tallinn office
    manager is Rui Figueiredo" against "The Lisbon office manager is ...") is not supported by the quote, and
    the hard checks excuse it (the question gives the name), so only the judge and the calibration can see it.
    The pair keeps its question's split.
    """

    def swap(row: dict[str, Any], doc: str) -> dict[str, Any] | None:
        names = [n for n in dict.fromkeys(names_in(row["question"])) if len(n) > 2 and n in row["quote"]]
        names = [n for n in names if re.search(rf"\b{re.escape(n)}\b", row["claim"])]
        others = [
            n for n in dict.fromkeys(names_in(doc))
            if len(n) > 2 and "\n" not in n and n not in row["quote"] and n not in row["question"] and n not in row["claim"]
            and re.search(rf"[a-z,] {re.escape(n)}\b", doc)  # a name inside a sentence, not a capitalised opener
        ]  # fmt: skip
        if not names or not others:
            return None
        name, other = rng.choice(names), rng.choice(others)
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        return {"question": pattern.sub(other, row["question"]), "claim": pattern.sub(other, row["claim"])}

    _append_derived(path, "swap_premise", swap)


def add_other_sentences(path: Path, rng: random.Random) -> None:
    """Append, for each question with a verbatim pair, another sentence of its document that lacks the answer."""

    def other_sentence(row: dict[str, Any], doc: str) -> dict[str, Any] | None:
        sentences = [" ".join(doc[s:e].split()) for s, e in sentence_spans(doc)]
        answer_words = {w for w in re.findall(r"\w+", row["quote"].lower()) if len(w) > 3}
        others = [
            s for s in sentences
            if len(s.split()) >= 8 and s != row["quote"] and len(answer_words & set(re.findall(r"\w+", s.lower()))) <= 2
        ]  # fmt: skip
        if not others:
            return None
        other = rng.choice(others)
        return {"claim": other, "quote": other}

    _append_derived(path, "other_sentence", other_sentence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "evals" / "support.jsonl")
    parser.add_argument("--squad", type=int, default=130, help="answerable SQuAD questions to draw")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--add-other-sentences", action="store_true", help="append other_sentence negatives to --out (no model needed)"
    )
    parser.add_argument(
        "--add-premise-swaps", action="store_true", help="append swap_premise negatives to --out (no model needed)"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.add_other_sentences:
        add_other_sentences(args.out, rng)
        return
    if args.add_premise_swaps:
        add_premise_swaps(args.out, rng)
        return
    rewrite = Rewriter()
    rows: list[dict[str, object]] = []

    def add(source: str, qid: str, question: str, claim: str, quote: str, label: bool, how: str) -> None:
        rows.append(
            {
                "id": f"{qid}-{how}",
                "source": source,
                "split": split_of(question),
                "question": question,
                "claim": claim,
                "quote": quote,
                "label": label,
                "how": how,
            }
        )

    def build(source: str, qid: str, question: str, answer: str, quote: str, doc_text: str, pool: list[str]) -> None:
        claim = rewrite(question, answer)
        if not claim or not contains(claim, answer):
            print(f"skip {qid}: rewrite {claim!r} lacks {answer!r}", file=sys.stderr)
            return
        add(source, qid, question, claim, quote, True, "answer")
        same = [
            p for p in pool if kind_of(p) == kind_of(answer) and not contains(p, answer) and not contains(answer, p)
        ]
        if same:
            wrong = rng.choice(same)
            false_claim = rewrite(question, wrong)
            if false_claim and contains(false_claim, wrong) and not contains(false_claim, answer):
                add(source, qid, question, false_claim, quote, False, "distractor")
        for how, text in variants(rng, claim, quote, doc_text, answer):
            add(source, qid, question, text, quote, False, how)
        if rng.random() < 0.35:
            add(source, qid, question, quote, quote, True, "verbatim")

    seeds_items = [json.loads(line) for line in (REPO / "evals" / "seeds.jsonl").read_text().splitlines() if line]
    by_doc: dict[str, list[str]] = {}
    for item in seeds_items:
        if item["answerable"] and item["answer"]:
            by_doc.setdefault(item["gold"][0]["doc_id"], []).append(item["answer"])
    for item in seeds_items:
        if not item["answerable"] or not item["answer"] or item["kind"] == "multi_doc":
            continue
        gold = item["gold"][0]
        text = (REPO / "seeds" / gold["doc_id"]).read_text(encoding="utf-8")
        start = text.find(gold["quote"])
        quote = sentence_with(text, start, start + len(gold["quote"]))
        pool = [a for d, answers in by_doc.items() for a in answers if d == gold["doc_id"]] + names_in(text)
        build("seeds", item["id"], item["question"], item["answer"], quote, text, pool)
        print(f"seeds {item['id']}: {len(rows)} rows", file=sys.stderr)

    squad = json.loads(Path(REPO.parent / "shared" / "data" / "squad-v2-dev-part1.json").read_text())
    questions = []
    for article in squad["data"]:
        article_text = "\n\n".join(p["context"] for p in article["paragraphs"])
        answers = [qa["answers"][0]["text"] for p in article["paragraphs"] for qa in p["qas"] if qa["answers"]]
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa["answers"] and not qa.get("is_impossible"):
                    questions.append((qa, paragraph["context"], article_text, answers))
    for qa, context, article_text, answers in rng.sample(questions, args.squad):
        gold = qa["answers"][0]
        quote = sentence_with(context, gold["answer_start"], gold["answer_start"] + len(gold["text"]))
        build("squad", qa["id"], qa["question"], gold["text"], quote, article_text, answers)
        print(f"squad {qa['id']}: {len(rows)} rows", file=sys.stderr)

    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    labels = [r["label"] for r in rows]
    print(f"{len(rows)} pairs ({sum(labels)} supported, {len(labels) - sum(labels)} not) -> {args.out}")


if __name__ == "__main__":
    main()
