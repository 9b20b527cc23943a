"""Answer a question: retrieve, select evidence, prompt the model, then align and verify its sentences.

``answer_events`` yields the answer text as it is verified, sentence by sentence, the ``Stage``s the answer goes
through (searching, reading, writing, checking: for a waiting user, they decide nothing), and finally the
``Answer``. Streaming and non-streaming calls share it, so what a terminal shows is the final answer.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from rag.citations import (
    Citation,
    CitationBook,
    mentions_loosely,
    premise_terms,
)
from rag.config import Settings
from rag.evidence import Passage, select_evidence
from rag.llm.protocol import Deadline, LanguageModel
from rag.prompts import Prompt, load_prompt
from rag.questions import compared, sub_questions
from rag.retrieve import Retriever, merge_hits, validate_text
from rag.types import AbstainReason, Document, Hit, Stage
from rag.verified import Draft, PartAnswer, ms

ABSTAIN_TEXT = "The documents do not answer this question."
CLOSEST_PASSAGES = 3  # passages shown with an abstention: what came closest to answering


@dataclass(frozen=True)
class ClosestPassage:
    """A passage shown with an abstention; ``source``: the document's URL when it gave one, else its doc_id."""

    doc_id: str
    title: str
    source: str
    page: int | None
    start: int
    end: int
    text: str


def closest_passages(passages: list[Passage], documents: Mapping[str, Document]) -> list[ClosestPassage]:
    """The first ``CLOSEST_PASSAGES`` passages the model saw (numbered by relevance), for an abstention."""
    return [
        ClosestPassage(
            doc_id=p.doc_id,
            title=p.title,
            source=documents[p.doc_id].metadata.get("url") or p.doc_id,
            page=p.page,
            start=p.start,
            end=p.end,
            text=p.text,
        )
        for p in passages[:CLOSEST_PASSAGES]
    ]


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
    abstain_reason: AbstainReason | None = None  # why it abstained (None when answered)
    closest_passages: list[ClosestPassage] = field(default_factory=list)  # on abstention only


def standalone_question(
    model: LanguageModel, question: str, history: list[Turn], turns: int, deadline: Deadline | None = None
) -> str:
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
    rewritten = model.complete(messages, 80, deadline=deadline).strip()
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
    doc_ids: list[str] | None = None,
    sections: list[str] | None = None,
) -> Iterator[str | Stage | Answer]:
    """Yield verified answer text as it is ready and the ``Stage``s it reaches, then the ``Answer``.

    ``doc_ids``/``sections`` restrict the search (and so the evidence and the citations) as ``Retriever.search``
    does. Setting ``cancel`` (from another thread) stops the work at the next token: the model's stream is closed
    and the generator ends without an ``Answer``.
    """
    started = time.perf_counter()
    question = validate_question(question, settings)
    retriever.check_filter(doc_ids, sections)  # an unknown document fails now, before any model call
    prompt = load_prompt("answer")
    draft = Draft(CitationBook(retriever.index.documents), started)
    yield draft.stage("searching")
    deadline = Deadline.start(settings.llm.deadline)
    standalone = standalone_question(model, question, history or [], settings.answer.history_turns, deadline)
    if standalone != question:
        draft.timings["rewrite"] = ms(started)
    t0 = time.perf_counter()
    parts, jobs = gather_evidence(settings, retriever, standalone, doc_ids, sections)
    draft.timings["retrieve"] = ms(t0)
    passages = _numbered([p for _, part_passages in jobs for p in part_passages])
    yield draft.stage("reading", passages=len(passages))
    judge = model.judge_model if settings.answer.judge else None
    t_judge = judge.seconds if judge is not None else 0.0
    for asked, part_passages in jobs:
        if cancel is not None and cancel.is_set():
            return
        clause_parts = [] if len(jobs) > 1 else parts
        part = PartAnswer(
            settings,
            model,
            retriever.embedder,
            retriever.index.texts,
            draft,
            asked,
            part_passages,
            clause_parts,
            cancel,
            deadline,
        )
        yield from part.run(stream)
        if cancel is not None and cancel.is_set():
            return
    if judge is not None:
        draft.timings["judge"] = round((judge.seconds - t_judge) * 1000)
    abstained = not draft.emitted
    if abstained:
        yield draft.shown(ABSTAIN_TEXT)
    draft.timings["total"] = ms(started)
    yield Answer(
        question=question,
        answer=ABSTAIN_TEXT if abstained else " ".join(draft.emitted),
        abstained=abstained,
        citations=[] if abstained else draft.book.citations,
        passages=passages,
        model=model.model,
        prompt=prompt,
        timings_ms=draft.timings,
        usage=draft.usage,
        standalone_question=standalone,
        unsupported=draft.unsupported,
        abstain_reason=draft.reasons[0] if abstained and draft.reasons else None,
        closest_passages=closest_passages(passages, retriever.index.documents) if abstained else [],
    )


def gather_evidence(
    settings: Settings,
    retriever: Retriever,
    question: str,
    doc_ids: list[str] | None = None,
    sections: list[str] | None = None,
) -> tuple[list[str], list[tuple[str, list[Passage]]]]:
    """The parts of ``question`` and, for each model call to make, the question it asks and its evidence, only
    from ``doc_ids`` and ``sections`` when given.

    No model is called here, so `rag eval --retrieval-only` measures the evidence the model would see.
    """

    def search(text: str, k: int) -> list[Hit]:
        return retriever.search(text, k=k, doc_ids=doc_ids, sections=sections)

    parts = sub_questions(question)
    jobs: list[tuple[str, list[Passage]]] = []  # (question, its evidence): one model call each
    if parts and settings.answer.decompose:
        # A two-part question is answered part by part: each part gets its own search, evidence, answer and
        # verification, and the answer is the parts' verified sentences, each citing its own document.
        for part in parts:
            part_hits = search(part, settings.answer.k)
            jobs.append((part, _evidence(settings, retriever, part, part_hits, [])))
        return parts, jobs
    # A comparison ("Which was started first, A or B?") is answered in one call, each side searched for.
    parts = parts or compared(question)
    hits = search(question, settings.answer.k)
    if parts:  # each part is looked up too, and the evidence keeps the best for each
        hits = merge_hits([hits, *(search(part, settings.answer.part_k) for part in parts)])
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
