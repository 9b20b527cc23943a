"""The support verifier: hard checks, the logprob reading, the support set and its report.

The judge's quality on the real bundled model is measured in tests/test_support_quality.py; here the logic
around it runs against a fake OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.citations import unmatched_question_entities
from rag.errors import InputError, LLMError
from rag.llm import ChatModel, Judge
from rag.support import (
    Judged,
    SupportPair,
    evaluate_support,
    fit_calibration,
    fit_threshold,
    load_support_set,
    precision_recall,
)
from rag.verify import (
    CALIBRATION,
    contradiction,
    hard_check,
    is_verbatim,
    lacks_asked_kind,
    modifier_swapped,
    names_reordered,
    negates_asked,
    negation_unanswered,
    negations,
    question_coverage,
)
from tests.conftest import REPO, make_settings
from tests.fake_openai import FakeOpenAI, is_judge_request

QUOTE = (
    "Sonata Coulter, U.S. deputy assistant secretary of state for Russia and Central Europe who led the U.S. "
    "delegation, said the talks were constructive."
)


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        ("Sonata Coulter led the delegation of Ukraine.", "Ukraine"),
        ("The talks lasted 8 hours.", "8 hours"),
        ("Sonata Coulter did not lead the U.S. delegation.", "negates"),
        ("Coulter never called the talks constructive.", "negates"),
    ],
)
def test_hard_checks_reject_what_the_quote_cannot_say(claim: str, why: str) -> None:
    reason = hard_check(claim, QUOTE)
    assert reason is not None and why in reason


@pytest.mark.parametrize(
    "claim",
    ["Sonata Coulter led the U.S. delegation.", "Coulter said the talks were constructive."],
)
def test_hard_checks_pass_what_the_quote_states(claim: str) -> None:
    assert hard_check(claim, QUOTE) is None


@pytest.mark.parametrize(
    ("claim", "quote", "passes"),
    [
        ("Russia proposed direct air links with the United States.", "Russia offers direct air links with U.S.", True),
        ("Britain and America signed it.", "The UK and the USA signed it.", True),
        ("The United Nations voted.", "The U.N. voted.", True),
        ("Russia proposed air links with the United States.", "Russia offers air links to us.", False),  # not U.S.
        ("Russia proposed air links with the United Kingdom.", "Russia offers air links with U.S.", False),
        # A title written out against its abbreviation, both ways; another title is still missing.
        (
            "The Northern Fleet is headed by Admiral Alexander Moiseyev.",
            "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said last week that Moscow has the right.",
            True,
        ),
        ("Gen. Mark Milley spoke.", "General Mark Milley spoke on Monday.", True),
        ("Senator Jane Roe voted no.", "Sen. Jane Roe voted no.", True),
        ("General Alexander Moiseyev spoke.", "Adm. Alexander Moiseyev spoke.", False),
    ],
)
def test_a_well_known_name_matches_its_abbreviation(claim: str, quote: str, passes: bool) -> None:
    assert (hard_check(claim, quote) is None) is passes


def test_role_swaps_between_people_pass_the_hard_checks_so_the_judge_must_see_them() -> None:
    """Every name is in the quote: only meaning can tell that Darchiyev did not lead the U.S. side."""
    both = "Coulter, who led the U.S. delegation, and Darchiyev, who led the Russian one, met in Istanbul."
    assert hard_check("Darchiyev led the U.S. delegation.", both) is None
    # A role given to another country is a hard check of its own (modifier_swapped).
    assert hard_check("Sonata Coulter led Russia's delegation.", QUOTE) is not None


def test_verbatim_and_negation_helpers() -> None:
    assert is_verbatim("the talks were constructive", QUOTE)
    assert not is_verbatim("the talks were productive", QUOTE)
    assert not is_verbatim("constructive", QUOTE)  # too short to stand for the quote
    assert negations("He did not go and won't.") == 2
    assert negations("Nothing was agreed") == 1 and negations("Notes were taken") == 0


@pytest.mark.parametrize(
    ("question", "quote", "unanswered"),
    [
        # SQuAD 2.0's negated questions: the quote states the positive.
        (
            "What are other complexity measures not used in complexity theory?",
            "Other complexity measures used in complexity theory include communication complexity.",
            True,
        ),
        ("What problems cannot be solved in theory?", "Problems that can be solved in theory take too long.", True),
        ("What does the US not allow?", "The United States does not allow Russian aircraft in its airspace.", False),
        ("Did Washington answer the proposal?", "There was no immediate comment from Washington.", False),  # yes/no
        ("Who led the U.S. delegation?", "Coulter led the U.S. delegation.", False),
    ],
)
def test_a_negated_question_is_not_answered_by_a_quote_without_the_negation(
    question: str, quote: str, unanswered: bool
) -> None:
    assert (negation_unanswered(question, quote) is not None) is unanswered


@pytest.mark.parametrize("word", ["Whom", "Whose", "Which", "Whoever"])
def test_question_words_are_never_premises(word: str) -> None:
    question = f"{word} did Darchiyev succeed as ambassador?"
    assert unmatched_question_entities(question, ["Alexander Darchiyev succeeds Anatoly Antonov."]) == []


@pytest.mark.parametrize(
    ("claim", "quote", "swapped"),
    [
        (
            "Sonata Coulter led Russia's delegation.",
            "Coulter, who led the U.S. delegation, met Darchiyev of Russia.",
            True,
        ),
        ("The Tallinn office manager is Rui Figueiredo.", "The Lisbon office manager is Rui Figueiredo.", True),
        ("Coulter led the U.S. delegation.", "Coulter, who led the U.S. delegation, met Darchiyev.", False),
        ("Darchiyev led the Russia delegation.", "Darchiyev led the Russian delegation.", False),  # Russia ~ Russian
        ("The EU office opened.", "The European Union office opened in 2016.", False),  # initials
        ("The Istanbul talks lasted six hours.", "The U.S.-Russia talks in Istanbul lasted six hours.", False),
    ],
)
def test_a_role_given_to_another_owner_is_caught(claim: str, quote: str, swapped: bool) -> None:
    assert (modifier_swapped(claim, quote) is not None) is swapped
    assert (hard_check(claim, quote) is not None) is swapped


@pytest.mark.parametrize(
    ("question", "unmatched"),
    [
        ("According to the ZeroHedge piece, who pays the highest price for sanctions?", []),
        ("According to The Moscow Times, when did the invasion of Ukraine take place?", []),
        ("In the February AP report, who led the Russian side?", []),
        ("Who is the chief of the Pacific Fleet?", ["Pacific"]),  # a premise, not a source
        ("What did the AP report say about Obama?", ["Obama"]),
        ("How does the later ZeroHedge report describe him?", []),  # a title before "report", no preposition
        ("What title does the dailyblitz/ZeroHedge article give her?", []),
        ("Which lasted longer, A or B? Give both durations.", []),  # an imperative is not a name
    ],
)
def test_the_publication_a_question_cites_is_not_a_premise(question: str, unmatched: list[str]) -> None:
    texts = ["The chief of Russia's Northern Fleet said sanctions hurt Ukraine and Russia most of all."]
    assert unmatched_question_entities(question, texts) == unmatched


@pytest.fixture()
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().start() as server:
        yield server


def judge_on(fake: FakeOpenAI, tmp_path: Path) -> Judge:
    settings = make_settings(tmp_path / "index", llm__base_url=fake.base_url, llm__model="fake")
    return ChatModel(settings).judge_model


def test_the_score_is_p_yes_read_from_top_logprobs(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.judge_score = 0.73
    judge = judge_on(fake, tmp_path)

    assert judge.support("Who led?", "Coulter led.", QUOTE) == pytest.approx(0.73, abs=1e-6)
    assert judge.mode == "logprobs"
    request = fake.chat_requests[-1]
    assert is_judge_request(request.messages)
    assert request.body is not None and request.body["max_tokens"] == 1 and request.body["top_logprobs"] >= 2
    judge.support("Who led?", "Coulter led.", QUOTE)  # the same pair again: answered from the cache
    assert len(fake.chat_requests) == 1 and judge.calls == 1


def test_without_logprobs_the_judge_reads_the_word(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.logprobs_error = True
    fake.judge_score = 0.2
    judge = judge_on(fake, tmp_path)

    assert judge.support("Who led?", "Lavrov led the U.S. delegation.", QUOTE) == 0.0
    assert judge.mode == "text"
    fake.judge_score = 0.8
    assert judge.support("Who led?", "Coulter led the U.S. delegation.", QUOTE) == 1.0


def test_a_judge_that_answers_neither_yes_nor_no_is_an_error(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.judge_score = None  # judge prompts get the plain reply
    fake.reply = "Perhaps, it depends."
    judge = judge_on(fake, tmp_path)

    with pytest.raises(LLMError, match="YES or NO"):
        judge.support("Who led?", "Coulter led.", QUOTE)


def test_a_server_error_is_not_mistaken_for_missing_logprobs(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.status = 401
    with pytest.raises(LLMError, match="API key"):
        judge_on(fake, tmp_path).support("Who led?", "Coulter led.", QUOTE)


def pair(i: int, split: str, label: bool, claim: str = "Coulter led the U.S. delegation.") -> SupportPair:
    return SupportPair(f"p{i}", split, "Who led?", claim, QUOTE, label, "answer" if label else "swap_name", "seeds")


def test_threshold_is_fitted_on_dev_for_the_precision_target() -> None:
    scored = [(0.9, True), (0.8, True), (0.7, False), (0.6, True), (0.3, False)]
    threshold = fit_threshold(scored, 0.97)
    assert threshold == 0.8  # 0.7 would let a false pair through
    assert precision_recall(scored, threshold) | {} == {
        "threshold": 0.8, "precision": 1.0, "recall": round(2 / 3, 4), "called": 2, "tp": 2, "fp": 0,
        "positives": 3, "pairs": 5,
    }  # fmt: skip
    assert precision_recall([(0.1, True)], 0.5)["precision"] is None  # nothing called supported: undefined


def test_evaluate_support_reports_the_held_out_half(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.judge_score = None  # the fake answers by words: a text-mode judge
    fake.reply_for = lambda messages: "YES" if "Coulter led the U.S." in messages[-1]["content"] else "NO"
    pairs = [pair(i, "dev", True) for i in range(3)] + [pair(9, "dev", False, "Lavrov led.")]
    pairs += [pair(10, "test", True), pair(11, "test", False, "Coulter led the Ukrainian delegation.")]

    report = evaluate_support(judge_on(fake, tmp_path), pairs)

    assert report["judge_mode"] == "text"
    assert report["dev"]["precision"] == 1.0 and report["dev"]["recall"] == 1.0
    assert report["test"]["tp"] == 1 and report["test"]["fp"] == 0
    assert report["hard_check_rejections"] == 2  # "Lavrov" and "Ukrainian" are not in the quote
    assert {row["id"] for row in report["items"]} == {p.id for p in pairs}


def test_the_committed_support_set_is_large_balanced_and_split() -> None:
    pairs = load_support_set(REPO / "evals" / "support.jsonl")
    assert len(pairs) >= 400
    for split in ("dev", "test"):
        half = [p for p in pairs if p.split == split]
        assert len(half) >= 150
        assert 0.25 <= sum(p.label for p in half) / len(half) <= 0.6
    kinds = {p.how for p in pairs if not p.label}
    assert {"distractor", "swap_name", "swap_number", "swap_roles", "negation", "other_sentence"} <= kinds
    assert {p.source for p in pairs} == {"seeds", "squad"}
    questions = {split: {p.question for p in pairs if p.split == split} for split in ("dev", "test")}
    assert not questions["dev"] & questions["test"]  # a question's pairs stay in one half


def test_a_broken_support_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "support.jsonl"
    path.write_text(json.dumps({"id": "a", "split": "dev", "claim": "x", "quote": "y", "label": True}) + "\n{}\n")
    with pytest.raises(InputError, match=r"support.jsonl:2"):
        load_support_set(path)
    path.write_text(json.dumps({"id": "a", "split": "train", "claim": "x", "quote": "y", "label": True}) + "\n")
    with pytest.raises(InputError, match="dev or test"):
        load_support_set(path)


def test_names_in_another_order_are_flagged() -> None:
    assert names_reordered("Darchiyev led the U.S. delegation with Coulter.", "Coulter led the U.S. side and Darchiyev "
                           "the Russian one.")  # fmt: skip
    assert not names_reordered("Coulter met Darchiyev.", "Coulter and Darchiyev met in Istanbul.")


def test_an_identity_sentence_turned_around_is_not_a_swap() -> None:
    """The two sides of "X is Y" exchanged as blocks keep their meaning; a name that changes owner does not."""
    fleet = ("Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said last week that Moscow has the right to "
             "set navigation rules along the shipping lane.")  # fmt: skip
    assert not names_reordered("The chief of Russia's Northern Fleet is Admiral Alexander Moiseyev.", fleet)
    assert not names_reordered("Pierre Bayle was a prominent Huguenot in Holland.",
                               "One of the most prominent Huguenot refugees in the Netherlands was Pierre Bayle.")  # fmt: skip
    assert names_reordered("Robert was Bohemond's son.", "The Normans under the command of Bohemond, Robert's son, "
                           "landed in Valona.")  # fmt: skip
    # the sides interleave in the quote: not an identity turned around
    assert names_reordered("The envoy of Lavrov is Ryabkov of Moscow.", "Ryabkov met Lavrov in Moscow.")
    # neither side is a name alone: a predicate, not an identity turned around
    assert names_reordered("Yes, the Ohio aircraft-parts case was the first time anyone shipped parts to Russia.",
                           "Two weeks before Russia's war reached three years, three people linked to an Ohio "
                           "company were arrested.")  # fmt: skip
    assert not names_reordered("Lothar de Maizière was the final Prime Minister of East Germany.",
                               "The last Prime Minister of East Germany, Lothar de Maizière, is also a descendant.")  # fmt: skip
    # one side's own names in another order
    assert names_reordered("Coulter of Russia is the envoy.", "Russia sent Coulter as its envoy.")


def test_calibration_learns_what_separates_true_from_false_pairs() -> None:
    def judged(label: bool, p_yes: float, reordered: bool, asked: float = 1.0) -> Judged:
        return Judged(pair(0, "dev", label), None, p_yes, reordered, asked)

    rows = [judged(True, 0.7, False)] * 30 + [judged(True, 0.6, True)] * 5 + [judged(False, 0.65, True)] * 20
    rows += [judged(False, 0.2, False)] * 20 + [judged(True, 0.3, False)] * 3
    rows += [judged(False, 0.7, False, 0.2)] * 15 + [judged(True, 0.5, False, 0.9)] * 5  # off the question
    calibration = fit_calibration(rows)
    assert calibration.reordered < 0 < calibration.judge  # a reordering lowers the score, P(YES) raises it
    assert calibration.asked > 0  # a pair that uses the question's words is more likely an answer to it
    assert calibration.score(0.65, True) < calibration.score(0.65, False)
    assert calibration.score(0.7, False, 0.2) < calibration.score(0.7, False, 1.0)
    default = fit_calibration([judged(True, 0.7, False)] * 3)  # one class only: nothing to fit
    assert default == CALIBRATION


def test_question_coverage_counts_the_question_words_the_quote_uses() -> None:
    question = "Who led the U.S. delegation at the Istanbul talks?"
    assert question_coverage(question, "Coulter led the U.S. delegation in Istanbul, the talks' host.") == 1.0
    assert question_coverage(question, "Lavrov met Kerry in Sochi for four hours.") == 0.0
    assert 0.0 < question_coverage(question, "Coulter led the talks.") < 1.0
    assert question_coverage("", "Anything at all.") == 1.0  # no question: nothing to cover


@pytest.mark.parametrize(
    ("question", "claim", "lacks"),
    [
        (
            "Who led the U.S. delegation at the Istanbul talks?",
            "The U.S. delegation led the Istanbul talks by raising concerns about banking.",
            True,
        ),
        ("Who led the U.S. delegation at the Istanbul talks?", "Sonata Coulter led the U.S. delegation.", False),
        ("Who wrote the AP report?", "By VLADIMIR ISACHENKOV", False),
        ("Whose appointment did the U.S. agree to?", "The U.S. agreed to Alexander Darchiyev's appointment.", False),
        ("How many hours of meetings did Kerry hold in Sochi?", "Kerry held meetings in Sochi.", True),
        ("How many hours of meetings did Kerry hold in Sochi?", "Kerry held eight hours of meetings.", False),
        ("How many original treaties protected fundamental rights?", "None of the original treaties did.", False),
        ("When did Russia send troops into Ukraine?", "Russia sent troops in February 2022.", False),
        ("When did Russia send troops into Ukraine?", "Russia sent troops after the talks.", True),
        ("In what year did Savery patent his pump?", "Savery patented it in 1698.", False),
        ("What did Russia propose?", "Russia proposed restoring direct flights.", False),  # not a kind it checks
        ("Is Orbi sold outside Europe?", "No — Orbi is sold only in Europe.", False),
        ("When extensive time is required, what case is it?", "It is the worst case.", False),  # a clause
    ],
)
def test_an_answer_must_give_the_kind_of_thing_asked(question: str, claim: str, lacks: bool) -> None:
    assert (lacks_asked_kind(question, claim) is not None) is lacks


@pytest.mark.parametrize(
    ("statement", "question", "denies"),
    [
        ("U.S. carriers do not fly over Russia.", "Do American airlines fly over Russia?", True),
        ("The delegations didn't agree to meet again.", "Did the two delegations agree to meet again?", True),
        # A negation in a contrasting clause, or of something not asked, is not a denial.
        ("Orbi can be ridden in the rain but must not be submerged.", "Can Orbi be ridden in the rain?", False),
        ("It was not cheap, and it is sold in Japan.", "Is Orbi sold in Japan?", False),
        ("Kerry's trip was the highest-level visit.", "Was Kerry's trip the highest-level visit?", False),
        # A question with its own negation is left to the model's verdict.
        ("It was not sold in Japan.", "Wasn't it sold in Japan?", False),
    ],
)
def test_a_statement_denies_what_a_yes_no_question_asks(statement: str, question: str, denies: bool) -> None:
    assert negates_asked(statement, question) is denies


def test_a_contradiction_is_another_answer_not_other_words() -> None:
    article = "Article 107 lays down a general rule that the state may not aid private parties."
    assert contradiction("Article 107 does not lay down a rule that the state may not aid them.", article)
    assert contradiction("Sonata Coulter led Russia's delegation.", QUOTE)
    # Other wording of the same answer, or a claim with less in it, is not a contradiction (the judge decides).
    assert contradiction("The rule in Article 107 forbids the state to aid private parties.", article) is None
    assert contradiction("Sonata Coulter led the U.S. delegation.", QUOTE) is None
