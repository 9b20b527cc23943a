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
from typer.core import TyperOption

from rag.errors import RagError

if TYPE_CHECKING:
    from rag.assistant import Assistant

app = typer.Typer(
    help="Answer questions about a folder of documents, with citations you can check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _flags_show_no_type() -> None:
    """Show a flag in ``--help`` as a bare flag: typer's rich help (0.29) prints "<bool>" beside ``--json``, as if
    it took a value, while its plain help leaves flags bare. The rich panel is taught the plain help's rule."""
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # older typer: no type column, nothing to fix
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()
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


def error_line(exc: Exception) -> tuple[str, int] | None:
    """The one line that reports ``exc`` and the exit code, or None when it must propagate (an exit, a usage
    error, or anything unexpected under ``--debug``): a library error with its own exit code, the machine's (a
    full disk, a read-only folder) and, for anything else, the exception named with how to get its traceback."""
    if isinstance(exc, RagError):
        return str(exc), exc.exit_code
    if isinstance(exc, (typer.Exit, typer.Abort, click.ClickException)) or debugging():
        return None
    if isinstance(exc, OSError):
        return os_error_message(exc), 1
    return (
        f"unexpected {type(exc).__name__}: {str(exc)[:300]}; "
        "run again with --debug (or RAG_DEBUG=1) for the traceback, and report it"
    ), 1


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a failure into a one-line message on stderr and a non-zero exit code, never a traceback (unless
    ``--debug``); see ``error_line``."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except Exception as exc:
            reported = error_line(exc)
            if reported is None:
                raise
            err.print(f"[red]Error:[/] {escape(reported[0])}")
            raise typer.Exit(reported[1]) from None

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
# `rag search`, `rag ask` and `rag chat` search only these documents and sections.
DocFilter = Annotated[list[str] | None, typer.Option("--doc", help="Only this doc id (repeatable).")]
SectionFilter = Annotated[list[str] | None, typer.Option("--section", help="Only article or comments (repeatable).")]
