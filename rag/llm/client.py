"""The language model behind the ``openai`` client: a configured OpenAI-compatible endpoint or the bundled model's
local server. ``ChatModel`` turns every client error into an ``LLMError`` that names the endpoint and the fix."""

from __future__ import annotations

import atexit
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import LLMError
from rag.llm.judge import Judge
from rag.llm.process import ensure_server
from rag.llm.protocol import Deadline

if TYPE_CHECKING:
    import openai

    from rag.config import LLMSettings


def make_client(settings: LLMSettings, *, persistent: bool = False, role: str = "answer") -> tuple[openai.OpenAI, str]:
    """An ``openai`` client and the model name: the configured endpoint, or the bundled model's local server.

    A bundled server started here stops when this process exits, unless ``persistent``; a server that is
    already running (started by another ``rag`` process) is reused either way.
    """
    import openai

    if settings.base_url:
        if not settings.model:
            raise LLMError(
                f"llm.base_url is {settings.base_url!r} but no model is named: set RAG_LLM_MODEL "
                "(or model in the [llm] section of rag.toml) to a model that endpoint serves"
            )
        client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            timeout=settings.timeout,
            max_retries=settings.max_retries,
        )
        return client, settings.model
    handle = ensure_server(settings.bundled, persistent=persistent, role=role)
    if handle.owned:
        atexit.register(handle.stop)
    client = openai.OpenAI(
        base_url=handle.base_url,
        api_key="not-needed",
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        http_client=openai.DefaultHttpxClient(trust_env=False),  # loopback: never through a proxy
    )
    return client, handle.model


class ChatModel:
    """The language model behind the ``openai`` client; errors become ``LLMError`` naming the endpoint."""

    def __init__(self, settings: Settings, role: str = "answer") -> None:
        self.settings = settings
        self.role = role  # "judge": the bundled model's judge server (logprobs on); an endpoint serves both
        self._client: Any = None
        self._judge: Judge | None = None
        self.model = ""

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client, self.model = make_client(self.settings.llm, role=self.role)
        return self._client

    def _create(
        self, messages: list[dict[str, str]], max_tokens: int, deadline: Deadline | None = None, **extra: Any
    ) -> Any:
        """One request. Under a ``deadline`` each attempt's timeout is what is left of it, and a failure the client
        would retry (a timeout, no connection, 429, 5xx) is retried here only while time is left."""
        import openai

        client = self.client  # first: it names self.model when it starts the bundled server
        request = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.settings.answer.temperature,
            **extra,
        }
        if deadline is None:
            return client.chat.completions.create(**request)
        attempts = self.settings.llm.max_retries + 1
        for attempt in range(attempts):
            remaining = deadline.remaining()
            if remaining <= 0:
                raise deadline.exceeded(self._where)
            bounded = client.with_options(timeout=min(self.settings.llm.timeout, remaining), max_retries=0)
            try:
                return bounded.chat.completions.create(**request)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if deadline.remaining() <= 0:
                    raise deadline.exceeded(self._where) from exc
                if attempt == attempts - 1:
                    raise
            except (openai.RateLimitError, openai.InternalServerError):
                if attempt == attempts - 1 or deadline.remaining() <= 0:
                    raise
            time.sleep(min(0.5 * 2**attempt, max(0.0, deadline.remaining())))
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        usage: dict[str, int],
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        """Text deltas of one chat completion; ``usage`` is filled in when the server reports it."""
        import openai

        timed_out, broken = _transport_errors()

        response = None
        try:
            response = self._create(messages, max_tokens, deadline, stream=True, stream_options={"include_usage": True})
            deltas = 0
            for chunk in response:
                if deadline is not None and deadline.remaining() <= 0:
                    raise deadline.exceeded(self._where)
                if not isinstance(chunk.choices, list):  # JSON of another shape: the client leaves fields None
                    raise self._malformed(f"an event without choices: {str(chunk)[:200]}")
                if chunk.usage is not None:
                    usage.update(
                        prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                    )
                if chunk.choices and chunk.choices[0].delta.content:
                    deltas += 1
                    yield chunk.choices[0].delta.content
            if "prompt_tokens" not in usage:  # llama-cpp-python sends no usage when streaming
                usage.update(self._count_usage(messages, deltas))
        except (openai.APITimeoutError, timed_out) as exc:  # no event within the read timeout
            if deadline is not None and deadline.remaining() <= 0:
                raise deadline.exceeded(self._where) from exc
            if response is None:
                raise self._error(exc) from exc  # no answer began: the request timed out
            raise LLMError(
                f"{self._where} stopped sending the answer (nothing for {self.settings.llm.timeout:g} s); "
                "check the server, or raise RAG_LLM_TIMEOUT"
            ) from exc
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        except broken as exc:  # the connection broke mid-stream
            raise LLMError(f"{self._where} cut the answer off ({type(exc).__name__}: {exc}); check the server") from exc
        except (ValueError, AttributeError) as exc:  # an event that is not JSON
            raise self._malformed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        finally:
            if response is not None and hasattr(response, "close"):
                response.close()  # a stream left early (a cancelled answer) closes its connection: the server stops

    def _count_usage(self, messages: list[dict[str, str]], deltas: int) -> dict[str, int]:
        """Token counts for a stream the server did not count: its tokenizer where it has one (llama.cpp)."""
        import urllib.error
        import urllib.request

        text = "".join(m["content"] for m in messages)
        root = str(self.client.base_url).rstrip("/").removesuffix("/v1")
        request = urllib.request.Request(
            f"{root}/extras/tokenize/count",
            data=json.dumps({"input": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        try:
            with opener.open(request, timeout=5.0) as reply:
                count = int(json.loads(reply.read())["count"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
            return {"completion_tokens": deltas}  # a server without a tokenizer endpoint: prompt count unknown
        # chatml wraps each message in <|im_start|>role ... <|im_end|>: about 5 tokens each, plus the reply's opener.
        return {"prompt_tokens": count + 5 * len(messages) + 3, "completion_tokens": deltas}

    def raw_completion(
        self, messages: list[dict[str, str]], max_tokens: int, deadline: Deadline | None = None, **extra: Any
    ) -> Any:
        """One non-streamed chat completion as the client returns it, checked to have choices."""
        import openai

        try:
            response = self._create(messages, max_tokens, deadline, **extra)
            if not isinstance(response.choices, list):  # JSON of another shape: the client leaves fields None
                raise self._malformed(f"a body without choices: {str(response)[:200]}")
            if response.choices:
                _ = response.choices[0].message.content
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        except (ValueError, AttributeError) as exc:  # a body that is not JSON (the client returns it as a str)
            raise self._malformed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        return response

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        usage: dict[str, int] | None = None,
        deadline: Deadline | None = None,
    ) -> str:
        """The text of one non-streamed chat completion."""
        response = self.raw_completion(messages, max_tokens, deadline)
        text = response.choices[0].message.content if response.choices else ""
        if usage is not None and response.usage is not None:
            usage.update(prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens)
        return text or ""

    @property
    def _where(self) -> str:
        return f"the language model at {self.client.base_url} (model {self.model!r})"

    def _malformed(self, detail: str) -> LLMError:
        return LLMError(
            f"{self._where} answered with something that is not an OpenAI chat completion ({detail}); "
            "check that RAG_LLM_BASE_URL is an OpenAI-compatible endpoint ending in /v1"
        )

    def _error(self, exc: Exception) -> LLMError:
        import openai

        where = self._where
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(f"{where} rejected the API key; set RAG_LLM_API_KEY (or OPENAI_API_KEY) to a valid key")
        if isinstance(exc, openai.NotFoundError):
            return LLMError(f"{where} does not serve that model; set RAG_LLM_MODEL to one it lists at /v1/models")
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"{where} did not answer within {self.settings.llm.timeout:g} s "
                f"(after {self.settings.llm.max_retries} retries); raise RAG_LLM_TIMEOUT or check the server"
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(f"cannot reach {where}: {exc}; check RAG_LLM_BASE_URL or start it (`rag llm start`)")
        if isinstance(exc, openai.APIStatusError):
            # The client retries only these statuses; saying "after N retries" of a 400 would mislead.
            retried = exc.status_code >= 500 or exc.status_code in (408, 409, 429)
            after = f" after {self.settings.llm.max_retries} retries" if retried else ""
            return LLMError(f"{where} answered HTTP {exc.status_code}{after}: {str(exc)[:300]}")
        return LLMError(f"{where} failed: {exc}")

    @property
    def judge_model(self) -> Judge:
        """The entailment judge on this endpoint (the bundled model's judge server, which returns logprobs)."""
        if self._judge is None:
            self._judge = Judge(self if self.settings.llm.base_url else ChatModel(self.settings, role="judge"))
        return self._judge

    def warm_up(self) -> None:
        _ = self.client  # starts the bundled model's server when that is the model

    def judge(self, claim: str, evidence: str) -> float:
        """The probability that ``evidence`` supports ``claim`` (no question given), from the judge."""
        return self.judge_model.support("", claim, evidence)


def _transport_errors() -> tuple[type[Exception], type[Exception]]:
    """The HTTP library's read-timeout and transport errors, which a stream being read raises unwrapped (the
    ``openai`` client uses httpx2 from version 3, httpx before)."""
    try:
        import httpx2 as http
    except ImportError:  # pragma: no cover - an older openai
        import httpx as http  # type: ignore[no-redef]
    return http.TimeoutException, http.TransportError
