"""Split classified documents into chunks that respect paragraphs and sentences.

Chunks never cross a section boundary and never include boilerplate, and every chunk
satisfies ``chunk.text == document.text[chunk.start:chunk.end]``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from rag.config import ChunkSettings
from rag.types import Chunk, Document, Segment

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before white space.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)")
# Words that end with a period without ending a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "adm",
        "gen",
        "col",
        "lt",
        "sgt",
        "capt",
        "cmdr",
        "sen",
        "rep",
        "gov",
        "pres",
        "amb",
        "rev",
        "fr",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "vs",
        "etc",
        "approx",
        "dept",
        "est",
        "inc",
        "ltd",
        "co",
        "corp",
    ]
)
_DOTTED = re.compile(r"(?:[A-Za-z]\.)*[A-Z]|(?:[A-Za-z]\.)+[A-Za-z]")  # J, U.S, e.g
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\u00a0]*\n")


@dataclass(frozen=True)
class Unit:
    """A sentence (or hard-split piece) ``text[start:end]``; ``para`` marks the first unit of a paragraph."""

    start: int
    end: int
    para: bool


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]``, trimmed of white space, as offsets into ``text``."""
    return [(u.start, u.end) for u in _units(text, start, len(text) if end is None else end, max_len=0)]


def _is_boundary(text: str, dot: int) -> bool:
    """Whether the period-like run starting at ``dot`` ends a sentence."""
    if text[dot] != ".":
        return True
    word = re.search(r"[\w.]*$", text[max(0, dot - 20) : dot])
    token = word.group(0) if word else ""
    if token.lower() in _ABBREVIATIONS:
        return False
    # Dotted abbreviations (U.S, e.g) and single-letter initials (J. Smith) do not end a sentence.
    return not _DOTTED.fullmatch(token)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _lines(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Logical lines of ``text[start:end]`` as (start, end, starts_paragraph).

    A hard-wrapped line (the next one goes on in lower case) is joined to the next. Paragraphs are
    separated by blank lines where the text has any; otherwise every line is a paragraph.
    """
    raw = [(start + m.start(), start + m.end()) for m in re.finditer(r"[^\n]*\S[^\n]*", text[start:end])]
    blank_paragraphs = bool(_PARAGRAPH_BREAK.search(text, start, end))
    lines: list[tuple[int, int, bool]] = []
    for line_start, line_end in raw:
        blank_before = bool(lines) and bool(_PARAGRAPH_BREAK.search(text, lines[-1][1], line_start + 1))
        if lines and not blank_before and _continues(text, lines[-1][1], line_start):
            lines[-1] = (lines[-1][0], line_end, lines[-1][2])
        else:
            lines.append((line_start, line_end, not lines or not blank_paragraphs or blank_before))
    return lines


def _continues(text: str, prev_end: int, line_start: int) -> bool:
    """Whether a line break inside a paragraph is only a wrap: no end punctuation, next line in lower case."""
    first = text[line_start : line_start + 1]
    return first.islower() and text[prev_end - 1] not in '.!?:;"”’'


def _units(text: str, start: int, end: int, max_len: int) -> list[Unit]:
    """Sentences of each logical line in ``text[start:end]``; pieces longer than ``max_len`` are cut at spaces."""
    units: list[Unit] = []
    for line_start, line_end, para in _lines(text, start, end):
        sentence_start = line_start
        for m in _SENTENCE_END.finditer(text, line_start, line_end):
            if _is_boundary(text, m.start()):
                _add_unit(units, text, sentence_start, m.end(), para, max_len)
                para = False
                sentence_start = m.end()
        _add_unit(units, text, sentence_start, line_end, para, max_len)
    return units


def _add_unit(units: list[Unit], text: str, start: int, end: int, para: bool, max_len: int) -> None:
    start, end = _trimmed(text, start, end)
    if start >= end:
        return
    while max_len and end - start > max_len:
        cut = text.rfind(" ", start + max_len // 2, start + max_len)
        cut = cut if cut > start else start + max_len
        piece_start, piece_end = _trimmed(text, start, cut)
        units.append(Unit(piece_start, piece_end, para))
        para = False
        start, end = _trimmed(text, cut, end)
    if start < end:
        units.append(Unit(start, end, para))


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    """A stable id: it depends only on this chunk's document, place and text."""
    digest = hashlib.sha1(f"{doc_id}\x00{start}\x00{end}\x00{text}".encode()).hexdigest()[:16]
    return f"{doc_id}#{digest}"


def chunk_document(document: Document, segments: list[Segment], settings: ChunkSettings) -> list[Chunk]:
    """Chunks of the article and comment spans of ``document``."""
    chunks: list[Chunk] = []
    for segment in segments:
        if segment.section == "boilerplate":
            continue
        for start, end in _pack(document.text, segment.start, segment.end, settings):
            text = document.text[start:end]
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(document.doc_id, start, end, text),
                    doc_id=document.doc_id,
                    start=start,
                    end=end,
                    section=segment.section,
                    text=text,
                )
            )
    return chunks


def _pack(text: str, start: int, end: int, settings: ChunkSettings) -> list[tuple[int, int]]:
    """Greedy packing of sentences up to ``settings.size``, preferring to end at a paragraph break."""
    units = _units(text, start, end, max_len=settings.size)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j = i + 1  # exclusive end of this chunk's units
        while j < len(units) and units[j].end - units[i].start <= settings.size:
            j += 1
        if j < len(units):
            # Back off to the last paragraph start in the chunk's final 40%, if there is one.
            floor = units[i].start + int(settings.size * 0.6)
            for p in range(j - 1, i, -1):
                if units[p].para and units[p].start >= floor:
                    j = p
                    break
        if j == len(units) and spans and units[j - 1].end - units[i].start < settings.min_size:
            spans[-1] = (spans[-1][0], units[j - 1].end)  # fold a tiny tail into the previous chunk
            break
        spans.append((units[i].start, units[j - 1].end))
        if j == len(units):
            break
        # Next chunk repeats the trailing sentences that fit in the overlap, always moving forward.
        nxt = j
        while nxt - 1 > i and units[j - 1].end - units[nxt - 1].start <= settings.overlap:
            nxt -= 1
        i = nxt
    return spans
