"""The `rag` command line: thin wrappers over ``rag.Assistant``, one module per group of commands.

``common`` holds the app and what every command shares; importing the others registers their commands.
"""

from __future__ import annotations

import logging
import sys

# Importing a module registers its commands, in the order `rag --help` lists them.
# isort: off
from rag.cli import documents, answers, evals, serving  # noqa: F401

# isort: on
from rag.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    show_notices()
    app()


def show_notices() -> None:
    """Print the library's notices for the user (``rag.notices``: a model starting, how long it took) on stderr,
    as they are: stdout stays the command's output (one JSON object with --json)."""
    notices = logging.getLogger("rag.notices")
    if not notices.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        notices.addHandler(handler)
    notices.setLevel(logging.INFO)
    notices.propagate = False
