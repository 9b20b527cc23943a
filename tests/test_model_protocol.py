"""The answer pipeline over an in-process model (``tests/fake_model.py``) plugged in at ``rag.llm.LanguageModel``:
real retrieval, evidence, alignment, hard checks and threshold; only the model's words and scores are given."""

from __future__ import annotations

from rag.assistant import Assistant
from rag.llm import LanguageModel
from tests.conftest import check_citations, make_settings
from tests.fake_model import FunctionModel, Messages

QUESTION = "Who is the chief of Russia's Northern Fleet?"


def replying(text: str) -> FunctionModel:
    def reply(messages: Messages) -> str:
        return text

    return FunctionModel(reply, score=lambda question, claim, quote: 0.99)


def ask(seeds_assistant: Assistant, model: LanguageModel, **overrides: object) -> Assistant:
    return Assistant(make_settings(seeds_assistant.index_dir, **overrides), model=model)


def test_a_supported_sentence_is_shown_with_its_quote(seeds_assistant: Assistant) -> None:
    model = replying("Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1].")
    answer = ask(seeds_assistant, model).ask(QUESTION)
    assert not answer.abstained
    assert "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]" in answer.answer
    assert "Moiseyev, chief of Russia’s Northern Fleet" in answer.citations[0].quote
    assert len(model.requests) == 1 and "Northern Fleet" in model.requests[0][-1]["content"]  # the evidence
    judged = model.judge_model.asked
    assert judged and judged[0][0] == QUESTION and "Moiseyev" in judged[0][1] and "Moiseyev" in judged[0][2]
    assert answer.model == "function-model"
    check_citations(seeds_assistant, answer)


def test_the_judge_score_decides_at_the_threshold(seeds_assistant: Assistant) -> None:
    sentence = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
    for score, abstained in ((0.99, False), (0.05, True)):
        model = FunctionModel(lambda messages: sentence, score=lambda question, claim, quote, s=score: s)
        answer = ask(seeds_assistant, model).ask(QUESTION)
        assert answer.abstained is abstained, score
        assert model.judge_model.calls >= 1


def test_a_hard_check_overrules_a_judge_that_says_yes(seeds_assistant: Assistant) -> None:
    # A fleet the quote does not name: no judge score lets it through.
    model = replying("Adm. Alexander Moiseyev is the chief of Russia’s Pacific Fleet [1].")
    answer = ask(seeds_assistant, model, answer__source_words=False).ask(QUESTION)
    assert answer.abstained
    assert answer.unsupported == ["Adm. Alexander Moiseyev is the chief of Russia’s Pacific Fleet."]


def test_a_follow_up_is_rewritten_by_the_same_model(seeds_assistant: Assistant) -> None:
    from rag.answering import Turn

    def reply(messages: Messages) -> str:
        if "Lisbon" not in messages[-1]["content"] and "Moiseyev" in messages[-1]["content"]:
            return "Who does Moiseyev say Moscow can set navigation rules for?"  # the rewrite call
        return "NOT FOUND"

    model = FunctionModel(reply)
    history = [Turn(QUESTION, "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1].")]
    answer = ask(seeds_assistant, model).ask("What did he say about navigation rules?", history)
    assert answer.standalone_question == "Who does Moiseyev say Moscow can set navigation rules for?"
    assert len(model.requests) >= 2  # the rewrite, then the answer
