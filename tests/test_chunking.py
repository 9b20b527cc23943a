"""Chunks on the real seeds: offsets, sizes, sections, boilerplate, stable ids, sentences."""

from __future__ import annotations

import itertools

import pytest

from rag.chunking import chunk_document, sentence_spans
from rag.clean import classify
from rag.config import ChunkSettings, IngestSettings
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
