"""The one object the routes reach the assistant, the settings and the answer queue through.

``create_app`` stores it at ``app.state.rag``; a route asks for it with a parameter ``state: State``, which
FastAPI fills through ``Depends(get_state)``, instead of reaching them through closures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from rag.answering import Turn, validate_question
from rag.assistant import Assistant
from rag.config import ServerSettings
from rag.server.queue import AnswerRun, LLMQueue


def _chat_page() -> str:
    return resources.files("rag.web").joinpath("chat.html").read_text(encoding="utf-8")


@dataclass
class AppState:
    """What one application serves: one shared assistant, its server settings and the queue for its model."""

    assistant: Assistant
    settings: ServerSettings
    queue: LLMQueue
    started: int = field(default_factory=lambda: int(time.time()))
    page: str = field(default_factory=_chat_page)  # the chat page, read once, served often

    @classmethod
    def build(cls, assistant: Assistant, settings: ServerSettings) -> AppState:
        slots = settings.llm_slots or (4 if assistant.settings.llm.base_url else 1)
        return cls(assistant, settings, LLMQueue(slots, settings.max_queue, settings.queue_timeout))

    async def start_answer(
        self,
        request: Request,
        question: str,
        history: list[Turn],
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ) -> AnswerRun | None:
        """An answer holding a model slot; None when the client went away while waiting for one."""
        validate_question(question, self.assistant.settings)  # 422 now: once streaming starts, errors are events
        # A missing or damaged index (503) or an unknown document or section (422): before anything starts.
        await run_in_threadpool(lambda: self.assistant.retriever.check_filter(doc_ids, sections))
        run = AnswerRun(self.assistant, self.queue, request, question, history, doc_ids, sections)
        return run if await run.start() else None


async def get_state(request: Request) -> AppState:
    """The application's state (async: a dependency that needs no thread is not sent to the thread pool)."""
    state: AppState = request.app.state.rag
    return state


# A route's parameter ``state: State`` is the application's ``AppState``.
State = Annotated[AppState, Depends(get_state)]
