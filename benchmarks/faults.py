"""The `faults` suite (issue 12): what a user or a broken machine can do to `rag`, counted.

- kill -9 at a random point of `rag index` (a real subprocess): the index still loads afterwards (the old
  generation or the new, nothing lost), `rag index` completes, and search gives what a fresh rebuild gives;
- every file of an index generation damaged three ways (truncated, empty, same-size garbage): named with the
  fix when read, and repaired by `rag index` with no path;
- bad command-line input and bad HTTP input: one line / one JSON error naming the problem, the right exit code or
  status, never a traceback or a 500;
- model faults against a fake endpoint (down, HTTP 500, hang, garbage, `{}`, empty, a stream that stops): an
  error naming the endpoint, never an abstention, and the time it takes to fail.

    python benchmarks/run.py --suite faults [--trials 20]

Each row is trials / passed; a failed trial is listed with what went wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import QUERIES, REPO, machine

if TYPE_CHECKING:
    from rag.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("faults suite")
    group.add_argument("--trials", type=int, default=20, help="kill -9 trials of `rag index` (default 20)")


def suite_faults(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    trials = 2 if args.smoke else args.trials
    rows = [
        _kill_trials(trials, workdir / "kill"),
        _damaged_files(workdir / "damage"),
        _bad_cli_input(workdir / "cli"),
        _bad_http_input(workdir / "http"),
        *_model_faults(workdir / "model"),
    ]
    return {
        "suite": "faults",
        "machine": machine(),
        "rows": rows,
        "passed": all(r["passed"] == r["trials"] for r in rows),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = ["| case | trials | passed | time to fail |", "|---|---|---|---|"]
    for row in result["rows"]:
        seconds = f"{row['seconds']:.1f} s" if row.get("seconds") is not None else ""
        lines.append(f"| {row['case']} | {row['trials']} | {row['passed']} | {seconds} |")
    return "\n".join(lines)


def _settings(index_dir: Path) -> Settings:
    """Defaults only (no rag.toml, no RAG_* of the shell), the index in ``index_dir``."""
    from rag.config import load_settings

    settings = load_settings(config_file=None, env={})
    settings.index.dir = str(index_dir)
    return settings


def _seeds_index(workdir: Path) -> Settings:
    """A copy of the seeds in ``workdir/corpus``, indexed into ``workdir/index``; the settings that read it."""
    from rag.assistant import Assistant

    corpus = workdir / "corpus"
    shutil.copytree(REPO / "seeds", corpus)
    settings = _settings(workdir / "index")
    Assistant(settings).build_index([str(corpus)])
    return settings


def _row(case: str, trials: int, failures: list[str], **extra: Any) -> dict[str, Any]:
    return {"case": case, "trials": trials, "passed": trials - len(failures), "failures": failures, **extra}


# --- kill -9 during `rag index` --------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _ranked(index_dir: Path) -> list[list[tuple[str, int, int]]]:
    from rag.assistant import Assistant

    assistant = Assistant(_settings(index_dir))
    return [[(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in assistant.search(q, k=5).hits] for q in QUERIES]


def _kill_trials(trials: int, workdir: Path, seed: int = 0) -> dict[str, Any]:
    """Kill `rag index` at a random moment while it updates an index; check, repair, compare with a rebuild."""
    from rag.store import load_index

    rng = random.Random(seed)
    corpus = workdir / "corpus"
    shutil.copytree(REPO / "seeds", corpus)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_INDEX_DIR": str(workdir / "index")}
    started = time.perf_counter()
    assert _cli("index", str(corpus), env=env).returncode == 0
    one_run = time.perf_counter() - started
    extra = corpus / "extra.txt"
    references: dict[bool, list[list[tuple[str, int, int]]]] = {}
    failures: list[str] = []
    for trial in range(trials):
        if extra.exists():  # each run has work to do: a document added or removed
            extra.unlink()
        else:
            extra.write_text(
                "Trial notes\n\nThe Northern Fleet drill was held near Severomorsk.\n"
            )  # one text: one reference
        before = {d for d in load_index(workdir / "index").documents}
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.0, one_run))
        process.send_signal(signal.SIGKILL)
        process.wait()
        try:
            after = set(load_index(workdir / "index").documents)
        except Exception as exc:  # any failure to load is what this trial counts
            failures.append(f"trial {trial}: the index does not load after kill -9 ({exc})")
            continue
        wanted = {p.name for p in corpus.iterdir()}
        if after not in (before, wanted):
            failures.append(f"trial {trial}: the index holds neither the old nor the new documents")
            continue
        repaired = _cli("index", env=env)
        if repaired.returncode != 0:
            failures.append(f"trial {trial}: `rag index` after the kill failed: {repaired.stderr.strip()[:200]}")
            continue
        state = extra.exists()
        if state not in references:
            fresh = workdir / f"fresh-{state}"
            shutil.rmtree(fresh, ignore_errors=True)
            assert _cli("index", str(corpus), env={**env, "RAG_INDEX_DIR": str(fresh)}).returncode == 0
            references[state] = _ranked(fresh)
        if _ranked(workdir / "index") != references[state]:
            failures.append(f"trial {trial}: search after the repair differs from a fresh rebuild")
    return _row("kill -9 during `rag index`", trials, failures)


# --- damaged index files ---------------------------------------------------------------------------------


def _damaged_files(workdir: Path) -> dict[str, Any]:
    from rag.assistant import Assistant
    from rag.errors import IndexCorruptError
    from rag.store import current_generation, load_index

    damages: dict[str, Callable[[Path], None]] = {
        "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
        "empty": lambda p: p.write_bytes(b""),
        "same-size garbage": lambda p: p.write_bytes(b"\x93" * p.stat().st_size),
    }
    settings = _seeds_index(workdir)
    files = sorted(load_index(workdir / "index").manifest["files"])
    trials, failures = 0, []
    for name in files:
        for how, damage in damages.items():
            trials += 1
            damage(current_generation(workdir / "index") / name)
            try:
                Assistant(settings).search("Northern Fleet")
                named = (
                    how == "same-size garbage" and name == "vectors.npy"
                )  # not read by a search: `rag index` finds it
            except IndexCorruptError as exc:
                named = name in str(exc) and "rag index --rebuild" in str(exc)
            report = Assistant(settings).build_index()
            repaired = report.written and any(name in p.message for p in report.problems)
            if not (named and repaired and Assistant(settings).search("Northern Fleet", k=1).hits):
                failures.append(f"{name} {how}: named {named}, repaired {repaired}")
    return _row("damaged index file (every file x 3 damages)", trials, failures)


# --- bad input -------------------------------------------------------------------------------------------


def _bad_cli_input(workdir: Path) -> dict[str, Any]:
    corpus = workdir / "corpus"
    shutil.copytree(REPO / "seeds", corpus)
    other = workdir / "other"
    other.mkdir()
    (other / "note.txt").write_text("Note\n\nThe Lisbon office opened in 2016.\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_INDEX_DIR": str(workdir / "index")}
    assert _cli("index", str(corpus), env=env).returncode == 0
    cases = [
        (["search", "Northern \udcff Fleet"], "invalid text", 2),
        (["search", "flights", "-k", "0"], "k must be at least 1", 2),
        (["ask", "   "], "the question is empty", 2),
        (["ask", "x" * 1200], "over the limit", 2),
        (["show", "missing.txt"], "no document", 2),
        (["show", "000_b63fe8f3e2dac5e7.txt", "--start", "50", "--end", "10"], "outside", 2),
        (["index", str(workdir / "nowhere")], "does not exist", 1),
        (["index", str(other)], "--replace", 2),
        (["serve", "--port", "70000"], "not a TCP port", 2),
        (["eval", str(workdir / "missing.jsonl")], "missing.jsonl", 2),
    ]
    failures = []
    for args, message, code in cases:
        result = subprocess.run(
            [sys.executable, "-m", "rag.cli", *args], env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        lines = [line for line in output.strip().splitlines() if line.strip()]
        if result.returncode != code or message not in output or "Traceback" in output or len(lines) > 3:
            failures.append(f"{args[0]} {args[1:][:2]}: exit {result.returncode}, {output.strip()[:160]!r}")
    return _row("bad command-line input", len(cases), failures)


def _bad_http_input(workdir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from rag.assistant import Assistant
    from tests.fake_openai import FakeOpenAI
    from tests.live_server import LiveServer

    settings = _seeds_index(workdir)
    with FakeOpenAI("Nothing in the passages says so.") as fake:
        settings.llm.base_url, settings.llm.model = fake.base_url, "fake"
        assistant = Assistant(settings)
        chat = "/v1/chat/completions"
        cases: list[tuple[str, str, Any, dict[str, str], int]] = [
            ("POST", "/v1/search", b"{not json", {}, 400),
            ("POST", "/v1/search", {"query": "Lavrov"}, {"Host": "evil.example"}, 400),
            ("POST", "/v1/search", {"query": "Who \ud800?"}, {}, 422),
            ("POST", "/v1/search", {"query": ""}, {}, 422),
            ("POST", "/v1/search", {"query": "Lavrov", "k": 0}, {}, 422),
            ("POST", "/v1/ask", {"question": "x" * 1200}, {}, 422),
            ("POST", chat, {"model": "rag", "messages": []}, {}, 422),
            ("POST", chat, {"model": "rag", "messages": [{"role": "assistant", "content": "Hi"}]}, {}, 422),
            ("POST", chat, {"model": "rag", "messages": [{"role": "user", "content": "\ud800"}]}, {}, 422),
            ("POST", "/v1/search", {"query": "x" * 2_000_000}, {}, 413),
            ("GET", "/v1/documents/..%2F..%2Fpyproject.toml", None, {}, 404),
            ("GET", "/v1/documents/missing.txt", None, {}, 404),
            ("DELETE", "/v1/search", None, {}, 405),
        ]
        failures = []
        with LiveServer(assistant, body_timeout=1.0) as live:
            port = int(live.url.rsplit(":", 1)[1])
            for method, path, body, headers, status in cases:
                got, text = _http(port, method, path, body, headers)
                if got != status or "error" not in text or "Traceback" in text:
                    failures.append(f"{method} {path} {str(body)[:40]}: {got} {text[:120]!r}")
            got, text = _short_body(port)
            if got != 408:
                failures.append(f"a body shorter than its Content-Length: {got} {text[:120]!r}")
    return _row("bad HTTP input", len(cases) + 1, failures)


def _http(port: int, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json", **headers})
    response = connection.getresponse()
    text = response.read().decode("utf-8", "replace")
    connection.close()
    return response.status, text


def _short_body(port: int) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b'POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"query"')
        reply = raw.recv(4096).decode("utf-8", "replace")
    return (int(reply.split()[1]) if reply.startswith("HTTP/") else 0), reply


# --- model faults ----------------------------------------------------------------------------------------


def _model_faults(workdir: Path) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from rag.assistant import Assistant
    from rag.errors import LLMError
    from rag.llm import free_port
    from tests.fake_openai import FakeOpenAI

    settings = _seeds_index(workdir)
    settings.llm.model, settings.llm.timeout, settings.llm.deadline = "fake", 10.0, 5.0
    faults: dict[str, Callable[[FakeOpenAI], None]] = {
        "down (nothing listening)": lambda fake: None,
        "HTTP 500 on every request": lambda fake: setattr(fake, "status", 500),
        "hang (no reply)": lambda fake: setattr(fake, "delay", 60.0),
        "garbage (not JSON)": lambda fake: setattr(fake, "garbage", True),
        "`{}` instead of a completion": lambda fake: (
            setattr(fake, "garbage", True),
            setattr(fake, "garbage_body", b"{}"),
        ),
        "empty answer": lambda fake: setattr(fake, "empty", True),
        "stream stops mid-answer": lambda fake: setattr(fake, "stall", 60.0),
    }
    rows = []
    for name, fault in faults.items():
        with FakeOpenAI("Adm. Alexander Moiseyev is the chief of Russia's Northern Fleet [1].") as fake:
            fault(fake)
            settings.llm.base_url = f"http://127.0.0.1:{free_port()}/v1" if name.startswith("down") else fake.base_url
            assistant = Assistant(settings)
            started = time.perf_counter()
            try:
                events = list(assistant.ask_stream("Who is the chief of Russia's Northern Fleet?"))
                error = f"no error: {str(events[-1])[:80]}"
            except LLMError:
                error = ""  # an error the user is told about, never "the documents do not answer"
            seconds = time.perf_counter() - started
        rows.append(_row(f"model fault: {name}", 1, [error] if error else [], seconds=round(seconds, 2)))
    return rows


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = suite_faults(args, Path(tmp))
    print(json.dumps(result) if args.json else markdown(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
