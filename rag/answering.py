"""Answer a question: retrieve, select evidence, prompt the model, then align and verify its sentences.

``answer_events`` yields the answer text as it is verified, sentence by sentence, and finally the
``Answer``. Streaming and non-streaming calls share it, so what a terminal shows is the final answer.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rag.citations import (
    Aligner,
    Citation,
    CitationBook,
    Claim,
    is_refusal,
    mentions_loosely,
    premise_terms,
    render_sentence,
    split_claims,
    unmatched_question_entities,
)
from rag.config import Settings
from rag.errors import LLMError
from rag.evidence import Passage, select_evidence
from rag.llm.protocol import LanguageModel
from rag.prompts import Prompt, load_prompt
from rag.questions import compared, is_yes_no, split_clauses, sub_questions
from rag.retrieve import Retriever, merge_hits, validate_text
from rag.types import Hit
from rag.verify import (
    contradiction,
    hard_check,
    is_verbatim,
    judged_score,
    lacks_asked_kind,
    negates_asked,
    negation_unanswered,
)

ABSTAIN_TEXT = "The documents do not answer this question."
_YES = re.compile(r"^yes\s*(?:—|,)\s*", re.IGNORECASE)  # a "Yes, ..." opening, as split_claims leaves it
_MIN_CLAIM_WORDS = 4  # a shorter reply to "copy the sentence" is a fragment of it ("48"): the sentence is shown
# A copied passage label, "[3] (US, Russia vow to boost cooperation; article) Kerry visited Sochi ...", and the
# angle brackets of the prompt's "[2] <the sentence>" pattern.
_LABEL = re.compile(r"(?<=\])\s*[(<][^()<>]*;\s*(?:article|reader comment)[)>]")
_ANGLED = re.compile(r"(?<=\])(\s*)<([^<>]*)>")


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation."""

    question: str
    answer: str


@dataclass(frozen=True)
class Answer:
    """A verified answer; ``citations`` are quote spans, ``passages`` what the model saw."""

    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    passages: list[Passage]
    model: str
    prompt: Prompt
    timings_ms: dict[str, int]
    usage: dict[str, int]
    standalone_question: str
    unsupported: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``rag ask --json`` contract of docs/contracts.md."""
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_json() for c in self.citations],
            "passages": [
                {
                    "rank": p.n,
                    "score": round(float(p.hit.score), 6),
                    "doc_id": p.doc_id,
                    "chunk_id": p.hit.chunk.chunk_id,
                    "section": p.section,
                    "start": p.start,
                    "end": p.end,
                    "text": p.text,
                }
                for p in self.passages
            ],
            "model": self.model,
            "prompt": {"name": self.prompt.name, "sha256": self.prompt.sha256},
            "timings_ms": self.timings_ms,
            "usage": self.usage,
            "standalone_question": self.standalone_question,
            "unsupported": self.unsupported,
        }


def standalone_question(model: LanguageModel, question: str, history: list[Turn], turns: int) -> str:
    """A follow-up rewritten into a question that stands alone, using the last ``turns`` exchanges.

    The most recent exchange is marked as such: "there" after a turn about Lisbon means Lisbon, even when an
    earlier turn was about Tallinn. A rewrite that brings in a name from an older turn while the follow-up
    and the last turn name none of it is refused in favour of one anchored on the last question.
    """
    if not history:
        return question
    recent = history[-turns:]

    def exchange(turn: Turn) -> str:
        return f"User: {turn.question}\nAssistant: {turn.answer}"

    earlier = "\n".join(exchange(t) for t in recent[:-1]) or "(none)"
    messages = load_prompt("rewrite").render(history=earlier, last=exchange(recent[-1]), question=question)
    rewritten = model.complete(messages, 80).strip()
    rewritten = rewritten.strip('"').splitlines()[0].strip().strip('"') if rewritten else ""
    rewritten = re.sub(r"^(?:standalone question|question)\s*:\s*", "", rewritten, flags=re.IGNORECASE)
    if not rewritten:
        return question
    latest = f"{question} {recent[-1].question} {recent[-1].answer}"
    older = " ".join(f"{t.question} {t.answer}" for t in recent[:-1])
    stray = [t for t in premise_terms(rewritten) if not mentions_loosely(latest, t) and mentions_loosely(older, t)]
    if stray:  # the referent came from an older turn: anchor on the last question's subject instead
        subject = [t for t in premise_terms(recent[-1].question) if not mentions_loosely(question, t)]
        return f"{question.rstrip(' ?')} ({' '.join(subject)})?" if subject else question
    return rewritten


def validate_question(question: str, settings: Settings) -> str:
    """``question`` stripped, or an ``InputError`` naming the problem (empty, or over answer.max_question_chars)."""
    return validate_text(
        question,
        settings.answer.max_question_chars,
        what="question",
        setting="RAG_ANSWER_MAX_QUESTION_CHARS",
        hint='ask something, e.g. "Who heads Russia\'s Northern Fleet?"',
    )


def answer_events(
    settings: Settings,
    retriever: Retriever,
    model: LanguageModel,
    question: str,
    history: list[Turn] | None = None,
    *,
    stream: bool = True,
    cancel: threading.Event | None = None,
) -> Iterator[str | Answer]:
    """Yield verified answer text as it is ready, then the ``Answer``.

    Setting ``cancel`` (from another thread) stops the work at the next token: the model's stream is closed and
    the generator ends without an ``Answer``.
    """
    started = time.perf_counter()
    question = validate_question(question, settings)
    prompt = load_prompt("answer")
    timings: dict[str, int] = {}
    usage: dict[str, int] = {}
    standalone = standalone_question(model, question, history or [], settings.answer.history_turns)
    if standalone != question:
        timings["rewrite"] = _ms(started)
    t0 = time.perf_counter()
    parts, jobs = gather_evidence(settings, retriever, standalone)
    texts = retriever.index.texts
    timings["retrieve"] = _ms(t0)
    book = CitationBook(texts)
    emitted: list[str] = []
    unsupported: list[str] = []

    def emit(claim: Claim, supported: bool) -> str | None:
        if not claim.needs_citation:
            return None  # "Yes." and the like: nothing to cite, nothing to show alone
        if not supported or not claim.evidence:
            unsupported.append(claim.text)
            return None
        sentence = render_sentence(claim, book.cite(claim, supported=True))
        piece = sentence if not emitted else " " + sentence
        emitted.append(sentence)
        return piece

    def shown(piece: str) -> str:
        timings.setdefault("first_output", _ms(started))  # when the user sees the first verified words
        return piece

    judge = model.judge_model if settings.answer.judge else None
    threshold = settings.answer.support_threshold
    t_judge = judge.seconds if judge is not None else 0.0

    def answer_part(asked: str, passages: list[Passage], clause_parts: list[str]) -> Iterator[str]:
        """Verified sentences answering ``asked`` from ``passages``: one model call, then each sentence checked."""
        # A name or number of the question that none of the retrieved documents contains is a premise the
        # corpus cannot back ("Who is the chief of the Pacific Fleet?" when only the Northern Fleet is
        # mentioned): the small model would answer from the nearest passage, so it is not asked.
        if not passages or unmatched_question_entities(asked, [texts[d] for d in {p.doc_id for p in passages}]):
            return
        aligner = Aligner(asked, passages, retriever.embedder, texts)
        polar = is_yes_no(asked)
        tried: set[tuple[str, int]] = set()  # evidence sentences already judged in the model's place
        before = len(emitted)  # the first sentence shown for this question must answer what it asks

        def supported(claim: Claim, question: str = asked) -> bool:
            """Support decided by meaning: hard checks on names, numbers and negation, then the judge's score."""
            if not claim.evidence:
                return False
            quote = claim.quote
            if hard_check(claim.text, quote, question) is not None:  # a name, number or negation the quote lacks
                return False
            if negation_unanswered(question, quote) is not None:
                return False
            if len(emitted) == before and lacks_asked_kind(question, claim.text) is not None:
                return False  # the first sentence shown must give what was asked: a number, a name
            if judge is None:  # answer.judge = false: the aligner's lexical verdict alone (faster, less precise)
                return aligner.settle(claim)
            if len(emitted) > before and is_verbatim(claim.text, quote):
                return True  # the quote's own words, after a first sentence the judge found to answer the question
            return judged_score(judge, question, claim.text, quote) >= threshold  # hard checks passed above

        def in_source_words(claim: Claim, question: str = asked) -> str | None:
            """The model's answer as its source words: when its own sentence is not verified, the evidence sentence
            that holds what it adds to the question is judged in its place (the first shown sentence only, and
            each sentence once). The small model's wording is what the judge most often rejects ("... was $2
            million worth", "Flighttime Enterprises", "Two"), not its choice of the answer."""
            if not settings.answer.source_words or len(emitted) > before:
                return None
            if claim.evidence and contradiction(claim.text, claim.quote) is not None:
                return None  # "Article 107 does not lay down ...": another answer than its source's, not other words
            sentence = aligner.source_sentence(claim)
            if sentence is None or (sentence.doc_id, sentence.start) in tried:
                return None
            tried.add((sentence.doc_id, sentence.start))
            quoted = aligner.quoted(sentence)
            if not supported(quoted, question):
                return None
            timings["source_words"] = 1
            return emit(quoted, True)

        def verified(text: str, markers: tuple[int, ...]) -> Iterator[str]:
            """The sentence if it is supported; for a two-part question, else each of its clauses that is."""
            if not polar:  # "Yes, the Blignaut family had a vineyard": the small model's habit, not an answer
                text = _YES.sub("", text, count=1)
                text = text[:1].upper() + text[1:]
            else:
                text = _consistent_verdict(text, asked)
            claim = aligner.claim(text, markers)
            whole = supported(claim)
            clauses = split_clauses(text) if clause_parts and not whole else []
            if not clauses:
                if (piece := emit(claim, whole)) is not None:
                    yield shown(piece)
                elif not whole and (source := in_source_words(claim)) is not None:
                    yield shown(source)
                return
            # "Mara Okafor leads People Operations, and the team's office opened in 2016": one quote cannot
            # hold both halves of an answer drawn from two documents; each clause is checked against its own
            # quote, as an answer to its own part of the question.
            for clause, part in zip(clauses, [*clause_parts, *[asked] * len(clauses)], strict=False):
                sub = aligner.claim(clause, markers)
                sub_supported = supported(sub, part)
                if (piece := emit(sub, sub_supported)) is not None:
                    yield shown(piece)
                elif not sub_supported and (source := in_source_words(sub, part)) is not None:
                    yield shown(source)

        def second_attempt() -> Iterator[str]:
            """The model refused, or nothing it wrote was verified: asked once more, to copy the sentence that
            answers (prompts/extract.user.txt, after the first request; no system prompt of its own). The small
            model often says NOT FOUND with the answer in front of it, yet finds the sentence when asked for it;
            what it copies is verified like any answer."""
            t_retry = time.perf_counter()
            call: dict[str, int] = {}
            # The same system prompt and request, with the instruction after them: the server's prompt cache
            # reuses the whole first call, so only the instruction is read again (about 1-3 s, not 4-6).
            request = load_prompt("extract").render(request=messages[-1]["content"])
            reply = model.complete([*messages[:-1], *request], settings.answer.max_tokens, call)
            _add_usage(usage, call)
            timings["retry"] = _ms(t_retry)
            if is_refusal(reply):
                return
            named = [int(n) for n in re.findall(r"\[(\d+)\]", reply)]
            if not split_claims(reply) and named and (only := aligner.best_of_passage(named[0])) is not None:
                reply = f"{only.text} [{named[0]}]"  # "[4]" alone: the passage's sentence closest to the question
            for text, markers in split_claims(_ANGLED.sub(r"\1\2", _LABEL.sub("", reply))):
                claim = aligner.claim(text, markers)
                if len(text.split()) < _MIN_CLAIM_WORDS and claim.evidence:
                    claim = aligner.quoted(claim.evidence[0])  # "[1] 48": the sentence it was copied from
                if (piece := emit(claim, supported(claim))) is not None:
                    yield shown(piece)
                    timings["retried"] = 1
                    return

        raw = ""
        done = 0  # claims of ``raw`` already handled
        messages = prompt.render(passages="\n".join(p.label() for p in passages), question=asked)
        t_llm = time.perf_counter()
        judged_before = judge.seconds if judge is not None else 0.0  # the judge runs between the stream's tokens
        call: dict[str, int] = {}  # this call's token counts, added to the answer's
        deltas = (
            model.stream(messages, settings.answer.max_tokens, call)
            if stream
            else iter([model.complete(messages, settings.answer.max_tokens, call)])
        )
        for delta in deltas:
            if cancel is not None and cancel.is_set():
                if (close := getattr(deltas, "close", None)) is not None:
                    close()  # closes the model's stream now, not when the generator is collected
                return
            if not raw:
                timings.setdefault("first_token", _ms(t_llm))
            raw += delta
            if is_refusal(raw):
                continue
            claims = split_claims(raw)
            for text, markers in claims[done : max(done, len(claims) - 1)]:  # the last may be unfinished
                yield from verified(text, markers)
            done = max(done, len(claims) - 1)
        # The model's time: the judge's calls made while the stream was open are counted under "judge" only.
        judged = (judge.seconds - judged_before) if judge is not None else 0.0
        timings["generate"] = timings.get("generate", 0) + max(0, _ms(t_llm) - round(judged * 1000))
        _add_usage(usage, call)
        if not raw.strip():
            raise LLMError(
                f"the language model ({model.model or 'unknown'}) returned an empty answer; "
                "check that RAG_LLM_MODEL is a chat model that follows instructions"
            )
        if not is_refusal(raw):
            for text, markers in split_claims(raw)[done:]:
                if cancel is not None and cancel.is_set():
                    return
                yield from verified(text, markers)
        if len(emitted) == before and settings.answer.extract_retry and not (cancel is not None and cancel.is_set()):
            yield from second_attempt()
        if len(emitted) == before and judge is not None:
            # Extractive fallback: the model refused, or nothing it wrote could be verified, yet a retrieved
            # sentence may answer the question. The judge's score on the sentence itself decides.
            terms = premise_terms(asked)
            for sentence in aligner.best_sentences(settings.answer.fallback_sentences):
                if cancel is not None and cancel.is_set():
                    return
                context = texts[sentence.doc_id][max(0, sentence.start - 300) : sentence.end + 300]
                if not all(mentions_loosely(context, term) for term in terms):
                    continue  # "The team works from the Lisbon office" does not answer "Why did Finance move?"
                claim = aligner.quoted(sentence)
                if supported(claim):  # the same checks as the model's own sentences
                    if (piece := emit(claim, True)) is not None:
                        yield shown(piece)
                    timings["fallback"] = 1
                    break

    for asked, part_passages in jobs:
        if cancel is not None and cancel.is_set():
            return
        yield from answer_part(asked, part_passages, [] if len(jobs) > 1 else parts)
        if cancel is not None and cancel.is_set():
            return
    passages = _numbered([p for _, part_passages in jobs for p in part_passages])
    if judge is not None:
        timings["judge"] = round((judge.seconds - t_judge) * 1000)
    abstained = not emitted
    if abstained:
        yield shown(ABSTAIN_TEXT)
    timings["total"] = _ms(started)
    yield Answer(
        question=question,
        answer=ABSTAIN_TEXT if abstained else " ".join(emitted),
        abstained=abstained,
        citations=[] if abstained else book.citations,
        passages=passages,
        model=model.model,
        prompt=prompt,
        timings_ms=timings,
        usage=usage,
        standalone_question=standalone,
        unsupported=unsupported,
    )


def _consistent_verdict(text: str, question: str) -> str:
    """A "Yes" opening a statement that denies what a yes/no question asks is a "No": "Yes, U.S. carriers do not
    fly over Russia" answers "Do American airlines fly over Russia?" with "No — U.S. carriers do not fly over
    Russia" (``rag.verify.negates_asked``; "Yes, it can be ridden in the rain but must not be submerged" stays).
    The statement is what the quote must support; the verdict is made to agree with it."""
    opening = _YES.match(text)
    if opening is None:
        return text
    statement = text[opening.end() :]
    if not negates_asked(statement, question):
        return text
    return f"No — {statement[:1].upper()}{statement[1:]}"


def gather_evidence(
    settings: Settings, retriever: Retriever, question: str
) -> tuple[list[str], list[tuple[str, list[Passage]]]]:
    """The parts of ``question`` and, for each model call to make, the question it asks and its evidence.

    No model is called here, so `rag eval --retrieval-only` measures the evidence the model would see.
    """
    parts = sub_questions(question)
    jobs: list[tuple[str, list[Passage]]] = []  # (question, its evidence): one model call each
    if parts and settings.answer.decompose:
        # A two-part question is answered part by part: each part gets its own search, evidence, answer and
        # verification, and the answer is the parts' verified sentences, each citing its own document.
        for part in parts:
            part_hits = retriever.search(part, k=settings.answer.k)
            jobs.append((part, _evidence(settings, retriever, part, part_hits, [])))
        return parts, jobs
    # A comparison ("Which was started first, A or B?") is answered in one call, each side searched for.
    parts = parts or compared(question)
    hits = retriever.search(question, k=settings.answer.k)
    if parts:  # each part is looked up too, and the evidence keeps the best for each
        hits = merge_hits([hits, *(retriever.search(part, k=settings.answer.part_k) for part in parts)])
    jobs.append((question, _evidence(settings, retriever, question, hits, parts)))
    return parts, jobs


def _evidence(
    settings: Settings, retriever: Retriever, question: str, hits: list[Hit], parts: list[str]
) -> list[Passage]:
    return select_evidence(
        question,
        hits,
        retriever.index.documents,
        retriever.embedder,
        settings.answer.evidence_chars,
        parts,
        settings.answer.neighbour_weight,
    )


def _numbered(passages: list[Passage]) -> list[Passage]:
    """The passages of all parts as one list, each span once, numbered from 1 in order."""
    seen: set[tuple[str, int, int]] = set()
    kept: list[Passage] = []
    for passage in passages:
        if (passage.doc_id, passage.start, passage.end) not in seen:
            seen.add((passage.doc_id, passage.start, passage.end))
            kept.append(dataclasses.replace(passage, n=len(kept) + 1))
    return kept


def _add_usage(usage: dict[str, int], call: dict[str, int]) -> None:
    """One model call's token counts added to the answer's."""
    for name, count in call.items():
        usage[name] = usage.get(name, 0) + count


def _ms(since: float) -> int:
    return round((time.perf_counter() - since) * 1000)
