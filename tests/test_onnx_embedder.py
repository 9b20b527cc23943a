"""The onnx embedder backends: same answers as torch, offline, a damaged cache rebuilt, no torch at search time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rag.assistant import Assistant
from rag.config import EmbedSettings, load_settings
from rag.embedders import _load, load_embedder, resolve_model
from rag.errors import ConfigError, EmbedderError, IndexMismatchError
from rag.onnx_embedder import OnnxEmbedder, export_folder, read_export
from tests.conftest import REPO, SEEDS

QUESTIONS = [
    json.loads(line)["question"]
    for line in (REPO / "evals" / "seeds.jsonl").read_text(encoding="utf-8").splitlines()
    if json.loads(line)["answerable"]
]


def top_hits(assistant: Assistant, mode: str = "dense") -> list[str]:
    return [assistant.search(q, k=1, mode=mode).hits[0].chunk.chunk_id for q in QUESTIONS]


@pytest.fixture(scope="module")
def torch_assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """A seeds index built by the torch backend (the reference)."""
    settings = load_settings(env={"RAG_EMBED_BACKEND": "torch"})
    settings.index.dir = str(tmp_path_factory.mktemp("torch-index"))
    assistant = Assistant(settings)
    assistant.build_index([str(SEEDS)])
    return assistant


def test_onnx_gives_the_torch_vectors_and_top_hits(torch_assistant: Assistant, seeds_assistant: Assistant) -> None:
    assert seeds_assistant.settings.embed.backend == "onnx"  # the default
    assert seeds_assistant.index.manifest["embedder"]["backend"] == "onnx"
    torch_vectors = np.asarray(torch_assistant.index.vectors)
    onnx_vectors = np.asarray(seeds_assistant.index.vectors)
    assert np.min(np.sum(torch_vectors * onnx_vectors, axis=1)) > 0.999
    assert top_hits(seeds_assistant) == top_hits(torch_assistant)
    assert top_hits(seeds_assistant, "hybrid") == top_hits(torch_assistant, "hybrid")


def test_onnx_searches_an_index_that_torch_built(torch_assistant: Assistant) -> None:
    settings = load_settings(env={"RAG_EMBED_BACKEND": "onnx"})
    settings.index.dir = torch_assistant.settings.index.dir
    assert top_hits(Assistant(settings)) == top_hits(torch_assistant)


def test_int8_agrees_mostly_and_needs_its_own_index(
    torch_assistant: Assistant, assistant_factory: Callable[..., Assistant], tmp_path: Path
) -> None:
    int8 = assistant_factory(tmp_path / "int8", embed__backend="onnx-int8")
    int8.build_index([str(SEEDS)])
    same = sum(a == b for a, b in zip(top_hits(int8), top_hits(torch_assistant), strict=True))
    assert same >= 0.8 * len(QUESTIONS)  # quantised: other vectors, mostly the same first hit (54 of 59 here)
    as_float = assistant_factory(tmp_path / "int8", embed__backend="onnx")
    with pytest.raises(IndexMismatchError, match=r"'onnx-int8'.*rag index --rebuild.*RAG_EMBED_BACKEND=onnx-int8"):
        as_float.search("Northern Fleet")


def test_an_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"embed.backend = 'tensorrt'; valid: torch, onnx, onnx-int8"):
        load_settings(env={"RAG_EMBED_BACKEND": "tensorrt"})
    with pytest.raises(ConfigError, match=r"needs embed\.backend = torch"):
        load_settings(env={"RAG_EMBED_DEVICE": "cuda"})


# --- the cached export ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One export made in a private cache with every network connection refused; tests copy it."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_CACHE_DIR", str(cache))
        mp.delenv("HF_HUB_OFFLINE", raising=False)  # the embedder must set it itself

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"network access while loading the embedder: {args}")

        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "getaddrinfo", refuse)
        _load.cache_clear()  # a fresh load, not the session's
        embedder = load_embedder(load_settings(env={}).embed)
        assert isinstance(embedder, OnnxEmbedder) and os.environ["HF_HUB_OFFLINE"] == "1"
        assert embedder.encode(["Northern Fleet"]).shape == (1, 384)
        _load.cache_clear()
    yield cache


@pytest.fixture()
def cache(made_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the made export (mtimes kept) as this test's cache directory."""
    target = tmp_path / "cache"
    shutil.copytree(made_export, target)
    monkeypatch.setenv("RAG_CACHE_DIR", str(target))
    return target


def model_folder() -> tuple[str, Path]:
    return resolve_model(load_settings(env={}).embed.model)


def assert_sound(folder: Path) -> None:
    meta = json.loads((folder / "export.json").read_text())
    assert hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest() == meta["model"]["sha256"]
    assert meta["min_cosine_on_probes"] > 0.9999 and meta["source_sha256"]["model.safetensors"]


def test_the_export_records_its_hashes_and_loads_as_is(cache: Path) -> None:
    name, source = model_folder()
    folder = export_folder(source, "float32")
    assert folder.parent.parent == cache and read_export(folder) is not None
    assert_sound(folder)
    before = (folder / "model.onnx").stat().st_mtime_ns
    OnnxEmbedder(name, source)
    assert (folder / "model.onnx").stat().st_mtime_ns == before  # reused, not made again


@pytest.mark.parametrize("damage", ["truncated", "missing", "same_size_garbage", "no_metadata"])
def test_a_damaged_export_is_rebuilt(cache: Path, damage: str) -> None:
    name, source = model_folder()
    folder = export_folder(source, "float32")
    model = folder / "model.onnx"
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[:1000])
    elif damage == "missing":
        model.unlink()
    elif damage == "same_size_garbage":  # passes the size and mtime check; fails to load
        stat = model.stat()
        model.write_bytes(b"\0" * stat.st_size)
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert read_export(folder) is not None
    else:
        (folder / "export.json").unlink()
    stale = folder.with_name(f".{folder.name}.999999.tmp")  # left by a writer that was killed
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"partial")
    question = ["Who is the chief of Russia's Northern Fleet?"]
    vector = OnnxEmbedder(name, source).encode(question)[0]
    assert_sound(folder)
    assert not stale.exists()
    assert float(vector @ load_embedder(EmbedSettings(backend="torch")).encode(question)[0]) > 0.9999


def test_an_export_that_cannot_be_made_names_the_fix(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    name, source = model_folder()
    shutil.rmtree(export_folder(source, "float32"))

    def broken_export(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated exporter failure")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(EmbedderError, match=r"simulated exporter failure.*RAG_EMBED_BACKEND=torch"):
        OnnxEmbedder(name, source)
    assert not export_folder(source, "float32").exists()
    assert not list((cache / "onnx").glob(".*.tmp"))  # the half-made export is gone


def test_an_export_onnxruntime_cannot_load_names_the_fix(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    name, source = model_folder()

    def broken_session(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated onnxruntime failure")

    monkeypatch.setattr(onnxruntime, "InferenceSession", broken_session)
    with pytest.raises(EmbedderError, match=r"onnxruntime cannot load .*model\.onnx.*RAG_EMBED_BACKEND=torch"):
        OnnxEmbedder(name, source)  # tried as it is, then made again: both fail
    monkeypatch.undo()
    assert read_export(export_folder(source, "float32")) is not None  # the good export was kept


# --- what a search loads ----------------------------------------------------------------------------


def test_search_and_help_do_not_import_torch(seeds_assistant: Assistant) -> None:
    code = (
        "import sys\n"
        "from rag.assistant import Assistant\n"
        "from rag.config import load_settings\n"
        "settings = load_settings(env={})\n"
        "settings.index.dir = sys.argv[1]\n"
        "hits = Assistant(settings).search('Northern Fleet', mode='hybrid').hits\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print(len(hits), heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAG_EMBED_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", code, seeds_assistant.settings.index.dir],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["5", "[]"], done.stderr
    help_code = "import sys; from rag.cli import app\n"
    help_code += "heavy = [m for m in ('torch', 'numpy', 'faiss', 'onnxruntime', 'bm25s') if m in sys.modules]\n"
    help_code += "print(heavy)"
    done = subprocess.run([sys.executable, "-c", help_code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]", done.stderr
