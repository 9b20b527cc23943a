"""The bundled model's local server: ``llama_cpp.server`` on loopback, one per variant and role, shared by every
``rag`` process through a state file in the cache folder, started on demand and stopped by `rag llm stop`."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import LLMError, RagError
from rag.files import cache_dir, file_lock, write_json_atomic
from rag.llm.bundled import BundledModel, bundled_model, bundled_model_path, sidecar_of

# What a user waits for: the model starting, and how long it took. `rag` shows these on stderr (rag.cli.main).
notices = logging.getLogger("rag.notices")

HOST = "127.0.0.1"
N_CTX = 4096
# The judge reads YES/NO token probabilities, which llama-cpp-python returns only for a model loaded with
# logits_all (an n_ctx x vocabulary float array: 2048 x 151936 x 4 B = 1.2 GB) at a slower prompt pass
# (163 -> 93 tokens/s on 2 cores). The answer server keeps both off; a second server on the same mmapped
# weights judges short prompts (a quote and a claim, about 120 tokens) with them on.
JUDGE_N_CTX = 2048
ROLES = ("answer", "judge")
_STOP_TIMEOUT = 15.0

# Servers this process started, so that stopping one also reaps it (no zombie left behind).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServerHandle:
    """A running ``llama_cpp.server``; ``owned`` when this process started it for its own lifetime only."""

    variant: str
    pid: int
    port: int
    model: str
    model_path: Path
    log_path: Path
    owned: bool
    role: str = "answer"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def stop(self) -> None:
        """Stop the server if this handle owns it; a shared or persistent server is left running."""
        if self.owned:
            _stop_pid(_key(self.variant, self.role), self.pid)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def server_command(model: BundledModel, model_path: Path, port: int, role: str = "answer") -> list[str]:
    """The command line that serves ``model_path`` on ``HOST:port`` as the answer or the judge server."""
    judge = role == "judge"
    cores = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8)
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", model.name,
        "--host", HOST,
        "--port", str(port),
        "--n_ctx", str(JUDGE_N_CTX if judge else N_CTX),
        # Generation on half the cores, the prompt on all of them. ggml's threads spin while they wait for
        # each other, so when another process takes a core (the embedder, a test run) a generation spread
        # over every core crawls: on 2 cores, 35 -> 0.4 tokens/s; on one of two, 25 tokens/s either way.
        "--n_threads", str(max(1, cores // 2)),
        "--n_threads_batch", str(cores),
        # The Qwen2.5 prompt format; explicit rather than the GGUF's Jinja template, which adds a
        # "You are Qwen, created by Alibaba Cloud" system prompt whenever none is given.
        "--chat_format", "chatml",
        # Default True runs the output layer over every prompt token and keeps an n_ctx x 151936 float
        # array (2.5 GB); only logprobs need it. Prompt pass of the 1.5B on 2 cores: 93 -> 163 tokens/s.
        "--logits_all", str(judge),
        # Default True ends a running stream, as if complete, when any other request arrives (even
        # GET /v1/models): queue requests instead, so rag processes sharing the server do not cut each other off.
        "--interrupt_requests", "False",
    ]  # fmt: skip


def _key(variant: str, role: str) -> str:
    """The name of one managed server: the variant for the answer server, ``VARIANT-judge`` for its judge."""
    if role not in ROLES:
        raise LLMError(f"server role {role!r}; valid: {', '.join(ROLES)}")
    return variant if role == "answer" else f"{variant}-{role}"


def ensure_server(
    variant: str, *, persistent: bool, start_timeout: float = 180.0, role: str = "answer"
) -> ServerHandle:
    """Reuse the running ``role`` server of ``variant`` or start one; ``handle.stop()`` ends a non-persistent one."""
    model = bundled_model(variant)
    key = _key(variant, role)
    with file_lock(_state_path(key).with_suffix(".lock")):
        state = _read_state(key)
        if state is not None:
            status = _server_state_status(state)
            if status in ("ready", "busy"):
                return _handle_from_state(state, owned=False)
            if status == "down":  # our llama server, alive but not answering: replace it
                _stop_pid(key, state["pid"])
            _state_path(key).unlink(missing_ok=True)
        return _start_server(model, bundled_model_path(variant), persistent, start_timeout, role)


def stop_server(variant: str, role: str = "answer") -> bool:
    """Stop the recorded ``role`` server of ``variant``; False when none was running."""
    bundled_model(variant)
    key = _key(variant, role)
    with file_lock(_state_path(key).with_suffix(".lock")):
        state = _read_state(key)
        if state is None:
            return False
        running = _is_llama_server(state["pid"])
        if running:
            _stop_pid(key, state["pid"])
        _state_path(key).unlink(missing_ok=True)
        return running


def server_status(variant: str, role: str = "answer") -> dict[str, Any] | None:
    """The recorded ``role`` server of ``variant`` and its ``status`` (ready | busy | down); None when none runs."""
    bundled_model(variant)
    key = _key(variant, role)
    state = _read_state(key)
    if state is None:
        return None
    status = _server_state_status(state)
    if status == "dead":
        _remove_stale_state(key, state["pid"])
        return None
    return {**state, "status": status, "base_url": f"http://{HOST}:{state['port']}/v1"}


_STATE_FIELDS = {"pid": int, "port": int, "variant": str, "model": str, "model_path": str, "log_path": str}


def _state_path(key: str) -> Path:
    return cache_dir() / f"server-{key}.json"


def _read_state(variant: str) -> dict[str, Any] | None:
    try:
        state = json.loads(_state_path(variant).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in _STATE_FIELDS.items()):
        return None
    return state


def _handle_from_state(state: dict[str, Any], *, owned: bool) -> ServerHandle:
    return ServerHandle(
        variant=state["variant"],
        pid=state["pid"],
        port=state["port"],
        model=state["model"],
        model_path=Path(state["model_path"]),
        log_path=Path(state["log_path"]),
        owned=owned,
        role=str(state.get("role", "answer")),
    )


def _remove_stale_state(variant: str, pid: int) -> None:
    # Without blocking: a process holding the lock is starting or stopping a server and rewrites the file.
    path = _state_path(variant)
    with contextlib.suppress(RagError), file_lock(path.with_suffix(".lock"), busy="the state file is being rewritten"):
        state = _read_state(variant)
        if state is not None and state["pid"] == pid:
            path.unlink(missing_ok=True)


def _server_state_status(state: dict[str, Any]) -> str:
    """dead (no llama server under that pid) | ready | busy (answers slowly) | down (alive, not answering)."""
    if not _is_llama_server(state["pid"]):
        return "dead"
    return _probe(state["port"], timeout=5.0)


def _probe(port: int, timeout: float) -> str:
    """ready | busy | down for the server on ``port``, judged by GET /v1/models."""
    # /v1/models waits for the model lock, so a server in the middle of a long answer is slow, not down.
    # No proxy: an http_proxy variable must not send loopback traffic elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{HOST}:{port}/v1/models", timeout=timeout) as response:
            json.load(response)
        return "ready"
    except TimeoutError:
        return "busy"
    except urllib.error.URLError as exc:
        return "busy" if isinstance(exc.reason, TimeoutError) else "down"
    except (OSError, ValueError):
        return "down"


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_llama_server(pid: int) -> bool:
    """Whether ``pid`` is a live llama_cpp.server (so a reused pid is never mistaken for ours, nor killed)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc/self").exists()  # no /proc on this system: trust the pid
    return b"llama_cpp.server" in cmdline


def _stop_pid(variant: str, pid: int) -> None:
    """End the server ``pid`` (SIGTERM, then SIGKILL) and forget its state file if it records that pid."""
    child = _children.pop(pid, None)
    if child is not None:
        child.terminate()
        try:
            child.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    elif _is_llama_server(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    state = _read_state(variant)
    if state is not None and state["pid"] == pid:
        _state_path(variant).unlink(missing_ok=True)


def _server_env() -> dict[str, str]:
    """The child's environment, without variables llama_cpp.server would read instead of its arguments."""
    try:
        from llama_cpp.server.settings import Settings
    except ImportError as exc:
        raise LLMError(
            f"the bundled model needs llama-cpp-python with its server extra ({exc}); "
            f"install it with: {sys.executable} -m pip install 'llama-cpp-python[server]'"
        ) from exc
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            raise LLMError(
                f"llama-cpp-python is installed without its server extra (no module {module}); "
                f"install it with: {sys.executable} -m pip install 'llama-cpp-python[server]'"
            )
    # pydantic-settings reads any field (API_KEY, VERBOSE, N_GPU_LAYERS...) from the environment, and the
    # server's main() lets HOST, PORT and CONFIG_FILE override the command line.
    ignored = {name.lower() for name in Settings.model_fields} | {"config_file"}
    env = {key: value for key, value in os.environ.items() if key.lower() not in ignored}
    env["HF_HUB_OFFLINE"] = "1"
    # Idle OpenMP workers sleep instead of spinning: the prompt pass keeps its speed on an idle machine
    # (163 vs 164 tokens/s on 2 cores) and halves, rather than collapsing to 26, when a core is taken.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _start_server(
    model: BundledModel, model_path: Path, persistent: bool, start_timeout: float, role: str
) -> ServerHandle:
    env = _server_env()
    port = free_port()
    key = _key(model.variant, role)
    log_path = cache_dir() / f"server-{key}.log"
    command = server_command(model, model_path, port, role)
    notices.info("Starting the bundled model %s (%s server); this takes a few seconds...", model.name, role)
    started = time.monotonic()
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C in the terminal that started a persistent server does not reach it.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    damaged_hint = f"if the model file is damaged, delete {model_path} and {sidecar_of(model_path)} to rejoin it"
    try:
        deadline = time.monotonic() + start_timeout
        while _probe(port, timeout=2.0) != "ready":
            if proc.poll() is not None:
                raise LLMError(
                    f"the {key} llama server exited with code {proc.returncode} before it was "
                    f"ready ({damaged_hint}). Command: {' '.join(command)}\nLast lines of {log_path}:\n"
                    f"{_log_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise LLMError(
                    f"the {key} llama server did not answer GET /v1/models within "
                    f"{start_timeout:.0f} s ({damaged_hint}). Last lines of {log_path}:\n"
                    f"{_log_tail(log_path)}"
                )
            time.sleep(0.25)
    except BaseException:
        _stop_pid(key, proc.pid)
        raise
    notices.info("The bundled model %s (%s) is ready: started in %.1f s.", model.name, role, time.monotonic() - started)
    state = {
        "pid": proc.pid,
        "port": port,
        "variant": model.variant,
        "role": role,
        "model": model.name,
        "model_path": str(model_path),
        "log_path": str(log_path),
        "persistent": persistent,
        "started_at": time.time(),
        "command": command,
    }
    write_json_atomic(_state_path(key), state)
    return _handle_from_state(state, owned=not persistent)
