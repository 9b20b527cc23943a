"""Split a question that asks two things into the sub-questions that retrieval looks up one by one.

"Who heads People Operations, and in which city is that team?" needs one document for each half; one search
for the whole question finds the first and misses the second. Each part is searched for on its own and the
evidence keeps the best sentences of each (``rag.evidence.select_evidence``), so the model sees both.
No model call: the split is by the question's own syntax, so it costs nothing when a question is simple.

Two more readings of a question serve the verifier (``rag.verify``): what kind of thing it asks for
(``asked_kind``: a number or a name) and the question without its "according to ..." clause
(``without_attribution``).
"""

from __future__ import annotations

import re

_AUXILIARY = r"(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)"
# "..., and in which city is that team?"  "... Istanbul talks, and how does the later report describe him?"
# The second part is a question of its own: a question word, then an auxiliary within a few words. "... and
# was exempt from ..." continues the first question's predicate, and "..., but which in practice take too
# long" is a relative clause: neither is split.
_AND_ASK = re.compile(
    rf",?\s+(?:and|but|while)\s+(?=(?:in\s+|on\s+|at\s+|for\s+|from\s+)?(?:who|whom|whose|what|when|where|which|why|how)"
    rf"(?:\s+[\w'’-]+){{0,3}}?\s+{_AUXILIARY}\b)",
    re.IGNORECASE,
)
# "... came up both in Kerry's talks in Sochi and in Lavrov's statement ...?"
# Each side is a phrase ("in Kerry's 2015 talks"), not one word ("both inflationary and deflationary impacts").
_BOTH = re.compile(r"\bboth\s+(?P<a>\S+\s+.+?)\s+and\s+(?P<b>.+?)(?P<rest>[?.!]*)$", re.IGNORECASE)
# "..., according to the February AP report and to Ryabkov's September briefing?"
_ACCORDING = re.compile(
    r"(?P<head>.*?),?\s+according\s+to\s+(?P<a>.+?)\s+and\s+(?:to\s+)?(?P<b>.+?)(?P<rest>[?.!]*)$", re.IGNORECASE
)
# "According to the AP report and to Lavrov's statement, what had been hampering ...?"
_ACCORDING_FIRST = re.compile(
    r"^according\s+to\s+(?P<a>[^,]+?)\s+and\s+(?:to\s+)?(?P<b>[^,]+?),\s*(?P<rest>.+)$", re.IGNORECASE
)
_MIN_WORDS = 3
# A later part that points back ("in which city is that team?", "how does the report describe him?").
_POINTING = re.compile(r"\b(?:that|this|these|those|he|him|his|she|her|it|its|they|them|their|there)\b", re.I)


def sub_questions(question: str) -> list[str]:
    """The parts of a two-part question (two or more), or [] when it asks one thing."""
    text = " ".join(question.split())
    parts = [p.strip(" ,;") for p in _AND_ASK.split(text)]
    if len(parts) >= 2 and all(len(p.split()) >= _MIN_WORDS for p in parts):
        from rag.citations import premise_terms

        first = _as_question(parts[0])
        named = " ".join(premise_terms(first))
        rest = [_as_question(p) for p in parts[1:]]
        # What a later part points back to is named in the first: searched for with it.
        return [first, *(f"{p} ({named})" if named and _POINTING.search(p) else p for p in rest)]
    if match := _ACCORDING_FIRST.match(text):
        asked = match.group("rest")
        return [f"According to {match.group(x)}, {asked}" for x in ("a", "b")]
    if match := _ACCORDING.match(text):
        head = match.group("head")
        return [f"{head}, according to {match.group(x)}?" for x in ("a", "b")]
    if match := _BOTH.search(text):
        head = text[: match.start()].rstrip()
        return [f"{head} {match.group(x)}?" for x in ("a", "b")]
    return []


# "Which magazine was started first, Arthur's Magazine or First for Women?"  "Which lasted longer: A, or B?"
_EITHER = re.compile(r"^(?P<head>[^,:?]{8,}?)[,:]\s+(?P<a>[^,?]+?),?\s+or\s+(?P<b>[^,?]+?)\s*\?")
# "Were Scott Derrickson and Ed Wood of the same nationality?"  "Did A and B both ...?"
_ALIKE = re.compile(
    rf"^{_AUXILIARY}\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+(?P<rest>(?:both|(?:of|from|in|at|on)?\s*the\s+same)\b[^?]*)\?",
    re.IGNORECASE,
)


def compared(question: str) -> list[str]:
    """What a comparison looks up, one search each: ["A <what is compared>", "B <...>"], or [] for another question.

    A comparison is answered in one go (the answer weighs both facts), but one search for the whole question
    tends to find only the better-known side.
    """
    text = " ".join(question.split())
    if match := _EITHER.match(text):
        head = match.group("head")
        if len(match.group("a").split()) <= 12 and len(match.group("b").split()) <= 12:
            return [f"{head}: {match.group(x)}?" for x in ("a", "b")]
    if (match := _ALIKE.match(text)) and all(_is_name(match.group(x)) for x in ("a", "b")):
        return [f"{match.group(x)} {match.group('rest')}?" for x in ("a", "b")]
    return []


def _is_name(phrase: str) -> bool:
    """A short phrase that starts with a capital: "Scott Derrickson", "The Moscow Times" (not a clause)."""
    return phrase[:1].isupper() and len(phrase.split()) <= 4


def _as_question(part: str) -> str:
    part = part.rstrip(" ?.!")
    return part[:1].upper() + part[1:] + "?"


# "..., and the team's office opened in 2016": a clause joined by "and" that has its own subject.
_AND_CLAUSE = re.compile(r",?\s+(?:and|while|but)\s+(?=(?:the|its|it|that|this|they|he|she|his|her|their)\b|[A-Z])")


def split_clauses(sentence: str) -> list[str]:
    """The clauses of an answer sentence joined by "and" (two or more, each a sentence), or [] when it has one."""
    parts = [p.strip(" ,;.") for p in _AND_CLAUSE.split(sentence)]
    if len(parts) < 2 or any(len(p.split()) < _MIN_WORDS for p in parts):
        return []
    return [p[:1].upper() + p[1:] + "." for p in parts]


# What a question asks for, when its wording says so: a count, an amount, a length or a date ("How many ...",
# "In what year ...", "When did ..."), or a person ("Who ...", "Whose ...", "By whom ..."). A clause that starts
# with "when" ("When extensive time is required, ...") is not a date question: only "When" + an auxiliary is.
_ASKS_NUMBER = re.compile(
    r"\b(?:how\s+(?:many|much|long|old|far)|(?:in\s+|on\s+)?(?:what|which)\s+(?:year|date|day|month))\b"
    r"|^when\s+(?:did|does|do|is|was|were|will|had|has|can|could|would)\b",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(r"^(?:who|whom|whose)\b|\b(?:by|to|with|from|for)\s+whom\b", re.IGNORECASE)


# "..., according to Lavrov's statement?"  "According to the ZeroHedge piece, who ...?": who said it, not what.
_ATTRIBUTION = re.compile(r",?\s*\baccording\s+to\b[^,?]*(?:,\s*|(?=\?)|$)", re.IGNORECASE)


def without_attribution(question: str) -> str:
    """The question without its "according to ..." clause, which names a source rather than what is asked."""
    return re.sub(r"\s+([?.!])", r"\1", " ".join(_ATTRIBUTION.sub(" ", question).split()))


def asked_kind(question: str) -> str | None:
    """ "number" or "name" when the question's wording asks for one, else None (what, why, yes/no, ...)."""
    text = " ".join(question.split())
    if sub_questions(text):
        return None  # a two-part question asks for two things; each part is checked on its own
    if compared(text):
        return None  # "Who is older, A or B?": the answer is one of the names the question gives
    if _ASKS_NUMBER.search(text):
        return "number"
    if _ASKS_NAME.search(text):
        return "name"
    return None


_POLAR = re.compile(
    rf"^{_AUXILIARY}\b|^(?:isn['’]t|aren['’]t|wasn['’]t|weren['’]t|didn['’]t|doesn['’]t|don['’]t)\b", re.I
)


def is_yes_no(question: str) -> bool:
    """Whether the question asks yes or no: it opens (after any "according to ..." clause) with an auxiliary."""
    return _POLAR.match(without_attribution(" ".join(question.split())).lstrip(" ,")) is not None
