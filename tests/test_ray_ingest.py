"""`rag index --engine ray` on a real local Ray instance (started once for the module) against `--engine local`:
the same documents, chunk ids, offsets and texts, vectors within float tolerance, the same search results;
incremental updates embed only what changed; a user's mistakes are one line and keep the previous index."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from benchmarks.common import QUERIES, write_synthetic_corpus
from rag.assistant import Assistant
from rag.cli import app
from rag.errors import EngineError
from rag.store import current_generation
from rag.types import IndexReport
from tests.conftest import REPO, SEEDS, make_settings

ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'ray[data]'")

from rag.ray_ingest import ray_session  # noqa: E402

# The largest difference allowed between a vector embedded on Ray and in this process. The same ONNX graph runs
# on the same texts; the batches differ (which chunks are padded together) and so does the thread count (one per
# actor), which moves a component by a float32 ulp or two: 0.0 on the seeds, 3.0e-8 on the 1,084 chunks of
# `benchmarks/run.py --suite ray`. 1e-5 is still far below what could reorder hits that are not tied.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray instance (2 CPUs, no dashboard) for every test of the module; `rag index` runs reuse it."""
    settings = make_settings(tmp_path_factory.mktemp("ray-settings"))
    with ray_session(settings.index):
        yield


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 small documents (.txt, .md, .html, a subfolder) and two files that cannot be indexed."""
    folder = write_synthetic_corpus(tmp_path_factory.mktemp("synthetic") / "corpus", 240, paragraphs=2)
    (folder / "empty.txt").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    return folder


def build(index_dir: Path, corpus: Path, engine: str) -> tuple[Assistant, IndexReport]:
    assistant = Assistant(make_settings(index_dir, index__engine=engine))
    report = assistant.build_index([str(corpus)])
    return assistant, report


def ranked(assistant: Assistant, query: str, mode: str) -> list[str]:
    return [h.chunk.chunk_id for h in assistant.search(query, k=5, mode=mode).hits]


def assert_same_index(local: Assistant, on_ray: Assistant, queries: list[str]) -> None:
    """Documents, chunks (ids, offsets, sections, texts) and vectors as the local path writes them, and the same
    top hits for every query in every mode."""
    assert on_ray.index.documents == local.index.documents
    assert list(on_ray.index.chunks) == list(local.index.chunks)
    assert len(on_ray.index.chunks) > 0
    for c in on_ray.index.chunks:
        assert on_ray.index.documents[c.doc_id].text[c.start : c.end] == c.text
    difference = np.abs(np.asarray(on_ray.index.vectors) - np.asarray(local.index.vectors)).max()
    assert difference <= TOLERANCE, difference
    local_manifest, ray_manifest = local.index.manifest, on_ray.index.manifest
    for key in ("settings_hash", "embedder", "chunker", "index"):
        assert ray_manifest[key] == local_manifest[key], key
    assert {d: m["sha256"] for d, m in ray_manifest["documents"].items()} == {
        d: m["sha256"] for d, m in local_manifest["documents"].items()
    }
    for query in queries:
        for mode in ("dense", "bm25", "hybrid"):
            assert ranked(on_ray, query, mode) == ranked(local, query, mode), (query, mode)


def test_workers_import_this_checkout_of_rag(local_ray: None) -> None:
    import rag

    @ray.remote
    def where() -> tuple[str, str | None]:
        import rag as remote_rag

        return remote_rag.__file__, os.environ.get("HF_HUB_OFFLINE")

    assert ray.get(where.remote()) == (rag.__file__, "1")


def test_seeds_index_on_ray_equals_the_local_one(local_ray: None, tmp_path: Path) -> None:
    local, local_report = build(tmp_path / "local", SEEDS, "local")
    on_ray, ray_report = build(tmp_path / "ray", SEEDS, "ray")
    assert ray_report.added == local_report.added and len(ray_report.added) == 5
    assert ray_report.chunks_embedded == ray_report.chunks_total == len(local.index.chunks)
    assert_same_index(local, on_ray, QUERIES)


def test_synthetic_corpus_on_ray_equals_the_local_one(local_ray: None, synthetic: Path, tmp_path: Path) -> None:
    local, local_report = build(tmp_path / "local", synthetic, "local")
    on_ray, ray_report = build(tmp_path / "ray", synthetic, "ray")
    assert len(ray_report.added) == 240 and ray_report.chunks_total > 250
    # The files that cannot be indexed are reported alike, in the same order.
    assert ray_report.problems == local_report.problems
    assert {Path(p.path).name for p in ray_report.problems} == {"empty.txt", "binary.txt"}
    assert any("/" in d for d in on_ray.index.documents)  # doc_ids of the subfolder
    # Queries from the corpus's own text: the first sentence of a few documents, and a few word pairs.
    texts = [on_ray.index.documents[d].text for d in sorted(on_ray.index.documents)[::40]]
    queries = [t.split("\n\n")[1].split(".")[0] for t in texts if "\n\n" in t] + ["Istanbul talks", "Northern Fleet"]
    assert_same_index(local, on_ray, queries)


def test_an_update_on_ray_embeds_only_the_changed_documents(local_ray: None, corpus: Path, tmp_path: Path) -> None:
    on_ray, first = build(tmp_path / "ray", corpus, "ray")
    assert first.chunks_embedded == first.chunks_total
    before = {c.chunk_id: np.asarray(on_ray.index.vectors)[i] for i, c in enumerate(on_ray.index.chunks)}

    changed = corpus / "002_17fbe4ec36de0cb9.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nThe charter flight landed at Dulles airport.\n")
    (corpus / "001_c893d35b68656839.txt").unlink()
    (corpus / "new.md").write_text("# Arctic Council\n\nIceland handed the Arctic Council chair to Russia in 2021.\n")
    report = on_ray.build_index()
    assert (report.added, report.changed, report.removed) == (
        ["new.md"],
        ["002_17fbe4ec36de0cb9.txt"],
        ["001_c893d35b68656839.txt"],
    )
    new_chunks = [c for c in on_ray.index.chunks if c.doc_id in ("new.md", "002_17fbe4ec36de0cb9.txt")]
    assert report.chunks_embedded == len(new_chunks) < report.chunks_total
    vectors = np.asarray(on_ray.index.vectors)
    for i, c in enumerate(on_ray.index.chunks):  # the unchanged documents' vectors are reused as they were
        if c.doc_id not in ("new.md", "002_17fbe4ec36de0cb9.txt"):
            assert np.array_equal(vectors[i], before[c.chunk_id])

    assert on_ray.build_index().chunks_embedded == 0  # nothing changed: Ray is not even started
    local, _ = build(tmp_path / "local", corpus, "local")  # a full local build of the final corpus
    assert_same_index(local, on_ray, [*QUERIES, "Dulles airport", "Arctic Council chair Iceland"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_is_one_line_and_keeps_the_index(tmp_path: Path, corpus: Path) -> None:
    # A fresh process: this module's Ray instance would otherwise be reused whatever the address.
    index_dir = tmp_path / "index"
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}

    def rag(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "rag.cli", "index", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert rag(str(corpus)).returncode == 0
    live = current_generation(index_dir)
    (corpus / "new.txt").write_text("The Arctic Council met in Reykjavik to hand over its chair.\n")
    address = f"ray://127.0.0.1:{_free_port()}"
    failed = rag("--engine", "ray", "--address", address)
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in failed.stderr
    assert f"cannot reach the Ray cluster at {address}" in lines[0] and "--address" in lines[0]
    assert current_generation(index_dir) == live  # the previous index is still the live one
    assert "new.txt" not in Assistant(make_settings(index_dir)).index.documents


def test_without_ray_installed_the_message_names_the_install(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    assert runner.invoke(app, ["index", str(corpus)]).exit_code == 0
    live = current_generation(tmp_path / "index")
    shutil.copy(corpus / "002_17fbe4ec36de0cb9.txt", corpus / "copy.txt")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    # A run that would remove documents is refused before anything goes to Ray (here: before Ray is missed).
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(corpus / "copy.txt", other / "copy.txt")
    refused = runner.invoke(app, ["index", str(other), "--engine", "ray"])
    assert refused.exit_code == 2 and "--replace" in refused.stderr and "ray[data]" not in refused.stderr
    result = runner.invoke(app, ["index", "--engine", "ray"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "pip install 'ray[data]'" in result.stderr and "--engine local" in result.stderr
    assert current_generation(tmp_path / "index") == live
    with pytest.raises(EngineError, match="not installed"):
        Assistant(make_settings(tmp_path / "index", index__engine="ray")).build_index()


def test_engine_options_are_checked(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    wrong = runner.invoke(app, ["index", str(corpus), "--engine", "spark"])
    assert wrong.exit_code == 2 and "index.engine = 'spark'; valid: local, ray" in wrong.stderr
    stray = runner.invoke(app, ["index", str(corpus), "--address", "auto"])
    assert stray.exit_code == 2 and "--engine ray" in stray.stderr
    malformed = runner.invoke(app, ["index", str(corpus), "--engine", "ray", "--address", "somewhere"])
    assert malformed.exit_code == 1 and "ray://HOST:PORT" in malformed.stderr
    assert not (tmp_path / "index" / "CURRENT").exists()
