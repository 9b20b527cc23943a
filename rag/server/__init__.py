"""The HTTP API behind `rag serve`: an OpenAI-compatible chat endpoint whose answers carry verified citations.

Thin routes over one shared ``Assistant``. Answers go through ``LLMQueue``: a local model computes one answer at
a time, so requests wait their turn in a bounded first-come-first-served queue (503 with ``Retry-After`` when it
is full) and a client that goes away gives its place back. Search and documents need no model and run at once.

One stage a module: ``app`` (``create_app``, ``serve``), ``state`` (the ``AppState`` every route reaches the
assistant, settings and queue through), ``middleware`` (body limit, API key, CORS), ``errors`` (OpenAI-shaped
errors and their handlers), ``queue`` (``LLMQueue``, ``AnswerRun``), ``schemas`` (the request and response
models), ``streaming`` (chat completions, whole or as server-sent events), and the routers ``routes_openai``
(``/v1/chat/completions``, ``/v1/models``) and ``routes_rag`` (``/v1/ask``, ``/v1/search``, ``/v1/documents``,
``/healthz``, the chat page).
"""

from rag.server.app import create_app, serve

__all__ = ["create_app", "serve"]
