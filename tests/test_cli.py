"""The `rag` command line through typer's CliRunner: what a user sees, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.assistant import Assistant
from rag.cli import app

runner = CliRunner()


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI from an empty folder, with its index in tmp_path."""
    monkeypatch.chdir(tmp_path)
    index_dir = tmp_path / "index"
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    return index_dir


def test_index_search_show(env: Path, corpus: Path) -> None:
    result = runner.invoke(app, ["index", str(corpus)])
    assert result.exit_code == 0, result.output
    assert "added 5, changed 0, removed 0, unchanged 0" in result.stdout

    again = runner.invoke(app, ["index"])
    assert again.exit_code == 0 and "up to date" in again.stdout and "Nothing embedded" in again.stdout

    search = runner.invoke(app, ["search", "Who is the chief of the Northern Fleet?", "-k", "2"])
    assert search.exit_code == 0
    assert search.stdout.startswith("1. ") and "004_ef5f7f6cb4511981.txt" in search.stdout
    assert "(reader comments)" in search.stdout
    assert "score" not in search.stdout  # rank only: a fused score (0.0325) means nothing to a reader


def _commands(command: object, path: list[str]) -> list[list[str]]:
    """Every command path under the click command ``command`` (groups and their subcommands)."""
    found = [path]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, [*path, name])
    return found


def test_help_of_every_command_shows_flags_without_a_type() -> None:
    import typer.main

    paths = _commands(typer.main.get_command(app), [])
    assert ["index"] in paths and ["llm", "start"] in paths and ["ask"] in paths and len(paths) > 10
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert "--help" in result.output, path
    index_help = runner.invoke(app, ["index", "--help"]).output
    assert "--rebuild" in index_help and "<str>" in index_help  # flags are bare, options with a value still typed


def test_search_json_is_the_documented_contract(env: Path, corpus: Path) -> None:
    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    result = runner.invoke(app, ["search", "direct flights", "--json", "-k", "3", "--mode", "bm25"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert set(payload) == {"query", "mode", "hits"}
    assert payload["query"] == "direct flights" and payload["mode"] == "bm25"
    assert [h["rank"] for h in payload["hits"]] == [1, 2, 3]
    for hit in payload["hits"]:
        assert set(hit) == {"rank", "score", "doc_id", "chunk_id", "section", "start", "end", "text", "page"}
        assert hit["page"] is None  # a text file has no pages
        text = (corpus / hit["doc_id"]).read_text(encoding="utf-8")
        assert text[hit["start"] : hit["end"]] == hit["text"]


def test_show_prints_a_document_or_a_span(env: Path, corpus: Path) -> None:
    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    doc = "002_17fbe4ec36de0cb9.txt"
    text = (corpus / doc).read_text(encoding="utf-8")
    whole = runner.invoke(app, ["show", doc])
    assert whole.exit_code == 0 and whole.stdout == text
    start = text.index("Matthew Miller")
    span = runner.invoke(app, ["show", doc, "--start", str(start), "--end", str(start + 14), "--json"])
    payload = json.loads(span.stdout)
    assert payload["text"] == "Matthew Miller" and payload["start"] == start and payload["doc_id"] == doc


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["search", "flights", "-k", "0"], "k must be at least 1 (got 0)", 2),
        (["search", "flights", "-k", "-2"], "k must be at least 1 (got -2)", 2),
        (["search", "  "], "query is empty", 2),
        (["search", "flights", "--mode", "fuzzy"], "valid modes", 2),
        (["show", "missing.txt"], "no document 'missing.txt'", 2),
        (["show", "002_17fbe4ec36de0cb9.txt", "--start", "50", "--end", "10"], "outside", 2),
    ],
)
def test_bad_input_gets_a_clear_message(env: Path, corpus: Path, args: list[str], message: str, code: int) -> None:
    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in result.stderr and "Traceback" not in result.output


def test_no_index_and_missing_corpus(env: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "flights"])
    assert result.exit_code == 1 and "rag index" in result.stderr
    missing = runner.invoke(app, ["index", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "nowhere" in missing.stderr and "does not exist" in missing.stderr
    assert not (env / "CURRENT").exists()


def test_index_reports_skipped_files(env: Path, corpus: Path) -> None:
    (corpus / "empty.txt").write_text("")
    result = runner.invoke(app, ["index", str(corpus)])
    assert result.exit_code == 0
    assert "skipped" in result.stderr and "empty.txt" in result.stderr and "empty file" in result.stderr
    report = json.loads(runner.invoke(app, ["index", "--json"]).stdout)
    assert report["written"] is False and report["problems"][0]["path"].endswith("empty.txt")


def test_help_is_fast_to_import() -> None:
    import subprocess
    import sys

    code = "import sys, rag.cli; sys.exit(any(m in sys.modules for m in ('torch', 'faiss', 'bm25s')))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_missing_or_broken_support_set_is_one_clear_line(env: Path, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["eval", "--support", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0 and "make_support_set.py" in missing.stderr and "Traceback" not in missing.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a"}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", "--support", str(broken)])
    assert result.exit_code != 0 and "broken.jsonl:1" in result.stderr and "Traceback" not in result.output


# --- the folders an index was built from (issue 12, data safety) -----------------------------------------


def _user_docs(folder: Path) -> Path:
    folder.mkdir()
    for name, line in (
        ("a.txt", "The Lisbon office opened in 2016."),
        ("b.txt", "Mara Okafor leads People Operations."),
    ):
        (folder / name).write_text(f"Handbook\n\n{line} It has forty desks and a library.\n", encoding="utf-8")
    return folder


def _indexed(index_dir: Path) -> set[str]:
    return set(json.loads((index_dir / "corpus.json").read_text(encoding="utf-8"))["documents"])


def test_rebuild_reads_the_recorded_folders_not_a_seeds_folder_here(
    env: Path, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _user_docs(tmp_path / "handbook")
    assert runner.invoke(app, ["index", str(docs)]).exit_code == 0
    monkeypatch.chdir(corpus.parent)  # a folder with seeds/ in it: the default corpus.paths
    (corpus.parent / "seeds").mkdir(exist_ok=True)
    for path in corpus.iterdir():
        (corpus.parent / "seeds" / path.name).write_bytes(path.read_bytes())
    rebuilt = runner.invoke(app, ["index", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _indexed(env) == {"a.txt", "b.txt"}
    shown = json.loads(runner.invoke(app, ["show", "a.txt", "--json"]).stdout)
    assert shown["doc_id"] == "a.txt" and "Lisbon" in shown["text"]


def test_a_damaged_index_is_rebuilt_from_its_recorded_folders(env: Path, tmp_path: Path) -> None:
    docs = _user_docs(tmp_path / "handbook")
    assert runner.invoke(app, ["index", str(docs)]).exit_code == 0
    (env / "CURRENT").write_text("gen-0\n", encoding="utf-8")  # points at nothing: the index is damaged
    again = runner.invoke(app, ["index"])  # no path, and no seeds/ here
    assert again.exit_code == 0, again.output
    assert "rebuilding from scratch" in again.output and _indexed(env) == {"a.txt", "b.txt"}
    assert runner.invoke(app, ["search", "Lisbon office"]).exit_code == 0


def test_other_folders_replace_the_index_only_when_asked(env: Path, tmp_path: Path, corpus: Path) -> None:
    docs = _user_docs(tmp_path / "handbook")
    assert runner.invoke(app, ["index", str(docs)]).exit_code == 0
    refused = runner.invoke(app, ["index", str(corpus)])
    assert refused.exit_code == 2
    assert "would remove 2 of its 2 documents (a.txt, b.txt)" in refused.output and "--replace" in refused.output
    assert _indexed(env) == {"a.txt", "b.txt"}  # nothing changed
    # Adding a folder removes nothing: allowed, and both are recorded.
    both = runner.invoke(app, ["index", str(docs), str(corpus)])
    assert both.exit_code == 0 and len(_indexed(env)) == 7
    assert runner.invoke(app, ["index", "--rebuild"]).exit_code == 0 and len(_indexed(env)) == 7
    replaced = runner.invoke(app, ["index", str(corpus), "--replace"])
    assert replaced.exit_code == 0 and "removed 2" in replaced.stdout and len(_indexed(env)) == 5


def test_the_same_folder_by_a_relative_path_is_the_same_corpus(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _user_docs(tmp_path / "handbook")
    assert runner.invoke(app, ["index", str(docs)]).exit_code == 0
    (docs / "b.txt").unlink()  # deleted from the folder: removed from the index, as always
    monkeypatch.chdir(tmp_path)
    again = runner.invoke(app, ["index", "handbook"])
    assert again.exit_code == 0 and "removed 1" in again.stdout and _indexed(env) == {"a.txt"}


def test_an_invalid_byte_in_an_argument_is_one_line_not_a_traceback(env: Path, corpus: Path) -> None:
    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    # A byte that is not UTF-8 reaches Python as a lone surrogate (surrogateescape): "\udcff".
    result = runner.invoke(app, ["search", "Northern \udcff Fleet"])
    assert (result.exit_code == 2 and result.exception is None) or isinstance(result.exception, SystemExit)
    assert "holds invalid text at character 10" in result.output and "Traceback" not in result.output


def test_a_port_out_of_range_is_one_line(env: Path) -> None:
    result = runner.invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "--port 70000 is not a TCP port; use 1-65535" in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output


def test_a_full_disk_and_a_read_only_folder_are_one_line_and_lose_nothing(
    env: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import faiss

    from rag.store import current_generation

    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    live = current_generation(env)

    def disk_full(index: object, path: str) -> None:  # faiss says so as a RuntimeError with C++ context
        raise RuntimeError(f"Error in faiss::FileIOWriter: could not write {path}: No space left on device")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    full = runner.invoke(app, ["index", "--rebuild"])
    assert full.exit_code == 1 and "Traceback" not in full.output
    assert "No space left on device" in full.output and "free some disk space" in full.output
    assert current_generation(env) == live and runner.invoke(app, ["search", "Lavrov"]).exit_code == 0
    monkeypatch.undo()

    real_touch = Path.touch

    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == ".lock":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_touch(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "touch", read_only)
    locked = runner.invoke(app, ["index", "--rebuild"])
    assert locked.exit_code == 1 and "Read-only file system" in locked.output and "RAG_INDEX_DIR" in locked.output
    assert current_generation(env) == live


def test_an_unexpected_error_is_one_line_unless_debugging(
    env: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.assistant import Assistant

    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(Assistant, "search", broken)
    quiet = runner.invoke(app, ["search", "Lavrov"])
    assert quiet.exit_code == 1 and "unexpected ValueError: a bug" in quiet.output and "--debug" in quiet.output
    assert "Traceback" not in quiet.output and not isinstance(quiet.exception, ValueError)
    monkeypatch.setenv("RAG_DEBUG", "")  # --debug sets it in this process: restored after the test
    loud = runner.invoke(app, ["--debug", "search", "Lavrov"])
    assert isinstance(loud.exception, ValueError)  # the traceback is the user's to see
    assert runner.invoke(app, ["show", "missing.txt"]).exit_code == 2  # a library error keeps its own code


def test_indexing_shows_its_progress_once_it_lasts_a_second(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    from io import StringIO

    from rich.console import Console

    from rag.cli.documents import IndexProgressDisplay

    assistant = assistant_factory()
    screen = StringIO()
    stages: list[tuple[str, int, int | None]] = []
    display = IndexProgressDisplay(Console(file=screen, force_terminal=True, width=100), delay=0.0)

    def progress(stage: str, done: int, total: int | None) -> None:
        stages.append((stage, done, total))
        display(stage, done, total)

    try:
        assistant.build_index([str(corpus)], progress=progress)  # loading the embedder alone takes seconds
    finally:
        display.close()
    assert ("read", 5, 5) in stages and ("embed", 49, 49) in stages
    assert [s for s, *_ in stages if s != "read"] == ["load", "embed", "embed", "write"]
    shown = screen.getvalue()
    assert "Loading the embedder" in shown or "Embedding chunks" in shown
    assert "/49" in shown  # the chunks embedded out of how many

    quiet = StringIO()
    display = IndexProgressDisplay(Console(file=quiet, force_terminal=True, width=100), delay=1.0)
    try:
        report = assistant.build_index(progress=display)  # up to date: well under a second
    finally:
        display.close()
    assert not report.written and quiet.getvalue() == ""  # a short run shows nothing


def test_index_watch_follows_the_folder_survives_a_failed_run_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import threading
    import time

    from rag.store import load_index
    from tests.conftest import REPO, SEEDS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEEDS / "002_17fbe4ec36de0cb9.txt", corpus)
    index_dir = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "index", str(corpus), "--watch"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def documents() -> dict[str, str]:
        try:
            return {d.doc_id: d.text for d in load_index(index_dir).documents.values()}
        except Exception:  # not built yet, or between generations
            return {}

    def wait_for(what: str, done: Callable[[], bool], seconds: float = 180.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert proc.poll() is None, f"rag index --watch exited ({proc.returncode}): {''.join(stderr)}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {''.join(stderr)}"
            time.sleep(0.2)

    try:
        wait_for("the watch to begin", lambda: any(line.startswith("Watching ") for line in stderr))
        (corpus / "new.txt").write_text("The Lisbon office opened in 2016 and hosts forty people.\n")
        wait_for("the added file", lambda: "new.txt" in documents())
        (corpus / "new.txt").write_text("The Lisbon office moved to a larger building in 2024.\n")
        wait_for("the edited file", lambda: "moved" in documents().get("new.txt", ""))
        for path in corpus.iterdir():
            path.unlink()  # nothing left to index: that run fails
        wait_for("the failed run", lambda: any("still watching" in line for line in stderr), 60)
        assert set(documents()) == {"002_17fbe4ec36de0cb9.txt", "new.txt"}  # the live index is intact
        (corpus / "again.txt").write_text("The Tallinn office opened in 2019 near the Old Town.\n")
        wait_for("the watch to go on", lambda: set(documents()) == {"again.txt"})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
    failed = [line for line in stderr if line.startswith("Error:")]
    assert len(failed) == 1 and "no indexable documents" in failed[0]  # one line, not a traceback
    assert proc.returncode == 0 and stderr[-1].strip() == "Stopped watching."
    assert "Traceback" not in "".join(stderr)
