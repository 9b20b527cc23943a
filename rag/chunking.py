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
# Lines that are structure, not prose: each ends a sentence (see _lines).
_HEADING = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]+|$)")  # Markdown "## How much can Orbi carry?"
_BULLET = re.compile(r"[ \t]*[-*+•▪◦‣][ \t]+(?=\S)")  # "- ", "* ", "• "
_NUMBERED = re.compile(r"[ \t]*\d{1,3}[.)][ \t]+(?=\S)")  # "1. ", "2) "; or a wrap before "24. " in "Feb.\n24."
_TABLE_ROW = re.compile(r"[ \t]*\|")  # "| Capacity | 120 people |"
_RULE = re.compile(r"[ \t]*([^\w\s])(?:[ \t]*\1){2,}[ \t]*")  # "---", "* * *", "======", "//////", "——————"
# Last words after which a line cannot end a sentence, so a line break after them is a wrap.
_CONTINUING_WORDS = frozenset(
    "a an the of to in on at for with by from into onto about than and or but nor as that which who whose whom "
    "including such is are was were be been has have had will would could should can may might its his her "
    "their our my your this these those".split()
)
_NEVER_STARTS = frozenset(".,;:!?)]}”’%")  # characters no sentence starts with
_WIDTH_CONTEXT = 5  # lines on each side that show whether the text is hard-wrapped, and at what width
# A wrapped line has at least this many other lines near it that are at most this much shorter.
_WRAP_SIBLINGS = 2
_WRAP_SLACK = 10
# Hard-wrapped prose is wrapped at 40 to 120 columns; a shorter line before a capital is a title or a
# caption, a longer one a paragraph of its own (scraped pages, HTML extraction).
_MIN_WRAP_WIDTH = 40
_MAX_WRAP_WIDTH = 120


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


@dataclass(frozen=True)
class _Line:
    """A non-blank physical line: ``text[start:end]`` is its content, without indentation or structure marker."""

    first: int  # the line's first character that is not white space (its marker, if it has one)
    start: int
    end: int
    kind: str  # "heading", "bullet", "number" (a numbered list item), "row", "rule" or "prose"
    blank_before: bool  # a blank line separates it from the line before


def _kind(text: str, begin: int, end: int) -> tuple[str, int, int]:
    """The kind of the physical line ``text[begin:end]`` and its content span without the structure marker."""
    line = text[begin:end]
    if _RULE.fullmatch(line):
        return "rule", begin, end
    for kind, marker in (("heading", _HEADING), ("bullet", _BULLET), ("number", _NUMBERED), ("row", _TABLE_ROW)):
        m = marker.match(line)
        if m:
            content_end = end
            if kind == "heading":
                closing = re.search(r"[ \t]+#+[ \t]*$", line)  # "## Title ##"
                content_end = begin + closing.start() if closing and closing.start() >= m.end() else end
            elif kind == "row":
                content_end = begin + len(line.rstrip(" \t|"))
                if not re.search(r"\w", line):
                    return "rule", begin, end  # a table's "|---|---|"
            return kind, begin + m.end(), max(content_end, begin + m.end())
    return "prose", begin, end


def _physical_lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The lines (begin, end before the newline) that ``text[start:end]`` touches, and ``_WIDTH_CONTEXT`` more.

    The lines on each side make the decision at a line break independent of where the range starts.
    """
    begin = text.rfind("\n", 0, start) + 1
    for _ in range(_WIDTH_CONTEXT):
        if begin == 0:
            break
        begin = text.rfind("\n", 0, begin - 1) + 1
    stop = end
    for _ in range(_WIDTH_CONTEXT + 1):
        newline = text.find("\n", stop)
        stop = len(text) if newline < 0 else newline + 1
    lines = []
    while begin < stop:
        newline = text.find("\n", begin, stop)
        line_end = stop if newline < 0 else newline
        lines.append((begin, line_end))
        begin = line_end + 1
    return lines


def _lines(text: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """Logical lines of ``text[start:end]`` as (start, end, starts_paragraph): sentences never cross their ends.

    Structure ends a sentence: a Markdown heading, list item, table row or rule is a line of its own, and
    so is a line the writer ended early (a title, a byline, one paragraph per line as HTML extraction and
    scraped pages give). A hard wrap inside a paragraph is only a space. Paragraphs are separated by
    blank lines where the text has any; otherwise every logical line is a paragraph.
    """
    physical = _physical_lines(text, start, end)
    widths = [len(text[b:e].rstrip()) if text[b:e].strip() else -1 for b, e in physical]  # -1: a blank line
    blank_paragraphs = bool(_PARAGRAPH_BREAK.search(text, start, end))
    lines: list[tuple[int, int, bool]] = []
    previous: _Line | None = None
    for i, (begin, line_end) in enumerate(physical):
        if widths[i] < 0:
            continue
        kind, content_start, content_end = _kind(text, begin, line_end)
        first = _trimmed(text, begin, line_end)[0]
        line = _Line(first, *_trimmed(text, content_start, content_end), kind, i == 0 or widths[i - 1] < 0)
        if line.start >= end:
            break
        if kind == "rule":  # "---", "* * *": a boundary, not a sentence
            previous = line
            continue
        clipped_start, clipped_end = _trimmed(text, max(start, line.start), min(end, line.end))
        if clipped_start < clipped_end:
            if lines and previous is not None and _continues(text, previous, line, widths, i):
                lines[-1] = (lines[-1][0], clipped_end, lines[-1][2])
            else:
                starts_paragraph = not lines or not blank_paragraphs or line.blank_before or kind == "heading"
                lines.append((clipped_start, clipped_end, starts_paragraph))
        previous = line
    return lines


def _continues(text: str, previous: _Line, line: _Line, widths: list[int], i: int) -> bool:
    """Whether the break between ``previous`` and ``line`` (line ``i``, both non-blank) only wraps running prose."""
    if line.blank_before or previous.kind in ("heading", "row", "rule") or line.kind not in ("prose", "number"):
        return False
    last = text[previous.end - 1]
    if line.kind == "number":  # "1. Board at gate 4" is a list item, "... said on Feb.\n24. The" a wrap
        return previous.kind == "prose" and last != ":" and _is_wrap(text, line, widths, i)
    if last != ":":  # a lead-in ("... set the context excellently:") ends its line unless the line is full
        if text[line.start] in _NEVER_STARTS:
            return True  # "crew\n.": an HTML inline element was put on a line of its own
        letter = re.search(r"\w", text[line.start : line.start + 3])
        if letter and letter.group(0).islower():
            return True  # "... the talks lasted\nsix hours": a sentence never starts in lower case
        last_word = re.search(r"\w+$", text[previous.start : previous.end])
        if last in ",;(&" or (last_word and last_word.group(0).lower() in _CONTINUING_WORDS):
            return True  # "... 300 passengers,\nIncluding", "... up to\n120 people": the sentence goes on
    return _is_wrap(text, line, widths, i)


def _is_wrap(text: str, line: _Line, widths: list[int], i: int) -> bool:
    """Whether the line before ``line`` (line ``i``) was broken only because the next word did not fit.

    Wrapped text breaks a line only where the next word does not fit, and its other lines come close to the
    same width. A line that had room for the word, one alone in being that long, or one longer than anyone
    wraps at, was ended by the writer: a title, a byline, a caption, a paragraph per line.
    """
    width = widths[i - 1]
    near = [w for w in widths[max(0, i - 1 - _WIDTH_CONTEXT) : i + 1 + _WIDTH_CONTEXT] if w >= 0]
    next_word = len(text[line.first : line.end].split(maxsplit=1)[0])
    return (
        _MIN_WRAP_WIDTH <= width <= _MAX_WRAP_WIDTH
        and width + 1 + next_word > max(near)
        and sum(w >= width - _WRAP_SLACK for w in near) > _WRAP_SIBLINGS
    )


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
