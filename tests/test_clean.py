"""rag.clean.classify on the real seed documents: invariants, boilerplate, article and comment lines."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from rag.clean import classify
from rag.types import SECTIONS, Segment

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
SEED_FILES = sorted(SEEDS.glob("*.txt"))


def read_seed(prefix: str) -> str:
    (path,) = [p for p in SEED_FILES if p.name.startswith(prefix)]
    return path.read_text(encoding="utf-8")


def section_of(text: str, segments: list[Segment], needle: str, occurrence: int = 1) -> str:
    """The section of the segment holding the start of the ``occurrence``-th copy of ``needle``."""
    offset = -1
    for _ in range(occurrence):
        offset = text.index(needle, offset + 1)
    (segment,) = [s for s in segments if s.start <= offset < s.end]
    return segment.section


def assert_partition(text: str, segments: list[Segment]) -> None:
    assert segments[0].start == 0
    assert segments[-1].end == len(text)
    for before, after in pairwise(segments):
        assert after.start == before.end
        assert after.section != before.section, "equal neighbours must be merged"
    assert all(s.start < s.end for s in segments)
    assert all(s.section in SECTIONS for s in segments)
    assert "".join(text[s.start : s.end] for s in segments) == text


def test_seed_files_are_present() -> None:
    assert len(SEED_FILES) == 5


@pytest.mark.parametrize("path", SEED_FILES, ids=lambda p: p.name[:3])
def test_segments_partition_every_seed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert_partition(text, classify(text))


@pytest.mark.parametrize(
    ("prefix", "lines"),
    [
        (
            "000",
            [
                "date 2025-03-01  Japan Today",
                "© Copyright 2025 The Associated Press. All rights reserved.",
                "©2025 GPlusMedia Inc.",
                "1 ( +1 / -0 )",
                "-1 ( +0 / -1 )",
                "0 ( +0 / -0 )",
            ],
        ),
        (
            "001",
            [
                "Russia Pushes For Resumption Of Direct Flights With US In Bilateral Talks\n\ndailyblitz",
                "dailyblitz.de 2 godzin temu",
                "Idź do oryginalnego materiału",
            ],
        ),
        (
            "002",
            [
                "Support The Moscow Times!",
                "we have a small favor to ask.",
                "As you may have heard, The Moscow Times",
                "We, the journalists of The Moscow Times, refuse to be silenced.",
                "please support us monthly starting from just 2. It's quick to set up",
                "Continue",
                "Read more",
            ],
        ),
        (
            "003",
            [
                "us russia vow to boost cooperation\n",
                "Last Updated : GMT 09:07:40",
                "Egypt Today, egypt today",
                "Egypt Today, egypt today US, Russia vow to boost cooperation",
                "egypttoday\negypttoday",
                "Name *",
                "E-mail *",
                "Comment Title*",
                "Comment *",
                ": Characters Left",
                "Mandatory *",
                "Terms of use",
                "Publishing Terms: Not to offend the author",
                "I agree with the Terms of Use",
                "Security Code*",
                "us russia vow to boost cooperation us russia vow to boost cooperation",
                "GMT 12:37 2015 Sunday ,15 November",
                "Paris attacks show Syria war cannot be contained",
                "GMT 18:28 2015 Wednesday ,11 November",
                "Netanyahu invokes memory of Nazi past over EU labelling",
                "Egypt Today Facebook,egypt today facebook",
                "Maintained and developed by Arabs Today Group SAL.",
                "All rights reserved to Arab Today Media Group 2021 ©",
                "egypttoday egypttoday egypttoday egypttoday",
                "بناية النخيل",
                "egypttoday, Egypttoday, Egypttoday",
            ],
        ),
        ("004", ["https://www.mid.ru/en/foreign_policy/news/"]),
    ],
)
def test_boilerplate_lines(prefix: str, lines: list[str]) -> None:
    text = read_seed(prefix)
    segments = classify(text)
    for line in lines:
        assert section_of(text, segments, line) == "boilerplate", line


@pytest.mark.parametrize(
    ("prefix", "lines"),
    [
        (
            "000",
            [
                "Russia offers to restore direct air links with U.S., during Istanbul talks",
                "By VLADIMIR ISACHENKOV",
                "Russia has offered the United States to restore direct air links",
                "There is a mutual readiness to work to restore relations",
            ],
        ),
        (
            "001",
            [
                "Russia Pushes For Resumption Of Direct Flights With US In Bilateral Talks\n\nFirst,",
                "Sergey Ryabkov told a press briefing",
                "Getting sanctions lifted on the aviation industry",
                "Tyler Durden",
            ],
        ),
        (
            "002",
            [
                "U.S. Allows Russia to Bring Plane to Retrieve Diplomats",
                "State Department spokesman Matthew Miller",
                "The United States has had only limited high-level diplomatic contact",
            ],
        ),
        (
            "003",
            [
                "US, Russia vow to boost cooperation\n",
                'frank" talks between President Vladimir Putin',
                "Source: AFP",
            ],
        ),
        (
            "004",
            [
                "First of all, I would like to thank you for your proposal to meet here.",
                "Unless we create normal working conditions for our diplomats",
                "Thank you for this meeting. I hope it will be a constructive dialogue.",
            ],
        ),
    ],
)
def test_article_lines(prefix: str, lines: list[str]) -> None:
    text = read_seed(prefix)
    segments = classify(text)
    for line in lines:
        assert section_of(text, segments, line) == "article", line


@pytest.mark.parametrize(
    ("prefix", "lines"),
    [
        (
            "000",
            [
                "Trump is probably now negotiating for his Victory Day appearance",
                "Vladimir Isachenkov - new name here.",
                "Make some conditions including that",
                "Extradition of Russian criminals acting inside the US is required.",
            ],
        ),
        (
            "004",
            [
                "There is nothing new here. Andrei Martyanov",
                "http://smoothiex12.blogspot.com/2021/05/probing-limits.html",
                "Lavrov the Master",
                "@Analyst It also shows",
                "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet",
                "We have to proceed all of us, including",
            ],
        ),
    ],
)
def test_comment_lines(prefix: str, lines: list[str]) -> None:
    text = read_seed(prefix)
    segments = classify(text)
    for line in lines:
        assert section_of(text, segments, line) == "comments", line


def test_quoted_article_sentence_in_a_comment_is_a_comment() -> None:
    text = read_seed("004")
    segments = classify(text)
    needle = "Unless we create normal working conditions for our diplomats"
    assert section_of(text, segments, needle, occurrence=1) == "article"
    assert section_of(text, segments, needle, occurrence=2) == "comments"


def test_article_ends_where_comments_begin_in_004() -> None:
    text = read_seed("004")
    segments = classify(text)
    sections = [s.section for s in segments]
    assert sections == ["boilerplate", "article", "comments"]
    assert text[segments[1].end :].startswith("There is nothing new here.")


@pytest.mark.parametrize("prefix", ["001", "002", "003"])
def test_seeds_without_reader_comments(prefix: str) -> None:
    assert all(s.section != "comments" for s in classify(read_seed(prefix)))


def test_plain_article_is_all_article() -> None:
    text = (
        "The city council approved the new budget on Tuesday after a long debate about schools.\n\n"
        "Members said the plan would add teachers next year, and the mayor is expected to sign it.\n"
    )
    assert classify(text) == [Segment(0, len(text), "article")]


def test_markdown_file_is_mostly_article() -> None:
    text = (
        "# Field notes\n\n"
        "A short guide to the tools we use every day, written for new members of the team.\n\n"
        "## Install\n\n"
        "Download the installer from:\n"
        "https://example.com/download\n\n"
        "```python\n@dataclass\nclass Settings:\n    path: str\n```\n\n"
        "- keep notes short\n- link sources\n\n"
        "Questions go to the team channel, where someone will answer within a day.\n"
    )
    segments = classify(text)
    assert_partition(text, segments)
    article = sum(s.end - s.start for s in segments if s.section == "article")
    assert article / len(text) > 0.9
    assert all(s.section != "comments" for s in segments)


def test_empty_text_has_no_segments() -> None:
    assert classify("") == []


def test_whitespace_only_text_is_one_boilerplate_segment() -> None:
    text = " \n\n\u00a0\n"
    assert classify(text) == [Segment(0, len(text), "boilerplate")]


def test_crlf_text_is_covered_exactly() -> None:
    text = read_seed("000").replace("\n", "\r\n")
    segments = classify(text)
    assert_partition(text, segments)
    assert section_of(text, segments, "Trump is probably now negotiating") == "comments"


def test_a_line_of_link_texts_is_boilerplate_but_a_table_is_not() -> None:
    text = (
        "Home | Careers | Contact\n\n"
        "The Lisbon office opened in 2016 and now hosts the People Operations and Design teams.\n\n"
        "Item | Owner | Room\nBadge | Security desk | 4\n\n"
        "News › World › Europe\n"
        "Staff travel between Paris / Berlin / Rome every month for the planning meetings.\n"
        "About us · Jobs · Press · Privacy\n"
    )
    segments = classify(text)
    assert_partition(text, segments)
    assert section_of(text, segments, "Home | Careers") == "boilerplate"
    assert section_of(text, segments, "News › World") == "boilerplate"
    assert section_of(text, segments, "About us · Jobs") == "boilerplate"
    for line in ("The Lisbon office", "Item | Owner", "Badge | Security", "Staff travel between Paris"):
        assert section_of(text, segments, line) == "article", line
