"""One exception base; each subclass says what went wrong and how to fix it."""

from __future__ import annotations


class RagError(Exception):
    """Base class: the message names the problem and the fix."""

    exit_code = 1


class ConfigError(RagError):
    """A setting has an invalid value."""

    exit_code = 2


class InputError(RagError):
    """A user-supplied value (query, k, path, doc id) is invalid."""

    exit_code = 2


class ConflictError(InputError):
    """The request conflicts with what exists: a document of that name, the last document of an index."""


class BusyError(RagError):
    """Another writer holds the lock (a `rag index` running); try again when it has finished."""


class CorpusError(RagError):
    """The corpus cannot be read (missing path, nothing indexable)."""


class IndexMissingError(RagError):
    """No index has been built yet."""


class IndexCorruptError(RagError):
    """The index directory is damaged or half-written."""


class IndexWriteError(RagError):
    """The index folder cannot be written (a full disk, a read-only folder); the previous index is unchanged."""


class IndexMismatchError(RagError):
    """The index was built with other settings than the ones in force."""


class IndexServiceError(RagError):
    """The index service (Milvus) cannot be reached, refuses the token, or is held by another process."""


class EngineError(RagError):
    """The distributed ingestion engine (Ray) is not installed, or its cluster cannot be reached."""


class EmbedderError(RagError):
    """The embedding model cannot be loaded."""


class LLMError(RagError):
    """The language model cannot be installed, started or reached."""
