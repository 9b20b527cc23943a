"""The startup suite: what a user waits for before a `rag` command answers, each run in a fresh process.

`python benchmarks/run.py --suite startup [--repeat R] [--json] [--smoke]`

On a seeds index built first (which also makes the ONNX export, as any first run does), wall time from
spawning the process to its exit, p50 and min of N runs (N = max(5, --repeat); 1 with --smoke):

- `python -c pass` (the interpreter alone), `python -c "import rag"`, `rag --help`;
- `rag search QUERY` cold, per embedder backend: torch (the encoder before the onnx backend existed) and
  onnx (the default), on the same index, whose vectors both backends reproduce.

Then the phases of a cold search, timed inside a fresh process that makes the library calls `rag search`
makes, in its order: imports (the CLI's typer and rich, then the library), index load (manifest, documents,
chunks, the compatibility check), encoder load, encoding the query, search load (faiss and bm25s imported,
their files mapped), search (hybrid: the query encoded again, warm, both retrievers, fusion), and the
`--json` rendering. What the phases leave of the `rag search` wall time is interpreter start, argument
parsing and printing. "Cold" is a new process; the OS page cache is warm (the files were read before).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rag.assistant import Assistant
from rag.config import load_settings

REPO = Path(__file__).resolve().parent.parent
QUERY = "Northern Fleet"
BACKENDS = ("torch", "onnx")

# Runs in a fresh interpreter: argv = [query, index_dir]; prints one JSON object.
_PHASES = r"""
import io, json, sys, time
from contextlib import redirect_stdout
marks, last = {}, time.perf_counter()
def mark(name):
    global last
    now = time.perf_counter()
    marks[name] = round((now - last) * 1000, 2)
    last = now
import rag.cli
mark("import_cli")
from rag.assistant import Assistant
from rag.config import load_settings
mark("import_library")
settings = load_settings()
settings.index.dir = sys.argv[2]
assistant = Assistant(settings)
retriever = assistant.retriever
mark("index_load")
embedder = retriever.embedder
mark("encoder_load")
embedder.encode([sys.argv[1]])
mark("encode")
retriever.index.faiss_index, retriever.index.bm25
mark("search_load")
result = assistant.search(sys.argv[1])
mark("search")
from rag.schemas import SearchResponse, dump
with redirect_stdout(io.StringIO()):
    rag.cli.common.print_json(dump(SearchResponse.of(result)))
mark("render_json")
print(json.dumps({"phases_ms": marks, "backend": embedder.backend, "torch_imported": "torch" in sys.modules}))
"""


def _env(backend: str | None) -> dict[str, str]:
    """The caller's environment without RAG_* settings (a shell's would skew the runs), offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") or k == "RAG_CACHE_DIR"}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    if backend:
        env["RAG_EMBED_BACKEND"] = backend
    return env


def _rag_command() -> list[str]:
    script = Path(sys.executable).with_name("rag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds from spawn to exit, and stdout; a failure is an error naming the command."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return seconds, done.stdout


def _timed(command: list[str], cwd: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    runs = [_run(command, cwd, env)[0] * 1000 for _ in range(repeat)]
    return {"p50_ms": round(statistics.median(runs), 1), "min_ms": round(min(runs), 1), "runs": repeat}


def suite_startup(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from benchmarks.common import machine

    settings = load_settings(env={})
    settings.index.dir = str(workdir / "index")
    report = Assistant(settings).build_index([str(Path(args.corpus))])
    repeat = 1 if args.smoke else max(5, args.repeat)
    backends = [settings.embed.backend] if args.smoke else list(BACKENDS)
    env = _env(None)
    rag = _rag_command()
    search = [*rag, "search", QUERY, "--index-dir", settings.index.dir]
    result: dict[str, Any] = {
        "suite": "startup",
        "machine": machine(),
        "chunks": report.chunks_total,
        "query": QUERY,
        "default_backend": settings.embed.backend,
        "python_start": _timed([sys.executable, "-c", "pass"], workdir, env, repeat),
        "import_rag": _timed([sys.executable, "-c", "import rag"], workdir, env, repeat),
        "rag_help": _timed([*rag, "--help"], workdir, env, repeat),
        "search_cold": {b: _timed(search, workdir, _env(b), repeat) for b in backends},
    }
    phases: dict[str, Any] = {}
    for backend in backends:
        runs = [
            json.loads(_run([sys.executable, "-c", _PHASES, QUERY, settings.index.dir], workdir, _env(backend))[1])
            for _ in range(repeat)
        ]
        p50 = {name: round(statistics.median(r["phases_ms"][name] for r in runs), 1) for name in runs[0]["phases_ms"]}
        wall = result["search_cold"][backend]["p50_ms"]
        phases[backend] = {
            "phases_ms_p50": p50,
            "rest_ms": round(wall - sum(p50.values()), 1),  # interpreter start, argument parsing, printing
            "torch_imported": runs[0]["torch_imported"],
        }
    result["search_phases"] = phases
    result["onnx_export"] = _export_record(settings)
    return result


def _export_record(settings: Any) -> dict[str, Any] | None:
    """What making the ONNX export cost (once per model and machine), from its export.json."""
    from rag.embedders import resolve_model
    from rag.onnx_embedder import export_folder

    _, folder = resolve_model(settings.embed.model)
    try:
        meta = json.loads((export_folder(folder, "float32") / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: meta.get(k) for k in ("export_seconds", "min_cosine_on_probes", "created_at")}
