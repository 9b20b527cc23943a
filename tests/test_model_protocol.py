"""The answer pipeline over an in-process model (``tests/fake_model.py``) plugged in at ``rag.llm.LanguageModel``:
real retrieval, evidence, alignment, hard checks and threshold; only the model's words and scores are given."""

from __future__ import annotations

from pathlib import Path

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


def test_citations_into_a_pdf_carry_their_page_and_a_docx_none(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rag.cli import app
    from rag.schemas import AskResponse, SearchResponse, dump

    office = Path(__file__).resolve().parent / "data" / "office"
    assistant = Assistant(make_settings(tmp_path / "index"))
    assistant.build_index([str(office)])
    model = replying("The Severomorsk base hosts forty-two vessels [1].")
    answer = ask(assistant, model).ask("How many vessels does the Severomorsk base host?")
    assert not answer.abstained and answer.citations[0].doc_id == "fleet-review.pdf"
    assert answer.citations[0].page == 2
    shown = dump(AskResponse.of(answer))
    assert shown["citations"][0]["page"] == 2 and all("page" in p for p in shown["passages"])
    vessels = next(p for p in answer.passages if "forty-two vessels" in p.text)
    assert vessels.page == 2  # the sentence the model saw, on its own page
    hits = dump(SearchResponse.of(assistant.search("winter exercises Barents Sea", k=2)))["hits"]
    assert hits[0]["doc_id"] == "fleet-review.pdf" and hits[0]["page"] == 1  # the chunk starts on page 1
    docx_answer = ask(assistant, replying("New staff receive a laptop and a badge on their first morning [1].")).ask(
        "What do new staff receive on their first morning?"
    )
    assert docx_answer.citations[0].doc_id == "onboarding.docx" and docx_answer.citations[0].page is None
    check_citations(assistant, answer)
    printed = CliRunner().invoke(app, ["search", "Severomorsk dry dock", "--index-dir", str(tmp_path / "index")])
    assert "fleet-review.pdf p. 1" in printed.stdout
