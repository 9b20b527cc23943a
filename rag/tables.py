"""The document and chunk tables of an index generation, in one SQLite file opened read-only, rows read on demand.

`tables.sqlite` holds ``documents`` (each document's fields, its text, and the contiguous range of chunk rows it
owns), ``chunks`` (chunk id, document row, offsets, section; the text is ``document.text[start:end]``, never
stored twice) and ``meta`` (the counts, and the section of every chunk row as one byte each, so a section
filter is one numpy comparison, not a scan of the table).

Why SQLite (measured at 1M chunks and 50k documents, 2 cores, docs/performance.md "Loading large indexes"):
opening the file takes 0.2 ms whatever its size, a chunk with its document 25 us, a document by doc_id 9 us,
and writing 1M chunk rows 3 s; the standard library reads it, and a damaged page is an error, not garbage.
Fixed-width numpy columns would look rows up as fast but need hand-made string columns and a doc_id search.
What no table may do at 1M rows is a per-query pass in Python: ``SELECT row ... WHERE section`` took 258 ms,
hence the section bytes in ``meta`` and the per-document row ranges.

``DocumentTable`` (a ``Mapping[str, Document]``), ``ChunkTable`` (a ``Sequence[Chunk]``), ``TextTable`` and
``RecordTable`` are what ``StoredIndex.documents``, ``.chunks``, ``.texts`` and ``.manifest["documents"]`` are:
the rest of the code reads them as the dicts and list they replace.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from rag.types import SECTIONS, Chunk, Document

TABLES_FILE = "tables.sqlite"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE documents (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, path TEXT NOT NULL, title TEXT NOT NULL,
    text TEXT NOT NULL, sha256 TEXT NOT NULL, metadata TEXT NOT NULL, pages TEXT NOT NULL,
    first_chunk INTEGER NOT NULL, chunk_count INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, section TEXT NOT NULL);
"""
_DOCUMENT_COLUMNS = "doc_id, path, title, text, sha256, metadata, pages"
_CHUNK_QUERY = (
    'SELECT c.row, c.chunk_id, d.doc_id, c.start, c."end", c.section FROM chunks c JOIN documents d ON d.row = c.doc'
)
_BATCH = 4096  # chunk rows per query when iterating the whole table


def write_tables(
    path: Path, documents: Sequence[Document], chunks: Iterable[Chunk], records: Mapping[str, Any] | None = None
) -> None:
    """Write ``tables.sqlite`` at ``path``. ``chunks`` must come grouped by document (each document's chunks one
    after another), as the indexer makes them: a document's chunks are then one range of rows. ``records``: the
    manifest's record of each document (sha256, size, when indexed) by doc_id, kept beside it."""
    con = sqlite3.connect(path)
    try:
        # The file is written once into a temporary generation folder that is fsynced and renamed as a whole:
        # SQLite's journal and syncs would only slow the write (the generation switch is what is atomic).
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        _fill(con, documents, chunks, records or {})
        con.commit()
    finally:
        con.close()


def _fill(
    con: sqlite3.Connection, documents: Sequence[Document], chunks: Iterable[Chunk], records: Mapping[str, Any]
) -> None:
    con.executescript(_SCHEMA)
    doc_row = {d.doc_id: row for row, d in enumerate(documents)}
    ranges: dict[int, list[int]] = {}  # doc row -> [first chunk row, count]
    codes = bytearray()
    section_code = {s: i for i, s in enumerate(SECTIONS)}

    def chunk_rows() -> Iterator[tuple[int, str, int, int, int, str]]:
        last = -1
        for row, c in enumerate(chunks):
            doc = doc_row[c.doc_id]
            if doc != last:
                if doc in ranges:
                    raise ValueError(f"chunks of {c.doc_id!r} are not together (row {row}): group them by document")
                ranges[doc] = [row, 0]
                last = doc
            ranges[doc][1] += 1
            codes.append(section_code[c.section])
            yield row, c.chunk_id, doc, c.start, c.end, c.section

    con.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)", chunk_rows())

    def document_rows() -> Iterator[tuple[Any, ...]]:
        for row, d in enumerate(documents):
            metadata, pages = json.dumps(d.metadata, ensure_ascii=False), json.dumps(d.pages)
            record = json.dumps(records.get(d.doc_id, {}), ensure_ascii=False)
            yield (row, d.doc_id, d.path, d.title, d.text, d.sha256, metadata, pages, *ranges.get(row, (0, 0)), record)

    con.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", document_rows())
    meta = {"documents": len(documents), "chunks": len(codes), "sections": bytes(codes)}
    con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())


class Tables:
    """A read-only connection shared by threads (one query at a time); a read that fails raises ``damaged``."""

    def __init__(self, con: sqlite3.Connection, damaged: Callable[[str], Exception]) -> None:
        self._con = con
        self._lock = threading.Lock()
        self.damaged = damaged
        meta = dict(self.query("SELECT key, value FROM meta"))
        try:
            self.documents = int(meta["documents"])
            self.chunks = int(meta["chunks"])
            self.sections = np.frombuffer(meta["sections"], dtype=np.uint8)
        except (KeyError, TypeError, ValueError) as exc:
            raise damaged(f"{TABLES_FILE} has no valid counts: {type(exc).__name__}: {exc}") from exc
        if len(self.sections) != self.chunks:
            raise damaged(f"{TABLES_FILE} records {self.chunks} chunks but {len(self.sections)} sections")

    @classmethod
    def open(cls, path: Path, damaged: Callable[[str], Exception]) -> Tables:
        """Open ``path`` read-only; nothing is read but the counts."""
        # immutable: a generation's files are never written again, so SQLite takes no locks and keeps no
        # journal; mmap: pages are read from the shared page cache, not copied into each process's heap.
        uri = f"file:{urllib.parse.quote(str(path))}?mode=ro&immutable=1"
        try:
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            con.execute("PRAGMA mmap_size = 1099511627776")
        except sqlite3.Error as exc:
            raise damaged(f"{TABLES_FILE} cannot be opened: {exc}") from exc
        return cls(con, damaged)

    @classmethod
    def in_memory(
        cls, documents: Sequence[Document], chunks: Iterable[Chunk], damaged: Callable[[str], Exception]
    ) -> Tables:
        """The same tables in memory (an index of format 1, read from its JSONL files)."""
        con = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            _fill(con, documents, chunks, {})
        except (KeyError, ValueError) as exc:
            raise damaged(f"chunks.jsonl does not match documents.jsonl: {type(exc).__name__}: {exc}") from exc
        return cls(con, damaged)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._con.execute(sql, params).fetchall()
        except (sqlite3.Error, ValueError) as exc:  # a damaged page: DatabaseError; text that is not UTF-8: ValueError
            raise self.damaged(f"{TABLES_FILE} cannot be read: {type(exc).__name__}: {exc}") from exc


class DocumentTable(Mapping[str, Document]):
    """The documents by doc_id, read on demand; the last few read are kept."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._read = lru_cache(maxsize=64)(self._read_document)

    def _read_document(self, doc_id: str) -> Document | None:
        rows = self._tables.query(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE doc_id = ?", (doc_id,))
        if not rows:
            return None
        doc_id, path, title, text, sha256, metadata, pages = rows[0]
        try:
            return Document(doc_id, path, title, text, sha256, json.loads(metadata), json.loads(pages))
        except (TypeError, ValueError) as exc:
            raise self._tables.damaged(f"{TABLES_FILE} holds a document {doc_id!r} that cannot be read: {exc}") from exc

    def __getitem__(self, doc_id: str) -> Document:
        document = self._read(doc_id) if isinstance(doc_id, str) else None
        if document is None:
            raise KeyError(doc_id)
        return document

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(
            self._tables.query("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,))
        )

    def __len__(self) -> int:
        return self._tables.documents

    def __iter__(self) -> Iterator[str]:
        return iter([doc_id for (doc_id,) in self._tables.query("SELECT doc_id FROM documents ORDER BY row")])

    def chunk_rows(self, doc_id: str) -> range:
        """The rows of ``doc_id``'s chunks (empty for an unknown document)."""
        found = self._tables.query("SELECT first_chunk, chunk_count FROM documents WHERE doc_id = ?", (doc_id,))
        return range(found[0][0], found[0][0] + found[0][1]) if found else range(0)


class ChunkTable(Sequence[Chunk]):
    """The chunks by row (the row of their vector), read on demand; each text is sliced from its document."""

    def __init__(self, tables: Tables, documents: DocumentTable) -> None:
        self._tables = tables
        self._documents = documents

    def __len__(self) -> int:
        return self._tables.chunks

    @overload
    def __getitem__(self, row: int) -> Chunk: ...
    @overload
    def __getitem__(self, row: slice) -> list[Chunk]: ...
    def __getitem__(self, row: int | slice) -> Chunk | list[Chunk]:
        if isinstance(row, slice):
            start, stop, step = row.indices(len(self))
            chunks = self._between(start, stop) if start < stop else []
            return chunks[::step] if step != 1 else chunks
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"chunk row {row} out of range (the index has {len(self)} chunks)")
        return self._between(row, row + 1)[0]

    def __iter__(self) -> Iterator[Chunk]:
        for start in range(0, len(self), _BATCH):
            yield from self._between(start, min(start + _BATCH, len(self)))

    def _between(self, start: int, stop: int) -> list[Chunk]:
        rows = self._tables.query(f"{_CHUNK_QUERY} WHERE c.row >= ? AND c.row < ? ORDER BY c.row", (start, stop))
        if len(rows) != stop - start:
            raise self._tables.damaged(f"{TABLES_FILE} holds {len(rows)} of chunk rows {start}-{stop - 1}")
        return [
            Chunk(chunk_id, doc_id, begin, end, section, self._documents[doc_id].text[begin:end])
            for _, chunk_id, doc_id, begin, end, section in rows
        ]

    def sections(self) -> np.ndarray:
        """Each chunk row's section as its index in ``SECTIONS`` (one byte a row)."""
        return self._tables.sections


_V = TypeVar("_V")


class _ByDocument(Mapping[str, _V]):
    """A mapping keyed like the document table: membership, size and order are the documents'."""

    def __init__(self, documents: DocumentTable) -> None:
        self._documents = documents

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._documents

    def __len__(self) -> int:
        return len(self._documents)

    def __iter__(self) -> Iterator[str]:
        return iter(self._documents)


class RecordTable(_ByDocument[dict[str, Any]]):
    """The manifest's record of each document by doc_id (``manifest["documents"]``), read on demand: at 50,000
    documents the records are 14 MB of JSON, 160 ms to parse at every load when they were in manifest.json."""

    def __init__(self, tables: Tables, documents: DocumentTable) -> None:
        super().__init__(documents)
        self._tables = tables

    def __getitem__(self, doc_id: str) -> dict[str, Any]:
        found = self._tables.query("SELECT record FROM documents WHERE doc_id = ?", (doc_id,))
        if not found:
            raise KeyError(doc_id)
        try:
            record: dict[str, Any] = json.loads(found[0][0])
        except ValueError as exc:
            raise self._tables.damaged(f"{TABLES_FILE} holds a record of {doc_id!r} that cannot be read") from exc
        return record


class TextTable(_ByDocument[str]):
    """Each document's text by doc_id (what answering looks quotes up in), read on demand."""

    def __getitem__(self, doc_id: str) -> str:
        return self._documents[doc_id].text
