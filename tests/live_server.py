"""The real HTTP server (uvicorn + the FastAPI app) on a loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from types import TracebackType

import uvicorn

from rag.assistant import Assistant
from rag.llm import free_port
from rag.server import create_app


class LiveServer:
    """``with LiveServer(assistant, api_key="k") as server: server.url`` — overrides are ``ServerSettings`` fields."""

    def __init__(self, assistant: Assistant, **overrides: object) -> None:
        self.assistant = assistant
        self.settings = replace(assistant.settings.server, **overrides)  # type: ignore[arg-type]
        self.app = create_app(assistant, self.settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 300  # the first start may load the bundled model
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.05)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
