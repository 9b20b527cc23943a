"""The entailment judge: the language model read through its token probabilities.

``Judge.support(question, claim, quote)`` is the probability that ``quote`` states what ``claim`` says *as an
answer to* ``question``: P(YES) / (P(YES) + P(NO)) over the first reply token's ``top_logprobs``. An endpoint
that does not return logprobs still works: the judge then reads the YES/NO text (a score of 1.0 or 0.0), and
``Judge.mode`` says which ran. The prompt puts the fixed instructions first, then the quote, so llama.cpp's
prompt cache reuses both across the claims of one answer. What the score decides is ``rag.verify``'s.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Any

from rag.errors import LLMError
from rag.llm.protocol import CompletionModel, Deadline
from rag.prompts import load_prompt

_YES = frozenset({"YES", "Y"})
_NO = frozenset({"NO", "N"})
_CACHE_SIZE = 4096


class Judge:
    """P(the quote supports the claim as an answer to the question), from the model's YES/NO logprobs."""

    def __init__(self, model: CompletionModel) -> None:
        self.model = model
        self.mode: str | None = None  # "logprobs" or "text", known after the first call
        self.calls = 0
        self.seconds = 0.0
        self._cache: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def support(self, question: str, claim: str, quote: str, deadline: Deadline | None = None) -> float:
        """The judge's probability that ``quote`` supports ``claim`` as an answer to ``question`` (0..1)."""
        key = (question, claim, quote)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        messages = load_prompt("judge").render(evidence=quote, question=question or "(none)", claim=claim)
        started = time.perf_counter()
        score = self._score(messages, deadline)
        with self._lock:
            self.calls += 1
            self.seconds += time.perf_counter() - started
            self._cache[key] = score
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return score

    def _score(self, messages: list[dict[str, str]], deadline: Deadline | None = None) -> float:
        if self.mode != "text":
            try:
                response = self.model.raw_completion(
                    messages, max_tokens=1, deadline=deadline, logprobs=True, top_logprobs=10
                )
            except LLMError as exc:
                if self.mode is None and _no_logprobs(exc):
                    self.mode = "text"  # this endpoint cannot give logprobs: read the word instead
                    return self._score(messages, deadline)
                raise
            score = _logprob_score(response)
            if score is not None:
                self.mode = "logprobs"
                return score
            if self.mode is None:
                self.mode = "text"  # answered, but without logprobs (some servers ignore the option)
            return _text_score(_content(response), self.model)
        return _text_score(self.model.complete(messages, max_tokens=3, deadline=deadline), self.model)


def _no_logprobs(exc: LLMError) -> bool:
    """Whether an endpoint's error says it cannot return logprobs (llama-cpp-python without logits_all: HTTP 500)."""
    text = str(exc).lower()
    return "logprob" in text or "logits_all" in text


def _content(response: Any) -> str:
    try:
        return str(response.choices[0].message.content or "")
    except (AttributeError, IndexError, TypeError):
        return ""


def _logprob_score(response: Any) -> float | None:
    """P(YES) / (P(YES) + P(NO)) over the first token's alternatives; None when the reply has no logprobs."""
    try:
        first = response.choices[0].logprobs.content[0]
    except (AttributeError, IndexError, TypeError):
        return None
    alternatives = list(getattr(first, "top_logprobs", None) or []) or [first]
    yes = no = 0.0
    for alt in alternatives:
        word = str(getattr(alt, "token", "")).strip().upper()
        logprob = getattr(alt, "logprob", None)
        if logprob is None:
            continue
        if word in _YES:
            yes += math.exp(float(logprob))
        elif word in _NO:
            no += math.exp(float(logprob))
    if yes + no == 0.0:
        raise LLMError(
            f"the judge ({model_name(response)}) put no probability on YES or NO (top tokens: "
            f"{[getattr(a, 'token', '?') for a in alternatives][:10]}); it is not following the judge prompt"
        )
    return yes / (yes + no)


def model_name(response: Any) -> str:
    return str(getattr(response, "model", "") or "the model")


def _text_score(text: str, model: CompletionModel) -> float:
    word = text.strip().split()[0].strip(".,!:;\"'").upper() if text.strip() else ""
    if word in _YES:
        return 1.0
    if word in _NO:
        return 0.0
    raise LLMError(
        f"the judge ({model.model or 'the model'}) answered {text[:80]!r} where YES or NO was asked; "
        "it is not following the judge prompt (check RAG_LLM_MODEL)"
    )
