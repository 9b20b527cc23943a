"""What the answer pipeline needs of a language model, as protocols: ``ChatModel`` (the ``openai`` client) is one
implementation; tests plug an in-process one (``tests/fake_model.py``) at the same interface."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class CompletionModel(Protocol):
    """What the judge needs of a model: one non-streamed chat completion, raw (logprobs included) or as text."""

    model: str

    def raw_completion(self, messages: list[dict[str, str]], max_tokens: int, **extra: Any) -> Any: ...

    def complete(self, messages: list[dict[str, str]], max_tokens: int, usage: dict[str, int] | None = None) -> str: ...


class SupportJudge(Protocol):
    """The entailment judge: P(a quote supports a claim as an answer to a question), and its running cost."""

    calls: int
    seconds: float

    def support(self, question: str, claim: str, quote: str) -> float: ...


class LanguageModel(Protocol):
    """What answering needs: a streamed and a whole completion, the model's name, and its support judge."""

    model: str

    def stream(self, messages: list[dict[str, str]], max_tokens: int, usage: dict[str, int]) -> Iterator[str]: ...

    def complete(self, messages: list[dict[str, str]], max_tokens: int, usage: dict[str, int] | None = None) -> str: ...

    @property
    def judge_model(self) -> SupportJudge: ...

    def judge(self, claim: str, evidence: str) -> float:
        """P(``evidence`` supports ``claim``), no question given (ALCE's citation scores)."""
        ...

    def warm_up(self) -> None:
        """Get ready to answer (start the bundled model's server) before the first question."""
        ...
