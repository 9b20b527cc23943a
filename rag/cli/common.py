"""What every `rag` command shares: the app, the consoles, one-line errors, the index option, JSON output."""

from __future__ import annotations

import json
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


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a library error into a one-line message on stderr and its exit code, never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def assistant_for(index_dir: str | None) -> Assistant:
    from rag.assistant import Assistant
    from rag.config import load_settings

    settings = load_settings()
    if index_dir:
        settings.index.dir = index_dir
    return Assistant(settings)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


IndexDir = Annotated[
    str | None, typer.Option("--index-dir", help="Index directory (default: index/, or RAG_INDEX_DIR).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
