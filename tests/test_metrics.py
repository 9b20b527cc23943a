"""Evaluation metrics against hand-computed cases, edge-case conventions included."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from rag.metrics import (
    abstention_scores,
    alce_citation_scores,
    answer_yes_no,
    citation_overlap,
    contains_answer,
    corrects_premise,
    exact_match,
    gold_rank,
    keyword_accuracy,
    leading_yes_no,
    mean_reciprocal_rank,
    normalize_answer,
    overlaps,
    percentile,
    recall_at_k,
    summary,
    token_f1,
    yes_no_correct,
)

# --- Answer text -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The  Cat!", "cat"),
        ("An apple, a day.", "apple day"),
        ("Adm. Alexander\tMoiseyev", "adm alexander moiseyev"),
        ("theatre Anatomy", "theatre anatomy"),  # articles are whole words only
        ("Don't", "dont"),  # punctuation is dropped, not replaced by a space
        ("", ""),
    ],
)
def test_normalize_answer_follows_squad(raw: str, normalised: str) -> None:
    assert normalize_answer(raw) == normalised


def test_exact_match_normalises_and_takes_the_best_reference() -> None:
    assert exact_match("the Eiffel Tower!", ["Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    assert exact_match("Paris", ["London", "paris."]) == 1.0


def test_token_f1_on_partial_overlaps() -> None:
    # pred [big, red, dog] vs ref [red, dog, barks]: 2 shared, P = R = 2/3, F1 = 2/3
    assert token_f1("the big red dog", ["red dog barks"]) == pytest.approx(2 / 3)
    # pred [alexander, moiseyev] vs ref [adm, alexander, moiseyev]: P = 2/2, R = 2/3, F1 = 2*1*(2/3)/(5/3) = 0.8
    assert token_f1("Alexander Moiseyev", ["Adm. Alexander Moiseyev"]) == pytest.approx(0.8)
    # shared tokens count with multiplicity: min(3, 1) = 1, P = 1/3, R = 1, F1 = (2/3)/(4/3) = 0.5
    assert token_f1("dog dog dog", ["dog"]) == pytest.approx(0.5)
    # max over references: 0 against "blue cat", P = 1, R = 2/3 -> 0.8 against "red dog barks"
    assert token_f1("red dog", ["blue cat", "red dog barks"]) == pytest.approx(0.8)
    assert token_f1("blue cat", ["red dog"]) == 0.0


@pytest.mark.parametrize("metric", [exact_match, token_f1, contains_answer])
def test_unanswerable_scores_one_only_for_an_abstention(metric: Callable[[str, list[str]], float]) -> None:
    assert metric("", []) == 1.0
    assert metric("The.", []) == 1.0  # normalises to ""
    assert metric("Paris", []) == 0.0
    # references that normalise to "" are dropped, as in the official script: these are unanswerable too
    assert metric("", ["", "  ", "a!"]) == 1.0
    assert metric("Paris", ["", "the"]) == 0.0
    # ... but a real reference left over makes the question answerable, and "" no longer scores
    assert metric("", ["!", "Paris"]) == 0.0


def test_contains_answer_matches_whole_words_of_the_normalised_text() -> None:
    assert contains_answer("The tower stands in Paris, France.", ["London", "paris"]) == 1.0
    assert contains_answer("The Eiffel Tower opened in 1889.", ["Eiffel Tower"]) == 1.0
    assert contains_answer("The tower stands in Paris.", ["London"]) == 0.0
    assert contains_answer("It opened in 1983.", ["3"]) == 0.0
    assert contains_answer("It opened in 1983.", ["1983"]) == 1.0


def test_keyword_accuracy_alternatives_case_and_numbers() -> None:
    assert keyword_accuracy("Ambassador Darchiev arrived.", ["Darchiyev|Darchiev"]) == 1.0
    assert keyword_accuracy("Ambassador Darchiyev arrived.", ["darchiev | DARCHIYEV"]) == 1.0
    assert keyword_accuracy("NORTHERN\nfleet", ["Northern Fleet"]) == 1.0
    assert keyword_accuracy("About 2000 troops.", ["2,000"]) == 1.0
    assert keyword_accuracy("About 2,000 troops.", ["2000"]) == 1.0
    assert keyword_accuracy("It cost $1,234,567.", ["1234567"]) == 1.0
    assert keyword_accuracy("About 20000 troops.", ["2000"]) == 0.0  # a number is not part of a longer one
    assert keyword_accuracy("About 12,000 troops.", ["2,000"]) == 0.0
    assert keyword_accuracy("Moiseyev heads the fleet.", ["Moiseyev", "fleet"]) == 1.0
    assert keyword_accuracy("Moiseyev heads the fleet.", ["Moiseyev", "Murmansk"]) == 0.0


def test_keyword_accuracy_without_keywords_is_null_not_perfect() -> None:
    assert keyword_accuracy("anything", []) is None
    assert keyword_accuracy("", []) is None


def test_keyword_accuracy_rejects_an_empty_keyword() -> None:
    with pytest.raises(ValueError, match="'\\|'"):
        keyword_accuracy("anything", ["Moiseyev", "|"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("yes, he did [1].", "yes"),
        ("No,", "no"),
        ("No — Kerry met Putin.", "no"),
        ("No.", "no"),
        ('"No," the report says.', "no"),
        ("NO Kerry met Putin", "no"),
        ("Not at all.", None),
        ("Nobody refused.", None),
        ("Yesterday Kerry met Putin.", None),
        ("Kerry met Putin. No.", None),
        ("", None),
    ],
)
def test_leading_yes_no(text: str, expected: str | None) -> None:
    assert leading_yes_no(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("No, Kerry met Putin for four hours [1].", "no"),
        ("According to the report, no, he did not refuse.", "no"),
        ("In short: yes. The talks lasted four hours.", "yes"),
        ("There is no evidence that he refused.", None),  # "no" not followed by punctuation: not an answer
        ("Kerry met Putin. So, no.", None),  # only the first sentence counts
        ("Yes and no: it depends.", "yes"),  # the leading word wins
        ("Some say yes, others say no.", None),  # both
        ("The documents do not say.", None),
    ],
)
def test_answer_yes_no_reads_the_start_or_the_first_sentence(answer: str, expected: str | None) -> None:
    assert answer_yes_no(answer) == expected


def test_yes_no_correct_compares_with_the_reference() -> None:
    assert yes_no_correct("No, he met Putin [1].", "No, Kerry met Putin for four hours.") == 1.0
    assert yes_no_correct("no — he met him", "No.") == 1.0
    assert yes_no_correct("Yes, he refused.", "No, Kerry met Putin.") == 0.0
    assert yes_no_correct("Kerry met Putin for four hours.", "No, Kerry met Putin.") == 0.0  # says neither
    assert yes_no_correct("", "Yes") == 0.0  # an abstention
    with pytest.raises(ValueError, match="must start with 'Yes' or 'No'"):
        yes_no_correct("Yes", "Kerry met Putin.")


def test_corrects_premise_needs_a_negation_and_a_citation() -> None:
    assert corrects_premise("No, Kerry met Putin for four hours [1].", citations=1)
    assert corrects_premise("Kerry did not refuse; he met Putin [1].", citations=1)
    assert corrects_premise("Kerry didn’t refuse [1].", citations=1)
    assert corrects_premise("Moiseyev never commanded the Pacific Fleet [1].", citations=2)
    assert not corrects_premise("No, Kerry met Putin.", citations=0)  # an uncited correction is not verified
    assert not corrects_premise("Kerry refused because he was busy [1].", citations=1)  # accepts the premise
    assert not corrects_premise("Kerry's notebook [1].", citations=1)  # "notebook" is not "not"


# --- Retrieval ---------------------------------------------------------------------------------------------------


def test_overlaps_uses_half_open_ranges_in_one_document() -> None:
    assert overlaps(("a.txt", 0, 10), ("a.txt", 9, 20))
    assert overlaps(("a.txt", 0, 100), ("a.txt", 40, 50))  # containment
    assert not overlaps(("a.txt", 0, 10), ("a.txt", 10, 20))  # touching is not overlapping
    assert not overlaps(("a.txt", 0, 10), ("b.txt", 0, 10))


def test_gold_rank_is_the_first_overlapping_retrieved_span() -> None:
    retrieved = [("a.txt", 0, 5), ("b.txt", 0, 100), ("a.txt", 50, 60), ("a.txt", 65, 80)]
    assert gold_rank(retrieved, [("a.txt", 55, 70)]) == 3
    assert gold_rank(retrieved, [("c.txt", 0, 10), ("b.txt", 99, 120)]) == 2
    assert gold_rank(retrieved, [("a.txt", 5, 50)]) is None
    assert gold_rank(retrieved, []) is None
    assert gold_rank([], [("a.txt", 0, 5)]) is None


def test_recall_at_k_and_mrr_by_hand() -> None:
    ranks = [1, 3, None, 2]
    assert recall_at_k(ranks, 1) == 0.25
    assert recall_at_k(ranks, 2) == 0.5
    assert recall_at_k(ranks, 3) == 0.75
    assert recall_at_k(ranks, 100) == 0.75  # None is a miss at any k
    # (1/1 + 1/3 + 0 + 1/2) / 4 = (11/6) / 4 = 11/24
    assert mean_reciprocal_rank(ranks) == pytest.approx(11 / 24)
    assert recall_at_k([], 5) == 0.0
    assert mean_reciprocal_rank([]) == 0.0
    with pytest.raises(ValueError, match="k must be at least 1"):
        recall_at_k(ranks, 0)


# --- Abstention --------------------------------------------------------------------------------------------------


def test_abstention_scores_by_hand() -> None:
    # tp: items 0 and 4, fp: item 1, fn: item 2, tn: item 3 -> P = R = F1 = 2/3
    scores = abstention_scores([True, True, False, False, True], [True, False, True, False, True])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (2, 1, 1, 1)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_abstention_with_nothing_to_measure_is_null_not_perfect() -> None:
    # all answerable, nothing abstained: no abstention to judge, no unanswerable question to find
    scores = abstention_scores([False, False, False], [False, False, False])
    assert scores == {"precision": None, "recall": None, "f1": None, "tp": 0, "fp": 0, "fn": 0, "tn": 3}
    assert abstention_scores([], []) == {
        "precision": None,
        "recall": None,
        "f1": None,
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "tn": 0,
    }


def test_abstention_on_an_all_answerable_set_scores_zero_precision_and_no_recall() -> None:
    scores = abstention_scores([True, False], [False, False])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, None, 0.0)
    assert scores["fp"] == 1


def test_abstaining_everywhere_has_full_recall_and_the_base_rate_as_precision() -> None:
    # tp = 2, fp = 2: P = 1/2, R = 1, F1 = 2 * 1/2 * 1 / (3/2) = 2/3
    scores = abstention_scores([True] * 4, [True, False, False, True])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (2, 2, 0, 0)
    assert scores["precision"] == 0.5
    assert scores["recall"] == 1.0
    assert scores["f1"] == pytest.approx(2 / 3)


def test_no_abstentions_with_unanswerable_questions_scores_zero_recall_and_no_precision() -> None:
    scores = abstention_scores([False, False, False], [True, False, False])
    assert scores == {"precision": None, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1, "tn": 2}


def test_abstention_f1_is_2tp_over_2tp_fp_fn() -> None:
    # tp 1, fp 3, fn 0: P = 1/4, R = 1, 2PR / (P + R) = (1/2) / (5/4) = 2/5 = 2 * 1 / (2 + 3 + 0)
    scores = abstention_scores([True, True, True, True, False], [True, False, False, False, False])
    assert (scores["precision"], scores["recall"]) == (0.25, 1.0)
    assert scores["f1"] == pytest.approx(2 / 5)


def test_abstention_lists_of_different_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="abstained has 2 items but unanswerable has 3"):
        abstention_scores([True, False], [True, False, False])


# --- Citations: gold overlap -------------------------------------------------------------------------------------


def test_citation_overlap_by_hand() -> None:
    citations = [("a.txt", 0, 10), ("a.txt", 8, 12), ("a.txt", 100, 110), ("b.txt", 0, 5)]
    gold = [("a.txt", 5, 20), ("b.txt", 3, 4), ("c.txt", 0, 50)]
    # citations 1, 2 hit gold 1 and citation 4 hits gold 2: precision 3/4; gold 1 and 2 are covered: recall 2/3
    precision, recall = citation_overlap(citations, gold)
    assert precision == pytest.approx(3 / 4)
    assert recall == pytest.approx(2 / 3)


def test_citation_overlap_empty_sides_score_zero() -> None:
    assert citation_overlap([], [("a.txt", 0, 10)]) == (0.0, 0.0)
    assert citation_overlap([("a.txt", 0, 10)], []) == (0.0, 0.0)
    assert citation_overlap([], []) == (0.0, 0.0)


# --- Citations: ALCE ---------------------------------------------------------------------------------------------


class WordJudge:
    """Fake entailment: the premise entails the hypothesis iff it contains every word of it; records each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, premise: str, hypothesis: str) -> bool:
        self.calls.append((premise, hypothesis))
        words = set(re.findall(r"\w+", premise.lower()))
        return set(re.findall(r"\w+", hypothesis.lower())) <= words


def test_alce_irrelevant_second_citation_halves_precision() -> None:
    judge = WordJudge()
    sentence = "Moiseyev heads the fleet"
    p1, p2 = "Moiseyev heads the fleet in Murmansk", "Lavrov spoke in Istanbul"
    scores = alce_citation_scores([(sentence, [p1, p2])], judge)
    # supported (recall 1); p1 alone entails (correct); p2 alone does not but p1 without it does (irrelevant)
    assert scores == {
        "recall": 1.0,
        "precision": 0.5,
        "sentences": 1,
        "supported_sentences": 1,
        "citations": 2,
        "correct_citations": 1,
    }
    # the check "p2's others (= p1) entail" is the cached verdict on p1 alone
    assert judge.calls == [(f"{p1} {p2}", sentence), (p1, sentence), (p2, sentence)]


def test_alce_citations_needed_together_are_both_correct() -> None:
    judge = WordJudge()
    sentence = "Moiseyev met Lavrov"
    p1, p2 = "Moiseyev arrived", "he met Lavrov"
    scores = alce_citation_scores([(sentence, [p1, p2])], judge)
    assert (scores["recall"], scores["precision"], scores["correct_citations"]) == (1.0, 1.0, 2)
    # joint, p1 alone, p1's others (= p2 alone); p2's two checks are both cached
    assert judge.calls == [(f"{p1} {p2}", sentence), (p1, sentence), (p2, sentence)]


def test_alce_unsupported_sentence_has_no_correct_citation() -> None:
    judge = WordJudge()
    scores = alce_citation_scores([("Moiseyev resigned", ["Moiseyev arrived", "Lavrov spoke"])], judge)
    assert (scores["recall"], scores["precision"], scores["citations"], scores["correct_citations"]) == (0.0, 0.0, 2, 0)
    assert len(judge.calls) == 1  # no precision checks once the joint set fails


def test_alce_sentence_without_citations_counts_for_recall_only() -> None:
    judge = WordJudge()
    scores = alce_citation_scores([("Moiseyev arrived", ["Moiseyev arrived today"]), ("Lavrov spoke", [])], judge)
    # recall 1/2 over both sentences; precision 1/1 over the one citation
    assert (scores["recall"], scores["precision"], scores["citations"]) == (0.5, 1.0, 1)
    assert judge.calls == [("Moiseyev arrived today", "Moiseyev arrived")]


def test_alce_single_citation_of_a_supported_sentence_is_correct_and_judged_once() -> None:
    calls: list[tuple[str, str]] = []
    # The judge would call an empty premise entailing: ALCE never asks, so neither do we.
    verdicts = {("Moiseyev heads the fleet.", "Moiseyev heads it"): True, ("", "Moiseyev heads it"): True}

    def judge(premise: str, hypothesis: str) -> bool:
        calls.append((premise, hypothesis))
        return verdicts[(premise, hypothesis)]

    scores = alce_citation_scores([("Moiseyev heads it", ["Moiseyev heads the fleet."])], judge)
    assert (scores["precision"], scores["correct_citations"], scores["recall"]) == (1.0, 1, 1.0)
    assert calls == [("Moiseyev heads the fleet.", "Moiseyev heads it")]


def test_alce_answer_level_scores_and_caching_across_sentences() -> None:
    judge = WordJudge()
    sentences = [
        ("Moiseyev heads the fleet", ["Moiseyev heads the fleet in Murmansk", "Lavrov spoke in Istanbul"]),
        ("Moiseyev resigned", ["Moiseyev arrived", "Lavrov spoke"]),
        ("Lavrov spoke", []),
        ("Moiseyev heads the fleet", ["Moiseyev heads the fleet in Murmansk", "Lavrov spoke in Istanbul"]),
    ]
    scores = alce_citation_scores(sentences, judge)
    # supported: sentences 1 and 4 of 4 -> recall 1/2; correct: 1 + 0 + 1 of 2 + 2 + 2 citations -> precision 1/3
    assert scores["recall"] == 0.5
    assert scores["precision"] == pytest.approx(1 / 3)
    assert (scores["supported_sentences"], scores["citations"], scores["correct_citations"]) == (2, 6, 2)
    assert len(judge.calls) == 4  # 3 for the first sentence, 1 for the second, the repeat is all cached


def test_alce_empty_answer_scores_zero() -> None:
    judge = WordJudge()
    assert alce_citation_scores([], judge) == {
        "recall": 0.0,
        "precision": 0.0,
        "sentences": 0,
        "supported_sentences": 0,
        "citations": 0,
        "correct_citations": 0,
    }
    no_citations = alce_citation_scores([("Lavrov spoke", [])], judge)
    assert (no_citations["recall"], no_citations["precision"]) == (0.0, 0.0)
    assert judge.calls == []


# --- Cost --------------------------------------------------------------------------------------------------------


def test_percentile_interpolates_linearly() -> None:
    values = [50.0, 15.0, 40.0, 20.0, 35.0]  # sorted: 15 20 35 40 50
    assert percentile(values, 0) == 15.0
    assert percentile(values, 50) == 35.0  # position 2
    assert percentile(values, 100) == 50.0
    assert percentile(values, 40) == pytest.approx(29.0)  # position 1.6: 20 + (35 - 20) * 0.6
    assert percentile(values, 95) == pytest.approx(48.0)  # position 3.8: 40 + (50 - 40) * 0.8
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_no_values_and_q_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="got 101"):
        percentile([1.0], 101)


def test_summary_by_hand() -> None:
    # p50 at position 1.5: 2.5; p95 at position 2.85: 3 + 0.85 = 3.85; mean 10 / 4
    result = summary([4.0, 1.0, 3.0, 2.0])
    assert result == {"p50": pytest.approx(2.5), "p95": pytest.approx(3.85), "mean": 2.5, "n": 4}
    with pytest.raises(ValueError, match="no values"):
        summary([])
