"""One model call and the verification of its sentences: what ``rag.answering.answer_events`` runs per question.

``Draft`` is the answer being composed (the verified sentences with their citations, the rejected ones, the
timings). ``PartAnswer`` asks the model one question over its evidence and keeps each sentence of the reply
only if its quote supports it: hard checks on names, numbers and negation, then the judge's calibrated score.
When the first sentence fails, the evidence sentence in the source's own words may stand in its place; when
nothing passes, an optional second attempt and an extractive fallback are tried, and what they give is checked
the same way.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field

from rag.citations import (
    Aligner,
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
from rag.evidence import Passage
from rag.llm.protocol import Deadline, LanguageModel
from rag.prompts import load_prompt
from rag.questions import is_yes_no, split_clauses
from rag.types import AbstainReason, Embedder, Stage, StageName
from rag.verify import (
    contradiction,
    hard_check,
    is_verbatim,
    judged_score,
    lacks_asked_kind,
    negates_asked,
    negation_unanswered,
)

_YES = re.compile(r"^yes\s*(?:—|,)\s*", re.IGNORECASE)  # a "Yes, ..." opening, as split_claims leaves it
_MIN_CLAIM_WORDS = 4  # a shorter reply to "copy the sentence" is a fragment of it ("48"): the sentence is shown
# A copied passage label, "[3] (US, Russia vow to boost cooperation; article) Kerry visited Sochi ...", and the
# angle brackets of the prompt's "[2] <the sentence>" pattern.
_LABEL = re.compile(r"(?<=\])\s*[(<][^()<>]*;\s*(?:article|reader comment)[)>]")
_ANGLED = re.compile(r"(?<=\])(\s*)<([^<>]*)>")


# Why a part of an answer gave nothing to show: the abstention's reason when no part did.
NO_PASSAGES = AbstainReason("no_passages", "no passage of the documents matched the question")
MODEL_DECLINED = AbstainReason("model_declined", "the model found no answer in the passages")
UNSUPPORTED = AbstainReason("unsupported", "no sentence of the model's reply was supported by its quote")


def premise_not_found(terms: list[str]) -> AbstainReason:
    """The question names something (a name, a number) that none of the retrieved passages' documents mention."""
    named = ", ".join(f"“{t}”" for t in terms[:3])
    return AbstainReason(
        "premise_not_found", f"the question names {named}, which none of the retrieved documents mention"
    )


def ms(since: float) -> int:
    return round((time.perf_counter() - since) * 1000)


def add_usage(usage: dict[str, int], call: dict[str, int]) -> None:
    for key, value in call.items():
        usage[key] = usage.get(key, 0) + value


@dataclass
class Draft:
    """The answer being composed: its verified sentences, the rejected ones, its citations, timings and usage."""

    book: CitationBook
    started: float
    timings: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    emitted: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    reasons: list[AbstainReason] = field(default_factory=list)  # why each part that showed nothing did so

    def stage(self, name: StageName, passages: int | None = None) -> Stage:
        """The answer has reached stage ``name`` (reported to the user, never used for a decision)."""
        return Stage(name, round(time.perf_counter() - self.started, 3), passages)

    def emit(self, claim: Claim, supported: bool) -> str | None:
        """The sentence to show for ``claim`` with its citation, or None (recorded as unsupported if it failed)."""
        if not claim.needs_citation:
            return None  # "Yes." and the like: nothing to cite, nothing to show alone
        if not supported or not claim.evidence:
            self.unsupported.append(claim.text)
            return None
        sentence = render_sentence(claim, self.book.cite(claim, supported=True))
        piece = sentence if not self.emitted else " " + sentence
        self.emitted.append(sentence)
        return piece

    def shown(self, piece: str) -> str:
        self.timings.setdefault("first_output", ms(self.started))  # when the user sees the first verified words
        return piece


class PartAnswer:
    """Verified sentences answering ``asked`` from ``passages``: one model call, then each sentence checked.

    ``clause_parts``: the parts of a two-part question answered in this one call; each clause of a sentence
    that fails as a whole is then checked as an answer to its own part.
    """

    def __init__(
        self,
        settings: Settings,
        model: LanguageModel,
        embedder: Embedder,
        texts: Mapping[str, str],
        draft: Draft,
        asked: str,
        passages: list[Passage],
        clause_parts: list[str],
        cancel: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.embedder = embedder
        self.texts = texts
        self.draft = draft
        self.asked = asked
        self.passages = passages
        self.clause_parts = clause_parts
        self.cancel = cancel
        self.deadline = deadline  # every model call of the answer shares it (llm.deadline)
        self.judge = model.judge_model if settings.answer.judge else None
        self.polar = is_yes_no(asked)
        self.tried: set[tuple[str, int]] = set()  # evidence sentences already judged in the model's place
        self.before = len(draft.emitted)  # the first sentence shown for this question must answer what it asks
        self.messages: list[dict[str, str]] = []
        self.refused = False  # the model's reply said the passages do not answer
        self.checking = False  # the "checking" stage has been reported for this part

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @property
    def answered(self) -> bool:
        return len(self.draft.emitted) > self.before

    def run(self, stream: bool) -> Iterator[str | Stage]:
        """The verified pieces of the answer to ``asked`` and the stages it goes through; when nothing is shown,
        the reason is added to ``draft.reasons``."""
        # A name or number of the question that none of the retrieved documents contains is a premise the
        # corpus cannot back ("Who is the chief of the Pacific Fleet?" when only the Northern Fleet is
        # mentioned): the small model would answer from the nearest passage, so it is not asked.
        if not self.passages:
            self.draft.reasons.append(NO_PASSAGES)
            return
        documents = [self.texts[d] for d in {p.doc_id for p in self.passages}]
        if unmatched := unmatched_question_entities(self.asked, documents):
            self.draft.reasons.append(premise_not_found(unmatched))
            return
        self.aligner = Aligner(self.asked, self.passages, self.embedder, self.texts)
        unsupported_before = len(self.draft.unsupported)
        finished = yield from self._reply(stream)
        if not finished:
            return  # cancelled
        if not self.answered and self.settings.answer.extract_retry and not self.cancelled:
            yield from self._second_attempt()
        if not self.answered and self.judge is not None:
            yield from self._fallback()
        if not self.answered:
            rejected = len(self.draft.unsupported) > unsupported_before
            self.draft.reasons.append(MODEL_DECLINED if self.refused and not rejected else UNSUPPORTED)

    def _checking(self) -> Iterator[Stage]:
        """The "checking" stage, once per part, when the first sentence's verification begins."""
        if not self.checking:
            self.checking = True
            yield self.draft.stage("checking")

    def supported(self, claim: Claim, question: str | None = None) -> bool:
        """Support decided by meaning: hard checks on names, numbers and negation, then the judge's score."""
        question = self.asked if question is None else question
        if not claim.evidence:
            return False
        quote = claim.quote
        if hard_check(claim.text, quote, question) is not None:  # a name, number or negation the quote lacks
            return False
        if negation_unanswered(question, quote) is not None:
            return False
        if not self.answered and lacks_asked_kind(question, claim.text) is not None:
            return False  # the first sentence shown must give what was asked: a number, a name
        if self.judge is None:  # answer.judge = false: the aligner's lexical verdict alone (faster, less precise)
            return self.aligner.settle(claim)
        if self.answered and is_verbatim(claim.text, quote):
            return True  # the quote's own words, after a first sentence the judge found to answer the question
        score = judged_score(self.judge, question, claim.text, quote, deadline=self.deadline)  # hard checks passed
        return score >= self.settings.answer.support_threshold

    def _reply(self, stream: bool) -> Generator[str | Stage, None, bool]:
        """The model's reply, each finished sentence verified as it streams; False when cancelled."""
        settings, model, judge = self.settings, self.model, self.judge
        timings = self.draft.timings
        raw = ""
        done = 0  # claims of ``raw`` already handled
        prompt = load_prompt("answer")
        self.messages = prompt.render(passages="\n".join(p.label() for p in self.passages), question=self.asked)
        t_llm = time.perf_counter()
        judged_before = judge.seconds if judge is not None else 0.0  # the judge runs between the stream's tokens
        call: dict[str, int] = {}  # this call's token counts, added to the answer's
        yield self.draft.stage("writing")
        deltas = (
            model.stream(self.messages, settings.answer.max_tokens, call, self.deadline)
            if stream
            else iter([model.complete(self.messages, settings.answer.max_tokens, call, self.deadline)])
        )
        for delta in deltas:
            if self.cancelled:
                if (close := getattr(deltas, "close", None)) is not None:
                    close()  # closes the model's stream now, not when the generator is collected
                return False
            if not raw:
                timings.setdefault("first_token", ms(t_llm))
            raw += delta
            if is_refusal(raw):
                continue
            claims = split_claims(raw)
            for text, markers in claims[done : max(done, len(claims) - 1)]:  # the last may be unfinished
                yield from self._verified(text, markers)
            done = max(done, len(claims) - 1)
        # The model's time: the judge's calls made while the stream was open are counted under "judge" only.
        judged = (judge.seconds - judged_before) if judge is not None else 0.0
        timings["generate"] = timings.get("generate", 0) + max(0, ms(t_llm) - round(judged * 1000))
        add_usage(self.draft.usage, call)
        if not raw.strip():
            raise LLMError(
                f"the language model ({model.model or 'unknown'}) returned an empty answer; "
                "check that RAG_LLM_MODEL is a chat model that follows instructions"
            )
        self.refused = is_refusal(raw)
        if not self.refused:
            for text, markers in split_claims(raw)[done:]:
                if self.cancelled:
                    return False
                yield from self._verified(text, markers)
        return True

    def _verified(self, text: str, markers: tuple[int, ...]) -> Iterator[str | Stage]:
        """The sentence if it is supported; for a two-part question, else each of its clauses that is."""
        yield from self._checking()
        draft = self.draft
        if not self.polar:  # "Yes, the Blignaut family had a vineyard": the small model's habit, not an answer
            text = _YES.sub("", text, count=1)
            text = text[:1].upper() + text[1:]
        else:
            text = consistent_verdict(text, self.asked)
        claim = self.aligner.claim(text, markers)
        whole = self.supported(claim)
        clauses = split_clauses(text) if self.clause_parts and not whole else []
        if not clauses:
            if (piece := draft.emit(claim, whole)) is not None:
                yield draft.shown(piece)
            elif not whole and (source := self._in_source_words(claim)) is not None:
                yield draft.shown(source)
            return
        # "Mara Okafor leads People Operations, and the team's office opened in 2016": one quote cannot
        # hold both halves of an answer drawn from two documents; each clause is checked against its own
        # quote, as an answer to its own part of the question.
        for clause, part in zip(clauses, [*self.clause_parts, *[self.asked] * len(clauses)], strict=False):
            sub = self.aligner.claim(clause, markers)
            sub_supported = self.supported(sub, part)
            if (piece := draft.emit(sub, sub_supported)) is not None:
                yield draft.shown(piece)
            elif not sub_supported and (source := self._in_source_words(sub, part)) is not None:
                yield draft.shown(source)

    def _in_source_words(self, claim: Claim, question: str | None = None) -> str | None:
        """The model's answer as its source words: when its own sentence is not verified, the evidence sentence
        that holds what it adds to the question is judged in its place (the first shown sentence only, and
        each sentence once). The small model's wording is what the judge most often rejects ("... was $2
        million worth", "Flighttime Enterprises", "Two"), not its choice of the answer."""
        if not self.settings.answer.source_words or self.answered:
            return None
        if claim.evidence and contradiction(claim.text, claim.quote) is not None:
            return None  # "Article 107 does not lay down ...": another answer than its source's, not other words
        sentence = self.aligner.source_sentence(claim)
        if sentence is None or (sentence.doc_id, sentence.start) in self.tried:
            return None
        self.tried.add((sentence.doc_id, sentence.start))
        quoted = self.aligner.quoted(sentence)
        if not self.supported(quoted, question):
            return None
        self.draft.timings["source_words"] = 1
        return self.draft.emit(quoted, True)

    def _second_attempt(self) -> Iterator[str | Stage]:
        """The model refused, or nothing it wrote was verified: asked once more, to copy the sentence that
        answers (prompts/extract.user.txt, after the first request; no system prompt of its own). The small
        model often says NOT FOUND with the answer in front of it, yet finds the sentence when asked for it;
        what it copies is verified like any answer."""
        draft = self.draft
        t_retry = time.perf_counter()
        call: dict[str, int] = {}
        # The same system prompt and request, with the instruction after them: the server's prompt cache
        # reuses the whole first call, so only the instruction is read again (about 1-3 s, not 4-6).
        request = load_prompt("extract").render(request=self.messages[-1]["content"])
        reply = self.model.complete(
            [*self.messages[:-1], *request], self.settings.answer.max_tokens, call, self.deadline
        )
        add_usage(draft.usage, call)
        draft.timings["retry"] = ms(t_retry)
        if is_refusal(reply):
            return
        yield from self._checking()
        named = [int(n) for n in re.findall(r"\[(\d+)\]", reply)]
        if not split_claims(reply) and named and (only := self.aligner.best_of_passage(named[0])) is not None:
            reply = f"{only.text} [{named[0]}]"  # "[4]" alone: the passage's sentence closest to the question
        for text, markers in split_claims(_ANGLED.sub(r"\1\2", _LABEL.sub("", reply))):
            claim = self.aligner.claim(text, markers)
            if len(text.split()) < _MIN_CLAIM_WORDS and claim.evidence:
                claim = self.aligner.quoted(claim.evidence[0])  # "[1] 48": the sentence it was copied from
            if (piece := draft.emit(claim, self.supported(claim))) is not None:
                yield draft.shown(piece)
                draft.timings["retried"] = 1
                return

    def _fallback(self) -> Iterator[str | Stage]:
        """Extractive fallback: the model refused, or nothing it wrote could be verified, yet a retrieved
        sentence may answer the question. The judge's score on the sentence itself decides."""
        terms = premise_terms(self.asked)
        if self.settings.answer.fallback_sentences > 0:
            yield from self._checking()
        for sentence in self.aligner.best_sentences(self.settings.answer.fallback_sentences):
            if self.cancelled:
                return
            context = self.texts[sentence.doc_id][max(0, sentence.start - 300) : sentence.end + 300]
            if not all(mentions_loosely(context, term) for term in terms):
                continue  # "The team works from the Lisbon office" does not answer "Why did Finance move?"
            claim = self.aligner.quoted(sentence)
            if self.supported(claim):  # the same checks as the model's own sentences
                if (piece := self.draft.emit(claim, True)) is not None:
                    yield self.draft.shown(piece)
                self.draft.timings["fallback"] = 1
                break


def consistent_verdict(text: str, question: str) -> str:
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
