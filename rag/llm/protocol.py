"""What the answer pipeline needs of a language model, as protocols: ``ChatModel`` (the ``openai`` client) is one
implementation; tests plug an in-process one (``tests/fake_model.py``) at the same interface."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from rag.errors import LLMError


@dataclass(frozen=True)
class Deadline:
    """When an answer's model calls must be done: every call of one answer (the rewrite, the answer, the judge,
    their retries) shares it, so a hung server costs at most ``seconds`` (``llm.deadline``), not a timeout per
    attempt per call."""

    seconds: float
    at: float  # time.monotonic()

    @classmethod
    def start(cls, seconds: float) -> Deadline | None:
        return cls(seconds, time.monotonic() + seconds) if seconds > 0 else None

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def exceeded(self, where: str) -> LLMError:
        return LLMError(
            f"{where} did not finish the answer within its {self.seconds:g} s deadline (llm.deadline); "
            "check that the server is running and not overloaded, or raise RAG_LLM_DEADLINE"
        )


class _Completes(Protocol):
    """A model by name that gives the text of one non-streamed chat completion."""

    model: str

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        usage: dict[str, int] | None = None,
        deadline: Deadline | None = None,
    ) -> str: ...


class CompletionModel(_Completes, Protocol):
    """What the judge needs of a model: one non-streamed chat completion, raw (logprobs included) or as text."""

    def raw_completion(
        self, messages: list[dict[str, str]], max_tokens: int, deadline: Deadline | None = None, **extra: Any
    ) -> Any: ...


class SupportJudge(Protocol):
    """The entailment judge: P(a quote supports a claim as an answer to a question), and its running cost."""

    calls: int
    seconds: float

    def support(self, question: str, claim: str, quote: str, deadline: Deadline | None = None) -> float: ...


class LanguageModel(_Completes, Protocol):
    """What answering needs: a streamed and a whole completion, the model's name, and its support judge."""

    def stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        usage: dict[str, int],
        deadline: Deadline | None = None,
    ) -> Iterator[str]: ...

    @property
    def judge_model(self) -> SupportJudge: ...

    def judge(self, claim: str, evidence: str) -> float:
        """P(``evidence`` supports ``claim``), no question given (ALCE's citation scores)."""
        ...

    def warm_up(self) -> None:
        """Get ready to answer (start the bundled model's server) before the first question."""
        ...
