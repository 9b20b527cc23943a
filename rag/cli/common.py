"""What every `rag` command shares: the app, the consoles, one-line errors, the index option, JSON output."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import click
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


def debugging() -> bool:
    """``--debug`` or ``RAG_DEBUG=1``: an unexpected error shows its traceback."""
    return os.environ.get("RAG_DEBUG", "").strip().lower() in ("1", "true", "yes")


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")] = False,
) -> None:
    """Answer questions about a folder of documents, with citations you can check."""
    if debug:
        os.environ["RAG_DEBUG"] = "1"


def os_error_message(exc: OSError) -> str:
    """One line for a failure of the machine rather than of rag: the file, the reason and what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device{where}; free some space, or set RAG_INDEX_DIR to a folder on another disk"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write{where}: {exc.strerror}; use a folder you can write to (RAG_INDEX_DIR, --out)"
    return f"{exc.strerror or exc}{where}"


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a failure into a one-line message on stderr and a non-zero exit code, never a traceback (unless
    ``--debug``): a library error with its own exit code, the machine's (a full disk, a read-only folder) and,
    for anything else, the exception named with how to get its traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, click.ClickException, KeyboardInterrupt):
            raise
        except OSError as exc:
            if debugging():
                raise
            err.print(f"[red]Error:[/] {escape(os_error_message(exc))}")
            raise typer.Exit(1) from None
        except Exception as exc:
            if debugging():
                raise
            err.print(
                f"[red]Error:[/] unexpected {type(exc).__name__}: {escape(str(exc)[:300])}; "
                "run again with --debug (or RAG_DEBUG=1) for the traceback, and report it"
            )
            raise typer.Exit(1) from None

    return wrapper


def assistant_for(index_dir: str | None) -> Assistant:
    from rag.assistant import Assistant
    from rag.config import load_settings

    settings = load_settings()
    if index_dir:
        settings.index.dir = index_dir
    return Assistant(settings)


def page_note(page: int | None) -> str:
    """The page after a PDF's name (" p. 12"); nothing for a format without pages."""
    return f" p. {page}" if page is not None else ""


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


IndexDir = Annotated[
    str | None, typer.Option("--index-dir", help="Index directory (default: index/, or RAG_INDEX_DIR).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
# `rag ask` and `rag chat` search only these, as `rag search --doc/--section` does.
DocFilter = Annotated[list[str] | None, typer.Option("--doc", help="Only this doc id (repeatable).")]
SectionFilter = Annotated[list[str] | None, typer.Option("--section", help="Only article or comments (repeatable).")]
