"""Decide whether a quote supports an answer sentence: hard checks, then the judge's calibrated score.

Names, numbers and negations are hard checks (``hard_check``): a claim that states one its quote lacks is never
supported, whatever the judge says. Otherwise ``support_score`` calibrates the judge's probability
(``rag.llm.judge.Judge``, the model read through its YES/NO logprobs) with a few features of the pair.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.llm.protocol import Deadline, SupportJudge

_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|nobody|nothing|without|cannot)\b|n['’]t\b", re.IGNORECASE)
_VERDICT = re.compile(r"^(?:yes|no)\s+—\s+", re.IGNORECASE)  # "No — Kerry met Putin": split_claims' join
_NUMBERISH = frozenset(
    "none nothing no zero single dozens hundreds thousands millions billions twice once january february march "
    "april may june july august september october november december century centuries decade decades".split()
)
_QUESTION_WORDS = frozenset("who whom whose what which when where whi how did doe".split())  # stemmed; BM25 keeps them


def negations(text: str) -> int:
    """How many negation words ``text`` has ("not", "never", "n't", ...); a leading "No —" verdict is not one."""
    return len(_NEGATION.findall(_VERDICT.sub("", text)))


# A clause after these may negate something else than what was asked: "Yes, it can be ridden in the rain but
# must not be submerged".
_CONTRAST = re.compile(r"\b(?:but|although|though|however|except|yet|while|whereas|unless)\b|[;(]", re.IGNORECASE)
_NEGATOR = re.compile(r"\b(?:not|never)\b|n['’]t\b", re.IGNORECASE)


def negates_asked(statement: str, question: str) -> bool:
    """Whether ``statement`` denies what the yes/no ``question`` asks: a "not"/"never"/"n't" in its main clause
    (before any "but", "although", ...) followed within three words by one of the question's words ("U.S.
    carriers do not fly over Russia" to "Do American airlines fly over Russia?"), when the question itself has
    no negation."""
    from rag.lexical import tokenize

    if negations(question):
        return False
    main = _CONTRAST.split(_VERDICT.sub("", statement), maxsplit=1)[0]
    asked = set(tokenize([question])[0])
    for negator in _NEGATOR.finditer(main):
        following = " ".join(main[negator.end() :].split()[:3])
        if asked & set(tokenize([following])[0]):
            return True
    return False


def hard_check(claim: str, quote: str, question: str = "") -> str | None:
    """Why ``quote`` cannot support ``claim`` (a name or number it lacks, a negation it lacks), or None.

    As in answering, a name the question itself gives ("... in Sochi?") frames the answer and may be absent
    from the quote; names match loosely (Russian ~ Russia), numbers exactly.
    """
    from rag.citations import NUMBER_WORDS, entities, mentions, mentions_loosely

    missing = []
    for term in entities(claim):
        if question and mentions_loosely(question, term):
            continue
        if term[:1].isdigit() or term.split()[0].lower() in NUMBER_WORDS:
            # The number must be there ("eight hours", never "two hours"); the word it counts is the judge's.
            found = mentions(quote, term.split()[0])
        else:
            found = mentions_loosely(quote, term)
        if not found:
            missing.append(term)
    if missing:
        return f"the quote does not mention {', '.join(missing)}"
    return contradiction(claim, quote)


def contradiction(claim: str, quote: str) -> str | None:
    """Why ``claim`` says something other than ``quote`` rather than the same in other words (a negation the quote
    lacks, a role given to another owner), or None."""
    if negations(claim) > negations(quote):
        return "the claim negates what the quote states"
    return modifier_swapped(claim, quote)


# "Russia's delegation", "the Tallinn office", "U.S. Ambassador": a name that says whose a role or unit is.
_OWNED = re.compile(
    r"(?<![\w.’'-])(?P<name>(?:[A-Z][\w.’'-]*\s+)*[A-Z][\w.’'-]*?)(?:['’]s)?\s+(?P<noun>[a-z]{3,})\b(?![-‐])"
)
_ROLES = frozenset(
    "delegation office team side embassy ministry government army navy fleet force troop president minister "
    "ambassador manager head chief leader spokesman spokeswoman spokesperson envoy delegate capital border "
    "department director secretary governor mayor king queen premier commander".split()
)
_DETERMINERS = frozenset("the a an this that these those its his her their our my your some any each every no".split())


def _owners(text: str) -> list[tuple[str, str]]:
    """(name, role) pairs such as ("Russia", "delegation") for "Russia's delegation" or "the Russia delegation"."""
    found = []
    for match in _OWNED.finditer(text):
        name = " ".join(w for w in match.group("name").split() if w.lower() not in _DETERMINERS)
        if name and match.group("noun").rstrip("s") in _ROLES:
            found.append((name, match.group("noun")))
    return found


def _same_name(a: str, b: str) -> bool:
    """Loosely the same name: Russia ~ Russian, European Union ~ EU, U.S.-Russia ~ Russia."""
    from rag.citations import mentions_loosely

    if mentions_loosely(a, b) or mentions_loosely(b, a):
        return True

    def initials(name: str) -> str:
        return "".join(w[0] for w in name.split() if w[:1].isupper())

    return a.replace(".", "") == initials(b) or b.replace(".", "") == initials(a)


def modifier_swapped(claim: str, quote: str) -> str | None:
    """Why the claim gives a role or unit to another owner than the quote does, or None.

    "Sonata Coulter led Russia's delegation" against "... Coulter, ... who led the U.S. delegation": the quote
    has a delegation, but it is the U.S. one. The judge scores such swaps like true claims. Only roles and units
    (``_ROLES``) count: a talk can be both "the Istanbul talks" and "the U.S.-Russia talks", a delegation is one
    side's. On evals/support.jsonl this rejects 4 false pairs and no true one.
    """
    in_quote = _owners(quote)
    for name, noun in _owners(claim):
        others = [owner for owner, role in in_quote if role == noun]
        if others and not any(_same_name(name, owner) for owner in others):
            return f"the quote's {noun} is {others[0]}'s, not {name}'s"
    return None


def negation_unanswered(question: str, quote: str) -> str | None:
    """Why ``quote`` cannot answer a question that asks about a negation ("What are the measures *not* used in
    complexity theory?") when the quote has none ("Other measures used in complexity theory include ..."), or
    None. SQuAD 2.0 makes unanswerable questions this way. A yes/no question is left to the judge: "No, ..."
    answers "Did ...?" without the question having a negation."""
    from rag.questions import is_yes_no

    if question and not is_yes_no(question) and negations(question) > negations(quote):
        return "the question asks about a negation the quote does not have"
    return None


def lacks_asked_kind(question: str, claim: str) -> str | None:
    """Why ``claim`` cannot answer ``question``: it gives no number where one is asked ("How many ...",
    "When did ..."), or names no one the question does not already name ("Who led ...?"), else None.

    The bundled judge passes a claim that restates the question around no answer ("Kerry held meetings in
    Sochi" for "How many hours of meetings did Kerry hold?"). On the SQuAD file's answerable questions of these
    kinds, 2% of gold answers are neither ("citizens", "as soon as they enter into force").
    """
    from rag.citations import NUMBER_WORDS, entities, mentions_loosely
    from rag.questions import asked_kind

    kind = asked_kind(question)
    if kind is None:
        return None
    if kind == "number":
        words = set(re.findall(r"[a-z]+", claim.lower()))
        if re.search(r"\d", claim) or words & (_NUMBERISH | NUMBER_WORDS):  # "1960s", "one", "none", "May"
            return None
        return "the question asks for a number or date and the answer gives none"
    found = entities(_VERDICT.sub("", claim)) + re.findall(r"\b[A-Z]{3,}\b", claim)  # "By VLADIMIR ISACHENKOV"
    if any(not e[:1].isdigit() and not mentions_loosely(question, e) for e in found):
        return None
    return "the question asks who and the answer names no one it does not already name"


_COPULA = re.compile(r"\s(?:is|was|are|were)\s")
# Lower-case words inside a name ("Lothar de Maizière", "Ludwig van Beethoven").
_NAME_PARTICLES = frozenset("al bin da de del der di du el la le van von".split())


def names_reordered(claim: str, quote: str) -> bool:
    """Whether two names the claim shares with the quote stand in the opposite order there.

    "Sonata Coulter led Russia's delegation" against "... Coulter, who led the U.S. delegation, and ...
    Darchiyev of the Russian Foreign Ministry": the mark of a role swap, the case the judge misses most.
    A paraphrase reverses order too (15% of the true pairs of the support set, 45 of 52 role swaps), so
    this only weighs in the calibrated score, it decides nothing alone.

    An identity sentence turned around is not a swap: "The chief of Russia's Northern Fleet is Admiral
    Moiseyev" against "Adm. Moiseyev, chief of Russia's Northern Fleet, said ..." has the two sides of its one
    "is" exchanged as blocks, each in the quote's order, and one side is a name alone. It still counts when a
    name changes owner on the way ("Robert was Bohemond's son" against "Bohemond, Robert's son"), and when
    neither side is a name ("Yes, the Ohio case was the first time the US accused ...": a predicate, not an
    identity).
    """
    from rag.citations import entities

    first: dict[str, tuple[int, int]] = {}
    for name in dict.fromkeys(e for e in entities(claim) if not e[:1].isdigit()):
        in_claim = re.search(re.escape(name), claim)
        in_quote = re.search(rf"(?<!\w){re.escape(name[: max(4, len(name) - 3)])}", quote, re.IGNORECASE)
        if in_claim and in_quote:
            first[name] = (in_claim.start(), in_quote.start())
    names = list(first)
    flipped = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if a not in b and b not in a and (first[a][0] - first[b][0]) * (first[a][1] - first[b][1]) < 0
    ]
    if not flipped:
        return False
    copulas = list(_COPULA.finditer(claim))
    if len(copulas) != 1:
        return True
    cut = copulas[0]
    if not (_only_a_name(claim[: cut.start()]) or _only_a_name(claim[cut.end() :])):
        return True
    left = {n for n in names if first[n][0] < cut.start()}
    right = set(names) - left
    if any((a in left) == (b in left) for a, b in flipped):
        return True  # two names on the same side in another order
    if not left or not right or max(first[n][1] for n in right) > min(first[n][1] for n in left):
        return True  # the sides interleave in the quote: not one block moved past the other
    return any(_possessive(n, claim) and not _possessive(n, quote) for n in names)


def _only_a_name(side: str) -> bool:
    """Whether one side of "X is Y" is a name and nothing else ("Admiral Alexander Moiseyev", "Lothar de Maizière")."""
    words = re.findall(r"[\w'’.-]+", side)
    return 0 < len(words) <= 6 and all(w[:1].isupper() or w in _NAME_PARTICLES for w in words)


def _possessive(name: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}['’]s?(?!\w)", text) is not None


@dataclass(frozen=True)
class Calibration:
    """A support score from the judge's P(YES) and two features, by logistic regression fitted on labelled pairs.

    score = sigmoid(bias + judge * logit(P(YES)) + reordered * [two names in another order than the quote's]
                    + asked * [share of the question's words the quote uses])
    """

    bias: float
    judge: float
    reordered: float
    asked: float = 0.0

    def score(self, p_yes: float, reordered: bool, asked: float = 1.0) -> float:
        z = self.bias + self.judge * logit(p_yes) + self.reordered * reordered + self.asked * asked
        return 1 / (1 + math.exp(-z))


def question_coverage(question: str, quote: str) -> float:
    """The share of the question's content words (stemmed, stop words out) that the quote uses.

    Its "according to ..." clause is left out: the source's name is rarely in the sentence that answers.
    A quote that leaves the question's terms aside is about something else: "another sentence of the same
    document" supports itself and still answers nothing. The bundled judge sees that weakly, so the
    calibration weighs it as a feature. The claim is left out on purpose: a model that restates the question
    around a wrong answer ("The U.S. delegation led the talks by raising concerns") would cover it fully.
    1.0 when the question has no content words (or none is given).
    """
    from rag.lexical import tokenize
    from rag.questions import without_attribution

    asked, quoted = tokenize([without_attribution(question), quote])
    wanted = set(asked) - _QUESTION_WORDS
    if not wanted:
        return 1.0
    return len(wanted & set(quoted)) / len(wanted)


def logit(p: float) -> float:
    """log(p / (1 - p)), with p kept inside [1e-4, 1 - 1e-4] so a certain judge stays finite."""
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


# Fitted on the dev half of evals/support.jsonl (433 pairs) with the bundled 1.5B judge: `rag eval --support
# evals/support.jsonl` refits and prints these. Held out (test half, 385 pairs) at answer.support_threshold:
# see docs/evaluation.md. Whether the claim is the quote's own words is deliberately not a feature: in the
# support set it only tells the "verbatim" positives from the "other_sentence" negatives, and with it the
# score rejected correct answers that copy their quote ("The United States wanted strict reciprocity").
CALIBRATION = Calibration(bias=-1.439, judge=2.953, reordered=-2.45, asked=3.987)


def support_score(
    judge: SupportJudge, question: str, claim: str, quote: str, calibration: Calibration = CALIBRATION
) -> float:
    """The calibrated probability that ``quote`` supports ``claim`` as an answer to ``question`` (0 on a hard check)."""
    if hard_check(claim, quote, question) is not None:
        return 0.0
    return judged_score(judge, question, claim, quote, calibration)


def judged_score(
    judge: SupportJudge,
    question: str,
    claim: str,
    quote: str,
    calibration: Calibration = CALIBRATION,
    deadline: Deadline | None = None,
) -> float:
    """``support_score`` for a pair whose hard checks the caller has already run: the judge and the features."""
    p_yes = judge.support(question, claim, quote, deadline)
    return calibration.score(p_yes, names_reordered(claim, quote), question_coverage(question, quote))


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w%$.,]+", " ", text.lower()).split()).strip(" .,")


def is_verbatim(claim: str, quote: str) -> bool:
    """Whether the claim is the quote's own words (a span of it, punctuation and case aside)."""
    words = _normalise(claim)
    return len(words.split()) >= 4 and words in _normalise(quote)
