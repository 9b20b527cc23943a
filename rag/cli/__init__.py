"""The `rag` command line: thin wrappers over ``rag.Assistant``, one module per group of commands.

``common`` holds the app and what every command shares; importing the others registers their commands.
"""

from __future__ import annotations

import logging

# Importing a module registers its commands, in the order `rag --help` lists them.
# isort: off
from rag.cli import documents, answers, evals, serving  # noqa: F401

# isort: on
from rag.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    app()
