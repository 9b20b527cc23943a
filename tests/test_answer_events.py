"""What ``answer_events`` reports besides the answer: the stages it goes through, why it abstained, the closest
passages, and asking within some documents. Over the real seeds index with an in-process model
(``tests/fake_model.py``): retrieval, evidence, alignment and verification are the real code."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag.answering import ABSTAIN_TEXT, Answer
from rag.assistant import Assistant
from rag.cli import app
from rag.errors import InputError
from rag.schemas import AskResponse, dump
from rag.types import Stage
from tests.conftest import check_citations, make_settings
from tests.fake_model import FunctionModel, Messages
from tests.fake_openai import FakeOpenAI

QUESTION = "Who is the chief of Russia's Northern Fleet?"
FLEET = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
FLEET_DOC = "004_ef5f7f6cb4511981.txt"  # the speech whose reader comment names the chief


def replying(text: str, score: float = 0.99) -> FunctionModel:
    def reply(messages: Messages) -> str:
        return text

    return FunctionModel(reply, score=lambda question, claim, quote: score)


def assistant_with(seeds_assistant: Assistant, model: FunctionModel, **overrides: object) -> Assistant:
    return Assistant(make_settings(seeds_assistant.index_dir, **overrides), model=model)


def events_of(assistant: Assistant, question: str, **kwargs: object) -> tuple[list[str | Stage | Answer], Answer]:
    events = list(assistant.ask_stream(question, **kwargs))  # type: ignore[arg-type]
    final = events[-1]
    assert isinstance(final, Answer)
    return events, final


# --- stages ---------------------------------------------------------------------------------------------


def test_stages_come_in_order_before_the_text_they_lead_to(seeds_assistant: Assistant) -> None:
    events, answer = events_of(assistant_with(seeds_assistant, replying(FLEET)), QUESTION)
    stages = [e for e in events if isinstance(e, Stage)]
    assert [s.stage for s in stages] == ["searching", "reading", "writing", "checking"]
    reading = stages[1]
    assert reading.passages == len(answer.passages) > 0  # the passages given to the model
    assert all(s.passages is None for s in stages if s.stage != "reading")
    assert [s.elapsed for s in stages] == sorted(s.elapsed for s in stages) and stages[0].elapsed >= 0
    first_text = next(i for i, e in enumerate(events) if isinstance(e, str))
    assert first_text > events.index(stages[-1])  # "checking" is reported before the first verified words
    assert "".join(e for e in events if isinstance(e, str)) == answer.answer
    assert not answer.abstained and answer.abstain_reason is None and answer.closest_passages == []


def test_stages_change_no_decision_streamed_or_not(seeds_assistant: Assistant) -> None:
    assistant = assistant_with(seeds_assistant, replying(FLEET))
    _, streamed = events_of(assistant, QUESTION)
    whole = assistant.ask(QUESTION)
    assert (streamed.answer, streamed.citations, streamed.unsupported) == (
        whole.answer,
        whole.citations,
        whole.unsupported,
    )
    check_citations(seeds_assistant, whole)


# --- why it abstained, and what came closest ------------------------------------------------------------


def test_a_model_that_declines_is_the_reason(seeds_assistant: Assistant) -> None:
    events, answer = events_of(assistant_with(seeds_assistant, replying("NOT FOUND")), QUESTION)
    assert answer.abstained and answer.answer == ABSTAIN_TEXT
    assert answer.abstain_reason is not None and answer.abstain_reason.code == "model_declined"
    assert [s.stage for s in events if isinstance(s, Stage)] == ["searching", "reading", "writing"]  # nothing checked


def test_an_unsupported_reply_is_the_reason(seeds_assistant: Assistant) -> None:
    model = replying(FLEET, score=0.05)  # the judge finds the quote does not support the sentence
    answer = assistant_with(seeds_assistant, model, answer__source_words=False).ask(QUESTION)
    assert answer.abstained and answer.unsupported
    assert answer.abstain_reason is not None and answer.abstain_reason.code == "unsupported"
    assert "supported" in answer.abstain_reason.message


def test_a_premise_the_documents_lack_is_the_reason_and_the_model_is_not_asked(seeds_assistant: Assistant) -> None:
    model = replying(FLEET)
    answer = assistant_with(seeds_assistant, model).ask("Who is the chief of the Zyxxorian Navy?")
    assert answer.abstained and model.requests == []
    assert answer.abstain_reason is not None and answer.abstain_reason.code == "premise_not_found"
    assert "Zyxxorian" in answer.abstain_reason.message


def test_nothing_to_read_is_the_reason(seeds_assistant: Assistant) -> None:
    # 001 has no reader comments: within its comments there is nothing to search.
    assistant = assistant_with(seeds_assistant, replying(FLEET))
    doc = "001_c893d35b68656839.txt"
    assert not assistant.search("fleet", doc_ids=[doc], sections=["comments"]).hits
    events, answer = events_of(assistant, QUESTION, doc_ids=[doc], sections=["comments"])
    assert answer.abstained and answer.passages == [] and answer.closest_passages == []
    assert answer.abstain_reason is not None and answer.abstain_reason.code == "no_passages"
    assert [s for s in events if isinstance(s, Stage)][1].passages == 0


def test_an_abstention_carries_the_three_closest_passages(seeds_assistant: Assistant) -> None:
    answer = assistant_with(seeds_assistant, replying("NOT FOUND")).ask("What was discussed at the talks?")
    assert len(answer.passages) > 3 and len(answer.closest_passages) == 3
    for closest, passage in zip(answer.closest_passages, answer.passages, strict=False):
        assert (closest.doc_id, closest.start, closest.end, closest.page) == (
            passage.doc_id,
            passage.start,
            passage.end,
            passage.page,
        )
        document = seeds_assistant.document(closest.doc_id)
        assert document.text[closest.start : closest.end] == closest.text
        assert closest.title == document.title
        assert closest.source == document.metadata.get("url", closest.doc_id)
    payload = dump(AskResponse.of(answer))
    assert payload["abstain_reason"] == {"code": "model_declined", "message": answer.abstain_reason.message}  # type: ignore[union-attr]
    assert [set(p) for p in payload["closest_passages"]] == [
        {"doc_id", "title", "source", "page", "start", "end", "text"}
    ] * 3


# --- asking within some documents ------------------------------------------------------------------------


def test_asking_within_a_document_cites_only_that_document(seeds_assistant: Assistant) -> None:
    model = FunctionModel(lambda messages: FLEET)
    assistant = assistant_with(seeds_assistant, model)
    other = "003_50cfdfd88efb925b.txt"
    within = assistant.ask(QUESTION, doc_ids=[other])
    assert within.passages and {p.doc_id for p in within.passages} == {other}
    # The only document searched does not mention the fleet: an abstention, the model not even asked.
    assert within.abstained and within.citations == [] and model.requests == []
    assert within.abstain_reason is not None and within.abstain_reason.code == "premise_not_found"
    assert {p.doc_id for p in within.closest_passages} == {other}
    answered = assistant.ask(QUESTION, doc_ids=[FLEET_DOC], sections=["comments"])
    assert not answered.abstained and {c.doc_id for c in answered.citations} == {FLEET_DOC}
    assert {p.section for p in answered.passages} == {"comments"}
    check_citations(seeds_assistant, answered)


def test_an_unknown_document_fails_before_the_model_is_called(seeds_assistant: Assistant) -> None:
    model = replying(FLEET)
    with pytest.raises(InputError, match=r"no document 'nope\.txt' in the index"):
        assistant_with(seeds_assistant, model).ask(QUESTION, doc_ids=["nope.txt"])
    with pytest.raises(InputError, match="unknown section 'footer'"):
        assistant_with(seeds_assistant, model).ask(QUESTION, sections=["footer"])
    assert model.requests == []


def test_cli_ask_takes_doc_and_section_and_json_says_why(
    seeds_assistant: Assistant, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag ask --doc --section --json` over the real CLI and the openai client, against the fake endpoint."""
    fake_openai.reply = "NOT FOUND"
    monkeypatch.setenv("RAG_INDEX_DIR", seeds_assistant.settings.index.dir)
    monkeypatch.setenv("RAG_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("RAG_LLM_MODEL", "fake")
    args = ["ask", QUESTION, "--doc", FLEET_DOC, "--section", "comments", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["abstained"] and payload["abstain_reason"]["code"] == "model_declined"
    assert payload["closest_passages"] and {p["doc_id"] for p in payload["closest_passages"]} == {FLEET_DOC}
    printed = CliRunner().invoke(app, ["ask", QUESTION, "--doc", FLEET_DOC])
    assert printed.exit_code == 0, printed.output
    assert ABSTAIN_TEXT in printed.stdout and "Closest passages:" in printed.stdout
    assert "why: the model found no answer in the passages" in printed.stderr
    unknown = CliRunner().invoke(app, ["ask", QUESTION, "--doc", "nope.txt"])
    assert unknown.exit_code == 2 and "no document 'nope.txt' in the index" in unknown.stderr
    assert unknown.stderr.count("\n") == 1  # one line, no traceback
    chat = CliRunner().invoke(app, ["chat", "--doc", FLEET_DOC, "--section", "comments"], input=f"{QUESTION}\nexit\n")
    assert chat.exit_code == 0, chat.output
    assert ABSTAIN_TEXT in chat.stdout and "why: the model found no answer in the passages" in chat.stderr
    chat_unknown = CliRunner().invoke(app, ["chat", "--doc", "nope.txt"], input="exit\n")
    assert chat_unknown.exit_code == 2 and "no document 'nope.txt' in the index" in chat_unknown.stderr
