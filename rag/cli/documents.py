"""`rag index`, `rag search` and `rag show`: build the index, search it, print a document."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from rag.cli.common import (
    AsJson,
    DocFilter,
    IndexDir,
    SectionFilter,
    app,
    assistant_for,
    err,
    error_line,
    out,
    page_note,
    print_json,
    reports_errors,
)
from rag.errors import InputError

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.types import IndexReport

_STAGE_LABELS = {
    "read": "Reading files",
    "start": "Starting Ray",
    "load": "Loading the embedder",
    "embed": "Embedding chunks",
    "write": "Writing the index",
}


class IndexProgressDisplay:
    """Indexing progress on a console once a run has lasted ``delay`` seconds: the stage, files read or chunks
    embedded out of how many, the rate and the time so far. A run that ends sooner shows nothing, and so does
    a console that is not a terminal (a pipe, a log file)."""

    def __init__(self, console: Console, delay: float = 1.0) -> None:
        self._console = console
        self._lock = threading.Lock()
        self._state: tuple[str, int, int | None] = ("read", 0, None)
        self._stage_started = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._closed = False
        self._timer = threading.Timer(delay, self._show)
        self._timer.daemon = True
        if console.is_terminal:  # a pipe or a log file gets the report line only
            self._timer.start()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        with self._lock:
            if stage != self._state[0]:
                self._stage_started = time.monotonic()
            self._state = (stage, done, total)
            self._update()

    def _show(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._bar.start()
            self._update()

    def _update(self) -> None:
        if self._bar is None:
            return
        stage, done, total = self._state
        label = _STAGE_LABELS.get(stage, stage)
        if self._task is None or self._bar.tasks[0].description != label:
            if self._task is not None:  # a stage of its own: its own count, or none ("Loading the embedder")
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(label, total=total, count="")
        elapsed = time.monotonic() - self._stage_started
        count = f"{done}/{total}" if total is not None else ""
        if stage == "embed" and done and elapsed > 0:
            count += f" ({done / elapsed:.0f} chunks/s)"
        self._bar.update(self._task, completed=done, total=total, count=count)

    def close(self) -> None:
        """Stop the display (or keep it from ever appearing)."""
        with self._lock:
            self._closed = True
            self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()


@app.command("index")
@reports_errors
def index_cmd(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files or folders (default: what the index was built from, else seeds/)."),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Re-read and re-embed everything (the same folders, unless given).")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Let PATHS replace the folders the index was built from (removes documents)."),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Keep running: index again whenever files in the folders change (Ctrl-C stops)."),
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="local (this process; default) or ray (Ray Data: pip install 'ray[data]')."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="With --engine ray: auto or ray://HOST:PORT (default: a local Ray instance)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="With --engine ray: encoder actors, one model each (default 2).")
    ] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Index documents (.txt .md .html .pdf .docx); only new or changed ones are embedded."""
    if watch and as_json:
        raise InputError("--watch prints a report per run as text; leave out --json")
    assistant = assistant_for(index_dir)
    _choose_engine(assistant, engine, address, workers)
    report = _index_once(assistant, paths or None, rebuild=rebuild, replace=replace, as_json=as_json)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(assistant, report)
    if watch:
        _watch(assistant)


def _choose_engine(assistant: Assistant, engine: str | None, address: str | None, workers: int | None) -> None:
    """Apply --engine, --address and --workers over the settings (index.engine, ray_address, ray_workers)."""
    index = assistant.settings.index
    index.engine = engine or index.engine  # type: ignore[assignment]  # checked by validate() below
    index.ray_address = address if address is not None else index.ray_address
    index.ray_workers = workers if workers is not None else index.ray_workers
    assistant.settings.validate()
    if index.engine != "ray" and (address is not None or workers is not None):
        raise InputError("--address and --workers apply to --engine ray; add --engine ray or leave them out")


def _index_once(
    assistant: Assistant, paths: list[str] | None, *, rebuild: bool, replace: bool, as_json: bool
) -> IndexReport:
    display = None if as_json else IndexProgressDisplay(err)
    try:
        return assistant.build_index(paths, rebuild=rebuild, replace=replace, progress=display)
    finally:
        if display is not None:
            display.close()


def _print_report(assistant: Assistant, report: IndexReport) -> None:
    for problem in report.problems:
        verb = "skipped" if problem.skipped else "warning"
        err.print(f"[yellow]{verb}[/] {escape(problem.path)}: {escape(problem.message)}")
    counts = (
        f"added {len(report.added)}, changed {len(report.changed)}, removed {len(report.removed)}, "
        f"unchanged {len(report.unchanged)}"
    )
    if not report.written:
        out.print(f"Index is up to date ({counts}; {report.chunks_total} chunks). Nothing embedded.")
        return
    rate = f" ({report.chunks_embedded / report.embed_seconds:.0f} chunks/s)" if report.embed_seconds else ""
    out.print(
        f"Indexed into {escape(str(assistant.index_dir))}: {counts}; {report.chunks_total} chunks, "
        f"{report.chunks_embedded} embedded in {report.embed_seconds:.1f}s{rate}; "
        f"{report.index_kind} index; {report.total_seconds:.1f}s in all."
    )


def _watch(assistant: Assistant) -> None:
    """Index again each time the recorded folders change and then stay quiet; a failed run is one line and the
    watch goes on (the live index stays as it was). Ctrl-C ends it."""
    from rag.store import recorded_corpus
    from rag.watch import changes

    recorded = recorded_corpus(assistant.index_dir)
    folders = recorded["paths"] if recorded else []
    err.print(f"Watching {escape(', '.join(folders))} for changes; Ctrl-C stops.")
    try:
        for _ in changes(folders, assistant.settings.ingest.extensions):
            try:
                _print_report(assistant, _index_once(assistant, None, rebuild=False, replace=False, as_json=False))
            except Exception as exc:
                reported = error_line(exc)
                if reported is None:
                    raise
                err.print(f"[red]Error:[/] {escape(reported[0])} (still watching)")
    except KeyboardInterrupt:
        err.print("Stopped watching.")


@app.command("search")
@reports_errors
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="How many passages (default 5).")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense, bm25 or hybrid (default).")] = None,
    doc: DocFilter = None,
    section: SectionFilter = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Search the index and print ranked passages."""
    result = assistant_for(index_dir).search(query, k=k, mode=mode, doc_ids=doc, sections=section)
    if as_json:
        from rag.schemas import SearchResponse, dump

        print_json(dump(SearchResponse.of(result)))
        return
    if not result.hits:
        out.print(f"No passages match {query!r}.")
        return
    # Rank only: a fused score (RRF, 0.0325) or a BM25 score means nothing to a reader; --json keeps the score.
    for hit in result.hits:
        c = hit.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 300 else snippet[:297] + "..."
        section_note = " [magenta](reader comments)[/]" if c.section == "comments" else ""
        out.print(
            f"[bold]{hit.rank}. {escape(hit.title)}[/]{section_note}\n"
            f"   [dim]{escape(c.doc_id)}{page_note(hit.page)} [{c.start}:{c.end}][/]\n"
            f"   {escape(snippet)}\n"
        )


@app.command("show")
@reports_errors
def show_cmd(
    doc_id: Annotated[str, typer.Argument(help="Document id, as `rag search` prints it.")],
    start: Annotated[int | None, typer.Option("--start", help="First character (default 0).")] = None,
    end: Annotated[int | None, typer.Option("--end", help="End character, exclusive (default: the end).")] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Print a document's text as indexed, or the span [start, end) of it."""
    doc, s, e = assistant_for(index_dir).span(doc_id, start, end)
    if as_json:
        from rag.schemas import DocumentOut, dump

        print_json(dump(DocumentOut.of(doc, s, e)))
        return
    sys.stdout.write(doc.text[s:e])  # exactly the span, so `rag show ... > file` round-trips
    if sys.stdout.isatty() and not doc.text[s:e].endswith("\n"):
        sys.stdout.write("\n")
