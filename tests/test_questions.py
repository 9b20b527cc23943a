"""Two-part questions are split into the parts retrieval looks up; one-part questions are left alone."""

from __future__ import annotations

import pytest

from rag.questions import asked_kind, compared, is_yes_no, split_clauses, sub_questions, without_attribution


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "Who heads People Operations, and in which city is that team?",
            ["Who heads People Operations?", "In which city is that team? (People Operations)"],
        ),
        (
            "How did the US let departing Russian diplomats fly home despite its ban, and what did Russia later "
            "propose about air travel between the two countries?",
            [
                "How did the US let departing Russian diplomats fly home despite its ban?",
                "What did Russia later propose about air travel between the two countries?",
            ],
        ),
        (
            "Which country's nuclear programme came up both in Kerry's 2015 talks in Sochi and in Lavrov's "
            "statement at the Arctic Council meeting?",
            [
                "Which country's nuclear programme came up in Kerry's 2015 talks in Sochi?",
                "Which country's nuclear programme came up in Lavrov's statement at the Arctic Council meeting?",
            ],
        ),
        (
            "Had Washington answered Russia's proposal, according to the February AP report and to Ryabkov's "
            "September briefing?",
            [
                "Had Washington answered Russia's proposal, according to the February AP report?",
                "Had Washington answered Russia's proposal, according to Ryabkov's September briefing?",
            ],
        ),
        (
            "According to the AP report and to Lavrov's statement, what had been hampering the missions?",
            [
                "According to the AP report, what had been hampering the missions?",
                "According to Lavrov's statement, what had been hampering the missions?",
            ],
        ),
    ],
)
def test_two_part_questions_are_split(question: str, parts: list[str]) -> None:
    assert sub_questions(question) == parts


@pytest.mark.parametrize(
    "question",
    [
        "Who is the chief of Russia's Northern Fleet?",
        "What did Russia and the US agree on?",
        "Whom did Darchiyev succeed as ambassador?",
        "How much can Orbi carry, including the rider?",
        "Did Kerry and Lavrov meet in Sochi?",
        # SQuAD questions whose "and"/"but" continues the first question: a predicate or a relative clause.
        "What two resources are uncommonly consumed by alternate models and are typically known to vary?",
        "What are problems that cannot be solved in theory, but which in practice take too long to be useful?",
        "Who agreed to sign the Social Charter and was exempt from the legislation covering Social Charter issues?",
        "Which problem consists of both  inflationary and deflationary impacts?",
    ],
)
def test_one_part_questions_are_not_split(question: str) -> None:
    assert sub_questions(question) == []


def test_an_answer_sentence_is_split_into_its_clauses() -> None:
    assert split_clauses(
        "Mara Okafor leads People Operations, and the team's office opened in 2016 on Rua Augusta."
    ) == [
        "Mara Okafor leads People Operations.",
        "The team's office opened in 2016 on Rua Augusta.",
    ]
    assert split_clauses("The US let Russia send a charter flight, and Russia later proposed direct air links.") == [
        "The US let Russia send a charter flight.",
        "Russia later proposed direct air links.",
    ]
    assert split_clauses("Kerry and Lavrov met in Sochi.") == []  # "and" joins names, not clauses


@pytest.mark.parametrize(
    ("question", "without"),
    [
        ("How many telephone conversations had the presidents had, according to Lavrov's statement?",
         "How many telephone conversations had the presidents had?"),
        ("According to one commenter, what is Trump probably negotiating for?", "what is Trump probably negotiating for?"),
        ("What did Kerry say in Sochi?", "What did Kerry say in Sochi?"),
    ],
)  # fmt: skip
def test_the_attribution_clause_is_not_what_is_asked(question: str, without: str) -> None:
    assert without_attribution(question) == without


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many hours did the talks last?", "number"),
        ("In what year did Savery patent his pump?", "number"),
        ("On what date are direct flights between Moscow and the United States scheduled to resume?", "number"),
        ("When did Russia send troops into Ukraine?", "number"),
        ("When extensive time is required, what case is it?", None),
        ("Who led the U.S. delegation?", "name"),
        ("By whom was the report written?", "name"),
        ("What did Russia propose?", None),
        ("Who heads People Operations, and in which city is that team?", None),  # two parts: checked each
        ("Who is older, Jane Doe or John Smith?", None),  # the answer is a name the question gives
    ],
)
def test_the_kind_of_thing_a_question_asks_for(question: str, kind: str | None) -> None:
    assert asked_kind(question) == kind


@pytest.mark.parametrize(
    ("question", "polar"),
    [
        ("Did Kerry meet Putin in Sochi?", True),
        ("According to The Moscow Times, do American airlines fly over Russia?", True),
        ("Wasn't the Ohio case the first?", True),
        ("What prominent South African family had a vineyard in France?", False),
        ("Who's major ports were controlled by the English?", False),
        ("Isolated from the rest, which city grew?", False),  # "Is" must be a word of its own
    ],
)
def test_yes_no_questions_are_told_apart(question: str, polar: bool) -> None:
    assert is_yes_no(question) is polar


@pytest.mark.parametrize(
    ("question", "searches"),
    [
        (
            "Which magazine was started first, Arthur's Magazine or First for Women?",
            [
                "Which magazine was started first: Arthur's Magazine?",
                "Which magazine was started first: First for Women?",
            ],
        ),
        (
            "Which lasted longer: Kerry's meeting with Lavrov in Sochi, or the first round of the consultations?",
            [
                "Which lasted longer: Kerry's meeting with Lavrov in Sochi?",
                "Which lasted longer: the first round of the consultations?",
            ],
        ),
        (
            "Were Scott Derrickson and Ed Wood of the same nationality?",
            ["Scott Derrickson of the same nationality?", "Ed Wood of the same nationality?"],
        ),
        # Not comparisons: a clause after "and", a question without two sides.
        ("Did Davies and Baran collaborate at any point after they both developed this concept?", []),
        ("Who is the chief of Russia's Northern Fleet?", []),
        ("What did the US say, or did it say nothing?", []),
    ],
)
def test_each_side_of_a_comparison_is_searched_for(question: str, searches: list[str]) -> None:
    assert compared(question) == searches
