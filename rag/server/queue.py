"""The queue in front of the language model, and one answer computed in a worker thread while holding a slot.

A local model computes one answer at a time, so requests wait their turn in a bounded first-come-first-served
queue (503 with ``Retry-After`` when it is full) and a client that goes away gives its place back.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from rag.answering import Answer, Turn
from rag.assistant import Assistant
from rag.types import Stage


class QueueFull(Exception):
    """No slot and no room to wait (or waited too long)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMQueue:
    """At most ``slots`` answers at once; up to ``max_queue`` more wait, first come first served.

    Lives on the event loop: ``acquire`` is awaited there, ``release`` is called there (threads use
    ``loop.call_soon_threadsafe``). A released slot goes straight to the longest waiter, so nobody barges in.
    """

    def __init__(self, slots: int, max_queue: int, timeout: float) -> None:
        self.slots, self.max_queue, self.timeout = slots, max_queue, timeout
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seconds_per_answer = 5.0  # running mean of recent answers, for Retry-After

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> int:
        """Seconds until a new request would likely get a slot."""
        return max(1, math.ceil(self._seconds_per_answer * (self.queued + 1) / self.slots))

    async def acquire(self, gone: Callable[[], Awaitable[bool]]) -> bool:
        """Wait for a slot; False when the client went away while waiting. Raises ``QueueFull``."""
        if self.active < self.slots and not self.queued:
            self.active += 1
            return True
        if self.queued >= self.max_queue:
            raise QueueFull(
                f"the answer queue is full ({self.active} answering, {self.queued} waiting, "
                f"server.max_queue = {self.max_queue}); retry later",
                self.retry_after(),
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        deadline = time.monotonic() + self.timeout
        acquired = False
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), timeout=min(0.5, self.timeout))
                if waiter.done():
                    acquired = True  # release() handed its slot over: already counted in ``active``
                    return True
                if await gone():
                    return False
                if time.monotonic() > deadline:
                    raise QueueFull(
                        f"waited {self.timeout:g} s (server.queue_timeout) for an answer slot; retry later",
                        self.retry_after(),
                    )
        finally:
            if not acquired:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.done() and not waiter.cancelled():
                    self.release()  # handed a slot just as it gave up waiting: pass it on
                else:
                    waiter.cancel()

    def release(self, seconds: float | None = None) -> None:
        """Give a slot back (to the longest waiter, if any); ``seconds``: how long the answer took."""
        if seconds is not None:
            self._seconds_per_answer = 0.8 * self._seconds_per_answer + 0.2 * seconds
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1

    def to_json(self) -> dict[str, int]:
        return {"active": self.active, "queued": self.queued, "slots": self.slots, "max_queue": self.max_queue}


# --- one answer, computed in a worker thread --------------------------------------------------------


_END = object()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class AnswerRun:
    """One answer holding a model slot: computed in a thread, its events handed to the event loop.

    ``start`` waits for a slot (so a full queue is a 503 before any response starts); ``events`` yields the
    verified pieces and then the ``Answer``, and stops the work when the client disconnects.
    """

    def __init__(
        self,
        assistant: Assistant,
        queue: LLMQueue,
        request: Request,
        question: str,
        history: list[Turn],
        doc_ids: list[str] | None = None,
        sections: list[str] | None = None,
    ):
        self.assistant, self.queue, self.request = assistant, queue, request
        self.question, self.history = question, history
        self.doc_ids, self.sections = doc_ids, sections
        self.cancel = threading.Event()
        self._events: asyncio.Queue[object] = asyncio.Queue()

    async def start(self) -> bool:
        """Take a slot and start the work; False when the client went away while waiting."""
        if not await self.queue.acquire(self.request.is_disconnected):
            return False
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def hand_over(callback: Callable[..., object], *args: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
                loop.call_soon_threadsafe(callback, *args)

        def work() -> None:
            try:
                events = self.assistant.ask_stream(
                    self.question, self.history, cancel=self.cancel, doc_ids=self.doc_ids, sections=self.sections
                )
                for event in events:
                    hand_over(self._events.put_nowait, event)
            except BaseException as exc:  # raised again on the loop, where the route turns it into a response
                hand_over(self._events.put_nowait, _Failure(exc))
            finally:
                hand_over(self.queue.release, time.monotonic() - started)
                hand_over(self._events.put_nowait, _END)

        threading.Thread(target=work, name="rag-answer", daemon=True).start()
        return True

    async def events(self) -> AsyncIterator[str | Stage | Answer]:
        """The verified answer pieces and stages, then the ``Answer``; ends early (without one) if the client
        disconnects."""
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self._events.get(), timeout=0.5)
                except TimeoutError:
                    if await self.request.is_disconnected():
                        return
                    continue
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                assert isinstance(item, str | Stage | Answer)
                yield item
        finally:
            self.cancel.set()  # a client gone mid-answer: the worker stops at the next token, freeing its slot
