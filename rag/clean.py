"""Label a document's lines as article, reader comments or boilerplate, without touching the text.

Scraped news pages mix the story with site chrome (navigation, metadata, comment forms, donation
appeals, headline lists, copyright footers) and reader comments. ``classify`` works line by line and
only chooses offsets, so every segment is a slice of the original text. The rules are few, named and
general: a plain article with no chrome comes out as one "article" segment.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from rag.types import Section, Segment

# Headings, labels and site chrome are short; prose paragraphs are not.
_SHORT_WORDS = 12
# The first line of running prose (>= this many words, ending a sentence) starts the article body.
_BODY_WORDS = 10

# A line ends a sentence: final punctuation, optionally closed by quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’»)\]]*$")
# One line of the text, its line ending included (only "\n" splits, so "\r\n" stays whole).
_LINE = re.compile(r"[^\n]*\n|[^\n]+")

# --- Lines that are boilerplate wherever they occur -------------------------------------------------
# Page metadata: "date 2025-03-01  Japan Today", "Last Updated : GMT 09:07:40".
_METADATA = re.compile(r"^(?:date|published|posted|updated|last updated|modified)\b[\s:]*.*\d", re.I)
# The page's source line, a lower-case domain then a few words: "dailyblitz.de 2 godzin temu".
_DOMAIN_LINE = re.compile(r"^(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,6}\b(?![.\w])")
# Reader-vote counters under comments: "1 ( +1 / -0 )", "-1 ( +0 / -1 )".
_VOTES = re.compile(r"^[-+]?\d+\s*\(\s*\+\d+\s*/\s*-\d+\s*\)$")
# Copyright footers and site credits; they also close the article.
# ("Copyright" must be followed by a symbol or a year, so a sentence about copyright law is prose.)
_COPYRIGHT = re.compile(r"©|^\(c\)|^copyright\s+(?:©|\(c\)|\d{4})|\ball rights reserved\b", re.I)
_CREDITS = re.compile(r"^(?:maintained|developed|designed|powered|hosted)(?: and \w+)? by\b", re.I)
# Comment-form labels and the terms printed with them: "Name *", ": Characters Left", "Terms of use".
_FORM = re.compile(
    r"^(?:name|e-?mail|website|comment(?: title)?|mandatory|security code|captcha)\s*\*"
    r"|characters left$"
    r"|^(?:i agree (?:with|to) )?(?:the )?terms of (?:use|service)\.?$"
    r"|^publishing terms\s*:",
    re.I,
)
# Stand-alone navigation and calls to action ("Idź do oryginalnego materiału" = "go to the original").
_NAV = re.compile(
    r"^(?:read more|continue(?: reading)?|share(?: this(?: article)?)?|print|advertisement|back to top"
    r"|related(?: articles| stories)?|leave a (?:comment|reply)"
    r"|go to (?:the )?original (?:article|material)|idź do oryginalnego materiału)\W*$",
    re.I,
)
# Donation appeals: "Support The Moscow Times!", "… we have a small favor to ask." (short lines only,
# so a news sentence about support or donations is never caught).
_APPEAL = re.compile(
    r"favou?r to ask|^(?:please )?(?:support|donate to|subscribe to)\b.*!$|\b(?:support us|donate now)\b",
    re.I,
)
# An appeal runs on for a few paragraphs until it thanks the reader.
_THANKS = re.compile(r"thank you\W*$", re.I)
_APPEAL_MAX_LINES = 6
# A phrase said twice at the start of a line is site chrome, never prose: "Egypt Today, egypt today",
# "egypttoday egypttoday", social links "Egypt Today Facebook,egypt today facebook ...".
_ECHO = re.compile(r"^(\w.{5,59}?)[\s,;|/·-]+\1(?!\w)", re.I)
# Social-network link rows: three or more network names on one short line.
_SOCIAL = re.compile(r"\b(?:facebook|twitter|instagram|youtube|telegram|whatsapp|linkedin|tiktok|rss|vk)\b", re.I)
_SOCIAL_MIN = 3
# A bare link on a line of its own.
_BARE_URL = re.compile(r"^(?:https?://|www\.)\S+$", re.I)
# A line of link texts between separators is a menu or breadcrumbs: "Home | Careers | Contact", "News › World".
# Each text is one to three words; a sentence, a table row ("| a | b |") or a vote counter never splits this way.
_LINK_SEPARATOR = re.compile(r"\s+[|·•»›>/]\s+")
_LINK_TEXT = re.compile(r"[^\W_][\w'’&.-]*(?:\s[^\W_][\w'’&.-]*){0,2}")
_LINK_TEXTS = 3

# --- Timestamps: a line made only of date and time tokens ("GMT 12:37 2015 Sunday ,15 November") ---
_MONTHS = "january february march april may june july august september october november december"
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday"
_ABBREVS = "jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun"
_ZONES = "gmt utc am pm a.m p.m est edt cet cest msk pst pdt"
_DATE_WORDS = frozenset(f"{_MONTHS} {_WEEKDAYS} {_ABBREVS} {_ZONES}".split())
_DATE_NUMBER = re.compile(r"\d{1,4}(?:[:/.-]\d{1,4})*(?:st|nd|rd|th)?")
_DATE_SEPARATORS = re.compile(r"[\s,–—|·]+")

# --- Where reader comments start ---------------------------------------------------------------------
# "Source: AFP" closes a wire story.
_SOURCE = re.compile(r"^sources?\s*:\s*\S", re.I)
_SOURCE_WORDS = 6
# A reply to another reader: "@Analyst It also shows ...".
_REPLY = re.compile(r"^@\w+[,:]?\s+\w")
# A reader introducing a link: a short line ending in ":" right before a bare URL.
_LINK_INTRO_WORDS = 30
# Markdown structure: an authored document, where a linked URL or an @-line is content, not a reader.
_MARKDOWN = re.compile(r"^(?:#{1,6} \S|```)", re.M)


@dataclass
class _Line:
    """One line ``text[start:end]`` (line ending included) and what the rules decided about it."""

    start: int
    end: int
    text: str  # stripped, for matching only
    boilerplate: bool = False
    ends_article: bool = False  # text after it that is not boilerplate is reader comments

    @property
    def neutral(self) -> bool:
        """Blank or punctuation only: takes the section of its neighbours."""
        return not any(ch.isalnum() for ch in self.text)

    @property
    def words(self) -> int:
        return len(self.text.split())


def classify(text: str) -> list[Segment]:
    """Split a document into contiguous article / comments / boilerplate spans of the original text."""
    lines = [_Line(m.start(), m.end(), m.group().strip()) for m in _LINE.finditer(text)]
    content = [i for i, line in enumerate(lines) if not line.neutral]
    if not content:
        return [Segment(0, len(text), "boilerplate")] if text else []
    _mark_line_rules(lines, content)
    _mark_link_lines(lines, content)
    body = next((i for i in content if not lines[i].boilerplate and _is_prose(lines[i].text)), content[0])
    _mark_repeated(lines, content, body)
    _mark_header_slugs(lines, content, body)
    _mark_headline_lists(lines, content)
    _mark_appeals(lines, content, body)
    _mark_foreign_script(lines, content)
    comments = _comments_start(text, lines, content, body)
    sections: list[Section | None] = [None] * len(lines)
    for i in content:
        if lines[i].boilerplate:
            sections[i] = "boilerplate"
        else:
            sections[i] = "comments" if comments is not None and i >= comments else "article"
    return _segments(lines, _fill_neutral(sections))


def _is_prose(line: str) -> bool:
    return len(line.split()) >= _BODY_WORDS and bool(_SENTENCE_END.search(line))


def _is_timestamp(line: str) -> bool:
    """A line made only of date/time tokens, with at least one number."""
    tokens = [t for t in _DATE_SEPARATORS.split(line) if t]
    if len(tokens) < 2:
        return False
    numbers = sum(bool(_DATE_NUMBER.fullmatch(t)) for t in tokens)
    words = sum(t.lower().rstrip(".") in _DATE_WORDS for t in tokens)
    return numbers >= 1 and numbers + words == len(tokens)


def _line_rule(line: _Line, first: bool) -> bool:
    """Whether a line is boilerplate on its own; sets ``ends_article`` for footers and comment forms."""
    s = line.text
    short = line.words <= _SHORT_WORDS
    if (_COPYRIGHT.search(s) and line.words <= 40) or (_CREDITS.search(s) and short) or _FORM.search(s):
        line.ends_article = True
        return True
    if _SOURCE.search(s) and line.words <= _SOURCE_WORDS:
        line.ends_article = True  # an attribution is part of the article, but nothing after it is
        return False
    if first and _BARE_URL.match(s):
        return True  # a document that opens with its URL: metadata
    if _VOTES.match(s) or _NAV.match(s) or _is_timestamp(s) or _ECHO.match(s):
        return True
    if short and (_METADATA.match(s) or _APPEAL.search(s)):
        return True
    if line.words <= 6 and _DOMAIN_LINE.match(s) and not _SENTENCE_END.search(s):
        return True
    return line.words <= 25 and len(_SOCIAL.findall(s)) >= _SOCIAL_MIN and not _SENTENCE_END.search(s)


def _mark_line_rules(lines: list[_Line], content: list[int]) -> None:
    for n, i in enumerate(content):
        lines[i].boilerplate = _line_rule(lines[i], first=n == 0)


def _is_link_line(line: str) -> bool:
    items = _LINK_SEPARATOR.split(line)
    return len(items) >= _LINK_TEXTS and all(
        _LINK_TEXT.fullmatch(item) and not _SENTENCE_END.search(item) for item in items
    )


def _mark_link_lines(lines: list[_Line], content: list[int]) -> None:
    """A line of short link texts between separators is navigation, unless it is a row of a table: a line next to
    it of the same shape ("Item | Owner | Room" above "Badge | Security desk | 4")."""
    shape = {i: len(_LINK_SEPARATOR.findall(lines[i].text)) if _is_link_line(lines[i].text) else 0 for i in content}
    for i in content:
        if not shape[i] or lines[i].boilerplate:
            continue
        # A line right above or below (no blank line between: one block of text) with as many cells.
        if not any(shape.get(j) == shape[i] for j in (i - 1, i + 1)):
            lines[i].boilerplate = True


def _normalized(line: str) -> str:
    return " ".join(line.casefold().split())


def _mark_repeated(lines: list[_Line], content: list[int], body: int) -> None:
    """A short line that occurs twice or more is site chrome (a site name, a menu entry).

    One exception: pages often print the headline twice (page title, then above the story); the last
    copy before the body is kept as the article's headline. Markdown headings are structure, not chrome.
    """
    keys = {i: _normalized(lines[i].text) for i in content if lines[i].words <= _SHORT_WORDS}
    counts = Counter(keys.values())
    kept: dict[str, int] = {}
    for i, key in keys.items():
        if counts[key] >= 2 and i < body and not lines[i].boilerplate:
            kept[key] = i  # the last such copy wins
    for i, key in keys.items():
        if counts[key] >= 2 and kept.get(key) != i and not lines[i].text.startswith("#"):
            lines[i].boilerplate = True


def _mark_header_slugs(lines: list[_Line], content: list[int], body: int) -> None:
    """Above the body, a short all-lower-case line is a section label or URL slug ("world")."""
    for i in content:
        if i >= body:
            break
        s = lines[i].text
        lowercase = s[0].isalpha() and s == s.lower()
        if lowercase and lines[i].words <= _SHORT_WORDS and not _SENTENCE_END.search(s):
            lines[i].boilerplate = True


def _mark_headline_lists(lines: list[_Line], content: list[int]) -> None:
    """Lists of other stories: two or more timestamp lines, each followed by a short headline."""
    stamps = [n for n, i in enumerate(content) if _is_timestamp(lines[i].text)]
    if len(stamps) < 2:
        return
    for n in stamps:
        if n + 1 < len(content):
            headline = lines[content[n + 1]]
            if headline.words <= 20 and not _is_timestamp(headline.text):
                headline.boilerplate = True


def _mark_appeals(lines: list[_Line], content: list[int], body: int) -> None:
    """A donation appeal below the body runs on, paragraph by paragraph, until it thanks the reader."""
    for n, i in enumerate(content):
        if i <= body or not (lines[i].boilerplate and _APPEAL.search(lines[i].text)):
            continue
        block = content[n + 1 : n + 1 + _APPEAL_MAX_LINES]
        end = next((k for k, j in enumerate(block) if _THANKS.search(lines[j].text)), None)
        if end is not None:
            for j in block[: end + 1]:
                lines[j].boilerplate = True


def _script(line: str) -> str:
    """The writing system of most letters in ``line`` (LATIN, ARABIC, CYRILLIC, ...)."""
    scripts = Counter(unicodedata.name(ch, "?").split(" ", 1)[0] for ch in line if ch.isalpha())
    return scripts.most_common(1)[0][0] if scripts else ""


def _mark_foreign_script(lines: list[_Line], content: list[int]) -> None:
    """A line in another script than the document, between boilerplate lines, is footer chrome."""
    main = _script(" ".join(lines[i].text for i in content))
    for n, i in enumerate(content):
        if lines[i].boilerplate or _script(lines[i].text) in ("", main):
            continue
        before = n == 0 or lines[content[n - 1]].boilerplate
        after = n + 1 == len(content) or lines[content[n + 1]].boilerplate
        if before and after:
            lines[i].boilerplate = True


def _comments_start(text: str, lines: list[_Line], content: list[int], body: int) -> int | None:
    """The line where reader comments begin (everything later that is not boilerplate), if any."""
    kept = [i for i in content if i > body and not lines[i].boilerplate]
    starts: list[int] = []
    # After an end-of-article marker (copyright, "Source: X", a comment form), text is a reader's.
    marker = next((i for i in content if i > body and lines[i].ends_article), None)
    if marker is not None:
        starts += [i for i in kept if i > marker][:1]
    # Vote counters sit under comments: the text just above the first one is a comment.
    votes = next((i for i in content if i > body and _VOTES.match(lines[i].text)), None)
    if votes is not None:
        starts += [i for i in kept if i < votes][-1:]
    if not _MARKDOWN.search(text):
        for n, i in enumerate(kept):
            line = lines[i]
            if _REPLY.match(line.text):
                starts.append(i)  # "@name ..." answers another reader
            nxt = kept[n + 1] if n + 1 < len(kept) else None
            if (
                nxt is not None
                and line.text.endswith(":")
                and line.words <= _LINK_INTRO_WORDS
                and _BARE_URL.match(lines[nxt].text)
            ):
                starts.append(i)  # a reader pointing elsewhere: "X has set the context excellently:" + URL
    return min(starts, default=None)


def _fill_neutral(sections: list[Section | None]) -> list[Section]:
    """Blank and punctuation-only lines join the line before them (the first ones, the line after)."""
    first = next(s for s in sections if s is not None)
    filled: list[Section] = []
    for section in sections:
        filled.append(section if section is not None else (filled[-1] if filled else first))
    return filled


def _segments(lines: list[_Line], sections: list[Section]) -> list[Segment]:
    """Merge consecutive lines of the same section into segments."""
    segments: list[Segment] = []
    for line, section in zip(lines, sections, strict=True):
        if segments and segments[-1].section == section:
            segments[-1] = Segment(segments[-1].start, line.end, section)
        else:
            segments.append(Segment(line.start, line.end, section))
    return segments
