"""The FAISS layer: indexes load memory-mapped, and IVF updates keep their trained centroids (real FAISS)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from rag import dense
from rag.assistant import Assistant
from rag.config import IndexSettings
from rag.types import INDEX_KINDS


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def centroids(index: object) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return faiss.downcast_index(ivf.quantizer).reconstruct_n(0, ivf.nlist)


def anonymous_memory() -> int:
    """Resident memory not backed by a file (a copied index grows it; a mapped one does not)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status RssAnon on this system")


@pytest.mark.parametrize("kind", INDEX_KINDS)
def test_a_saved_index_loads_and_answers_as_built(kind: str, tmp_path: Path) -> None:
    vectors = unit_vectors(2000)
    settings = IndexSettings(kind=kind)
    built, _ = dense.build(vectors, settings)
    faiss.write_index(built, str(tmp_path / "dense.faiss"))
    loaded = dense.load(tmp_path / "dense.faiss")
    for query in unit_vectors(20, seed=1):
        assert dense.search(loaded, kind, query, 10, settings) == dense.search(built, kind, query, 10, settings)


def test_a_large_saved_index_is_mapped_not_copied(tmp_path: Path) -> None:
    vectors = unit_vectors(40_000, dim=384)  # 61 MB of vectors
    built, _ = dense.build(vectors, IndexSettings(kind="flat"))
    faiss.write_index(built, str(tmp_path / "dense.faiss"))
    del built
    before = anonymous_memory()
    loaded = dense.load(tmp_path / "dense.faiss")
    dense.search(loaded, "flat", vectors[0], 5, IndexSettings())  # touches every page
    assert anonymous_memory() - before < 16 * 2**20


def test_an_ivf_update_keeps_the_trained_centroids_until_the_corpus_doubles() -> None:
    settings = IndexSettings(kind="ivf")
    first, params = dense.build(unit_vectors(4000), settings)
    assert params["trained_on"] == 4000 and params["nlist"] == 102  # 4000 / 39 caps 4 * sqrt(4000)

    grown_vectors = np.vstack([unit_vectors(4000), unit_vectors(3000, seed=2)])
    grown, grown_params = dense.build(grown_vectors, settings, previous=first, previous_params=params)
    assert grown_params == {**params, "ntotal": 7000}
    assert np.array_equal(centroids(grown), centroids(first))
    everything = IndexSettings(kind="ivf", ivf_nprobe=102)
    for query in unit_vectors(10, seed=3):
        exact = int(np.argmax(grown_vectors @ query))
        assert dense.search(grown, "ivf", query, 1, everything)[0][0] == exact

    doubled = np.vstack([grown_vectors, unit_vectors(2000, seed=4)])  # 9000 > 2 * 4000: train again
    _, retrained = dense.build(doubled, settings, previous=grown, previous_params=grown_params)
    assert retrained["trained_on"] == 9000 and retrained["nlist"] == 230


def test_rag_index_records_and_reuses_the_ivf_training(
    assistant_factory: Callable[..., Assistant], corpus: Path
) -> None:
    assistant = assistant_factory(index__kind="ivf")
    first = assistant.build_index([str(corpus)])
    trained = assistant.index.manifest["index"]
    assert trained["kind"] == "ivf" and trained["trained_on"] == first.chunks_total
    (corpus / "new.md").write_text("# Arctic Council\n\nIceland handed the Arctic Council chair to Russia in 2021.\n")
    update = assistant.build_index()
    assert update.added == ["new.md"] and update.chunks_total > first.chunks_total
    assert assistant.index.manifest["index"]["trained_on"] == first.chunks_total
    assert assistant.search("Arctic Council chair Iceland", k=1, mode="dense").hits[0].chunk.doc_id == "new.md"
    assistant.build_index([str(corpus)], rebuild=True)  # a rebuild trains again
    assert assistant.index.manifest["index"]["trained_on"] == update.chunks_total
