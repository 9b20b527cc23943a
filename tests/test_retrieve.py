"""Retrieval quality and behaviour on the seeds, with the real embedder and FAISS."""

from __future__ import annotations

import pytest

from rag.assistant import Assistant
from rag.errors import InputError
from rag.retrieve import reciprocal_rank_fusion
from tests.conftest import SEEDS, make_settings

# (question, doc that answers it, section of the answering passage; "any" where a reader quotes the article)
QUESTIONS = [
    (
        "What did Russia offer the United States during the Istanbul talks?",
        "000_b63fe8f3e2dac5e7.txt",
        "article",
    ),
    (
        "Who will replace Anatoly Antonov as Russia's ambassador in Washington?",
        "000_b63fe8f3e2dac5e7.txt",
        "article",
    ),
    (
        "What did Putin say the first contacts with the new American administration encourage?",
        "000_b63fe8f3e2dac5e7.txt",
        "article",
    ),
    ("Which commenter wants Russia to return the stolen airliners?", "000_b63fe8f3e2dac5e7.txt", "comments"),
    (
        "What did deputy foreign minister Ryabkov tell a press briefing about flights?",
        "001_c893d35b68656839.txt",
        "article",
    ),
    ("How many hours did the first round of consultations last?", "001_c893d35b68656839.txt", "article"),
    (
        "Who was arrested for smuggling aircraft parts to Russia from Ohio?",
        "001_c893d35b68656839.txt",
        "article",
    ),
    ("Why was a Russian charter plane allowed to land in Washington?", "002_17fbe4ec36de0cb9.txt", "article"),
    (
        "What did State Department spokesman Matthew Miller expect in exchange?",
        "002_17fbe4ec36de0cb9.txt",
        "article",
    ),
    ("How long did Kerry's talks in the Black Sea resort last?", "003_50cfdfd88efb925b.txt", "article"),
    ("Where did Kerry and Lavrov lay wreaths?", "003_50cfdfd88efb925b.txt", "article"),
    (
        "What did Putin's adviser Yury Ushakov say about the Sochi meetings?",
        "003_50cfdfd88efb925b.txt",
        "article",
    ),
    (
        "What does Lavrov say happens unless diplomats get normal working conditions?",
        "004_ef5f7f6cb4511981.txt",
        "any",
    ),
    ("Who is the chief of Russia's Northern Fleet?", "004_ef5f7f6cb4511981.txt", "comments"),
    (
        "How much Arctic sea shelf did Russia claim at the United Nations?",
        "004_ef5f7f6cb4511981.txt",
        "comments",
    ),
    (
        "Which reader called Lavrov a precious gift from Russia to the world?",
        "004_ef5f7f6cb4511981.txt",
        "comments",
    ),
]


@pytest.mark.parametrize(("question", "doc_id", "section"), QUESTIONS)
def test_right_document_in_top_3(seeds_assistant: Assistant, question: str, doc_id: str, section: str) -> None:
    hits = seeds_assistant.search(question, k=3).hits
    found = [(h.chunk.doc_id, section if section == "any" else h.chunk.section) for h in hits]
    assert (doc_id, section) in found, [(h.chunk.doc_id, h.chunk.section, h.chunk.text[:80]) for h in hits]


def test_questions_cover_every_seed_and_the_comments() -> None:
    assert len(QUESTIONS) >= 12
    assert len({d for _, d, _ in QUESTIONS}) == 5
    assert {s for _, _, s in QUESTIONS} >= {"article", "comments"}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_finds_a_distinctive_fact(seeds_assistant: Assistant, mode: str) -> None:
    result = seeds_assistant.search("Adm. Alexander Moiseyev Northern Fleet", k=3, mode=mode)
    assert result.mode == mode
    assert [h.rank for h in result.hits] == [1, 2, 3]
    assert "Moiseyev" in result.hits[0].chunk.text
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_hits_round_trip_to_the_document_text(seeds_assistant: Assistant) -> None:
    for hit in seeds_assistant.search("sanctions on Russian aviation", k=10).hits:
        doc = seeds_assistant.document(hit.chunk.doc_id)
        assert doc.text[hit.chunk.start : hit.chunk.end] == hit.chunk.text
        assert hit.title == doc.title


def test_filters_by_document_and_section(seeds_assistant: Assistant) -> None:
    doc = "003_50cfdfd88efb925b.txt"
    hits = seeds_assistant.search("direct flights", k=5, doc_ids=[doc]).hits
    assert hits and {h.chunk.doc_id for h in hits} == {doc}
    comments = seeds_assistant.search("Lavrov", k=5, sections=["comments"]).hits
    assert comments and {h.chunk.section for h in comments} == {"comments"}
    for mode in ("dense", "bm25"):
        only_article = seeds_assistant.search("Northern Fleet", k=5, mode=mode, sections=["article"]).hits
        assert all(h.chunk.section == "article" for h in only_article)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "flights", "k": 0}, "k must be at least 1"),
        ({"query": "flights", "k": -3}, "k must be at least 1"),
        ({"query": "   "}, "query is empty"),
        ({"query": "x" * 5000}, "over the limit"),
        ({"query": "flights", "mode": "fuzzy"}, "valid modes: dense, bm25, hybrid"),
        ({"query": "flights", "doc_ids": ["nope.txt"]}, "no document 'nope.txt'"),
        ({"query": "flights", "sections": ["ads"]}, "unknown section 'ads'"),
    ],
)
def test_bad_search_input_is_named(seeds_assistant: Assistant, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        seeds_assistant.search(**kwargs)


def test_bm25_query_of_stop_words_finds_nothing(seeds_assistant: Assistant) -> None:
    assert seeds_assistant.search("the of and", mode="bm25").hits == []


def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = reciprocal_rank_fusion([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]], k=60)
    rows = [row for row, _ in fused]
    assert rows == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_every_index_kind_finds_the_exact_top_hit(
    seeds_assistant: Assistant, tmp_path_factory: pytest.TempPathFactory, kind: str
) -> None:
    assert seeds_assistant.index.manifest["index"]["kind"] == "flat"  # the seeds are far below index.exact_max
    other = Assistant(make_settings(tmp_path_factory.mktemp(kind), index__kind=kind))
    other.build_index([str(SEEDS)])
    assert other.index.manifest["index"]["kind"] == kind
    for question, _, _ in QUESTIONS:
        exact = seeds_assistant.search(question, k=1, mode="dense").hits[0].chunk.chunk_id
        assert other.search(question, k=1, mode="dense").hits[0].chunk.chunk_id == exact, question
