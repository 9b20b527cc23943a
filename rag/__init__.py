"""rag: answers questions about a folder of documents, each claim backed by a checkable quote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Assistant", "Settings", "load_settings"]

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.config import Settings, load_settings


def __getattr__(name: str) -> Any:
    # Lazy: `import rag` (and so `rag --help`) must not pay for torch, faiss or bm25s.
    if name == "Assistant":
        from rag.assistant import Assistant

        return Assistant
    if name in ("Settings", "load_settings"):
        from rag import config

        return getattr(config, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
