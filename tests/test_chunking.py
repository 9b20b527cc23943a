"""Chunks on the real seeds: offsets, sizes, sections, boilerplate, stable ids; sentences that follow structure."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from rag.chunking import chunk_document, sentence_spans
from rag.clean import classify
from rag.config import ChunkSettings, IngestSettings, load_settings
from rag.embedders import resolve_model
from rag.errors import IndexMismatchError
from rag.indexer import PIPELINE_VERSION, check_compatible, chunker_fingerprint
from rag.ingest import read_corpus
from rag.types import Chunk, Document, Segment
from tests.conftest import SEEDS

DOCS = read_corpus([str(SEEDS)], IngestSettings()).documents
SETTINGS = ChunkSettings()

# Lines of the seeds that are site furniture and must never come back as evidence.
BOILERPLATE = [
    "Egypt Today, egypt today",
    "Security Code*",
    "E-mail *",
    "Comment Title*",
    "1 ( +1 / -0 )",
    "-1 ( +0 / -1 )",
    "© Copyright 2025 The Associated Press",
    "©2025 GPlusMedia Inc.",
    "Support The Moscow Times!",
    "we have a small favor to ask",
    "Paris attacks show Syria war cannot be contained",
    "Maintained and developed by Arabs Today Group SAL.",
    "Idź do oryginalnego materiału",
]


def chunks_of(doc: Document) -> list[Chunk]:
    return chunk_document(doc, classify(doc.text), SETTINGS)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.doc_id)
def test_offsets_round_trip_for_every_chunk(doc: Document) -> None:
    chunks = chunks_of(doc)
    assert chunks
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.doc_id == doc.doc_id
        assert chunk.end - chunk.start <= SETTINGS.size + SETTINGS.min_size


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.doc_id)
def test_chunks_stay_inside_one_section(doc: Document) -> None:
    segments = classify(doc.text)
    for chunk in chunks_of(doc):
        (segment,) = [s for s in segments if s.start <= chunk.start < s.end]
        assert chunk.end <= segment.end and chunk.section == segment.section != "boilerplate"


def test_boilerplate_is_in_no_chunk() -> None:
    texts = [c.text for doc in DOCS for c in chunks_of(doc)]
    for line in BOILERPLATE:
        assert any(line in doc.text for doc in DOCS), line  # the line really is in a seed
        assert not any(line in text for text in texts), line


def test_reader_comments_are_labelled() -> None:
    by_id = {d.doc_id: chunks_of(d) for d in DOCS}
    comment = next(c for c in by_id["000_b63fe8f3e2dac5e7.txt"] if "stolen airliners" in c.text)
    assert comment.section == "comments"
    fleet = next(c for c in by_id["004_ef5f7f6cb4511981.txt"] if "Moiseyev, chief of" in c.text)
    assert fleet.section == "comments"
    lavrov = next(c for c in by_id["004_ef5f7f6cb4511981.txt"] if "normal working conditions" in c.text)
    assert lavrov.section == "article"


def test_chunk_ids_are_stable_and_unique() -> None:
    first = [c.chunk_id for doc in DOCS for c in chunks_of(doc)]
    assert first == [c.chunk_id for doc in DOCS for c in chunks_of(doc)]
    assert len(set(first)) == len(first)


def test_long_paragraphs_overlap_by_whole_sentences() -> None:
    sentence = "Russia and the United States held talks about embassies number {}. "
    text = "".join(sentence.format(i) for i in range(40)).strip()
    doc = Document("long.txt", "long.txt", "t", text, "sha")
    chunks = chunk_document(doc, [Segment(0, len(text), "article")], ChunkSettings(size=400, overlap=100))
    assert len(chunks) > 5
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # overlap
        assert before.end - after.start <= 100
        assert after.text.startswith("Russia")  # starts at a sentence


def test_a_sentence_longer_than_a_chunk_is_cut_at_spaces() -> None:
    text = " ".join(["word"] * 400)
    doc = Document("w.txt", "w.txt", "t", text, "sha")
    chunks = chunk_document(doc, [Segment(0, len(text), "article")], ChunkSettings(size=300, overlap=0))
    assert all(c.end - c.start <= 300 and c.text.startswith("word") and c.text.endswith("word") for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_paragraph_breaks_are_preferred() -> None:
    para = "This sentence belongs to paragraph {0}. " * 6
    text = "\n\n".join(para.format(i).strip() for i in range(6))
    doc = Document("p.txt", "p.txt", "t", text, "sha")
    for chunk in chunk_document(doc, [Segment(0, len(text), "article")], ChunkSettings(size=600, overlap=0)):
        assert chunk.text.startswith("This sentence") and chunk.text.endswith(".")
        assert text[chunk.end : chunk.end + 2] in ("\n\n", "")


def test_sentences_respect_abbreviations() -> None:
    text = "Adm. Alexander Moiseyev met U.S. officials on Feb. 27 in Washington. It was cold! Was it? Yes."
    spans = [text[s:e] for s, e in sentence_spans(text)]
    assert spans == [
        "Adm. Alexander Moiseyev met U.S. officials on Feb. 27 in Washington.",
        "It was cold!",
        "Was it?",
        "Yes.",
    ]


def test_hard_wrapped_lines_are_one_sentence() -> None:
    text = "The talks in Istanbul lasted\nsix hours and ended\nwithout a statement.\nNext line."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "The talks in Istanbul lasted\nsix hours and ended\nwithout a statement.",
        "Next line.",
    ]


def sentences_of(text: str, start: int = 0, end: int | None = None) -> list[str]:
    """The sentences of ``text``, checking that every span is exact: trimmed, non-empty, inside the range."""
    spans = sentence_spans(text, start, end)
    for s, e in spans:
        assert start <= s < e <= (len(text) if end is None else end)
        assert text[s:e] == text[s:e].strip()
    return [text[s:e] for s, e in spans]


MARKDOWN = """# Orbi, the flying boat
Orbi is built in Toulouse.

## How much can Orbi carry?
up to 120 people fit in the cabin, the maker says.
- range of 500 km
- top speed of 300 km/h
* cabin for twelve rows
1. board at gate 4
2) show your ticket

| Capacity | 120 people |
|----------|------------|
| crew | 2 pilots |
---
Setext title
============
Adm. Smith approved it on Feb. 24 in the U.S. capital.
"""


def test_markdown_headings_list_items_and_table_rows_end_sentences() -> None:
    assert sentences_of(MARKDOWN) == [
        "Orbi, the flying boat",
        "Orbi is built in Toulouse.",
        "How much can Orbi carry?",
        "up to 120 people fit in the cabin, the maker says.",
        "range of 500 km",
        "top speed of 300 km/h",
        "cabin for twelve rows",
        "board at gate 4",
        "show your ticket",
        "Capacity | 120 people",
        "crew | 2 pilots",
        "Setext title",
        "Adm. Smith approved it on Feb. 24 in the U.S. capital.",
    ]


def test_a_range_starting_mid_document_gives_the_same_sentences() -> None:
    start = MARKDOWN.index("How much")
    end = MARKDOWN.index("| crew")
    assert sentences_of(MARKDOWN, start, end) == [
        "How much can Orbi carry?",
        "up to 120 people fit in the cabin, the maker says.",
        "range of 500 km",
        "top speed of 300 km/h",
        "cabin for twelve rows",
        "board at gate 4",
        "show your ticket",
        "Capacity | 120 people",
    ]


def test_html_block_elements_end_sentences(tmp_path: Path) -> None:
    (tmp_path / "orbi.html").write_text(
        "<html><head><title>Orbi</title></head><body><h1>Orbi, the flying boat</h1>"
        "<h2>How much can Orbi carry</h2><p>Orbi carries 120 people and their luggage on every island flight</p>"
        "<p>Its range is 500 km.</p><ul><li>Top speed 300 km/h</li><li>Built in Toulouse</li></ul>"
        "<table><tr><th>Capacity</th><th>120 people</th></tr><tr><td>Crew</td><td>2 pilots</td></tr></table>"
        "<div>Adm. Smith approved it on <b>Feb. 24</b> in the <a href='/dc'>U.S. capital</a>.<br>Nobody objected."
        "</div></body></html>",
        encoding="utf-8",
    )
    (doc,) = read_corpus([str(tmp_path)], IngestSettings()).documents
    assert sentences_of(doc.text) == [
        "Orbi, the flying boat",
        "How much can Orbi carry",
        "Orbi carries 120 people and their luggage on every island flight",
        "Its range is 500 km.",
        "Top speed 300 km/h",
        "Built in Toulouse",
        "Capacity | 120 people",
        "Crew | 2 pilots",
        "Adm. Smith approved it on Feb. 24 in the U.S. capital.",  # inline elements stay in their sentence
        "Nobody objected.",
    ]


WRAPPED = (
    "The amphibious aircraft unveiled at the Moscow air show on Tuesday seats 120 people, including two pilots and "
    "four crew, according to Adm. Alexander Moiseyev, who heads Russia's Northern Fleet. The U.S. Navy has no "
    "comparable aircraft, officials in Washington said on Feb. 24. Foreign Minister Sergei Lavrov did not comment."
)


@pytest.mark.parametrize(
    ("width", "line_starts"),
    [(72, ["120 people", "Alexander Moiseyev"]), (69, ["Adm. Alexander", "Navy has", "24. Foreign"])],
)
def test_a_hard_wrapped_paragraph_gives_whole_sentences(width: int, line_starts: list[str]) -> None:
    body = textwrap.fill(WRAPPED, width)
    for start in line_starts:  # the wrapper really broke the line where a sentence must not start
        assert f"\n{start}" in body
    text = f"Orbi takes off\n{body}\n\nIts range is 500 km.\n"
    assert [" ".join(s.split()) for s in sentences_of(text)] == [
        "Orbi takes off",
        "The amphibious aircraft unveiled at the Moscow air show on Tuesday seats 120 people, including two pilots "
        "and four crew, according to Adm. Alexander Moiseyev, who heads Russia's Northern Fleet.",
        "The U.S. Navy has no comparable aircraft, officials in Washington said on Feb. 24.",
        "Foreign Minister Sergei Lavrov did not comment.",
        "Its range is 500 km.",
    ]


def test_lines_ended_by_the_writer_end_sentences() -> None:
    text = (
        "By VLADIMIR ISACHENKOV\nMOSCOW\n"
        "Andrei Martyanov has set the context excellently:\nhttp://example.com/probing-limits.html\n"
        "Comment by a reader who wrote a long line without a full stop at the end of it, which is quite common\n"
        "Another reader answered him.\n"
    )
    assert sentences_of(text) == [
        "By VLADIMIR ISACHENKOV",
        "MOSCOW",
        "Andrei Martyanov has set the context excellently:",
        "http://example.com/probing-limits.html",
        "Comment by a reader who wrote a long line without a full stop at the end of it, which is quite common",
        "Another reader answered him.",
    ]


def test_chunks_of_a_markdown_document_are_exact_and_stay_in_their_section() -> None:
    text = MARKDOWN * 6
    middle = text.index("# Orbi", len(MARKDOWN) * 3)
    doc = Document("orbi.md", "orbi.md", "Orbi", text, "sha")
    segments = [Segment(0, middle, "article"), Segment(middle, len(text), "comments")]
    chunks = chunk_document(doc, segments, ChunkSettings(size=200, overlap=50, min_size=40))
    assert len(chunks) > 6
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end] == chunk.text.strip()
        assert chunk.end <= middle if chunk.section == "article" else chunk.start >= middle
        assert not chunk.text.startswith(("#", "-", "|"))  # a chunk starts at a sentence, not at its marker


def test_an_index_chunked_by_the_old_rules_is_refused() -> None:
    settings = load_settings(config_file=None, env={})
    manifest = {
        "embedder": {"name": resolve_model(settings.embed.model)[0], "backend": settings.embed.backend},
        "chunker": {**chunker_fingerprint(settings), "pipeline": 1},
    }
    with pytest.raises(IndexMismatchError, match=rf"earlier version of rag.*pipeline 1 -> {PIPELINE_VERSION}.*rebuild"):
        check_compatible(manifest, settings)
    check_compatible({**manifest, "chunker": chunker_fingerprint(settings)}, settings)


def _pipeline_sentences(doc: Document) -> list[str]:
    """Every sentence of every chunk of ``doc``, as the evidence step cuts quotes from them."""
    sentences = []
    for chunk in chunks_of(doc):
        assert chunk.text == doc.text[chunk.start : chunk.end]
        sentences += sentences_of(doc.text, chunk.start, chunk.end)
    return sentences


def test_markdown_and_html_quotes_never_start_with_a_heading_marker_and_wrapped_paragraphs_stay_whole(
    tmp_path: Path,
) -> None:
    wrapped = textwrap.fill(WRAPPED, 72)
    (tmp_path / "orbi.md").write_text(
        f"# Orbi, the flying boat\n\n## Who built it\n{wrapped}\n\n### Range\n\nIts range is 500 km.\n"
        "#### Crew ####\n- pilots and stewards\n",
        encoding="utf-8",
    )
    (tmp_path / "orbi.html").write_text(
        f"<html><body><h1>Orbi, the flying boat</h1><h2>Who built it</h2><p>{wrapped}</p>"
        "<h3>Range</h3><p>Its range is\n500 km.</p></body></html>",
        encoding="utf-8",
    )
    docs = {d.doc_id: d for d in read_corpus([str(tmp_path)], IngestSettings()).documents}
    whole = [
        "The amphibious aircraft unveiled at the Moscow air show on Tuesday seats 120 people, including two pilots "
        "and four crew, according to Adm. Alexander Moiseyev, who heads Russia's Northern Fleet.",
        "The U.S. Navy has no comparable aircraft, officials in Washington said on Feb. 24.",
        "Foreign Minister Sergei Lavrov did not comment.",
    ]
    for doc_id in ("orbi.md", "orbi.html"):
        sentences = [" ".join(s.split()) for s in _pipeline_sentences(docs[doc_id])]
        assert not [s for s in sentences if s.startswith("#")], doc_id
        for sentence in whole:  # the hard-wrapped paragraph gives whole sentences
            assert sentences.count(sentence) >= 1, (doc_id, sentence)
        assert "Who built it" in sentences and "Its range is 500 km." in sentences, doc_id
        fragments = [s for s in sentences if any(s != w and s in w for w in whole)]
        assert fragments == [], doc_id
