"""Error paths and the logic around the language model: a real seeds index and embedder, a fake OpenAI server."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from rag.answering import ABSTAIN_TEXT, Answer, Turn
from rag.assistant import Assistant
from rag.errors import LLMError
from tests.conftest import SEEDS, check_citations, make_settings
from tests.fake_openai import FakeOpenAI, Messages, is_judge_request

QUESTION = "Who is the chief of Russia's Northern Fleet?"
# Copies seeds/004's "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said ..." with a marker.
TRUE_SENTENCE = "Adm. Alexander Moiseyev is chief of Russia’s Northern Fleet [1]."
SECOND_TRUE_SENTENCE = "Moiseyev said that Moscow has the right to set navigation rules along the shipping lane [1]."
HALLUCINATION = "The capital of France is Paris"


def answering(reply: str) -> Callable[[Messages], str]:
    """A model that says ``reply`` to every prompt but the judge's (the fake's ``judge_score`` answers those)."""

    def reply_for(messages: Messages) -> str:
        return reply

    return reply_for


@pytest.fixture()
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reply_for = answering(TRUE_SENTENCE)
    return fake_openai


@pytest.fixture()
def make_assistant(seeds_assistant: Assistant, fake: FakeOpenAI) -> Callable[..., Assistant]:
    """Assistants over the seeds index whose model is ``fake``; overrides such as ``llm__max_retries=2``."""

    def make(**overrides: object) -> Assistant:
        llm: dict[str, object] = {
            "llm__base_url": fake.base_url,
            "llm__model": "fake",
            "llm__timeout": 10.0,
            "llm__max_retries": 0,
        }
        return Assistant(make_settings(seeds_assistant.index_dir, **{**llm, **overrides}))

    return make


def streamed(assistant: Assistant, question: str) -> tuple[str, Answer]:
    """The text ``ask_stream`` yields, joined, and its final ``Answer``."""
    events = list(assistant.ask_stream(question))
    final = events[-1]
    assert isinstance(final, Answer)
    return "".join(e for e in events if isinstance(e, str)), final


# --- HTTP errors, retries, timeouts --------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_on_every_request_is_retried_a_bounded_number_of_times(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], status: int
) -> None:
    fake.status = status
    assistant = make_assistant(llm__max_retries=2)

    with pytest.raises(LLMError) as caught:
        assistant.ask(QUESTION)

    message = str(caught.value)
    assert fake.base_url in message
    assert f"HTTP {status} after 2 retries" in message
    assert len(fake.chat_requests) == 1 + 2


def test_one_server_error_then_success_is_retried_and_the_answer_verified(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.fail_first = 1
    assistant = make_assistant(llm__max_retries=2)

    answer = assistant.ask(QUESTION)

    first, retry = fake.chat_requests[:2]
    assert retry.body == first.body, "the retry sends the same request again"
    assert not answer.abstained
    assert "Moiseyev" in answer.answer
    assert any("Moiseyev" in c.quote and c.doc_id == "004_ef5f7f6cb4511981.txt" for c in answer.citations)
    check_citations(assistant, answer)


def test_slow_server_times_out_with_the_timeout_named(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.delay = 5.0  # cut short when the fake stops
    assistant = make_assistant(llm__timeout=0.5, llm__max_retries=1)

    with pytest.raises(LLMError, match=r"did not answer within 0\.5 s") as caught:
        assistant.ask(QUESTION)

    assert fake.base_url in str(caught.value)
    assert "RAG_LLM_TIMEOUT" in str(caught.value)
    assert len(fake.chat_requests) == 2, "a timed-out request is retried max_retries times, no more"


def test_a_hung_model_fails_at_the_answer_deadline_not_after_every_timeout(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """Three attempts of 120 s were six minutes; the deadline bounds every call of the answer together."""
    fake.delay = 60.0
    assistant = make_assistant(llm__timeout=120.0, llm__max_retries=2, llm__deadline=2.0)
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"within its 2 s deadline \(llm\.deadline\)") as caught:
        assistant.ask(QUESTION)
    assert time.monotonic() - started < 6.0
    assert "RAG_LLM_DEADLINE" in str(caught.value) and fake.base_url in str(caught.value)


@pytest.mark.parametrize("deadline", [2.0, 0.0])
def test_a_stream_that_stops_mid_answer_is_an_error_in_bounded_time(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], deadline: float
) -> None:
    fake.stall = 60.0
    assistant = make_assistant(llm__timeout=1.0 if not deadline else 120.0, llm__deadline=deadline)
    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        streamed(assistant, QUESTION)
    assert time.monotonic() - started < 6.0
    expected = "2 s deadline" if deadline else "stopped sending the answer (nothing for 1 s)"
    assert expected in str(caught.value)


def test_rejected_key_names_the_setting_and_was_sent_as_a_bearer_token(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.status = 401
    assistant = make_assistant(llm__api_key="sk-test-123", llm__max_retries=2)

    with pytest.raises(LLMError, match="rejected the API key") as caught:
        assistant.ask(QUESTION)

    assert "RAG_LLM_API_KEY" in str(caught.value)
    assert fake.base_url in str(caught.value)
    assert [r.authorization for r in fake.chat_requests] == ["Bearer sk-test-123"], "a 401 is not retried"


def test_unknown_model_names_the_model_setting(fake: FakeOpenAI, make_assistant: Callable[..., Assistant]) -> None:
    fake.status = 404
    assistant = make_assistant(llm__model="no-such-model")

    with pytest.raises(LLMError, match="RAG_LLM_MODEL") as caught:
        assistant.ask(QUESTION)

    assert "'no-such-model'" in str(caught.value)
    assert fake.chat_requests[0].body is not None
    assert fake.chat_requests[0].body["model"] == "no-such-model"


def test_bad_request_is_not_retried_nor_said_to_be(fake: FakeOpenAI, make_assistant: Callable[..., Assistant]) -> None:
    fake.status = 400  # what llama.cpp answers to a prompt longer than its context
    assistant = make_assistant(llm__max_retries=2)

    with pytest.raises(LLMError, match="HTTP 400") as caught:
        assistant.ask(QUESTION)

    assert len(fake.chat_requests) == 1
    assert "retries" not in str(caught.value)


def test_chat_model_is_reusable_after_an_error(fake: FakeOpenAI, make_assistant: Callable[..., Assistant]) -> None:
    assistant = make_assistant()
    fake.status = 500
    with pytest.raises(LLMError, match="HTTP 500"):
        assistant.ask(QUESTION)
    client = assistant.model.client

    fake.status = None
    answer = assistant.ask(QUESTION)

    assert "Moiseyev" in answer.answer
    assert assistant.model.client is client
    assert len(fake.chat_requests) >= 2


# --- answers that are not answers ----------------------------------------------------------------------

NOT_JSON = b"<html><body>502 Bad Gateway</body></html>"
OTHER_JSON = b'{"detail": "Not Found"}'


@pytest.mark.parametrize(
    ("stream", "body", "content_type"),
    [
        (False, NOT_JSON, "application/json"),
        (False, NOT_JSON, "text/html"),  # the client hands this back as a str instead of raising
        (False, OTHER_JSON, "application/json"),  # the client builds a completion with choices=None
        (True, NOT_JSON, "text/event-stream"),
        (True, OTHER_JSON, "text/event-stream"),
        # A stream asked for and a plain 200 body given: garbage and "{}" (issue 12: shown as an abstention).
        (True, NOT_JSON, "application/json"),
        (True, b"{}", "application/json"),
        (True, b"{}", "text/event-stream"),
        (False, b"{}", "application/json"),
    ],
)
def test_garbage_is_a_clear_error_not_a_crash_or_a_silent_abstention(
    fake: FakeOpenAI,
    make_assistant: Callable[..., Assistant],
    stream: bool,
    body: bytes,
    content_type: str,
) -> None:
    fake.garbage = True
    fake.garbage_body = body
    fake.garbage_content_type = content_type
    assistant = make_assistant()

    with pytest.raises(LLMError, match="not an OpenAI chat completion") as caught:
        if stream:
            streamed(assistant, QUESTION)
        else:
            assistant.ask(QUESTION)

    assert fake.base_url in str(caught.value)
    assert "RAG_LLM_BASE_URL" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
def test_empty_output_is_an_error_not_an_abstention(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], stream: bool
) -> None:
    """A model that says nothing is broken: the user is told, never shown "the documents do not answer"."""
    fake.empty = True
    assistant = make_assistant()

    with pytest.raises(LLMError, match="returned an empty answer") as caught:
        if stream:
            streamed(assistant, QUESTION)
        else:
            assistant.ask(QUESTION)
    assert "RAG_LLM_MODEL" in str(caught.value)


def test_refusal_abstains_and_lists_the_closest_passages(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.reply_for = answering("NOT FOUND")
    fake.judge_score = 0.2  # no retrieved sentence answers it either
    assistant = make_assistant(answer__fallback_sentences=2)

    answer = assistant.ask("What is the boiling point of mercury?")

    assert answer.abstained is True
    assert answer.answer == ABSTAIN_TEXT
    assert answer.citations == []
    assert answer.passages
    assert "NOT FOUND" not in answer.answer
    judged = [r for r in fake.chat_requests if is_judge_request(r.messages)]
    assert len(judged) == assistant.settings.answer.fallback_sentences  # each candidate sentence was tried


@pytest.mark.parametrize("stream", [False, True])
def test_a_refusal_with_an_answering_sentence_shows_that_sentence_quoted(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], stream: bool
) -> None:
    """Extractive fallback: the model said NOT FOUND, the judge finds a retrieved sentence that answers."""
    fake.reply_for = answering("NOT FOUND")
    fake.judge_score = 0.95
    assistant = make_assistant(answer__fallback_sentences=2)

    text, answer = streamed(assistant, QUESTION) if stream else ("", assistant.ask(QUESTION))

    assert not answer.abstained
    assert answer.answer.endswith("[1].") and len(answer.citations) == 1
    citation = answer.citations[0]
    source = (SEEDS / citation.doc_id).read_text(encoding="utf-8")
    assert source[citation.start : citation.end] == citation.quote
    assert " ".join(citation.quote.split()).rstrip(".") in answer.answer  # the sentence itself is the answer
    assert answer.timings_ms.get("fallback") == 1
    if stream:
        assert text == answer.answer


def asked_to_copy(messages: Messages) -> bool:
    """Whether a chat request is the second attempt's: "copy the sentence that answers" (prompts/extract.*)."""
    from rag.prompts import load_prompt

    instruction = load_prompt("extract").user.split("}}", 1)[1].strip()
    return bool(messages) and messages[-1].get("content", "").endswith(instruction)


def refusing_then_copying(copied: str) -> Callable[[Messages], str]:
    """A model that says NOT FOUND to the answer prompt and ``copied`` when asked to copy the sentence."""

    def reply_for(messages: Messages) -> str:
        return copied if asked_to_copy(messages) else "NOT FOUND"

    return reply_for


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "copied",
    [
        "[1] Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said last week that Moscow has the right.",
        "[1] Alexander Moiseyev",  # a fragment: the sentence it comes from is shown
        "[1]",  # only a passage: its sentence closest to the question
        "[1] (Title; article) Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said so.",  # the label too
        "[1] <Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said so.>",  # the prompt's <...> pattern
    ],
)
def test_a_refusal_is_asked_once_more_to_copy_the_sentence_that_answers(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], stream: bool, copied: str
) -> None:
    fake.reply_for = refusing_then_copying(copied)
    fake.judge_score = 0.95
    assistant = make_assistant(answer__extract_retry=True)

    text, answer = streamed(assistant, QUESTION) if stream else ("", assistant.ask(QUESTION))

    assert not answer.abstained and "Moiseyev" in answer.answer and "Northern Fleet" in answer.answer
    check_citations(assistant, answer)
    copies = [r for r in fake.chat_requests if asked_to_copy(r.messages)]
    assert len(copies) == 1
    first = next(r for r in fake.chat_requests if not is_judge_request(r.messages) and not asked_to_copy(r.messages))
    # The first request is a prefix of the second, so the server's prompt cache reuses it.
    assert copies[0].messages[:-1] == first.messages[:-1]
    assert copies[0].messages[-1]["content"].startswith(first.messages[-1]["content"])
    assert answer.timings_ms.get("retried") == 1 and "retry" in answer.timings_ms
    if stream:
        assert text == answer.answer


def test_a_copied_sentence_is_verified_like_any_answer(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """What the second attempt copies goes through the same checks: a low judge score, or a name the quote lacks,
    leaves the question refused."""
    fake.reply_for = refusing_then_copying("[1] Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet.")
    fake.judge_score = 0.2
    assert make_assistant(answer__extract_retry=True).ask(QUESTION).abstained
    fake.judge_score = 0.95
    fake.reply_for = refusing_then_copying("[1] Adm. Ivan Petrov is chief of Russia’s Northern Fleet.")
    assert make_assistant(answer__extract_retry=True).ask(QUESTION).abstained


def test_the_second_attempt_runs_only_when_nothing_was_verified(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.judge_score = 0.95  # the first answer (TRUE_SENTENCE) is verified: no second call
    assert not make_assistant(answer__extract_retry=True).ask(QUESTION).abstained
    fake.reply_for = refusing_then_copying("[1] Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet.")
    assert make_assistant().ask(QUESTION).abstained  # off by default (answer.extract_retry = false)
    assert not [r for r in fake.chat_requests if asked_to_copy(r.messages)]


def test_a_yes_opening_an_answer_to_a_wh_question_is_dropped(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.reply_for = answering("Yes, " + TRUE_SENTENCE)
    fake.judge_score = 0.95
    answer = make_assistant().ask(QUESTION)
    assert "Adm. Alexander Moiseyev is chief" in answer.answer and "Yes" not in answer.answer


def judged_answer(messages: Messages) -> str:
    """The answer sentence a judge request asks about (prompts/judge.user.txt's "Answer:" line)."""
    return re.search(r"^Answer: (.*)$", messages[-1]["content"], re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_an_answer_whose_wording_fails_is_shown_in_its_source_words(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """The model found the answer but wrote a fragment the judge rejects: the evidence sentence that holds it is
    judged in its place and shown, quoted exactly."""
    fake.reply_for = answering("Alexander Moiseyev [1]")
    fake.judge_score = lambda messages: 0.2 if judged_answer(messages).startswith("Alexander Moiseyev") else 0.95
    answer = make_assistant().ask(QUESTION)
    assert not answer.abstained and answer.timings_ms.get("source_words") == 1
    assert "Adm. Alexander Moiseyev" in answer.answer and "Northern Fleet" in answer.answer
    assert answer.unsupported == ["Alexander Moiseyev"]
    check_citations(make_assistant(), answer)
    assert "Moiseyev" in answer.citations[0].quote


def test_an_answer_that_contradicts_its_source_is_not_shown_in_the_source_words(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """A negation the quote lacks is another answer, not other wording: the quote is not shown in its place."""
    fake.reply_for = answering("Adm. Alexander Moiseyev is not the chief of Russia’s Northern Fleet [1].")
    fake.judge_score = 0.95
    answer = make_assistant().ask(QUESTION)
    assert answer.abstained and "source_words" not in answer.timings_ms
    assert not [r for r in fake.chat_requests if is_judge_request(r.messages)]  # the hard check decided


def test_the_source_words_are_judged_once_and_can_fail(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    fake.reply_for = answering("Alexander Moiseyev [1]. Alexander Moiseyev again [1].")
    fake.judge_score = 0.2  # neither the model's words nor the source sentence is supported: an abstention
    answer = make_assistant().ask(QUESTION)
    assert answer.abstained
    judged = [judged_answer(r.messages) for r in fake.chat_requests if is_judge_request(r.messages)]
    assert len(judged) == len(set(judged)) == 3  # two model sentences, one source sentence (tried once)
    seen = len(fake.chat_requests)
    fake.judge_score = 0.95
    fake.reply_for = answering("Alexander Moiseyev [1]")
    # Off: the model's own sentence (a reader's comment here) or nothing.
    assert make_assistant(answer__source_words=False).ask(QUESTION).answer.endswith("Alexander Moiseyev [1].")
    fake.judge_score = 0.2
    assert make_assistant(answer__source_words=False).ask(QUESTION).abstained
    assert len([r for r in fake.chat_requests[seen:] if is_judge_request(r.messages)]) == 2


def test_a_yes_that_opens_a_negated_statement_is_a_no(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """The small model writes "Yes, ... do not ..." to "Do ...?": the verdict is made to agree with the statement
    its quote supports, and the judge sees the corrected sentence."""
    question = "According to The Moscow Times, do American airlines fly over Russia?"
    fake.reply_for = answering("Yes, U.S. carriers do not fly over Russia [1].")
    fake.judge_score = lambda messages: 0.2 if "Answer: Yes" in messages[-1]["content"] else 0.95
    answer = make_assistant().ask(question)
    assert answer.answer.startswith("No — U.S. carriers do not fly over Russia [1]")
    assert "do not fly over" in answer.citations[0].quote
    # A "Yes" that agrees with its statement, and a "No", are left as written.
    fake.reply_for = answering("Yes, Kerry's trip to Sochi was the highest-level U.S. visit to Russia [1].")
    fake.judge_score = 0.95
    asked = "Was Kerry's trip to Sochi the highest-level American visit to Russia since the Ukraine crisis began?"
    assert make_assistant().ask(asked).answer.startswith("Yes, Kerry's trip")


def test_a_two_part_question_is_answered_part_by_part(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """Each part gets its own search, evidence and model call; the answer cites each part's document."""
    plane = "The United States let Moscow send an airplane to Washington to pick up diplomats [1]."

    def reply_for(messages: Messages) -> str:
        asked = messages[-1]["content"].rsplit("Question:", 1)[-1]
        return TRUE_SENTENCE if "Northern Fleet" in asked and "airplane" not in asked else plane

    fake.reply_for = reply_for
    fake.judge_score = 0.95
    question = "Who is the chief of Russia's Northern Fleet, and what did the US let Moscow send to Washington?"
    assistant = make_assistant(answer__decompose=True)

    answer = assistant.ask(question)

    asked = [r for r in fake.chat_requests if not is_judge_request(r.messages) and not asked_to_copy(r.messages)]
    assert len(asked) == 2  # one model call per part
    assert "Moiseyev" in answer.answer and "airplane" in answer.answer
    check_citations(assistant, answer)
    assert len({c.doc_id for c in answer.citations}) == 2
    assert [p.n for p in answer.passages] == list(range(1, len(answer.passages) + 1))
    seen = len(fake.chat_requests)
    make_assistant().ask(question)
    merged = [r for r in fake.chat_requests[seen:] if not is_judge_request(r.messages)]
    assert len(merged) == 1  # by default, one call over the merged evidence


def test_an_endpoint_without_logprobs_is_judged_by_its_words(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """llama-cpp-python without logits_all answers logprobs requests with HTTP 500: the judge reads YES/NO."""
    fake.reply_for = answering(TRUE_SENTENCE)
    fake.logprobs_error = True
    fake.judge_score = 0.9
    assistant = make_assistant()

    answer = assistant.ask(QUESTION)

    assert not answer.abstained and "Moiseyev" in answer.answer
    assert assistant.model.judge_model.mode == "text"
    judged = [r for r in fake.chat_requests if is_judge_request(r.messages)]
    assert judged[0].body is not None and judged[0].body.get("logprobs") is True  # tried once
    assert all(not (r.body or {}).get("logprobs") for r in judged[1:])  # then words only


# --- what the model writes is checked, not trusted ------------------------------------------------------


def test_invented_marker_and_hallucination_never_reach_the_answer(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    reply = f"{TRUE_SENTENCE.replace('[1]', '[9]')} {HALLUCINATION} [1]. {SECOND_TRUE_SENTENCE}"
    # A judge that agrees with everything: the hallucination must be caught by the alignment with the evidence.
    fake.reply_for = answering(reply)
    fake.judge_score = 0.99
    assistant = make_assistant()

    answer = assistant.ask(QUESTION)

    assert len(answer.passages) < 9, "the model was shown no passage [9]"
    assert "[9]" not in answer.answer
    assert "Moiseyev is chief of Russia’s Northern Fleet" in answer.answer
    assert "navigation rules" in answer.answer
    assert "Paris" not in answer.answer
    assert f"{HALLUCINATION}." in answer.unsupported
    assert not answer.abstained
    check_citations(assistant, answer)


def test_streaming_gives_the_same_answer_as_not_streaming(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    reply = f"{TRUE_SENTENCE} {SECOND_TRUE_SENTENCE}"
    fake.reply_for = answering(reply)
    assistant = make_assistant()

    whole = assistant.ask(QUESTION)
    text, final = streamed(assistant, QUESTION)

    assert not whole.abstained
    assert text == whole.answer == final.answer
    assert final.citations == whole.citations
    stream_request = next(r for r in fake.chat_requests if r.body and r.body.get("stream"))
    assert stream_request.body is not None
    assert stream_request.body["stream_options"] == {"include_usage": True}
    assert final.usage == whole.usage, "the usage of the last SSE chunk is read"
    assert final.usage["completion_tokens"] == len(reply.split())


# --- conversations -------------------------------------------------------------------------------------


def test_follow_up_is_rewritten_before_retrieval(fake: FakeOpenAI, make_assistant: Callable[..., Assistant]) -> None:
    standalone = "What did Adm. Alexander Moiseyev say about navigation rules on the Northern Sea Route?"
    answer_reply = "Moiseyev said that Moscow has the right to set navigation rules along the shipping lane [1]."

    def reply_for(messages: Messages) -> str:
        if "Follow-up question:" in messages[-1]["content"]:
            return f'"{standalone}"\n'
        return answering(answer_reply)(messages)

    fake.reply_for = reply_for
    assistant = make_assistant()
    history = [Turn(question=QUESTION, answer="Adm. Alexander Moiseyev heads Russia’s Northern Fleet [1].")]

    answer = assistant.ask("What did he say about navigation rules?", history=history)

    rewrite, answer_prompt = fake.chat_requests[:2]
    assert QUESTION in rewrite.text()
    assert "Adm. Alexander Moiseyev heads Russia’s Northern Fleet" in rewrite.text()
    assert "What did he say about navigation rules?" in rewrite.text()
    assert answer.question == "What did he say about navigation rules?"
    assert answer.standalone_question == standalone
    assert f"Question: {standalone}" in answer_prompt.text()
    retrieved = {h.chunk.chunk_id for h in assistant.search(standalone, k=assistant.settings.answer.k).hits}
    assert {p.hit.chunk.chunk_id for p in answer.passages} <= retrieved
    assert "navigation rules" in answer.answer
    check_citations(assistant, answer)


def test_endpoint_down_names_the_endpoint_and_the_fix(make_assistant: Callable[..., Assistant]) -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assistant = make_assistant(llm__base_url=f"http://127.0.0.1:{port}/v1", llm__max_retries=1)
    with pytest.raises(LLMError, match=rf"cannot reach the language model at http://127.0.0.1:{port}/v1") as info:
        assistant.ask("Who is the chief of Russia's Northern Fleet?")
    assert "RAG_LLM_BASE_URL" in str(info.value)


def test_cli_chat_rewrites_a_follow_up(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from rag.cli import app

    assistant = make_assistant()
    standalone = "Who heads Russia's Northern Fleet?"
    answer = answering(TRUE_SENTENCE)
    fake.reply_for = lambda messages: (
        standalone if "Follow-up question" in messages[-1]["content"] else answer(messages)
    )
    for key, value in (
        ("RAG_INDEX_DIR", assistant.settings.index.dir),
        ("RAG_LLM_BASE_URL", fake.base_url),
        ("RAG_LLM_MODEL", "fake"),
        ("RAG_LLM_MAX_RETRIES", "0"),
    ):
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["chat"], input="Who is Moiseyev?\nand what does he command?\nexit\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Moiseyev") >= 2 and "[1]" in result.stdout
    assert f"(searched for: {standalone})" in result.stderr
    rewrite = next(r for r in fake.chat_requests if "Follow-up question" in r.text())
    assert "User: Who is Moiseyev?" in rewrite.text() and "and what does he command?" in rewrite.text()


def test_by_default_a_refusal_abstains_without_trying_retrieved_sentences(
    fake: FakeOpenAI, make_assistant: Callable[..., Assistant]
) -> None:
    """The extractive fallback is off by default (answer.fallback_sentences = 0): a refusal (the second attempt
    refused too) is an abstention."""
    fake.reply_for = answering("NOT FOUND")
    fake.judge_score = 0.95  # a judge that would accept any sentence: it must not be asked
    assistant = make_assistant()

    answer = assistant.ask(QUESTION)

    assert answer.abstained and answer.citations == []
    assert not [r for r in fake.chat_requests if is_judge_request(r.messages)]
