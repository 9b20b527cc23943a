"""The `rag` command line: thin wrappers over ``rag.Assistant``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.assistant import Assistant

app = typer.Typer(
    help="Answer questions about a folder of documents, with citations you can check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


P = ParamSpec("P")
R = TypeVar("R")


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a library error into a one-line message on stderr and its exit code, never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _assistant(index_dir: str | None) -> Assistant:
    from rag.assistant import Assistant
    from rag.config import load_settings

    settings = load_settings()
    if index_dir:
        settings.index.dir = index_dir
    return Assistant(settings)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


IndexDir = Annotated[
    str | None, typer.Option("--index-dir", help="Index directory (default: index/, or RAG_INDEX_DIR).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("index")
@_reports_errors
def index_cmd(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files or folders (default: what the index was built from, else seeds/)."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-read and re-embed everything.")] = False,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Index documents (.txt .md .html .pdf); only new or changed ones are embedded."""
    assistant = _assistant(index_dir)
    report = assistant.build_index(paths or None, rebuild=rebuild, progress=not as_json)
    if as_json:
        _print_json(report.to_json())
        return
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


@app.command("search")
@_reports_errors
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="How many passages (default 5).")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense, bm25 or hybrid (default).")] = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Only this doc id (repeatable).")] = None,
    section: Annotated[
        list[str] | None, typer.Option("--section", help="Only article or comments (repeatable).")
    ] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Search the index and print ranked passages."""
    result = _assistant(index_dir).search(query, k=k, mode=mode, doc_ids=doc, sections=section)
    if as_json:
        _print_json(result.to_json())
        return
    if not result.hits:
        out.print(f"No passages match {query!r}.")
        return
    for hit in result.hits:
        c = hit.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 300 else snippet[:297] + "..."
        section_note = " [magenta](reader comments)[/]" if c.section == "comments" else ""
        out.print(
            f"[bold]{hit.rank}. {escape(hit.title)}[/]{section_note}\n"
            f"   [dim]{escape(c.doc_id)} [{c.start}:{c.end}]  score {hit.score:.4f}[/]\n"
            f"   {escape(snippet)}\n"
        )


@app.command("show")
@_reports_errors
def show_cmd(
    doc_id: Annotated[str, typer.Argument(help="Document id, as `rag search` prints it.")],
    start: Annotated[int | None, typer.Option("--start", help="First character (default 0).")] = None,
    end: Annotated[int | None, typer.Option("--end", help="End character, exclusive (default: the end).")] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Print a document's text as indexed, or the span [start, end) of it."""
    doc, s, e = _assistant(index_dir).span(doc_id, start, end)
    if as_json:
        _print_json(
            {
                "doc_id": doc.doc_id,
                "title": doc.title,
                "metadata": doc.metadata,
                "start": s,
                "end": e,
                "text": doc.text[s:e],
            }
        )
        return
    sys.stdout.write(doc.text[s:e])  # exactly the span, so `rag show ... > file` round-trips
    if sys.stdout.isatty() and not doc.text[s:e].endswith("\n"):
        sys.stdout.write("\n")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
