"""An in-process language model for tests, plugged in at ``rag.llm.LanguageModel`` (no HTTP, no server).

Like pydantic-ai's ``FunctionModel`` or simonw/llm's mock model: ``reply(messages)`` writes the answer and
``score(question, claim, quote)`` is the judge's support probability. Everything around the model (retrieval,
evidence, alignment, the hard checks, the threshold) is the real code. ``tests/fake_openai.py`` is the fake at
the HTTP level, for what the ``openai`` client and the server see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from rag.llm.protocol import Deadline

Messages = list[dict[str, str]]


class FunctionJudge:
    """``rag.llm.SupportJudge`` from a function; ``asked`` records every (question, claim, quote) judged."""

    def __init__(self, score: Callable[[str, str, str], float]) -> None:
        self.score = score
        self.calls = 0
        self.seconds = 0.0
        self.asked: list[tuple[str, str, str]] = []

    def support(self, question: str, claim: str, quote: str, deadline: Deadline | None = None) -> float:
        self.calls += 1
        self.asked.append((question, claim, quote))
        return self.score(question, claim, quote)


class FunctionModel:
    """``rag.llm.LanguageModel`` from functions; ``requests`` records the messages of every answer call."""

    def __init__(
        self,
        reply: Callable[[Messages], str],
        score: Callable[[str, str, str], float] = lambda question, claim, quote: 1.0,
        name: str = "function-model",
    ) -> None:
        self.reply = reply
        self.model = name
        self.requests: list[Messages] = []
        self.judge_model = FunctionJudge(score)

    def stream(
        self, messages: Messages, max_tokens: int, usage: dict[str, int], deadline: Deadline | None = None
    ) -> Iterator[str]:
        text = self.complete(messages, max_tokens, usage, deadline)
        for start in range(0, len(text), 7):  # a few characters an event, as a server streams
            yield text[start : start + 7]

    def complete(
        self,
        messages: Messages,
        max_tokens: int,
        usage: dict[str, int] | None = None,
        deadline: Deadline | None = None,
    ) -> str:
        self.requests.append(messages)
        text = self.reply(messages)
        if usage is not None:
            usage.update(
                prompt_tokens=sum(len(m["content"].split()) for m in messages), completion_tokens=len(text.split())
            )
        return text

    def judge(self, claim: str, evidence: str) -> float:
        return self.judge_model.support("", claim, evidence)

    def warm_up(self) -> None:
        pass
