"""Align each answer sentence with the evidence, verify support, and number citations by code.

The model's own ``[n]`` markers are only a hint: every sentence is matched against the evidence
sentences by lexical coverage and embedding similarity (its quote); whether the quote supports it is decided
by meaning in ``rag.verify``; and the markers the user sees are assigned here, so none points at nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rag.chunking import sentence_spans
from rag.evidence import Passage, Sentence, lexical_overlap
from rag.lexical import tokenize
from rag.types import Document, Embedder

_MARKERS = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
# A marker written after the full stop belongs to the sentence before it.
_MARKER_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])+)")
_REFUSAL = re.compile(
    r"NOT\s+FOUND|\b(?:passages?|texts?|context|documents?|corpus)\b.{0,40}\b(?:do(?:es)?\s+not|don't|doesn't)\b"
    r".{0,30}\b(?:contain|provide|mention|answer|include|say|specify)|\bno information\b|\bcannot answer\b",
    re.IGNORECASE,
)
# Names and numbers: a claim that states one its evidence never mentions is not supported by it.
_NAME = re.compile(r"(?<![\w.])[A-Z][\w\-’']*[a-z][\w\-]*")
NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty "
    "seventy eighty ninety hundred thousand million billion half dozen".split()
)
# A quantity and the word it counts ("eight hours", "2 million", "48 people"): the pair must be in the quote.
_QUANTITY = re.compile(
    rf"(?<![\w.,])(\d(?:[\d,.]*\d)?|{'|'.join(sorted(NUMBER_WORDS))})(?:\s+([A-Za-z]+))?(?!\w)", re.IGNORECASE
)
_MONTHS = frozenset("january february march april may june july august september october november december".split())
_FUNCTION_WORDS = frozenset("of in on at to and or the a an for by from with than as per".split())
_SENTENCE_STARTERS = frozenset(
    "the a an this that these those it its he she his her they their we i you in on at according however yes "
    "no there after before during while when both also as but and so for to of by with from what who which "
    "where why how if then one some all is are was were has have had do does did can could will would should "
    "may might must whom whose whatever whichever whoever whenever wherever name list describe explain give tell "
    "compare state show please".split()
)
# Talk about the prompt itself ("according to passage [2]") is not part of the answer.
_PASSAGE_TALK = re.compile(
    r",?\s*\(?(?:(?:as\s+)?(?:stated|mentioned|according)\s+(?:in|to)|from|in)\s+(?:the\s+)?passages?\s*\[?\d+\]?\)?",
    re.IGNORECASE,
)
# Filler about the sources rather than the answer: "The article states that ...", "According to the passages, ...".
_FILLER = re.compile(
    r"^(?:(?:according\s+to|based\s+on)\s+the\s+(?:provided\s+)?(?:articles?|passages?|texts?|documents?|sources?)"
    r"\s*,\s*|the\s+(?:articles?|passages?|texts?|documents?|sources?)\s+(?:states?|says?|mentions?|notes?|reports?"
    r"|explains?|indicates?)\s+that\s+)",
    re.IGNORECASE,
)
# A sentence about where the answer is rather than what it is: "This information is found.", "This is stated
# clearly in both passages." It says nothing a quote could support; it is dropped like filler.
_SOURCE_REMARK = re.compile(
    r"(?:this|that|it|these|which|(?:the|this|that)\s+(?:information|answer|facts?|details?|principle|point))"
    r"(?:\s+(?:information|answer))?\s+(?:is|are|was|were|can\s+be)\s+(?:\w+ly\s+)?"
    r"(?:found|stated|mentioned|given|provided|shown|confirmed|explained|described|noted|reported|indicated)"
    r"(?:\s+(?:clearly|explicitly|above|here|there|in|on|by|both|the|two|all|passages?|articles?|texts?|"
    r"documents?|sources?|and))*[.!]?",
    re.IGNORECASE,
)
# Numbers as written ("2", "24", "2,000"): the stemmer drops them, an answer's number must still be found.
_DIGITS = re.compile(r"\d(?:[\d,.]*\d)?")
# The share of a claim's own answer words a sentence must hold to be shown in its place (Aligner.source_sentence).
_SOURCE_SHARE = 0.75
# Words that attribute rather than answer ("A reader commented that ..."): the source sentence need not hold them.
_SAYING = "reader readers comment comments commented commenter said says stated wrote"
_BARE_VERDICT = re.compile(r"(?:yes|no)[.!,;:]?", re.IGNORECASE)
_ATTRIBUTION = re.compile(r"\b(?:reader|readers|comment|commenter|commented|commenters)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Citation:
    """A quoted span that supports (or, with ``supported=False``, fails to support) an answer sentence."""

    n: int
    doc_id: str
    start: int
    end: int
    quote: str
    supported: bool
    section: str
    page: int | None = None  # the page the quote starts on, for a paged format (PDF)


@dataclass(frozen=True)
class Claim:
    """One answer sentence as the model wrote it (markers removed), with the evidence chosen for it."""

    text: str
    markers: tuple[int, ...]
    evidence: tuple[Sentence, ...]
    coverage: float
    similarity: float
    supported: bool | None  # None: borderline, for the judge to decide
    needs_citation: bool = True
    missing: tuple[str, ...] = ()  # names or numbers of the claim that its evidence does not contain

    @property
    def quote(self) -> str:
        """The evidence sentences' text, joined: what the checks and the judge compare the claim with."""
        return " ".join(s.text for s in self.evidence)

    @property
    def quote_span(self) -> tuple[str, int, int]:
        return self.evidence[0].doc_id, self.evidence[0].start, self.evidence[-1].end


def entities(text: str) -> list[str]:
    """Names (capitalised words that are not sentence starters) and quantities with what they count.

    These are what a hallucination usually gets wrong: "Two hours of meetings" against "eight hours of meetings".
    """
    found: list[str] = []
    for match in _NAME.finditer(text):
        word = re.sub(r"(?:['’]s|[.,])$", "", match.group(0))
        if word.lower() not in _SENTENCE_STARTERS and word.lower() not in NUMBER_WORDS:
            found.extend(part for part in word.split("-") if len(part) > 1)
    for match in _QUANTITY.finditer(text):
        number, unit = match.group(1), match.group(2)
        if number.lower() == "one":  # "one reader", "one of them": a determiner, not a count
            continue
        if unit and unit.lower() not in _FUNCTION_WORDS:
            found.append(f"{number} {unit}")
        elif number.lower() != "half":  # "half the talks": not a quantity
            found.append(number)
    return found


def missing_entities(claim: str, evidence: str) -> tuple[str, ...]:
    """The claim's names and numbers that ``evidence`` does not mention (case-insensitive; Russia matches Russian)."""
    return tuple(word for word in entities(claim) if not mentions(evidence, word))


def mentions(text: str, word: str) -> bool:
    """Whether ``text`` has ``word`` (or a phrase) as whole words, allowing a short ending (Russia, Russian)."""
    pattern = r"\s+".join(re.escape(part) for part in word.split())
    return re.search(rf"(?<!\w){pattern}\w{{0,3}}(?!\w)", text, re.IGNORECASE) is not None


def premise_terms(question: str) -> list[str]:
    """The names and bare numbers a question takes for granted; hyphenated names split ("US-Russia").

    Months are left out (dates are written in many ways), and so are the words a quantity counts.
    """
    terms: list[str] = []
    for term in entities(question):
        term = term.split()[0]  # "2015 bid" -> "2015"
        if term.lower() in NUMBER_WORDS or term.lower() in _MONTHS:
            continue
        terms.extend(part for part in term.split("-") if len(part) > 1)
    return terms


# A word of a well-known name and the abbreviation a text may use instead ("United States" ~ "U.S."); the
# abbreviations are matched case-sensitively, so "us" is never the United States.
_ABBREVIATED = (
    (frozenset({"united", "states", "america", "american", "americans"}), r"U\.S\.(?:A\.)?|US|USA"),
    (frozenset({"united", "kingdom", "britain", "british"}), r"U\.K\.|UK"),
    (frozenset({"united", "nations"}), r"U\.N\.|UN"),
    (frozenset({"european", "union"}), r"EU"),
    (frozenset({"soviet", "union"}), r"USSR|U\.S\.S\.R\."),
    # A title before a name, written out in one text and abbreviated in the other ("Admiral X" ~ "Adm. X").
    (frozenset({"admiral"}), r"Adm\."),
    (frozenset({"general"}), r"Gen\."),
    (frozenset({"senator"}), r"Sen\."),
    (frozenset({"representative"}), r"Rep\."),
    (frozenset({"governor"}), r"Gov\."),
    (frozenset({"lieutenant"}), r"Lt\."),
    (frozenset({"colonel"}), r"Col\."),
    (frozenset({"captain"}), r"Capt\."),
    (frozenset({"sergeant"}), r"Sgt\."),
    (frozenset({"commander"}), r"Cmdr\.|Cdr\."),
    (frozenset({"major"}), r"Maj\."),
    (frozenset({"doctor"}), r"Dr\."),
    (frozenset({"professor"}), r"Prof\."),
    (frozenset({"president"}), r"Pres\."),
    (frozenset({"reverend"}), r"Rev\."),
)


def mentions_loosely(text: str, term: str) -> bool:
    """Like ``mentions``, but a longer name may end differently (Turkish ~ Turkey, Russian ~ Russia), and a word
    of a well-known name may stand as its abbreviation (United States ~ U.S.)."""
    if mentions(text, term):
        return True
    stem = term[: max(4, len(term) - 3)]
    if re.search(rf"(?<!\w){re.escape(stem)}", text, re.IGNORECASE) is not None:
        return True
    word = term.lower()
    return any(
        word in words and re.search(rf"(?<![\w.])(?:{abbreviation})(?![\w])", text) is not None
        for words, abbreviation in _ABBREVIATED
    )


# "According to the ZeroHedge piece, ...", "According to The Moscow Times, ...": the publication a question
# names is where the text came from, which a scraped page often says only in its address or its boilerplate.
_PUBLICATION = r"(?i:piece|report|article|story|column|op-ed|editorial|newspaper|website|site|outlet|post|blog)"
_SOURCE_NAMED = re.compile(
    rf"\b(?i:according\s+to|in|from)\s+(?:(?i:the|an?)\s+)?(?:(?:[\w'’.-]+\s+){{0,4}}{_PUBLICATION}"
    r"|The\s+[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,3})\b"
    # "how does the later ZeroHedge report describe him?": a name before a publication noun is its title.
    rf"|\b(?i:the|this|that)\s+(?:[\w'’./-]+\s+){{0,3}}{_PUBLICATION}\b",
)


def unmatched_question_entities(question: str, texts: list[str]) -> list[str]:
    """Names and numbers of the question found in none of ``texts``: a premise the evidence cannot confirm.

    The publication a question cites as its source ("according to the ZeroHedge piece") is not a premise.
    """
    asked = _SOURCE_NAMED.sub(" ", question)
    return [term for term in premise_terms(asked) if not any(mentions_loosely(t, term) for t in texts)]


def is_refusal(text: str) -> bool:
    """Whether the model said the passages do not answer (one abstention signal among others)."""
    return not text.strip() or bool(_REFUSAL.search(text))


def split_claims(raw: str) -> list[tuple[str, tuple[int, ...]]]:
    """Answer sentences with the marker numbers the model put on each, markers removed from the text."""
    text = _MARKER_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", raw.strip())
    claims: list[tuple[str, tuple[int, ...]]] = []
    verdict = ""  # a bare "No." joins the sentence after it: "No — Kerry met Putin for four hours."
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        numbers = tuple(int(n) for group in _MARKERS.findall(sentence) for n in re.split(r"\s*[,;]\s*", group))
        clean = " ".join(_MARKERS.sub("", _PASSAGE_TALK.sub("", sentence)).split()).lstrip(",;: ")
        clean = _FILLER.sub("", clean)
        clean = clean[:1].upper() + clean[1:]
        if _SOURCE_REMARK.fullmatch(clean) and len(clean.split()) <= 12 and not entities(clean):
            continue
        if _BARE_VERDICT.fullmatch(clean):
            verdict = clean.rstrip(".!,;: ").capitalize()
            continue
        if clean and re.search(r"\w", clean):
            claims.append((f"{verdict} — {clean}" if verdict else clean, numbers))
            verdict = ""
    if verdict:
        claims.append((f"{verdict}.", ()))
    return claims


class Aligner:
    """Matches answer sentences to evidence sentences; thresholds were tuned on the seeds questions."""

    def __init__(
        self, question: str, passages: list[Passage], embedder: Embedder, documents_text: Mapping[str, str]
    ) -> None:
        self.question = question
        self.passages = passages
        self.embedder = embedder
        self.sentences = [s for p in passages for s in p.sentences]
        self.passage_of = {id(s): p.n for p in passages for s in p.sentences}
        self.context_of = {id(s): documents_text[p.doc_id] for p in passages for s in p.sentences}
        self.title_of = {id(s): p.title for p in passages for s in p.sentences}
        self.chunk_of = {id(s): p.hit.chunk.text for p in passages for s in p.sentences}
        # Two adjacent sentences of one passage may support a claim together.
        self.pairs = [(a, b) for p in passages for a, b in zip(p.sentences, p.sentences[1:], strict=False)]

    def claim(self, text: str, markers: tuple[int, ...]) -> Claim:
        """The best evidence for one sentence, and whether it clearly supports it."""
        tokens = set(tokenize([text])[0])
        if len(tokens) < 2 or not self.sentences:
            return Claim(text, markers, (), 0.0, 0.0, None, needs_citation=len(tokens) >= 2)
        vector = self.embedder.encode([text])[0]
        options: list[tuple[float, tuple[Sentence, ...], float, float]] = []
        for sentence in self.sentences:
            options.append(self._score(tokens, vector, (sentence,), markers))
        for pair in self.pairs:
            score, span, coverage, similarity = self._score(tokens, vector, pair, markers)
            options.append((score - 0.05, span, coverage, similarity))  # prefer one sentence when it suffices
        _, evidence, coverage, similarity = max(options, key=lambda o: o[0])
        verdict = _verdict(coverage, similarity)
        evidence, missing = self._with_context(text, evidence)
        if missing and verdict is not False:
            # A name the quote lacks but its document has is for the judge; one absent from both is wrong.
            context = self.context_of[id(evidence[0])]
            verdict = None if not missing_entities(" ".join(missing), context) else False
        return Claim(text, markers, evidence, coverage, similarity, verdict, missing=missing)

    def _with_context(self, claim: str, evidence: tuple[Sentence, ...]) -> tuple[tuple[Sentence, ...], tuple[str, ...]]:
        """Widen the quote by a neighbouring sentence that names what the claim names; return what is still missing.

        "The meetings in Sochi lasted eight hours" rests on "... after eight hours of meetings" and on the next
        sentence, which says where.
        """
        missing = missing_entities(claim, " ".join(s.text for s in evidence))
        if not missing:
            return evidence, ()
        first, last = evidence[0], evidence[-1]
        text = self.context_of[id(first)]
        spans = sentence_spans(text, max(0, first.start - 600), min(len(text), last.end + 600))
        before = [sp for sp in spans if sp[1] <= first.start][-1:]
        after = [sp for sp in spans if sp[0] >= last.end][:1]
        for start, end in after + before:
            if len(evidence) < 3 and not missing_entities(" ".join(missing), text[start:end]):
                neighbour = dataclasses.replace(first, start=start, end=end, text=text[start:end])
                self.context_of[id(neighbour)] = text
                self.title_of[id(neighbour)] = self.title_of[id(first)]
                self.chunk_of[id(neighbour)] = self.chunk_of[id(first)]
                evidence = (*evidence, neighbour) if start >= last.end else (neighbour, *evidence)
                return evidence, ()
        # A name the question itself gives ("... in Sochi?", "according to Lavrov") frames the answer: it may
        # come from anywhere in the quote's document.
        asked = {w.lower() for w in premise_terms(self.question)}
        setting = self.context_of[id(first)]
        return evidence, tuple(w for w in missing if not (w.lower() in asked and mentions_loosely(setting, w)))

    def best_sentences(self, n: int) -> list[Sentence]:
        """The ``n`` evidence sentences that best match the question (candidates for an extractive answer)."""
        statements = [s for s in self.sentences if not s.text.rstrip().endswith("?")]
        return sorted(statements, key=lambda s: -s.score)[:n]

    def best_of_passage(self, n: int) -> Sentence | None:
        """The sentence of passage ``n`` that best matches the question (a reply that only names a passage)."""
        statements = [s for s in self.sentences if self.passage_of[id(s)] == n and not s.text.rstrip().endswith("?")]
        return max(statements, key=lambda s: s.score, default=None)

    def source_sentence(self, claim: Claim, share: float = _SOURCE_SHARE) -> Sentence | None:
        """The one evidence sentence that holds what ``claim`` adds to the question, or None.

        What a claim adds is its answer: its stemmed words and numbers that the question lacks ("$2 million
        worth", "Flighttime Enterprises", "two"). When the model's own wording is not verified, the sentence
        holding at least ``share`` of them is the source's wording of the same answer, and is judged instead
        ("The value ... was $2 million worth" -> "... on charges of exporting $2 million worth of ... parts").
        """
        asked, said, saying = (set(tokens) for tokens in tokenize([self.question, claim.text, _SAYING]))
        words = said - asked - saying
        numbers = set(_DIGITS.findall(claim.text)) - set(_DIGITS.findall(self.question))
        if not words and not numbers:
            return None
        total = len(words) + len(numbers)
        marked = set(claim.markers)
        # The claim's own quote first (it wins ties), each sentence object once, questions left out.
        candidates = [
            s
            for s in {id(s): s for s in (*claim.evidence, *self.sentences)}.values()
            if not s.text.rstrip().endswith("?")
        ]
        if not candidates:
            return None
        best: tuple[float, bool, float] | None = None
        chosen: Sentence | None = None
        for sentence, tokens in zip(candidates, tokenize([s.text for s in candidates]), strict=True):
            held = len(words & set(tokens)) + len(numbers & set(_DIGITS.findall(sentence.text)))
            key = (held / total, self.passage_of.get(id(sentence)) in marked, sentence.score)
            if best is None or key > best:
                best, chosen = key, sentence
        return chosen if best is not None and best[0] >= share else None

    def quoted(self, sentence: Sentence) -> Claim:
        """An evidence sentence as an answer sentence of its own, quoting itself."""
        return Claim(" ".join(sentence.text.split()), (), (sentence,), 1.0, 1.0, True)

    def settle(self, claim: Claim) -> bool:
        """The lexical verdict alone, used when the judge is off (``answer.judge = false``): fast, less precise."""
        if claim.supported is not None:
            return claim.supported
        return bool(claim.evidence) and claim.coverage >= 0.5 and not claim.missing

    def _score(
        self, tokens: set[str], vector: np.ndarray, span: tuple[Sentence, ...], markers: tuple[int, ...]
    ) -> tuple[float, tuple[Sentence, ...], float, float]:
        coverage = lexical_overlap(tokens, " ".join(s.text for s in span))
        similarity = max(float(s.vector @ vector) for s in span)
        hinted = 0.05 if self.passage_of[id(span[0])] in markers else 0.0
        return 0.55 * coverage + 0.45 * similarity + hinted, span, coverage, similarity


def _verdict(coverage: float, similarity: float) -> bool | None:
    """Clear support, clear lack of it, or None for the judge."""
    if (
        (coverage >= 0.75 and similarity >= 0.25)
        or (coverage >= 0.6 and similarity >= 0.45)
        or (coverage >= 0.45 and similarity >= 0.65)
    ):
        return True
    if coverage < 0.3 and similarity < 0.45:
        return False
    return None


class CitationBook:
    """Assigns citation numbers in order of first use; the same span keeps its number."""

    def __init__(self, documents: Mapping[str, Document]) -> None:
        self.documents = documents
        self.citations: list[Citation] = []

    def cite(self, claim: Claim, supported: bool) -> Citation:
        doc_id, start, end = claim.quote_span
        for citation in self.citations:
            if (citation.doc_id, citation.start, citation.end) == (doc_id, start, end):
                return citation
        citation = Citation(
            n=len(self.citations) + 1,
            doc_id=doc_id,
            start=start,
            end=end,
            quote=self.documents[doc_id].text[start:end],
            supported=supported,
            section=claim.evidence[0].section,
            page=self.documents[doc_id].page_at(start),
        )
        self.citations.append(citation)
        return citation


def render_sentence(claim: Claim, citation: Citation | None) -> str:
    """The sentence as the user reads it: attributed when it rests on a reader comment, marker before the stop."""
    text = claim.text
    if citation is None:
        return text
    if citation.section == "comments" and not _ATTRIBUTION.search(text):
        text = f"A reader commented: {text}"
    match = re.search(r"[.!?…]+[\"'”’)]*$", text)
    stop = match.start() if match else len(text)
    return f"{text[:stop]} [{citation.n}]{text[stop:] or '.'}"
