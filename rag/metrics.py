"""Evaluation metrics for cited answers: answer text, retrieval, abstention, citations and cost.

Pure functions over plain values (stdlib only). Each docstring is the metric's definition as the
evaluation report states it, edge cases included.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable
from typing import TypedDict

# (doc_id, start, end): the half-open character range text[start:end] of a document.
Span = tuple[str, int, int]
# entails(premise, hypothesis): True when the premise supports the hypothesis (an NLI model or an LLM judge).
Entails = Callable[[str, str], bool]

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# "2,000" and "2000" are the same number; a comma not followed by exactly three digits is punctuation.
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


# --- Answer text (SQuAD v2.0 official semantics) ---------------------------------------------------------------


def normalize_answer(s: str) -> str:
    """SQuAD v2.0 normalisation: lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    no_punctuation = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", no_punctuation).split())


def _gold_answers(references: list[str]) -> list[str]:
    """The references SQuAD scores against: those with a non-empty normalised form, else [""] (unanswerable)."""
    return [ref for ref in references if normalize_answer(ref)] or [""]


def exact_match(prediction: str, references: list[str]) -> float:
    """Exact match: 1.0 if the normalised prediction equals some normalised reference, else 0.0 (max over references).

    As in the official SQuAD v2.0 script, references that normalise to "" are ignored; with none left the
    question is unanswerable and the score is 1.0 iff the normalised prediction is "" (the harness passes an
    abstention as ""), so abstaining on an unanswerable question scores 1.0 and any answer scores 0.0.
    """
    pred = normalize_answer(prediction)
    return max(float(pred == normalize_answer(gold)) for gold in _gold_answers(references))


def _f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    """SQuAD token F1 of one prediction against one reference, both already normalised and split."""
    if not prediction_tokens or not gold_tokens:
        # A no-answer on either side: F1 is 1 if both are no-answers, 0 otherwise.
        return float(prediction_tokens == gold_tokens)
    common = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(prediction_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: list[str]) -> float:
    """SQuAD token F1, max over references: harmonic mean of token precision and recall of the normalised texts.

    Tokens are the whitespace-separated words of the normalised strings; the overlap counts shared tokens with
    multiplicity (bag-of-words intersection). Precision = overlap / prediction tokens, recall = overlap /
    reference tokens, F1 = 0.0 when the overlap is empty. Unanswerable (no reference with a non-empty
    normalised form): 1.0 iff the normalised prediction is empty, else 0.0, as in ``exact_match``.
    """
    pred_tokens = normalize_answer(prediction).split()
    return max(_f1(pred_tokens, normalize_answer(gold).split()) for gold in _gold_answers(references))


def contains_answer(prediction: str, references: list[str]) -> float:
    """1.0 if some normalised reference occurs in the normalised prediction as a run of whole words, else 0.0.

    Meant for long generated answers scored against short SQuAD spans. Matching whole words (the reference's
    tokens as a contiguous run of the prediction's tokens) rather than raw characters keeps "3" from matching
    "1983". Unanswerable (no reference with a non-empty normalised form): 1.0 iff the normalised prediction is
    empty, as in ``exact_match``.
    """
    pred = normalize_answer(prediction)
    golds = [normalize_answer(gold) for gold in _gold_answers(references)]
    if golds == [""]:
        return float(pred == "")
    # Padding with spaces turns a substring test on normalised (single-spaced) text into a whole-word test.
    return float(any(f" {gold} " in f" {pred} " for gold in golds))


def _keyword_text(s: str) -> str:
    """Lower-case, thousands separators removed, whitespace collapsed: the form keywords are compared in."""
    return " ".join(_THOUSANDS_SEPARATOR.sub("", s.lower()).split())


def _keyword_pattern(alternative: str) -> str:
    """A regex for one keyword alternative; a number may not be part of a longer number ("200" is not in "2000")."""
    text = _keyword_text(alternative)
    before = r"(?<!\d)" if text[0].isdigit() else ""
    after = r"(?!\d)" if text[-1].isdigit() else ""
    return before + re.escape(text) + after


def keyword_accuracy(answer: str, keywords: list[str]) -> float | None:
    """1.0 if every keyword occurs in the answer, else 0.0; with no keywords, None (nothing to measure).

    A keyword matches when any of its ``|``-separated alternatives ("Darchiyev|Darchiev") occurs as a
    case-insensitive substring of the answer, after removing thousands separators from both ("2,000" matches
    "2000") and collapsing whitespace. A keyword that starts or ends with a digit must not continue a longer
    number in the answer ("200" does not match "2000"). Raises ValueError for a keyword with no non-empty
    alternative, which would otherwise match every answer.
    """
    if not keywords:
        return None
    # Every keyword is checked before any is matched, so a bad keyword fails on every answer, not only some.
    patterns = [[_keyword_pattern(alt) for alt in keyword.split("|") if alt.strip()] for keyword in keywords]
    for keyword, alternatives in zip(keywords, patterns, strict=True):
        if not alternatives:
            raise ValueError(f"keyword {keyword!r} has no non-empty alternative; remove it or give the expected word")
    text = _keyword_text(answer)
    return float(all(any(re.search(pattern, text) for pattern in alternatives) for alternatives in patterns))


# "Yes", "No,", "No —", "no.": the word yes/no opening the text, after any quotes or punctuation.
_LEADING_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)
# "According to the report, no, ..." / "In short: yes.": yes/no as an interjection, followed by punctuation.
_YES_NO_INTERJECTION = re.compile(r"\b(yes|no)\b(?=\s*[,.;:!\u2013\u2014])", re.IGNORECASE)
_FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?](?=\s|$)|$)", re.DOTALL)
# Cue words of a negation; "n't" also inside a word ("didn't", "wasn’t").
_NEGATION = re.compile(r"\b(?:no|not|never|neither|nor|none|nobody|nothing)\b|n['\u2019]t\b", re.IGNORECASE)


def leading_yes_no(text: str) -> str | None:
    """The word "yes" or "no" that ``text`` starts with, lower-cased, else None.

    Case-insensitive, after any quotes or punctuation and with any punctuation after it: "Yes", "No,", "No —",
    "No." all count; "Not" and "Nobody" are not "no".
    """
    match = _LEADING_YES_NO.match(text)
    return match.group(1).lower() if match else None


def answer_yes_no(answer: str) -> str | None:
    """The yes/no an answer gives: its leading yes/no (``leading_yes_no``), else the one yes/no its first sentence
    says as an interjection (the word followed by punctuation: "In short, no, he did not."); None when it says
    neither, or both."""
    leading = leading_yes_no(answer)
    if leading is not None:
        return leading
    first = _FIRST_SENTENCE.match(answer.strip())
    said = {word.lower() for word in _YES_NO_INTERJECTION.findall(first.group(0) if first else "")}
    return said.pop() if len(said) == 1 else None


def yes_no_correct(answer: str, reference: str) -> float:
    """1.0 if the answer gives (``answer_yes_no``) the yes/no the reference starts with, else 0.0.

    An answer that gives neither (an abstention is passed as "") scores 0.0. Raises ValueError when the
    reference does not start with yes or no, which would make every answer wrong.
    """
    expected = leading_yes_no(reference)
    if expected is None:
        raise ValueError(f"reference {reference[:60]!r} of a yes/no question must start with 'Yes' or 'No'")
    return float(answer_yes_no(answer) == expected)


def corrects_premise(answer: str, citations: int) -> bool:
    """True when an answer rejects a question's false premise: it cites at least one passage and contains a
    negation (no, not, never, neither, nor, none, nobody, nothing, n't; a leading "No" included).

    A cue-word approximation: it cannot tell a negation of the premise from another negation in an answer
    that accepts the premise, so the answers it passes are worth a look.
    """
    return citations > 0 and _NEGATION.search(answer) is not None


# --- Retrieval against gold support ----------------------------------------------------------------------------


def overlaps(a: Span, b: Span) -> bool:
    """True when both spans are in the same document and their half-open ranges share a character."""
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def gold_rank(retrieved: list[Span], gold: list[Span]) -> int | None:
    """1-based rank of the first retrieved span that overlaps any gold span; None if none does (or gold is empty)."""
    for rank, span in enumerate(retrieved, start=1):
        if any(overlaps(span, g) for g in gold):
            return rank
    return None


def recall_at_k(ranks: list[int | None], k: int) -> float:
    """Share of items whose gold rank is at most ``k`` (a None rank is a miss); 0.0 for no items."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not ranks:
        return 0.0
    return sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks)


def mean_reciprocal_rank(ranks: list[int | None]) -> float:
    """Mean over items of 1/rank of the first gold hit (0 for a None rank); 0.0 for no items."""
    if not ranks:
        return 0.0
    return sum(1 / rank for rank in ranks if rank is not None) / len(ranks)


# --- Abstention ------------------------------------------------------------------------------------------------


class AbstentionScores(TypedDict):
    """Abstention as a detector of unanswerable questions; counts are per question."""

    precision: float | None
    recall: float | None
    f1: float | None
    tp: int
    fp: int
    fn: int
    tn: int


def abstention_scores(abstained: list[bool], unanswerable: list[bool]) -> AbstentionScores:
    """Precision, recall and F1 of abstaining, with unanswerable questions as the positive class.

    tp = abstained on an unanswerable question, fp = abstained on an answerable one, fn = answered an
    unanswerable one, tn = answered an answerable one. precision = tp / (tp + fp), recall = tp / (tp + fn),
    f1 = 2tp / (2tp + fp + fn) (equal to 2PR / (P + R) where both are defined, and 0.0 when tp = 0).
    A metric with nothing to measure is None, never a perfect score: precision is None with no abstentions,
    recall is None with no unanswerable question, and f1 is None when tp + fp + fn = 0 (every question
    answerable and answered, or no questions). Hence answering every question of a set with unanswerable
    ones scores recall 0.0 and f1 0.0 (precision None), and any abstention on an all-answerable set scores
    precision 0.0 and f1 0.0 (recall None).
    Raises ValueError when the two lists differ in length.
    """
    if len(abstained) != len(unanswerable):
        raise ValueError(
            f"abstained has {len(abstained)} items but unanswerable has {len(unanswerable)}; pass one flag per question"
        )
    tp = sum(1 for a, u in zip(abstained, unanswerable, strict=True) if a and u)
    fp = sum(1 for a, u in zip(abstained, unanswerable, strict=True) if a and not u)
    fn = sum(1 for a, u in zip(abstained, unanswerable, strict=True) if not a and u)
    tn = len(abstained) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


# --- Citations -------------------------------------------------------------------------------------------------


def citation_overlap(citations: list[Span], gold: list[Span]) -> tuple[float, float]:
    """(precision, recall) of cited spans against gold support spans, by character overlap (no judge).

    precision = share of citations that overlap some gold span; recall = share of gold spans overlapped by
    some citation. As in ALCE (``alce_citation_scores``), an empty denominator scores 0.0, never a vacuous 1.0:
    no citations gives (0.0, 0.0), and so does no gold (no citation can overlap it), both empty included.
    Average it over answerable questions only; unanswerable ones are scored by ``abstention_scores``.
    """
    precision = sum(1 for c in citations if any(overlaps(c, g) for g in gold)) / len(citations) if citations else 0.0
    recall = sum(1 for g in gold if any(overlaps(c, g) for c in citations)) / len(gold) if gold else 0.0
    return precision, recall


class AlceScores(TypedDict):
    """ALCE citation recall and precision of one answer, with the counts they are ratios of."""

    recall: float
    precision: float
    sentences: int
    supported_sentences: int
    citations: int
    correct_citations: int


def alce_citation_scores(sentences: list[tuple[str, list[str]]], entails: Entails) -> AlceScores:
    """ALCE citation recall and precision (Gao et al. 2023, section 2.3 and their eval.py) of one answer.

    ``sentences`` holds each answer sentence (citation markers removed) with the texts of the passages it
    cites; a set of citations is judged by ``entails(premise, hypothesis)`` with the cited texts joined by a
    space as the premise and the sentence as the hypothesis.
    Citation recall: a sentence is supported iff it has at least one citation and its joined citations
    entail it; recall = supported sentences / sentences.
    Citation precision: a citation c of sentence s is correct iff s is supported and c is not irrelevant,
    where c is irrelevant iff c alone does not entail s but the other citations of s, joined, still do. As
    in ALCE's code, the sole citation of a supported sentence is correct (never tested against an empty
    premise). precision = correct citations / citations.
    A sentence without citations is unsupported and adds nothing to precision's numerator or denominator.
    No sentences gives recall 0.0 and precision 0.0; no citations at all gives precision 0.0.
    Each distinct (premise, hypothesis) pair is judged once per call, in a fixed order: sentence by sentence,
    the joined citations first, then for each citation in order, it alone and (only if it fails) the others.
    """
    verdicts: dict[tuple[str, str], bool] = {}

    def supports(passages: list[str], sentence: str) -> bool:
        key = (" ".join(passages), sentence)
        if key not in verdicts:
            verdicts[key] = bool(entails(*key))
        return verdicts[key]

    supported = cited = correct = 0
    for sentence, passages in sentences:
        cited += len(passages)
        if not passages or not supports(passages, sentence):
            continue
        supported += 1
        # A sole citation alone is the full set, which entails s, so it is correct as in ALCE's code
        # (which skips the check), and the cache answers it without asking about an empty premise.
        for i, passage in enumerate(passages):
            if supports([passage], sentence) or not supports(passages[:i] + passages[i + 1 :], sentence):
                correct += 1
    return {
        "recall": supported / len(sentences) if sentences else 0.0,
        "precision": correct / cited if cited else 0.0,
        "sentences": len(sentences),
        "supported_sentences": supported,
        "citations": cited,
        "correct_citations": correct,
    }


# --- Cost ------------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (q in 0..100) by linear interpolation between closest ranks (numpy's default).

    With the values sorted as v[0..n-1], the position is p = (n - 1) * q / 100 and the result is
    v[floor(p)] + (v[ceil(p)] - v[floor(p)]) * (p - floor(p)). Raises ValueError for no values or q outside 0..100.
    """
    if not values:
        raise ValueError("percentile of no values is undefined; pass at least one value")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Summary(TypedDict):
    """Distribution of a cost (latency, tokens) over the evaluated questions."""

    p50: float
    p95: float
    mean: float
    n: int


def summary(values: list[float]) -> Summary:
    """Median (p50), 95th percentile (p95, both as ``percentile``), arithmetic mean and count; ValueError if empty."""
    if not values:
        raise ValueError("summary of no values is undefined; pass at least one value")
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": math.fsum(values) / len(values),
        "n": len(values),
    }
