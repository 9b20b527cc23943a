"""The reference embedding backend: a sentence-transformers model loaded from a folder, run by torch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rag.errors import EmbedderError
from rag.types import Embedder


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model loaded from a folder on disk, run by torch (the reference backend)."""

    backend = "torch"

    def __init__(self, name: str, folder: Path, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EmbedderError(
                "sentence-transformers is not installed; run `pip install sentence-transformers`"
            ) from exc
        try:
            self.model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"cannot load the embedding model from {folder}: {exc}") from exc
        self.name = name
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise EmbedderError(f"model at {folder} does not report an embedding dimension")
        self.dim = int(dim)

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
