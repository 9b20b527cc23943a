"""The document and chunk tables (tables.sqlite) and ID-kept IVF updates, on real indexes of the seeds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from rag import dense
from rag.assistant import Assistant
from rag.chunking import chunk_document
from rag.clean import classify
from rag.config import IndexSettings
from rag.errors import IndexCorruptError
from rag.ingest import read_corpus
from rag.retrieve import Retriever
from rag.store import _file_records, current_generation, load_index
from rag.tables import TABLES_FILE
from rag.types import SECTIONS, Chunk, Hit
from tests.conftest import REPO, SEEDS


def test_the_tables_give_back_what_was_indexed(seeds_assistant: Assistant) -> None:
    index = load_index(seeds_assistant.index_dir)
    settings = seeds_assistant.settings
    read = read_corpus([str(SEEDS)], settings.ingest).documents
    assert list(index.documents) == [d.doc_id for d in read]
    assert [index.documents[d.doc_id] for d in read] == read  # every field, the text included
    expected = [c for d in read for c in chunk_document(d, classify(d.text), settings.chunk)]
    chunks = list(index.chunks)
    assert chunks == expected and len(index.chunks) == len(expected) == index.manifest["counts"]["chunks"]
    for row, chunk in enumerate(chunks):
        assert chunk.text == index.documents[chunk.doc_id].text[chunk.start : chunk.end]
        assert index.chunks[row] == chunk and index.chunks[row - len(chunks)] == chunk
        assert row in index.documents.chunk_rows(chunk.doc_id)
    assert index.chunks[3:7] == chunks[3:7] and index.chunks[::5] == chunks[::5]
    assert index.texts[read[0].doc_id] == read[0].text and len(index.texts) == len(read)
    with pytest.raises(IndexError):
        index.chunks[len(chunks)]
    with pytest.raises(KeyError):
        index.documents["nope.txt"]
    assert "nope.txt" not in index.documents and read[1].doc_id in index.documents
    assert index.documents.chunk_rows("nope.txt") == range(0)


def test_filters_give_the_rows_a_pass_over_every_chunk_gives(seeds_assistant: Assistant) -> None:
    retriever = Retriever(load_index(seeds_assistant.index_dir), seeds_assistant.settings)
    chunks = list(retriever.index.chunks)
    doc_ids = sorted(retriever.index.documents)
    assert {c.section for c in chunks} == {"article", "comments"}  # both sections are exercised
    cases = [
        ([doc_ids[2]], None),
        ([doc_ids[4], doc_ids[0]], None),
        (None, ["comments"]),
        (None, ["article", "comments"]),
        ([doc_ids[1], doc_ids[3]], ["comments"]),
        ([doc_ids[0]], ["article"]),
    ]
    for wanted_docs, wanted_sections in cases:
        expected = [
            row
            for row, c in enumerate(chunks)
            if (not wanted_docs or c.doc_id in wanted_docs) and (not wanted_sections or c.section in wanted_sections)
        ]
        allowed = retriever._allowed_rows(wanted_docs, wanted_sections)
        assert allowed is not None and allowed.tolist() == expected, (wanted_docs, wanted_sections)
    assert [SECTIONS[code] for code in retriever.index.chunks.sections()] == [c.section for c in chunks]


def _kill_mid_write(index_dir: Path, corpus: Path) -> subprocess.CompletedProcess[str]:
    """`rag index` in a subprocess that dies (os._exit, like a kill) after writing part of tables.sqlite."""
    script = (
        "import os, sys\n"
        "import rag.tables as tables\n"
        "fill = tables._fill\n"
        "def dying_fill(con, documents, chunks, records):\n"
        "    fill(con, documents, list(chunks)[:3], records)\n"
        "    con.commit()\n"
        "    os._exit(137)\n"
        "tables._fill = dying_fill\n"
        "from rag.assistant import Assistant\n"
        "from rag.config import load_settings\n"
        "settings = load_settings(config_file=None, env={})\n"
        "settings.index.dir = sys.argv[1]\n"
        "Assistant(settings).build_index([sys.argv[2]])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", script, str(index_dir), str(corpus)], env=env, capture_output=True, text=True
    )


def test_a_writer_killed_while_writing_the_tables_leaves_the_previous_generation_serving(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    live = current_generation(assistant.index_dir)
    before = [(h.chunk.chunk_id, h.score) for h in assistant.search("Northern Fleet", k=5).hits]
    (corpus / "new.md").write_text("# Arctic Council\n\nIceland handed the Arctic Council chair to Russia.\n")
    killed = _kill_mid_write(assistant.index_dir, corpus)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert list(assistant.index_dir.glob(".gen-*.tmp"))  # it did die mid-write, leaving its temporary folder
    assert current_generation(assistant.index_dir) == live
    fresh = Assistant(assistant.settings)
    assert [(h.chunk.chunk_id, h.score) for h in fresh.search("Northern Fleet", k=5).hits] == before
    assert "new.md" not in fresh.index.documents
    report = fresh.build_index()
    assert report.added == ["new.md"] and report.chunks_embedded == 1
    assert fresh.search("Arctic Council chair", k=1).hits[0].chunk.doc_id == "new.md"


def test_a_missing_table_file_is_named_with_the_fix(assistant_factory: Callable[..., Assistant], corpus: Path) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    (current_generation(assistant.index_dir) / TABLES_FILE).unlink()
    with pytest.raises(IndexCorruptError, match=r"missing tables\.sqlite.*run `rag index --rebuild`"):
        Assistant(assistant.settings).search("Northern Fleet")


def test_table_rows_that_contradict_the_manifest_are_named(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    generation = current_generation(assistant.index_dir)
    manifest = json.loads((generation / "manifest.json").read_text())
    manifest["counts"]["chunks"] += 1
    (generation / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=r"manifest counts .* the tables hold 5 documents and \d+ chunks"):
        Assistant(assistant.settings).search("Northern Fleet")


def _as_format_1(generation: Path) -> None:
    """Rewrite a generation's tables as the JSONL files of format 1 (what indexes before tables.sqlite hold)."""
    index = load_index(generation.parent)
    with (generation / "documents.jsonl").open("w", encoding="utf-8") as fh:
        for doc in index.documents.values():
            fh.write(json.dumps(asdict(doc), ensure_ascii=False) + "\n")
    with (generation / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for c in index.chunks:
            row = {"chunk_id": c.chunk_id, "doc_id": c.doc_id, "start": c.start, "end": c.end, "section": c.section}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (generation / TABLES_FILE).unlink()
    manifest = {**index.manifest, "documents": dict(index.manifest["documents"]), "format": 1}
    manifest["files"] = {k: v for k, v in _file_records(generation).items() if k != "manifest.json"}
    (generation / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def test_an_index_of_format_1_serves_and_is_rewritten_without_embedding_again(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    before = [(h.chunk, h.score, h.title) for h in assistant.search("Northern Fleet", k=5).hits]
    _as_format_1(current_generation(assistant.index_dir))
    old = Assistant(assistant.settings)
    assert old.index.manifest["format"] == 1
    assert [(h.chunk, h.score, h.title) for h in old.search("Northern Fleet", k=5).hits] == before
    report = old.build_index()  # nothing changed but the format: rewritten, nothing embedded
    assert report.written and report.chunks_embedded == 0 and not (report.added or report.changed)
    assert old.index.manifest["format"] == 2 and (current_generation(assistant.index_dir) / TABLES_FILE).exists()
    assert [(h.chunk, h.score, h.title) for h in old.search("Northern Fleet", k=5).hits] == before


# --- IVF updates keep each unchanged row's list ----------------------------------------------------------------


def list_of_each_row(index: Any) -> dict[int, int]:
    """Row (the id FAISS returns) -> the inverted list it is stored in, read through FAISS's invlists API."""
    ivf = faiss.extract_index_ivf(index)
    lists: Any = ivf.invlists
    where = {}
    for number in range(ivf.nlist):
        for row in faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).tolist():
            where[row] = number
    return where


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_an_ivf_update_keeps_lists_even_where_assigning_again_would_move_a_row(tmp_path: Path) -> None:
    settings = IndexSettings(kind="ivf")
    vectors = unit_vectors(4000)
    trained, params = dense.build(vectors, settings)
    # The previous index holds every vector in the list after its nearest one: an update that assigned the
    # vectors again would move all of them; one that keeps the lists moves none.
    ivf = faiss.extract_index_ivf(trained)
    ivf.reset()
    nearest = ivf.quantizer.search(vectors, 1)[1][:, 0]
    elsewhere = np.ascontiguousarray((nearest + 1) % ivf.nlist, dtype=np.int64)
    ids = np.arange(len(vectors), dtype=np.int64)
    ivf.add_core(len(vectors), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(elsewhere))
    faiss.write_index(trained, str(tmp_path / "dense.faiss"))
    previous = dense.load(tmp_path / "dense.faiss")  # memory-mapped, as `rag index` has it

    # A document's 100 rows (1000-1099) are replaced by 150 new ones at the end; rows after them shift down.
    sources = np.concatenate([np.arange(1000), np.arange(1100, 4000), np.full(150, -1)])
    updated_vectors = np.vstack([vectors[sources[:3900]], unit_vectors(150, seed=5)])
    updated, updated_params = dense.build(
        updated_vectors, settings, previous=previous, previous_params=params, sources=sources
    )
    assert updated.ntotal == 4050 and updated_params == {**params, "ntotal": 4050}
    before, after = list_of_each_row(previous), list_of_each_row(updated)
    assert sorted(after) == list(range(4050))
    for new_row, old_row in enumerate(sources[:3900]):
        assert after[new_row] == before[old_row] == elsewhere[old_row]
    added_nearest = ivf.quantizer.search(updated_vectors[3900:], 1)[1][:, 0]
    assert [after[row] for row in range(3900, 4050)] == added_nearest.tolist()  # new rows: assigned as usual
    assert list_of_each_row(dense.load(tmp_path / "dense.faiss")) == before  # the previous index is unchanged
    everything = IndexSettings(kind="ivf", ivf_nprobe=ivf.nlist)
    for query in unit_vectors(10, seed=3):
        assert dense.search(updated, "ivf", query, 1, everything)[0][0] == int(np.argmax(updated_vectors @ query))


def test_rag_index_keeps_the_ivf_lists_of_unchanged_documents(
    assistant_factory: Callable[..., Assistant], tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for copy in range(4):  # about 200 chunks: 5 lists
        for path in sorted(SEEDS.iterdir()):
            shutil.copy(path, corpus / f"{copy}_{path.name}")
    assistant = assistant_factory(index__kind="ivf")
    assistant.build_index([str(corpus)])
    first = load_index(assistant.index_dir)
    assert first.faiss_index.nlist >= 4
    lists_before = list_of_each_row(first.faiss_index)
    row_before = {c.chunk_id: row for row, c in enumerate(first.chunks)}
    changed = f"1_{sorted(p.name for p in SEEDS.iterdir())[2]}"
    queries = ["Northern Fleet chief", "direct flights between Russia and the United States", "readers on Lavrov"]
    k = len(first.chunks)
    ranked_before = {q: assistant.search(q, k=k, mode="dense").hits for q in queries}

    path = corpus / changed
    path.write_text(path.read_text(encoding="utf-8") + "\n\nA late correction was added to this report.\n")
    report = assistant.build_index()
    assert report.changed == [changed] and report.chunks_embedded < 20
    second = load_index(assistant.index_dir)
    lists_after = list_of_each_row(second.faiss_index)
    unchanged = [(row, c.chunk_id) for row, c in enumerate(second.chunks) if c.doc_id != changed]
    assert len(unchanged) == len(first.chunks) - len(first.documents.chunk_rows(changed))
    assert any(row != row_before[chunk_id] for row, chunk_id in unchanged)  # rows did shift
    for row, chunk_id in unchanged:
        assert lists_after[row] == lists_before[row_before[chunk_id]], chunk_id

    def unchanged_hits(hits: list[Hit]) -> list[tuple[float, str, Chunk]]:
        # The corpus holds each seed four times: equal scores are ordered by chunk id to compare them.
        return sorted((-h.score, h.chunk.chunk_id, h.chunk) for h in hits if h.chunk.doc_id != changed)

    for query in queries:
        after = assistant.search(query, k=len(second.chunks), mode="dense").hits
        assert unchanged_hits(after) == unchanged_hits(ranked_before[query])
